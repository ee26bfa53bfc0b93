"""Verification API: each check passes on correct adjoints and catches wrong ones."""

import numpy as np
import pytest
import sympy as sp

import dpgen as dp
from dpgen.cli import main
from dpgen.codegen import render_module
from dpgen.errors import GradientCheckError, NotLinearError
from dpgen.runtime import CompiledStencil
from dpgen.stencils import laplacian, upwind


class OffByOneCell(CompiledStencil):
    """A deliberately wrong adjoint: one cell next to the boundary is perturbed."""

    def __init__(self, k, field, index):
        super().__init__(k.module)
        self.field, self.index = field, index

    def vjp(self, cotangents, **kwargs):
        result = super().vjp(cotangents, **kwargs)
        result[self.field] = result[self.field].copy()
        result[self.field][self.index] *= 1.001
        return result


@pytest.fixture(scope="module")
def adv():
    return dp.compile(upwind(1, bc="edge"), wrt=("d", "u", "dt"))


def test_check_vjp_passes_and_reports_per_wrt(adv):
    res = dp.check_vjp(adv, seed=3)
    assert res.passed and set(res.details) == {"d", "u", "dt"}
    assert res.error <= 1e-7 and "passed" in str(res)


def test_check_vjp_catches_a_boundary_cell_error(adv):
    for field, index in (("u", 0), ("d", -1)):
        bad = OffByOneCell(adv, field, index)
        res = dp.check_vjp(bad, seed=3)
        assert not res.passed and res.details[field] > 1e-6
        with pytest.raises(GradientCheckError, match=field):
            dp.check_vjp(bad, seed=3, raise_on_failure=True)


def test_check_vjp_accepts_given_points_and_float32_inputs(adv):
    rng = np.random.default_rng(0)
    inputs = {"d": rng.uniform(0, 1, 20).astype(np.float32), "u": rng.uniform(-1, 1, 20).astype(np.float32)}
    assert dp.check_vjp(adv, inputs, {"dt": 0.01, "dx": 0.05}, wrt="u").passed  # verified in float64


def test_dot_test_for_linear_stencils_only():
    lap = dp.compile(laplacian(2, bc="edge"), wrt="p")
    res = dp.dot_test(lap, seed=1)
    assert res.passed and res.error <= 1e-12
    bad = OffByOneCell(lap, "p", (0, 3))
    assert not dp.dot_test(bad, seed=1).passed
    with pytest.raises(NotLinearError, match="not linear"):
        dp.dot_test(dp.compile(upwind(1), wrt="u"))


def test_taylor_test_of_a_stencil_and_of_a_function(adv):
    res = dp.taylor_test(adv, seed=2)
    assert res.passed and abs(res.error - 2) < 0.1
    assert dp.taylor_test(dp.compile(laplacian(1), wrt="p")).passed  # linear: the 1/2|f|^2 term makes it real

    def value_and_grad(x, a):
        return float(np.sum(np.sin(a * x))), {"x": a * np.cos(a * x), "a": float(np.sum(x * np.cos(a * x)))}

    def wrong_gradient(x, a):
        value, grad = value_and_grad(x, a)
        return value, {"x": grad["x"] * 1.0001, "a": grad["a"]}

    point = {"x": np.linspace(-1, 1, 9), "a": 1.3}
    good = dp.taylor_test(value_and_grad, point)
    assert good.passed and abs(good.error - 2) < 0.1
    bad = dp.taylor_test(wrong_gradient, point)
    assert not bad.passed and bad.error < 1.5  # slope falls toward 1
    with pytest.raises(GradientCheckError):
        dp.taylor_test(wrong_gradient, point, raise_on_failure=True)


def test_verification_refuses_fastmath_kernels():
    k = dp.compile(laplacian(1), wrt="p", fastmath=True)
    with pytest.raises(ValueError, match="fastmath"):
        dp.check_vjp(k)


def test_check_stencil_retries_on_a_positive_domain():
    d = dp.Field("d", bc="reflect")
    report = dp.check_stencil(dp.Stencil("logsqrt", {d: sp.log(d[1]) * sp.sqrt(d[-1])}))
    assert report.passed and report.domain == (0.5, 1.5)


def test_cli_check_prints_a_table(tmp_path, capsys):
    spec = tmp_path / "spec.py"
    spec.write_text(
        "import sympy as sp, dpgen as dp\n"
        "p, k = dp.fields('p k', ndim=2, bc=('edge', 'periodic'))\n"
        "diffuse = dp.Stencil('diffuse', {p: p[0, 0] + (k[0, 0] + k[1, 0]) / 2 * (p[1, 0] - p[0, 0])"
        " - (k[-1, 0] + k[0, 0]) / 2 * (p[0, 0] - p[-1, 0]) + sp.tanh(p[0, 1])})\n"
        "WRT = {'diffuse': ('p', 'k')}\n"
    )
    assert main(["check", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "diffuse" in out and "k,p" in out and "ok" in out and "vjp rel err" in out


def test_check_vjp_tolerates_only_finite_difference_round_off(adv):
    # dt = 1e-4: d/du is 1e-4 of the loss, so the finite difference itself loses digits
    res = dp.check_vjp(adv, params={"dt": 1e-4, "dx": 1.0}, seed=0)
    assert res.passed and "u" in res.details["within finite-difference round-off"]
    bad = OffByOneCell(adv, "u", 3)
    assert not dp.check_vjp(bad, params={"dt": 1e-4, "dx": 1.0}, seed=0).passed


def test_periodic_adjoint_check_runs_where_it_applies_and_catches_a_leaking_ghost(adv, tmp_path):
    """check_periodic_adjoint compares the fold-free kernel with the vjp; check_stencil and the table include it."""
    from dpgen.errors import NotApplicableError

    periodic = dp.compile(upwind(1), wrt=("d", "u", "dt"))
    result = dp.check_periodic_adjoint(periodic, seed=3)
    assert result.passed and result.error < 1e-13
    assert set(result.details) == {"d", "u", "pair d", "pair u", "pair d (long)", "pair u (long)"}
    report = dp.check_stencil(upwind(1), ("d", "u"))
    assert report.periodic is not None and report.periodic.passed
    assert "periodic rel err" in dp.verify.format_reports([report])
    assert not adv.spec["has_periodic_adjoint"]  # edge rule: the folded adjoint only
    with pytest.raises(NotApplicableError, match="no fold-free periodic adjoint"):
        dp.check_periodic_adjoint(adv)
    # kernels that forget to fill the cotangent's halo read the NaN ghosts: the check fails
    # (1-D kernels fill their own halos: the module's source without those calls)
    source = render_module(upwind(1), ("d", "u", "dt")).source
    fill = "    fill_halo_bar__d(pbar__d)\n"
    assert source.count(fill) == 4  # adjoint_periodic and the pair, each with its serial twin
    path = tmp_path / "upwind_no_cotangent_fill.py"
    path.write_text(source.replace(fill, ""))
    failed = dp.check_periodic_adjoint(dp.load(path), seed=3)
    assert not failed.passed and failed.error == float("inf")
    assert failed.details["pair d"] == float("inf")  # the pair fills the cotangent halo too


def test_periodic_adjoint_check_reaches_the_fused_loop_of_the_1d_pair():
    """A 1-D pair runs its two steps in one loop only on chunks longer than AHEAD_ROWS plus
    the halo; a fault there must fail the check although short chunks pass."""
    from dpgen.codegen.pair import AHEAD_ROWS

    k = dp.compile(upwind(1))
    k = type(k)(k.module)  # a fresh instance: kernels are looked up once per shape
    real = k._kernel

    def faulty(name, shape):
        kernel = real(name, shape)
        if name != "adjoint_periodic_pair":
            return kernel

        def pair(*args):
            kernel(*args)
            scratch, adj_d = args[-1], args[6]
            if scratch.shape[1] - 2 > AHEAD_ROWS + 1:  # chunks that take the fused loop
                adj_d[3] += 1e-3 * abs(adj_d[3]) + 1e-9

        return pair

    k._kernel = faulty
    result = dp.check_periodic_adjoint(k, seed=3)
    assert not result.passed
    assert result.details["pair d"] == 0.0 and result.details["pair d (long)"] > 1e-6

