"""Gradient verification: finite differences, dot-product tests, Taylor tests.

Every check runs in float64 on random, non-uniform data (cells next to every
boundary included, since the whole grid is random) and returns a result object;
``raise_on_failure=True`` turns a failure into :class:`~dpgen.errors.GradientCheckError`.
Kernels compiled with ``fastmath`` are refused: verification must see exact IEEE math.

Examples
--------
>>> import sympy as sp, dpgen as dp
>>> d, u = dp.fields("d u")
>>> k = dp.compile(dp.Stencil("adv_doc", {d: d[0] - u[0] * (d[0] - d[-1])}), wrt=("d", "u"))
>>> check_vjp(k, seed=1).passed
True
>>> dot_test(dp.compile(dp.Stencil("lap_doc", {d: d[1] - 2 * d[0] + d[-1]}), wrt="d")).passed
True
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping

import numpy as np

from .codegen.pair import AHEAD_ROWS
from .errors import GradientCheckError, NotApplicableError, NotLinearError, WrtError
from .runtime import CompiledStencil

#: Safety factor on the finite-difference round-off estimate ``eps * sum|g f| / h``.
FD_NOISE_FACTOR = 20.0

#: Default verification grid per dimension: small, non-square (catches axis mix-ups).
DEFAULT_SHAPES = {1: (32,), 2: (12, 10), 3: (8, 7, 6)}

Arrays = Mapping[str, np.ndarray]


@dataclasses.dataclass
class CheckResult:
    """Outcome of one verification.

    Attributes
    ----------
    kind : str
        ``"vjp"``, ``"dot"`` or ``"taylor"``.
    stencil : str
        Name of the stencil (or function) checked.
    passed : bool
    error : float
        Worst relative error (``vjp``, ``dot``) or the observed convergence order
        (``taylor``).
    tolerance : float
        Largest error allowed (``vjp``, ``dot``) or smallest order accepted (``taylor``).
    details : dict
        Per-``wrt`` errors, or the Taylor remainders and slopes.
    """

    kind: str
    stencil: str
    passed: bool
    error: float
    tolerance: float
    details: dict = dataclasses.field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def raise_if_failed(self) -> "CheckResult":
        if not self.passed:
            raise GradientCheckError(str(self))
        return self

    def __str__(self) -> str:
        status = "passed" if self.passed else "FAILED"
        cmp = ">=" if self.kind == "taylor" else "<="
        what = "order" if self.kind == "taylor" else "relative error"
        detail = ", ".join(
            f"{k}: {v:.2e}" if isinstance(v, float) else f"{k}: {v}" for k, v in self.details.items()
        )
        return (
            f"{self.kind} check of {self.stencil} {status}: {what} {self.error:.3e} "
            f"(need {cmp} {self.tolerance:.1e}); {detail}"
        )


def _finish(result: CheckResult, raise_on_failure: bool) -> CheckResult:
    return result.raise_if_failed() if raise_on_failure else result


def _refuse_fastmath(k: CompiledStencil) -> None:
    if k.spec.get("fastmath"):
        raise ValueError(
            f"stencil {k.name!r} was compiled with fastmath; verification needs exact IEEE "
            "arithmetic: compile it again with fastmath=False"
        )


def random_inputs(
    k: CompiledStencil,
    shape: tuple[int, ...] | None = None,
    *,
    seed: int = 0,
    low: float = -1.0,
    high: float = 1.0,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Random float64 fields (uniform in ``[low, high)``) and parameters (in ``[0.5, 1.5)``)."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape or DEFAULT_SHAPES[k.ndim])
    fields = {n: rng.uniform(low, high, size=shape) for n in k.inputs}
    params = {p: float(rng.uniform(0.5, 1.5)) for p in k.params}
    return fields, params


def _prepare(
    k: CompiledStencil,
    inputs: Arrays | None,
    params: Mapping[str, float] | None,
    shape: tuple[int, ...] | None,
    seed: int,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    _refuse_fastmath(k)
    rand_fields, rand_params = random_inputs(k, shape, seed=seed + 1000)
    fields = {n: np.array(v, dtype=np.float64) for n, v in (inputs or rand_fields).items()}
    par = dict(rand_params)
    par.update({p: float(v) for p, v in (params or {}).items()})
    return fields, par


def _wrt(k: CompiledStencil, wrt: str | tuple[str, ...] | None) -> tuple[str, ...]:
    names = k.wrt if wrt is None else ((wrt,) if isinstance(wrt, str) else tuple(wrt))
    for n in names:
        if n not in k.wrt:
            raise WrtError(f"stencil {k.name!r} was compiled without an adjoint for {n!r} (wrt {k.wrt})")
    return names


def _pairing(a: Arrays, b: Arrays) -> float:
    return math.fsum(float(np.vdot(a[n], b[n])) for n in a)


def check_vjp(
    k: CompiledStencil,
    inputs: Arrays | None = None,
    params: Mapping[str, float] | None = None,
    *,
    wrt: str | tuple[str, ...] | None = None,
    shape: tuple[int, ...] | None = None,
    n_directions: int = 2,
    eps: float = 1e-5,
    rtol: float = 1e-7,
    seed: int = 0,
    raise_on_failure: bool = False,
) -> CheckResult:
    """Compare the vjp with central finite differences in random directions.

    For a random cotangent ``g`` and each ``w`` in ``wrt`` separately, with a random
    direction ``v``, the fourth-order central difference of ``L = sum_out <g_out, f_out>``
    along ``v`` (step ``h = eps * max(rms(w), 1e-3)``) is compared with ``<vjp(g)_w, v>``.
    Fourth order lets the step stay small (few Min/Max kinks crossed) while the
    truncation error (``~h**4``) stays far below the round-off error (``~1e-16 |L| / h``).

    Parameters
    ----------
    inputs, params : mappings, optional
        The point of linearisation (all input fields, all parameters). Random if left out.
    eps : float
        Relative finite-difference step.
    rtol : float
        Largest relative error ``|fd - ad| / max(|fd|, |ad|)`` accepted. A difference
        below the finite difference's own round-off (``20 eps sum|g f| / h``, reached
        when a gradient is tiny next to the loss, e.g. ``d/du`` at a small ``dt``)
        also passes, and the result names those entries.
    """
    fields, par = _prepare(k, inputs, params, shape, seed)
    names = _wrt(k, wrt)
    rng = np.random.default_rng(seed)
    grid = next(iter(fields.values())).shape
    details: dict[str, float | str] = {}
    passed_each: dict[str, bool] = {}
    noise_limited: set[str] = set()
    for _ in range(n_directions):
        g = {n: rng.standard_normal(grid) for n in k.outputs}
        grads = k.vjp(g, **fields, **par)

        def along(name: str, v, h: float) -> float:
            """d/ds L(w + s v) at s = 0, by the 5-point stencil (1, -8, 8, -1) / 12h."""
            values = []
            for s in (-2, -1, 1, 2):
                if name in fields:
                    fs, ps = {**fields, name: fields[name] + (s * h) * v}, par
                else:
                    fs, ps = fields, {**par, name: par[name] + s * h}
                values.append(_pairing(k.forward(**fs, **ps), g))
            return (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * h)

        for name in names:
            if name in k.inputs:
                v = rng.standard_normal(grid)
                h = eps * max(float(np.sqrt(np.mean(fields[name] ** 2))), 1e-3)
                ad = float(np.vdot(grads[name], v))
            else:
                v = 1.0
                h = eps * max(abs(par[name]), 1e-3)
                ad = float(grads[name])
            fd = along(name, v, h)
            scale = max(abs(fd), abs(ad), 1e-300)
            err = 0.0 if fd == ad else abs(fd - ad) / scale
            # Round-off of the finite difference: each L sums terms g*f rounded at ~eps.
            terms = math.fsum(float(np.vdot(np.abs(g[n]), np.abs(y))) for n, y in k.forward(**fields, **par).items())
            if err > rtol and abs(fd - ad) <= FD_NOISE_FACTOR * np.finfo(np.float64).eps * terms / h:
                noise_limited.add(name)
            details[name] = max(details.get(name, 0.0), err)
            passed_each[name] = passed_each.get(name, True) and (err <= rtol or name in noise_limited)
    worst = max((v for v in details.values() if isinstance(v, float)), default=0.0)
    passed = all(passed_each.values())
    if noise_limited:
        details["within finite-difference round-off"] = ",".join(sorted(noise_limited))
    return _finish(CheckResult("vjp", k.name, passed, worst, rtol, details), raise_on_failure)


def dot_test(
    k: CompiledStencil,
    inputs: Arrays | None = None,
    params: Mapping[str, float] | None = None,
    *,
    shape: tuple[int, ...] | None = None,
    rtol: float = 1e-12,
    seed: int = 0,
    raise_on_failure: bool = False,
) -> CheckResult:
    """Dot-product test ``<A x, y> = <x, A^T y>`` for a stencil linear in its ``wrt`` fields.

    ``x`` (the ``wrt`` fields) and ``y`` (the output cotangents) are random; the other
    input fields are coefficients taken from ``inputs`` (random if left out).
    """
    if not k.spec.get("linear_wrt"):
        raise NotLinearError(
            f"stencil {k.name!r} is not linear in its wrt fields {k.wrt_fields}; the dot-product "
            "test applies to linear operators (use check_vjp)"
        )
    fields, par = _prepare(k, inputs, params, shape, seed)
    rng = np.random.default_rng(seed)
    grid = next(iter(fields.values())).shape
    x = {n: rng.standard_normal(grid) for n in k.wrt_fields}
    y = {n: rng.standard_normal(grid) for n in k.outputs}
    lhs = _pairing(k.forward(**{**fields, **x}, **par), y)
    grads = k.vjp(y, **{**fields, **x}, **par)
    rhs = _pairing(x, {n: grads[n] for n in k.wrt_fields})
    err = abs(lhs - rhs) / max(abs(lhs), abs(rhs), 1e-300)
    details = {"<Ax,y>": lhs, "<x,A^T y>": rhs}
    return _finish(CheckResult("dot", k.name, err <= rtol, err, rtol, details), raise_on_failure)


def check_periodic_adjoint(
    k: CompiledStencil,
    inputs: Arrays | None = None,
    params: Mapping[str, float] | None = None,
    *,
    shape: tuple[int, ...] | None = None,
    rtol: float = 1e-12,
    seed: int = 0,
    raise_on_failure: bool = False,
) -> CheckResult:
    """The fold-free adjoint of a periodic stencil (``adjoint_periodic``) against the vjp.

    Rollouts run ``adjoint_periodic`` on the cotangents they keep padded; the vjp runs the
    folded adjoint, which :func:`check_vjp` holds against finite differences. Here the
    cotangents and inputs arrive padded with NaN ghost cells, so a kernel that read a
    ghost it had not filled, or wrote a ghost instead of a grid cell, fails. The error
    is ``max |periodic - vjp| / max |vjp|`` over the ``wrt`` fields.

    Where the module also has ``adjoint_periodic_pair`` (rollouts run two reverse steps
    per pass with it), the pair is checked the same way against two vjps in a row, at
    new random values of the states for the earlier step, with chunks of one and of
    three rows: its details are ``"pair <field>"`` (the worst of the two). A 1-D pair
    runs both steps in one loop only on chunks longer than
    :data:`~dpgen.codegen.pair.AHEAD_ROWS` plus the halo, so in 1-D it is checked again
    on random fields of a grid long enough for that (``"pair <field> (long)"``).
    """
    if not k.spec["has_periodic_adjoint"]:
        raise NotApplicableError(
            f"stencil {k.name!r} has no fold-free periodic adjoint (its fields are not all periodic, "
            "or its adjoint reads beyond the halo)"
        )
    fields, par = _prepare(k, inputs, params, shape, seed)
    rng = np.random.default_rng(seed)
    grid = next(iter(fields.values())).shape
    g = {n: rng.standard_normal(grid) for n in k.outputs}
    reference = k.vjp(g, **fields, **par)
    padded_bars = {n: _padded_nan(k, g[n]) for n in k.outputs}
    adj = {n: np.full(k.padded_shape(grid), np.nan) for n in k.wrt_fields}
    k.adjoint_padded({n: k.grid_cells(b) for n, b in padded_bars.items()},
                     {n: _padded_nan(k, fields[n]) for n in k.needs}, par, adj, {}, padded_bars)
    details: dict[str, float | str] = {}

    def compare(label: str, got: np.ndarray, ref: np.ndarray) -> None:
        diff = float(np.max(np.abs(got - ref)))  # NaN if a ghost leaked in
        error = math.inf if math.isnan(diff) else diff / max(float(np.max(np.abs(ref))), 1e-300)
        details[label] = max(error, details.get(label, 0.0))  # the worst over the chunk sizes

    for n in k.wrt_fields:
        compare(n, k.grid_cells(adj[n]), np.asarray(reference[n]))
    if k.spec.get("has_periodic_pair"):
        _check_pair(k, fields, par, g, reference, (1, 3), "", rng, compare)
        if len(grid) == 1:
            # the 1-D pair runs its two steps in one loop only on chunks longer than
            # AHEAD_ROWS plus the halo: check it there too, on fields of a longer grid
            reach = AHEAD_ROWS + sum(k.halo[0])
            cells = 2 * reach + 137
            long_fields, _ = _prepare(k, None, None, (cells,), seed + 1)
            long_g = {n: rng.standard_normal(cells) for n in k.outputs}
            long_reference = k.vjp(long_g, **long_fields, **par)
            _check_pair(k, long_fields, par, long_g, long_reference, (reach + 60, None), " (long)", rng, compare)
    worst = max(details.values(), default=0.0)  # type: ignore[type-var]
    return _finish(CheckResult("periodic adjoint", k.name, worst <= rtol, worst, rtol, details), raise_on_failure)


def _padded_nan(k: CompiledStencil, values: np.ndarray) -> np.ndarray:
    """``values`` in the grid cells of a padded array whose ghost cells are NaN (a read of one shows)."""
    out = np.full(k.padded_shape(np.shape(values)), np.nan)
    k.grid_cells(out)[...] = values
    return out


def _check_pair(k: CompiledStencil, fields: Arrays, par: Mapping[str, float], g: Arrays, reference: Arrays,
                rows: tuple[int | None, ...], suffix: str, rng: np.random.Generator, compare) -> None:
    """``adjoint_periodic_pair`` against two vjps in a row (``reference``: the first), NaN ghost cells."""
    grid = np.shape(next(iter(fields.values())))
    early = {n: rng.uniform(-1.0, 1.0, grid) for n in k.outputs}
    second = k.vjp({y: reference[y] for y in k.outputs}, **{**fields, **early}, **par)
    for chunk in rows:
        adj = {n: np.full(k.padded_shape(grid), np.nan) for n in k.wrt_fields}
        k.adjoint_pair_padded({n: _padded_nan(k, g[n]) for n in k.outputs},
                              {n: _padded_nan(k, fields[n]) for n in k.needs},
                              {n: _padded_nan(k, early[n]) for n in k.outputs}, par, adj, {}, rows=chunk)
        for n in k.wrt_fields:
            both = np.asarray(second[n]) + (0.0 if n in k.outputs else np.asarray(reference[n]))
            compare(f"pair {n}{suffix}", k.grid_cells(adj[n]), both)


ValueAndGrad = Callable[..., tuple[float, Mapping[str, object]]]


def taylor_test(
    func: ValueAndGrad | CompiledStencil,
    point: Mapping[str, object] | None = None,
    *,
    params: Mapping[str, float] | None = None,
    wrt: str | tuple[str, ...] | None = None,
    shape: tuple[int, ...] | None = None,
    h0: float = 1e-3,
    n_steps: int = 7,
    min_order: float = 1.9,
    seed: int = 0,
    raise_on_failure: bool = False,
) -> CheckResult:
    """Taylor test: ``|L(x + h d) - L(x) - h <grad L, d>|`` must shrink like ``h**2``.

    Parameters
    ----------
    func : callable or CompiledStencil
        ``func(**point) -> (value, {name: gradient})``. A compiled stencil is wrapped as
        ``L = sum_out <g_out, f_out> + 1/2 |f_out|^2`` with a random ``g``, whose gradient
        is the vjp at cotangent ``g + f`` — so linear stencils get a real test too.
    point : mapping, optional
        Where to expand (arrays and scalars by name); random for a stencil if omitted.
    wrt : names, optional
        Which entries of ``point`` to perturb (all gradients returned by default).

    The observed order is the smallest slope ``log2(r(h) / r(h/2))`` over the three
    smallest step pairs (kinks of Min/Max crossed at large ``h`` are forgiven); a
    remainder at round-off level counts as exact.
    """
    rng = np.random.default_rng(seed)
    name = getattr(func, "name", getattr(func, "__name__", "function"))
    if isinstance(func, CompiledStencil):
        fields, par = _prepare(func, point, params, shape, seed)
        wrt_names = _wrt(func, wrt)
        k = func
        grid = next(iter(fields.values())).shape
        g = {n: rng.standard_normal(grid) for n in k.outputs}
        point = {**fields, **par}

        def value_and_grad(**kw):
            out = k.forward(**kw)
            value = _pairing(out, g) + 0.5 * _pairing(out, out)
            return value, k.vjp({n: g[n] + out[n] for n in k.outputs}, **kw)

        fn: ValueAndGrad = value_and_grad
    else:
        if point is None:
            raise ValueError("taylor_test of a function needs the point to expand around")
        fn = func
        wrt_names = None if wrt is None else ((wrt,) if isinstance(wrt, str) else tuple(wrt))
    value0, grads = fn(**point)
    names = wrt_names or tuple(grads)
    directions, scales = {}, {}
    for n in names:
        base = np.asarray(point[n], dtype=np.float64)
        directions[n] = rng.standard_normal(base.shape) if base.ndim else float(rng.standard_normal())
        scales[n] = max(float(np.sqrt(np.mean(base**2))), 1e-3)
    slope_term = math.fsum(float(np.vdot(np.asarray(grads[n]), directions[n])) for n in names)
    remainders, hs = [], []
    for step in range(n_steps):
        h = h0 * 2.0**-step
        moved = dict(point)
        for n in names:
            moved[n] = np.asarray(point[n], dtype=np.float64) + h * scales[n] * directions[n]
            if np.ndim(point[n]) == 0:
                moved[n] = float(moved[n])
        value, _ = fn(**moved)
        remainders.append(abs(value - value0 - h * math.fsum(
            float(np.vdot(np.asarray(grads[n]), scales[n] * np.asarray(directions[n]))) for n in names
        )))
        hs.append(h)
    roundoff = 1e-13 * max(abs(value0), abs(slope_term), 1.0)
    slopes = [
        math.log2(r0 / r1) if r0 > roundoff and r1 > roundoff else math.inf
        for r0, r1 in zip(remainders, remainders[1:])
    ]
    order = min(slopes[-3:])
    passed = order >= min_order
    details = {"remainders": [f"{r:.2e}" for r in remainders], "slopes": [round(s, 3) for s in slopes]}
    return _finish(CheckResult("taylor", name, passed, order, min_order, details), raise_on_failure)


@dataclasses.dataclass
class StencilReport:
    """All checks of one stencil: vjp against finite differences, dot and Taylor tests."""

    stencil: str
    ndim: int
    wrt: tuple[str, ...]
    vjp: CheckResult
    dot: CheckResult | None
    taylor: CheckResult | None
    domain: tuple[float, float]
    periodic: CheckResult | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in (self.vjp, self.dot, self.taylor, self.periodic) if r is not None)


def check_stencil(
    stencil,
    wrt: str | tuple[str, ...] | None = None,
    *,
    shape: tuple[int, ...] | None = None,
    seed: int = 0,
    rtol: float = 1e-7,
) -> StencilReport:
    """Compile ``stencil`` (without fastmath) and run every applicable check on random data.

    Fields are drawn from ``[-1, 1)``; if the forward stencil is not finite there (a
    ``log`` or ``sqrt``, say), from ``[0.5, 1.5)`` instead.
    """
    from .compiler import compile as compile_stencil  # verification sits above every layer

    k = compile_stencil(stencil, wrt, fastmath=False)
    domain = (-1.0, 1.0)
    fields, par = random_inputs(k, shape, seed=seed, low=-1.0, high=1.0)
    if not all(np.isfinite(v).all() for v in k.forward(**fields, **par).values()):
        domain = (0.5, 1.5)
        fields, par = random_inputs(k, shape, seed=seed, low=0.5, high=1.5)
    vjp = check_vjp(k, fields, par, rtol=rtol, seed=seed)
    dot = dot_test(k, fields, par, seed=seed) if k.spec.get("linear_wrt") else None
    taylor = taylor_test(k, fields, params=par, seed=seed) if k.wrt else None
    periodic = check_periodic_adjoint(k, fields, par, seed=seed) if k.spec["has_periodic_adjoint"] else None
    return StencilReport(k.name, k.ndim, k.wrt, vjp, dot, taylor, domain, periodic)


def format_reports(reports: list[StencilReport]) -> str:
    """A plain-text table of :func:`check_stencil` reports."""
    header = ("stencil", "dim", "wrt", "vjp rel err", "dot rel err", "taylor order", "periodic rel err", "status")
    rows = [header]
    for r in reports:
        rows.append((
            r.stencil,
            f"{r.ndim}-D",
            ",".join(r.wrt) or "-",
            f"{r.vjp.error:.1e}",
            f"{r.dot.error:.1e}" if r.dot else "n/a",
            ("exact" if math.isinf(r.taylor.error) else f"{r.taylor.error:.2f}") if r.taylor else "n/a",
            f"{r.periodic.error:.1e}" if r.periodic else "n/a",
            "ok" if r.passed else "FAILED",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
