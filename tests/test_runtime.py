"""Runtime layer: call-time validation, dtypes, buffers, serial vs parallel kernels."""

import numpy as np
import pytest

import dpgen as dp
from dpgen.config import override
from dpgen.errors import (
    DTypeError,
    GridTooSmallError,
    MissingArgumentError,
    ParameterError,
    ShapeError,
    UnknownArgumentError,
)
from dpgen.stencils import gradient_2d, laplacian, upwind

from helpers import run_python

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def adv():
    return dp.compile(upwind(1), wrt=("d", "u", "dt"))


def upwind_args(n=16, dtype=np.float64):
    return dict(
        d=RNG.uniform(0, 1, n).astype(dtype), u=RNG.uniform(-1, 1, n).astype(dtype), dt=1e-2, dx=1 / n
    )


@pytest.mark.parametrize(
    "mutate, error, words",
    [
        (lambda a: a.pop("u"), MissingArgumentError, ["'u'"]),
        (lambda a: a.pop("dt"), MissingArgumentError, ["'dt'"]),
        (lambda a: a.update(dtt=1.0), UnknownArgumentError, ["'dtt'", "inputs: d, u"]),
        (lambda a: a.update(u=np.ones((4, 4))), ShapeError, ["'u'", "ndim 2", "1-D"]),
        (lambda a: a.update(u=np.ones(17)), ShapeError, ["d: (16,)", "u: (17,)"]),
        (lambda a: a.update(u=np.ones(16, dtype=np.int64)), DTypeError, ["'u'", "int64"]),
        (lambda a: a.update(u=np.ones(16, dtype=np.complex128)), DTypeError, ["complex128"]),
        (lambda a: a.update(u=np.ones(16, dtype=np.float32)), DTypeError, ["mix", "u: float32"]),
        (lambda a: a.update(d=np.ones(1), u=np.ones(1)), GridTooSmallError, ["axis 0", "1 cell", "at least 2"]),
        (lambda a: a.update(dt=np.ones(3)), ParameterError, ["'dt'", "scalar"]),
        (lambda a: a.update(dt="0.1"), ParameterError, ["'dt'"]),
    ],
)
def test_forward_rejects_bad_input_before_running(adv, mutate, error, words):
    args = upwind_args()
    mutate(args)
    with pytest.raises(error) as info:
        adv.forward(**args)
    for w in words:
        assert w in str(info.value)


def test_vjp_rejects_bad_cotangents(adv):
    args = upwind_args()
    with pytest.raises(UnknownArgumentError, match="no output 'u'"):
        adv.vjp({"u": np.ones(16)}, **args)
    with pytest.raises(ShapeError, match="cotangent of d"):
        adv.vjp({"d": np.ones(15)}, **args)
    with pytest.raises(DTypeError, match="mix"):
        adv.vjp({"d": np.ones(16, dtype=np.float32)}, **args)
    with pytest.raises(UnknownArgumentError, match="mapping"):
        adv.vjp(np.ones(16), **args)


def test_output_name_passed_as_input_is_explained():
    k = dp.compile(laplacian(1), wrt="p")
    with pytest.raises(UnknownArgumentError, match="'lap' is an output"):
        k.forward(p=np.ones(5), lap=np.ones(5), dx=1.0)


def test_grid_must_be_longer_than_the_halo_on_every_axis():
    p = dp.Field("p", ndim=2, bc="reflect")
    k = dp.compile(dp.Stencil("wide2d", {p: p[2, 0] + p[0, -1]}), wrt="p")
    k.forward(p=np.ones((3, 2)))  # halo (0, 2) on axis 0 and (1, 0) on axis 1
    with pytest.raises(GridTooSmallError, match="axis 0 has 2 cell"):
        k.forward(p=np.ones((2, 5)))
    with pytest.raises(GridTooSmallError, match="axis 1 has 1 cell"):
        k.forward(p=np.ones((5, 1)))


def test_vjp_reads_only_the_fields_it_needs(adv):
    k = dp.compile(upwind(1), wrt="d")
    assert k.needs == ("u",)
    args = upwind_args()
    g = RNG.standard_normal(16)
    without_d = k.vjp({"d": g}, u=args["u"], dt=args["dt"], dx=args["dx"])
    np.testing.assert_array_equal(without_d["d"], adv.vjp({"d": g}, **args)["d"])
    with pytest.raises(MissingArgumentError, match="'d'"):
        adv.vjp({"d": g}, u=args["u"], dt=args["dt"], dx=args["dx"])


def test_missing_cotangents_count_as_zero():
    k = dp.compile(gradient_2d("edge"), wrt=("p", "dx"))
    p = RNG.standard_normal((6, 5))
    gx = RNG.standard_normal((6, 5))
    only_x = k.vjp({"gx": gx}, p=p, dx=0.3, dy=0.7)
    explicit = k.vjp({"gx": gx, "gy": np.zeros((6, 5))}, p=p, dx=0.3, dy=0.7)
    np.testing.assert_array_equal(only_x["p"], explicit["p"])
    assert only_x["dx"] == explicit["dx"]


def test_float32_runs_in_float32_and_agrees_with_float64(adv):
    args64 = upwind_args(32)
    args32 = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) else v) for k, v in args64.items()}
    g = RNG.standard_normal(32)
    out32 = adv.forward(**args32)["d"]
    cot32 = adv.vjp({"d": g.astype(np.float32)}, **args32)
    assert out32.dtype == np.float32 and cot32["d"].dtype == np.float32 and cot32["u"].dtype == np.float32
    np.testing.assert_allclose(out32, adv.forward(**args64)["d"], rtol=1e-5, atol=1e-6)
    cot64 = adv.vjp({"d": g}, **args64)
    for name in ("d", "u"):
        np.testing.assert_allclose(cot32[name], cot64[name], rtol=1e-4, atol=1e-4 * np.abs(cot64[name]).max())


def test_results_are_fresh_arrays_even_though_buffers_are_reused(adv):
    args = upwind_args()
    first = adv.forward(**args)["d"]
    keep = first.copy()
    g1 = adv.vjp({"d": np.ones(16)}, **args)
    keep_g = g1["d"].copy()
    adv.forward(**{**args, "d": args["d"] * 2})
    adv.vjp({"d": -np.ones(16)}, **args)
    np.testing.assert_array_equal(first, keep)
    np.testing.assert_array_equal(g1["d"], keep_g)


def test_inputs_are_not_modified_and_may_be_strided(adv):
    args = upwind_args(32)
    d_big = np.empty(64)
    d_big[::2] = args["d"]
    strided = {**args, "d": d_big[::2]}
    before = {k: v.copy() for k, v in args.items() if isinstance(v, np.ndarray)}
    out = adv.forward(**strided)["d"]
    np.testing.assert_array_equal(out, adv.forward(**args)["d"])
    g = RNG.standard_normal(64)[::2]
    np.testing.assert_array_equal(adv.vjp({"d": g}, **strided)["u"], adv.vjp({"d": g.copy()}, **args)["u"])
    for k, v in before.items():
        np.testing.assert_array_equal(args[k], v)


def test_parallel_and_serial_kernels_agree():
    k = dp.compile(upwind(2, bc=("periodic", "edge")), wrt=("d", "u", "v", "dt"))
    shape = (40, 33)
    args = dict(
        d=RNG.uniform(0, 1, shape), u=RNG.uniform(-1, 1, shape), v=RNG.uniform(-1, 1, shape), dt=0.01, dx=0.1, dy=0.2
    )
    g = RNG.standard_normal(shape)
    with override(parallel_threshold=10**12):
        serial = (k.forward(**args)["d"], k.vjp({"d": g}, **args))
    with override(parallel_threshold=0):
        parallel = (k.forward(**args)["d"], k.vjp({"d": g}, **args))
    np.testing.assert_array_equal(serial[0], parallel[0])
    for name in ("d", "u", "v"):
        np.testing.assert_array_equal(serial[1][name], parallel[1][name])  # race-free gather: bitwise equal
    assert parallel[1]["dt"] == pytest.approx(serial[1]["dt"], rel=1e-12)  # reduction order may differ
    # the CFL check's minimum: 1 - dt (|u|/dx + |v|/dy), serial and parallel alike
    expected = float(np.min(1 - args["dt"] * (np.abs(args["u"]) / args["dx"] + np.abs(args["v"]) / args["dy"])))
    for threshold in (10**12, 0):
        with override(parallel_threshold=threshold):
            assert k.min_diagonal(**args)["d"] == pytest.approx(expected, rel=1e-14)


def test_stencil_reading_no_forward_values_needs_only_a_cotangent():
    k = dp.compile(laplacian(2, bc="zero"), wrt="p")
    assert k.needs == ()
    g = RNG.standard_normal((5, 4))
    out = k.vjp({"lap": g}, dx=1.0, dy=1.0)["p"]
    # zero boundary: the Laplacian is symmetric, so the vjp equals the forward map
    np.testing.assert_allclose(out, k.forward(p=g, dx=1.0, dy=1.0)["lap"], rtol=1e-14, atol=1e-14)
    with pytest.raises(MissingArgumentError, match="at least one array"):
        k.vjp({}, dx=1.0, dy=1.0)


def test_repr_names_inputs_outputs_and_wrt(adv):
    text = repr(adv)
    assert "upwind_1d" in text and "wrt d, u, dt" in text


@pytest.mark.parametrize("threshold", [0, 10**9])  # parallel and serial twins
def test_forward_kernel_counts_cells_with_non_finite_outputs(threshold):
    """The forward kernel counts non-finite outputs on the way (rollouts stop on NaN with
    no second pass); with two outputs a cell counts once."""
    k = dp.compile(gradient_2d("periodic", name="count_nonfinite_grad"), wrt=())
    p = np.random.default_rng(0).random((9, 7))
    padded = np.zeros(k.padded_shape(p.shape))
    outs = {"gx": np.empty(padded.shape), "gy": np.empty(padded.shape)}  # padded: ghosts untouched
    with override(parallel_threshold=threshold):
        padded[k.interior(p.shape)] = p
        assert k.forward_padded({"p": padded}, {"dx": 1.0, "dy": 1.0}, outs) == 0
        p[3, 3], p[0, 0] = np.nan, np.inf  # each reaches its own cell and the next one along x and y
        padded[k.interior(p.shape)] = p
        assert k.forward_padded({"p": padded}, {"dx": 1.0, "dy": 1.0}, outs) == 6
        inside = k.interior(p.shape)
        assert (~np.isfinite(outs["gx"][inside]) | ~np.isfinite(outs["gy"][inside])).sum() == 6


@pytest.mark.parametrize("bc", ["periodic", "edge"])
def test_forward_runner_equals_forward_padded(adv, bc):
    """The runner rollouts step with (look-ups done once) fills the same halos, writes the
    same bits and counts the same non-finite cells as forward_padded."""
    k = adv if bc == "periodic" else dp.compile(upwind(1, bc="edge", name="upwind_edge_runner"), wrt=())
    rng = np.random.default_rng(3)
    d, u = rng.random(40), rng.random(40) - 0.5
    params = {"dt": 0.01, "dx": 0.1}
    run = k.forward_runner(k.padded_shape(d.shape), params)
    inputs = {}
    for name, value in (("d", d), ("u", u)):
        inputs[name] = np.full(k.padded_shape(d.shape), 7.0)  # stale ghost cells: both must fill them
        inputs[name][k.interior(d.shape)] = value
    copies = {n: a.copy() for n, a in inputs.items()}
    want, got = np.zeros(k.padded_shape(d.shape)), np.zeros(k.padded_shape(d.shape))
    assert k.forward_padded(copies, params, {"d": want}) == 0
    assert run([inputs[n] for n in k.inputs], [got]) == 0
    np.testing.assert_array_equal(got, want)
    inputs["d"][5] = np.nan
    assert run([inputs[n] for n in k.inputs], [got]) == 3  # the cell and its two neighbours


@pytest.mark.parametrize("periodic", [True, False], ids=["adjoint_periodic", "adjoint"])
@pytest.mark.parametrize("shape", [(40,), (9, 7)], ids=["1d", "2d"])
def test_adjoint_runner_equals_adjoint_padded(periodic, shape):
    """The bound adjoint a rollout's reverse step calls writes the same bits as adjoint_padded,
    accumulating where asked (the add flags are bound with it), and says alike whether a
    halo fold is left; a stencil without the fold-free kernel refuses periodic=True."""
    from dpgen.errors import NotApplicableError

    nd = len(shape)
    k = dp.compile(upwind(nd), wrt=("d", "u") + (("v",) if nd == 2 else ()))
    rng = np.random.default_rng(4)
    params = {"dt": 0.01, "dx": 0.1, **({"dy": 0.2} if nd == 2 else {})}
    pshape = k.padded_shape(shape)
    inputs = {}
    for name in k.spec["adjoint_inputs"]:
        inputs[name] = np.full(pshape, 7.0)  # stale ghost cells: both must fill them
        inputs[name][k.interior(shape)] = rng.random(shape) - 0.5
    padded_bar = rng.standard_normal(pshape)
    bars = {"d": padded_bar[k.interior(shape)]}
    add = {"u": True}  # a time-constant field's gradient accumulates over steps
    start = {n: rng.standard_normal(pshape) for n in k.wrt_fields}
    want = {n: a.copy() for n, a in start.items()}
    got = {n: a.copy() for n, a in start.items()}
    copies = {n: a.copy() for n, a in inputs.items()}
    unfolded = k.adjoint_padded(bars, copies, params, want, add, {"d": padded_bar.copy()} if periodic else None)
    run = k.adjoint_runner(pshape, params, add, periodic)
    assert run([inputs[n] for n in k.spec["adjoint_inputs"]], [padded_bar.copy() if periodic else bars["d"]],
               [got[n] for n in k.wrt_fields]) is unfolded is (not periodic)
    inside = k.interior(shape)
    for n in k.wrt_fields:
        np.testing.assert_array_equal(got[n][inside] if periodic else got[n], want[n][inside] if periodic else want[n])
    assert not np.array_equal(got["u"][inside], start["u"][inside])
    edge = dp.compile(upwind(1, bc="edge", name="upwind_edge_adjoint_runner"), wrt=("d",))
    with pytest.raises(NotApplicableError, match="no fold-free periodic adjoint"):
        edge.adjoint_runner(edge.padded_shape((8,)), {"dt": 0.1, "dx": 0.1}, {}, periodic=True)


def test_serial_and_parallel_twins_keep_their_own_numba_cache_entries(tmp_path):
    """Numba names its on-disk cache after the function, not the compile options: twins
    built from one function must not load each other's machine code (the parallel twin
    then ran serial code, in CG at every size)."""
    module = tmp_path / "twin_mod.py"
    module.write_text(
        "import numba\n"
        "from dpgen.runtime.twins import Twin\n"
        "def total(a):\n"
        "    s = 0.0\n"
        "    for i in numba.prange(a.size):\n"
        "        s += a[i]\n"
        "    return s\n"
        "TOTAL = Twin(total)\n"
    )
    cache = tmp_path / "numba-cache"
    code = (
        "import sys, numpy as np; sys.path.insert(0, {dir!r}); import twin_mod;"
        "a = np.arange(10.0); assert twin_mod.TOTAL.{first}(a) == 45.0;"
        "assert twin_mod.TOTAL.{second}(a) == 45.0;"
        "print(sum(twin_mod.TOTAL.parallel.stats.cache_hits.values()), sum(twin_mod.TOTAL.serial.stats.cache_hits.values()))"
    )
    env = {"NUMBA_CACHE_DIR": str(cache)}
    run_python(code.format(dir=str(tmp_path), first="serial", second="parallel"), env=env)
    indexes = sorted(p.name.split("-")[0] for p in cache.rglob("*.nbi"))
    assert indexes == ["twin_mod.total__parallel", "twin_mod.total__serial"]
    # a second process loads each twin from its own entry
    out = run_python(code.format(dir=str(tmp_path), first="parallel", second="serial"), env=env).stdout.split()
    assert [int(h) > 0 for h in out] == [True, True]
