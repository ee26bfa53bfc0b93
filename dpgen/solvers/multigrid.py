"""Geometric multigrid V-cycle built from a stencil: a symmetric preconditioner for CG.

The hierarchy is *rediscretized* from the stencil itself: each coarser level halves
every axis, doubles the grid-spacing parameters (``dx``, ``dy``, ``dz``) and averages
each coefficient field over the ``2**ndim`` fine cells a coarse cell covers; the
operator on every level is the same generated forward kernel, with the same boundary
rules. Smoothing is damped Jacobi with the exact diagonal probed from the stencil;
transfers are bilinear prolongation and its transpose (:mod:`dpgen.solvers.transfer`),
with ghost values from the stencil's own ``fill_halo``/``fold_halo``; the coarsest level
is solved exactly with a dense (pseudo-)inverse.

Why this is a valid CG preconditioner: Jacobi is a symmetric smoother, the same number
of sweeps runs before and after the coarse correction, restriction is the transpose of
prolongation (up to a positive factor) and the coarsest solve is symmetric, so the
V-cycle is a fixed, symmetric, positive-definite linear operator ``M ~ A^-1`` (on the
complement of the constants for singular problems). It does not change between
iterations or between the forward and the backward solve, so the implicit backward
pass ``A^T lambda = p_bar`` reuses it unchanged.

Examples
--------
>>> import numpy as np, dpgen as dp
>>> from dpgen.stencils import laplacian
>>> solve = dp.LinearSolve(laplacian(2, "periodic"), unknown="p", preconditioner="mg", rtol=1e-10)
>>> rng = np.random.default_rng(0)
>>> b = rng.standard_normal((64, 64)); b -= b.mean()
>>> p = solve.forward(lap=b, dx=1.0, dy=1.0)["p"]
>>> solve.forward_info.iterations < 25
True
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numba
import numpy as np

from ..errors import SolverError
from ..runtime.compiled import CompiledStencil
from ..runtime.twins import twin
from .krylov import probe_diagonal
from .transfer import prolong_add, restrict_unfolded

#: Damped-Jacobi weights that smooth the (2 ndim + 1)-point Laplacian best: 2d / (2d + 1).
JACOBI_WEIGHT = {1: 2.0 / 3.0, 2: 4.0 / 5.0, 3: 6.0 / 7.0}
#: Stop coarsening at or below this many cells; solve that level densely.
COARSE_CELLS = 256
#: Largest coarsest level solved densely (a grid that cannot be halved often enough).
MAX_DENSE_CELLS = 4096


@twin
def _jacobi_sweep(x, dinv, b, ax, sign):
    """x += dinv (b - sign A x), flat over padded arrays (ghosts have dinv = 0)."""
    for i in numba.prange(x.size):
        x[i] += dinv[i] * (b[i] - sign * ax[i])


@twin
def _first_sweep(x, dinv, b):
    """The first Jacobi sweep from x = 0: x = dinv b."""
    for i in numba.prange(x.size):
        x[i] = dinv[i] * b[i]


@twin
def _residual(r, b, ax, sign):
    for i in numba.prange(r.size):
        r[i] = b[i] - sign * ax[i]


@numba.njit(cache=True)
def _matvec(m, v):
    """Dense ``m @ v`` without BLAS (whose spinning worker threads slow the parallel kernels)."""
    out = np.zeros(m.shape[0])
    for i in range(m.shape[0]):
        s = 0.0
        for j in range(m.shape[1]):
            s += m[i, j] * v[j]
        out[i] = s
    return out


@dataclasses.dataclass
class _Level:
    shape: tuple[int, ...]
    params: dict[str, float]
    coeffs: dict[str, np.ndarray]  # padded coefficient fields
    x: np.ndarray  # padded iterate (flat views below)
    b: np.ndarray  # padded right-hand side (ghosts hold no meaning)
    ax: np.ndarray  # padded A x, then the residual (ghost cells: finite leftovers, never read)
    dinv: np.ndarray  # padded omega / diag(sign A), zero on ghosts
    inside: tuple[slice, ...]
    dense_inverse: np.ndarray | None = None


class Multigrid:
    """One symmetric V-cycle ``z = M r`` for ``sign * A``, ``A`` a stencil linear in ``unknown``.

    Parameters
    ----------
    kernel : CompiledStencil
        The compiled stencil (forward kernel and halo functions are used).
    unknown, rhs : str
        The unknown field and the stencil's output.
    coefficients : mapping
        Grid arrays of the stencil's other input fields (averaged onto coarse levels).
    params : mapping
        Parameter values; those named in ``spacing`` are doubled on each coarser level.
    spacing : sequence of str
        The grid-spacing parameter of each axis.
    shape : tuple of int
        The finest grid.
    sign : float
        ``+1`` or ``-1``: the V-cycle approximates ``(sign A)^-1`` (``sign A`` positive
        (semi-)definite).
    smoothing : int
        Jacobi sweeps before and after each coarse correction.
    """

    def __init__(
        self,
        kernel: CompiledStencil,
        unknown: str,
        rhs: str,
        coefficients: Mapping[str, np.ndarray],
        params: Mapping[str, float],
        spacing: Sequence[str],
        shape: tuple[int, ...],
        sign: float,
        smoothing: int = 2,
    ):
        self.kernel, self.unknown, self.rhs = kernel, unknown, rhs
        self.sign = float(sign)
        self.smoothing = int(smoothing)
        self.halo_lo = tuple(lo for lo, _ in kernel.halo)
        self.reach = tuple(max(h) for h in kernel.halo)
        if min(self.halo_lo) < 1 or min(hi for _, hi in kernel.halo) < 1:
            raise SolverError(f"multigrid for {kernel.name!r} needs a halo of at least one cell on every side "
                              f"(prolongation reads one ghost cell); the stencil's halo is {kernel.halo}")
        if not hasattr(kernel.module, f"fold_halo_{unknown}"):
            raise SolverError(f"multigrid for {kernel.name!r}: restriction folds the halo of {unknown!r}; "
                              f"compile the stencil with {unknown!r} in wrt")
        ndim = len(shape)
        self.omega = JACOBI_WEIGHT.get(ndim, 0.8)
        self.levels: list[_Level] = []
        coeffs = {n: np.asarray(v, dtype=np.float64) for n, v in coefficients.items()}
        pars = {p: float(v) for p, v in params.items()}
        while True:
            self.levels.append(self._level(tuple(shape), coeffs, pars))
            if not self._can_coarsen(shape):
                break
            shape = tuple(n // 2 for n in shape)
            coeffs = {n: _average_children(v) for n, v in coeffs.items()}
            pars = dict(pars)
            for name in set(spacing):
                pars[name] *= 2.0
        cells = math.prod(shape)
        if cells > MAX_DENSE_CELLS:
            raise SolverError(
                f"multigrid for {kernel.name!r}: the grid {self.levels[0].shape} halves only down to {shape} "
                f"({cells} cells, more than {MAX_DENSE_CELLS} to solve densely); use grid sizes with more "
                "factors of two, or preconditioner='jacobi'"
            )
        self.levels[-1].dense_inverse = self._dense_inverse(self.levels[-1])

    # --- setup ------------------------------------------------------------------------

    def _can_coarsen(self, shape: tuple[int, ...]) -> bool:
        if math.prod(shape) <= COARSE_CELLS:
            return False
        # every axis halves exactly and keeps enough cells for the halo rules
        return all(n % 2 == 0 and n // 2 >= max(2, 2 * r) for n, r in zip(shape, self.reach))

    def _level(self, shape, coeffs, params) -> _Level:
        k = self.kernel
        padded_shape = k.padded_shape(shape)
        inside = k.interior(shape)
        padded = {}
        for n, v in coeffs.items():
            padded[n] = np.zeros(padded_shape)
            padded[n][inside] = v
        level = _Level(shape, params, padded, *(np.zeros(padded_shape) for _ in range(4)), inside)
        diag = self.sign * probe_diagonal(lambda v: self._apply_grid(level, v), shape, self.reach)
        if np.any(diag <= 0):
            raise SolverError(
                f"multigrid for {k.name!r}: the diagonal of the operator is not of one sign on the "
                f"{shape} level; damped Jacobi smoothing needs it (use preconditioner='jacobi' or None)"
            )
        level.dinv[inside] = self.omega / diag
        return level

    def _apply(self, level: _Level) -> None:
        """level.ax = A level.x in its grid cells (the kernel fills the ghost cells of x)."""
        self.kernel.forward_padded({self.unknown: level.x, **level.coeffs}, level.params, {self.rhs: level.ax})

    def _apply_grid(self, level: _Level, v: np.ndarray) -> np.ndarray:
        level.x[level.inside] = v
        self._apply(level)
        return level.ax[level.inside].copy()

    def _dense_inverse(self, level: _Level) -> np.ndarray:
        """(Pseudo-)inverse of ``sign A`` on the coarsest level, from its columns."""
        cells = math.prod(level.shape)
        columns = np.empty((cells, cells))
        unit = np.zeros(cells)
        for j in range(cells):
            unit[j] = 1.0
            columns[:, j] = self.sign * self._apply_grid(level, unit.reshape(level.shape)).reshape(-1)
            unit[j] = 0.0
        sym = 0.5 * (columns + columns.T)  # symmetric by construction; remove round-off asymmetry
        # pinv: the periodic and all-Neumann Laplacians are singular (constants)
        return np.linalg.pinv(sym, rcond=1e-10, hermitian=True)

    # --- the cycle -------------------------------------------------------------------

    def __call__(self, r: np.ndarray) -> np.ndarray:
        """``z = M r`` (``r`` grid-shaped or flat; returns a new flat array)."""
        top = self.levels[0]
        top.b[top.inside] = r.reshape(top.shape)
        self._cycle(0)
        return top.x[top.inside].reshape(-1).copy()

    def apply_padded(self, r: np.ndarray) -> np.ndarray:
        """``z = M r`` for flat vectors in the stencil's padded layout (ghosts of ``r`` zero),
        as :class:`~dpgen.solvers.operators.StencilOperator` holds them. Returns the
        cycle's own buffer, valid until the next call; its ghost cells hold halo values."""
        top = self.levels[0]
        np.copyto(top.b.reshape(-1), r)
        self._cycle(0)
        return top.x.reshape(-1)

    def _cycle(self, index: int) -> None:
        level = self.levels[index]
        x, b, ax, dinv = (a.reshape(-1) for a in (level.x, level.b, level.ax, level.dinv))
        if level.dense_inverse is not None:
            x[...] = 0.0
            rhs = np.ascontiguousarray(level.b[level.inside]).reshape(-1)
            level.x[level.inside] = _matvec(level.dense_inverse, rhs).reshape(level.shape)
            return
        _first_sweep(x, dinv, b)
        for _ in range(self.smoothing - 1):
            self._apply(level)
            _jacobi_sweep(x, dinv, b, ax, self.sign)
        self._apply(level)
        coarse = self.levels[index + 1]
        # The residual overwrites ax (recomputed before it is read again). Ghost cells of
        # b and ax may hold finite leftovers: dinv is zero there, so sweeps ignore them.
        _residual(ax, b, ax, self.sign)
        restrict_unfolded(level.ax[level.inside], coarse.b, self.halo_lo)
        self.kernel.fold_halo(self.unknown, coarse.b)  # in place: coarse.b's grid cells hold R r
        self._cycle(index + 1)
        self.kernel.fill_halo(self.unknown, coarse.x)
        prolong_add(coarse.x, level.x[level.inside], self.halo_lo)
        for _ in range(self.smoothing):
            self._apply(level)
            _jacobi_sweep(x, dinv, b, ax, self.sign)

    def __repr__(self) -> str:
        shapes = " -> ".join("x".join(map(str, lv.shape)) for lv in self.levels)
        return f"Multigrid({self.kernel.name}: {shapes}, {self.smoothing}+{self.smoothing} Jacobi sweeps)"


def _average_children(a: np.ndarray) -> np.ndarray:
    """Mean over the ``2**ndim`` fine cells of each coarse cell."""
    split = []
    for n in a.shape:
        split += [n // 2, 2]
    return a.reshape(split).mean(axis=tuple(range(1, 2 * a.ndim, 2)))


__all__ = ["Multigrid", "JACOBI_WEIGHT"]
