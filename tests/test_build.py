"""Build time: spec files, deterministic modules, stale detection, generated/."""

import numpy as np
import pytest

import dpgen as dp
from dpgen.build import build, load_spec
from dpgen.cli import main
from dpgen.errors import BuildError
from dpgen.stencils import FACTORIES, STENCILS, WRT

from helpers import ROOT

SPEC = '''
import sympy as sp
import dpgen as dp

d, u = dp.fields("d u", ndim=1, bc="edge")
dt = sp.Symbol("dt", positive=True)
advect = dp.Stencil("advect", {d: d[0] - dt * u[0] * (d[0] - d[-1])})
p = dp.Field("p", ndim=2, bc="zero")
smooth = dp.Stencil("smooth", {p: (p[1, 0] + p[-1, 0] + p[0, 1] + p[0, -1]) / 4})
alias = smooth  # the same stencil bound twice is built once
WRT = {"advect": ("d", "u", "dt")}
'''


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "spec.py"
    path.write_text(SPEC)
    return path


def test_build_writes_one_module_per_stencil_and_rebuilds_byte_identically(spec, tmp_path):
    out = tmp_path / "gen"
    first = build(spec, out)
    assert first.written == ["advect.py", "smooth.py"]
    before = {p.name: p.read_bytes() for p in out.glob("*.py")}
    again = build(spec, out)
    assert again.unchanged == ["advect.py", "smooth.py"] and not again.written
    assert {p.name: p.read_bytes() for p in out.glob("*.py")} == before
    k = dp.load(out / "advect.py")
    assert k.wrt == ("d", "u", "dt") and dp.load(out / "smooth.py").wrt == ("p",)


def test_check_mode_reports_stale_missing_and_extra(spec, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(["build", str(spec), "-o", str(out)]) == 0
    assert main(["build", str(spec), "-o", str(out), "--check"]) == 0
    target = out / "smooth.py"
    target.write_text(target.read_text().replace("/ 4", "/ 5") + "# edited\n")
    assert main(["build", str(spec), "-o", str(out), "--check"]) == 1
    assert "stale: smooth.py" in capsys.readouterr().out
    target.unlink()
    (out / "old.py").write_text("")
    report = build(spec, out, check=True)
    assert report.missing == ["smooth.py"] and report.extra == ["old.py"] and not report.up_to_date
    assert not target.exists()  # check mode writes nothing


def test_spec_errors(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(BuildError, match="defines no dpgen Stencil"):
        load_spec(empty)
    twice = tmp_path / "twice.py"
    twice.write_text(
        "import dpgen as dp\nd = dp.Field('d')\na = dp.Stencil('s', {d: d[1]})\nb = dp.Stencil('s', {d: d[-1]})\n"
    )
    with pytest.raises(BuildError, match="several stencils are named s"):
        load_spec(twice)
    bad_wrt = tmp_path / "bad_wrt.py"
    bad_wrt.write_text("import dpgen as dp\nd = dp.Field('d')\na = dp.Stencil('s', {d: d[1]})\nWRT = {'t': ('d',)}\n")
    with pytest.raises(BuildError, match="unknown stencil"):
        load_spec(bad_wrt)
    assert main(["build", str(tmp_path / "nope.py"), "-o", str(tmp_path)]) == 2


def test_shipped_generated_folder_is_up_to_date():
    report = build(ROOT / "dpgen" / "stencils.py", ROOT / "generated", check=True)
    assert report.up_to_date, f"{report} -- run: dpgen build dpgen/stencils.py -o generated"
    assert {s.name for s in STENCILS} == set(FACTORIES)


def test_generated_modules_agree_with_on_demand_compilation():
    rng = np.random.default_rng(5)
    for stencil in STENCILS:
        shipped = dp.load(ROOT / "generated" / f"{stencil.name}.py")
        fresh = dp.compile(stencil, WRT[stencil.name])
        assert shipped.content_hash == fresh.content_hash
        fields, params = dp.random_inputs(shipped, seed=int(rng.integers(1000)))
        out = shipped.forward(**fields, **params)
        for name, value in fresh.forward(**fields, **params).items():
            np.testing.assert_array_equal(out[name], value)
        cot = shipped.vjp(out, **fields, **params)
        for name, value in fresh.vjp(out, **fields, **params).items():
            np.testing.assert_array_equal(cot[name], value)


def test_module_of_another_kernel_calling_convention_is_refused(tmp_path):
    """Numba does not bounds-check: a module rendered for other kernel arguments must not
    load (it would read and write out of bounds), and the error says how to fix it."""
    from dpgen.kernel_abi import KERNEL_ABI

    source = (ROOT / "generated" / "upwind_1d.py").read_text()
    assert f"'kernel_abi': {KERNEL_ABI}," in source
    old = tmp_path / "upwind_1d_old.py"
    old.write_text(source.replace(f" 'kernel_abi': {KERNEL_ABI},\n", ""))  # as dpgen 0.1.0 wrote it
    with pytest.raises(BuildError, match=r"convention 1; this dpgen calls convention \d+\. Regenerate"):
        dp.load(old)
