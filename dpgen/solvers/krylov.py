"""Matrix-free Krylov solvers (CG, BiCGStab) over any ``apply(x) -> A x``.

The loops are Python; every vector operation is a fused Numba pass over flat float
arrays (one pass updates the iterate and the residual *and* returns the new residual
norm), so the cost per iteration is one operator application plus two or three
streaming passes. This differs from ``scipy.sparse.linalg.cg`` in that: the true
residual ``b - A x`` is recomputed every ``refresh`` iterations (the recursively
updated residual drifts); convergence is judged on that true residual before
returning; an optional projection keeps iterates in the range of a singular operator;
and non-convergence raises instead of returning a flag.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numba
import numpy as np

from ..errors import SolverError
from ..runtime.twins import Twin, dot
from .operators import GridOperator, StencilOperator

Operator = Callable[[np.ndarray], np.ndarray]


def _pcg_step_py(x, r, z, p, ap, alpha, alpha_r, minv):
    """x += alpha p; r -= alpha_r A p; z = M^-1 r; return (|r|^2, r.z) -- one pass.

    ``alpha_r = sign * alpha`` folds the sign of a negative-definite operator.
    """
    rr = 0.0
    rz = 0.0
    for i in numba.prange(x.size):
        x[i] += alpha * p[i]
        ri = r[i] - alpha_r * ap[i]
        zi = minv[i] * ri
        r[i] = ri
        z[i] = zi
        rr += ri * ri
        rz += ri * zi
    return rr, rz


def _cg_update_py(x, r, p, ap, alpha, alpha_r):
    """x += alpha p; r -= alpha_r A p; return |r|^2 -- one pass."""
    rr = 0.0
    for i in numba.prange(x.size):
        x[i] += alpha * p[i]
        ri = r[i] - alpha_r * ap[i]
        r[i] = ri
        rr += ri * ri
    return rr


def _xpby_py(x, beta, y):
    """y = x + beta y, in place."""
    for i in numba.prange(x.size):
        y[i] = x[i] + beta * y[i]


_pcg_step = Twin(_pcg_step_py)
_cg_update = Twin(_cg_update_py)
_xpby = Twin(_xpby_py)


@dataclasses.dataclass
class SolveInfo:
    """How a solve went: the method, iterations, final relative residual, convergence."""

    method: str
    iterations: int
    residual: float
    converged: bool
    rtol: float

    def __str__(self) -> str:
        state = "converged" if self.converged else "NOT converged"
        return f"{self.method}: {state} in {self.iterations} iterations, relative residual {self.residual:.2e}"


def _as_operator(apply, shape) -> GridOperator | StencilOperator:
    return apply if hasattr(apply, "matvec") else GridOperator(apply, shape)


def _finish(op, rhs: np.ndarray, x: np.ndarray, project: bool, info: SolveInfo, goal: float, what: str,
            sign: float = 1.0) -> tuple[np.ndarray, SolveInfo]:
    """Judge convergence on the true residual ``b - A x`` (not the recursive one); raise if not met."""
    true_r = rhs - sign * op.matvec(x)
    if project:
        op.remove_mean(true_r)
    res = math.sqrt(dot(true_r, true_r))
    bnorm = math.sqrt(dot(rhs, rhs))
    info.residual = res / bnorm if bnorm else res
    info.converged = res <= goal * (1 + 1e-6) or bnorm == 0
    if not info.converged:
        raise SolverError(f"{what}: {info} (needed {info.rtol:.1e}); raise maxiter or check the operator")
    return np.array(op.grid(x)), info


def cg(
    apply: Operator | StencilOperator,
    b: np.ndarray,
    *,
    rtol: float = 1e-10,
    atol: float = 0.0,
    maxiter: int | None = None,
    project: bool = False,
    diag_inv: np.ndarray | None = None,
    preconditioner: Operator | None = None,
    x0: np.ndarray | None = None,
    refresh: int = 50,
    sign: float = 1.0,
    what: str = "CG",
) -> tuple[np.ndarray, SolveInfo]:
    """Solve ``A x = b`` for a symmetric positive (semi-)definite ``A``, from ``x0`` (default 0).

    ``apply`` is a function on grid arrays, or an operator object
    (:class:`~dpgen.solvers.operators.StencilOperator`) whose vectors live in the
    stencil's padded layout — no copy per application.
    ``sign = -1`` solves a negative (semi-)definite ``A`` (a Laplacian) as ``(-A) x = -b``
    without negating a vector per application; ``diag_inv`` is then that of ``-A``.
    ``diag_inv`` (``1 / diag(sign A)`` on the grid, positive) turns on Jacobi
    preconditioning; ``preconditioner`` (``r -> z`` on the operator's vectors) any fixed
    symmetric positive-definite one, e.g. a :class:`~dpgen.solvers.multigrid.Multigrid`
    V-cycle.
    ``project`` removes the mean of the right-hand side, of the residual at each refresh,
    of preconditioned residuals and of the solution: the right solve for an operator
    whose null space is the constants (periodic or all-Neumann Laplacians); the result is
    the zero-mean solution. Raises :class:`~dpgen.errors.SolverError` if
    ``|b - A x| > max(rtol |b|, atol)`` after ``maxiter`` iterations (default ``10 * size``).

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> x, info = cg(lambda v: a @ v, np.array([1.0, 2.0]), rtol=1e-12)
    >>> np.allclose(a @ x, [1.0, 2.0]), info.iterations
    (True, 2)
    """
    if diag_inv is not None and preconditioner is not None:
        raise ValueError("pass diag_inv or preconditioner, not both")
    op = _as_operator(apply, b.shape)
    sign = float(sign)
    rhs = op.vector(b)
    if sign != 1.0:
        rhs *= sign
    if project:
        op.remove_mean(rhs)
    plain = diag_inv is None and preconditioner is None
    minv = None if diag_inv is None else op.vector(diag_inv)

    def precondition(res: np.ndarray) -> np.ndarray:
        z = minv * res if preconditioner is None else preconditioner(res)
        if project:
            op.remove_mean(z)
        return z

    if x0 is None:
        x = op.vector()
        r = rhs.copy()
    else:  # warm start
        x = op.vector(x0)
        if project:
            op.remove_mean(x)
        r = rhs - sign * op.matvec(x)
        if project:
            op.remove_mean(r)
    z = r if plain else precondition(r)
    p = z.copy()
    bnorm = math.sqrt(dot(rhs, rhs))
    goal = max(rtol * bnorm, atol)
    rr = dot(r, r)
    rz = rr if plain else dot(r, z)
    limit = maxiter if maxiter is not None else 10 * math.prod(b.shape)
    it = 0
    while math.sqrt(rr) > goal and it < limit:
        ap = op.matvec(p)
        pap = sign * dot(p, ap)
        if pap <= 0:
            raise SolverError(f"{what}: operator is not positive definite (p·Ap = {pap:.3e}) at iteration {it}")
        alpha = rz / pap
        # x += alpha p and r -= alpha (sign A) p in one pass, with the residual norm (and,
        # for Jacobi, z = M r and r.z) on the way.
        if minv is not None:
            rr_new, rz_new = _pcg_step(x, r, z, p, ap, alpha, sign * alpha, minv)
        else:
            rr_new = _cg_update(x, r, p, ap, alpha, sign * alpha)
            rz_new = rr_new
        it += 1
        if it % refresh == 0:  # replace the recursively updated residual by the true one
            r = rhs - sign * op.matvec(x)
            if project:
                op.remove_mean(r)
        if it % refresh == 0 or preconditioner is not None:
            z = r if plain else precondition(r)
            rr_new = dot(r, r)
            rz_new = rr_new if plain else dot(r, z)
        # No projection of r in between: A p has zero mean when A annihilates constants, so
        # r stays in the range up to round-off (re-projected at each refresh).
        _xpby(r if plain else z, rz_new / rz, p)
        rr, rz = rr_new, rz_new
    if project:
        op.remove_mean(x)
    method = "mg-cg" if preconditioner is not None else ("cg" if diag_inv is None else "jacobi-cg")
    return _finish(op, rhs, x, project, SolveInfo(method, it, math.nan, False, rtol), goal, what, sign)


def probe_diagonal(apply: Operator, shape: tuple[int, ...], reach: tuple[int, ...]) -> np.ndarray:
    """The exact diagonal of a stencil operator from a few applications to coloured probes.

    Cells are coloured per axis so that two cells of one colour are farther apart than
    any coupling (``3 * reach + 2`` along the axis, wrap-around included: the tail of a
    periodic axis gets colours of its own), so ``(A e_colour)_i = A_ii`` for every cell
    ``i`` of that colour. Costs ``prod(colours per axis)`` applications (9 x 9 for a
    5-point stencil).
    """
    colours = []
    for n, w in zip(shape, reach):
        s = min(n, 3 * w + 2)
        full = (n // s) * s
        axis = np.arange(n)
        colour = np.where(axis < full, axis % s, s + axis - full)
        colours.append(colour)
    grids = np.meshgrid(*colours, indexing="ij")
    counts = [int(c.max()) + 1 for c in colours]
    key = np.ravel_multi_index(tuple(grids), counts)
    diag = np.zeros(shape)
    for colour in range(int(np.prod(counts))):
        mask = key == colour
        if mask.any():
            diag[mask] = apply(mask.astype(np.float64))[mask]
    return diag


def bicgstab(
    apply: Operator,
    b: np.ndarray,
    *,
    rtol: float = 1e-10,
    atol: float = 0.0,
    maxiter: int | None = None,
    what: str = "BiCGStab",
) -> tuple[np.ndarray, SolveInfo]:
    """Solve ``A x = b`` for a general (non-symmetric) nonsingular ``A``, from ``x = 0``."""
    shape = b.shape
    rhs = np.array(b, dtype=np.float64).reshape(-1)
    x = np.zeros_like(rhs)
    r = rhs.copy()
    r_hat = r.copy()
    rho = alpha = omega = 1.0
    v = np.zeros_like(rhs)
    p = np.zeros_like(rhs)
    bnorm = math.sqrt(dot(rhs, rhs))
    goal = max(rtol * bnorm, atol)
    limit = maxiter if maxiter is not None else 10 * rhs.size
    it = 0
    res = bnorm
    while res > goal and it < limit:
        rho_new = dot(r_hat, r)
        if rho_new == 0.0:
            raise SolverError(f"{what}: breakdown (rho = 0) at iteration {it}")
        beta = (rho_new / rho) * (alpha / omega)
        p = r + beta * (p - omega * v)
        v = apply(p.reshape(shape)).reshape(-1)
        alpha = rho_new / dot(r_hat, v)
        s = r - alpha * v
        t = apply(s.reshape(shape)).reshape(-1)
        tt = dot(t, t)
        omega = dot(t, s) / tt if tt > 0 else 0.0
        x += alpha * p + omega * s
        r = s - omega * t
        rho = rho_new
        it += 1
        res = math.sqrt(dot(r, r))
        if it % 50 == 0:
            r = rhs - apply(x.reshape(shape)).reshape(-1)
            res = math.sqrt(dot(r, r))
    return _finish(GridOperator(apply, shape), rhs, x, False, SolveInfo("bicgstab", it, math.nan, False, rtol),
                   goal, what)


@dataclasses.dataclass
class UnrolledCG:
    """What reverse mode through ``K`` plain CG iterations needs: every direction and scalar."""

    shape: tuple[int, ...]
    r0: np.ndarray
    x0: np.ndarray
    directions: list[np.ndarray]
    products: list[np.ndarray]
    residuals: list[np.ndarray]
    scalars: list[tuple[float, float, float, float, float]]  # rho, gamma, alpha, rho_new, beta


def cg_unrolled(apply: Operator, b: np.ndarray, x0: np.ndarray, iterations: int) -> tuple[np.ndarray, UnrolledCG]:
    """Exactly ``iterations`` plain CG steps from ``x0``, recording them for :func:`cg_unrolled_vjp`.

    Memory grows with the iteration count (three vectors per step): the price of
    differentiating through the iterations, which the implicit mode does not pay.
    """
    shape = b.shape
    rhs = np.asarray(b, dtype=np.float64).reshape(-1)
    x = np.array(x0, dtype=np.float64).reshape(-1)
    r = rhs - apply(x.reshape(shape)).reshape(-1)
    tape = UnrolledCG(shape, r.copy(), x.copy(), [], [], [], [])
    p = r.copy()
    rho = dot(r, r)
    for _ in range(iterations):
        q = apply(p.reshape(shape)).reshape(-1)
        gamma = dot(p, q)
        if gamma <= 0 or rho == 0:
            raise SolverError(f"unrolled CG: breakdown (p·Ap = {gamma:.3e}, r·r = {rho:.3e}); use fewer iterations")
        alpha = rho / gamma
        tape.directions.append(p.copy())
        tape.products.append(q)
        x += alpha * p
        r = r - alpha * q
        tape.residuals.append(r)
        rho_new = dot(r, r)
        beta = rho_new / rho
        tape.scalars.append((rho, gamma, alpha, rho_new, beta))
        p = r + beta * p
        rho = rho_new
    return x.reshape(shape), tape


def cg_unrolled_vjp(tape: UnrolledCG, x_bar: np.ndarray, apply_t: Operator):
    """Reverse mode through :func:`cg_unrolled`.

    Returns ``(b_bar, x0_bar, pairs)``; ``pairs`` lists ``(v, w_bar)`` for every
    application ``w = A v`` (including ``A x0``), from which the caller forms the
    coefficient gradient ``sum vjp_theta(A v; w_bar)``.
    """
    shape = tape.shape
    xb = np.asarray(x_bar, dtype=np.float64).reshape(-1).copy()
    rb = np.zeros_like(xb)
    pb = np.zeros_like(xb)
    rhob = 0.0
    pairs = []
    for k in reversed(range(len(tape.directions))):
        rho, gamma, alpha, rho_new, beta = tape.scalars[k]
        p, q, r_new = tape.directions[k], tape.products[k], tape.residuals[k]
        # p_next = r_new + beta p (the p_next cotangent is pb, carried from step k+1)
        rb_new = rb + pb
        beta_b = dot(pb, p)
        pb = beta * pb
        # beta = rho_new / rho; rho_new = r_new . r_new  (rho_new also feeds step k+1: rhob)
        rho_new_b = rhob + beta_b / rho
        rho_b = -beta_b * rho_new / rho**2
        rb_new = rb_new + 2.0 * rho_new_b * r_new
        # r_new = r - alpha q ; x_new = x + alpha p
        alpha_b = -dot(rb_new, q) + dot(xb, p)
        q_b = -alpha * rb_new
        pb = pb + alpha * xb
        rb = rb_new
        # alpha = rho / gamma ; gamma = p . q ; q = A p
        rho_b += alpha_b / gamma
        gamma_b = -alpha_b * rho / gamma**2
        pb = pb + gamma_b * q
        q_b = q_b + gamma_b * p
        pb = pb + apply_t(q_b.reshape(shape)).reshape(-1)
        pairs.append((p, q_b))
        rhob = rho_b
    # p0 = r0 ; rho0 = r0 . r0 ; r0 = b - A x0
    rb = rb + pb + 2.0 * rhob * tape.r0
    b_bar = rb
    x0_bar = xb - apply_t(rb.reshape(shape)).reshape(-1)
    pairs.append((tape.x0, -rb))
    return b_bar.reshape(shape), x0_bar.reshape(shape), pairs
