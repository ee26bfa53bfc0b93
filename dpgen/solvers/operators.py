"""Vector spaces the Krylov loops run in: flat grid arrays, or the stencil's padded layout.

A Krylov iteration is a handful of streaming passes over vectors plus one operator
application. With vectors as plain grid arrays, every application first copies its
argument into a padded buffer for the stencil kernel — one extra pass per iteration.
:class:`StencilOperator` removes it: CG's vectors *are* padded arrays (flattened), the
kernel reads its argument in place and writes ``A v`` into the cells of a padded buffer
whose ghost cells stay zero. Dot products over whole padded arrays are then exact, as
long as one factor has zero ghosts (residuals and operator outputs always do); ghost
cells of iterates and search directions hold halo values, which nothing sums.

Both classes offer the same small protocol, used by :func:`dpgen.solvers.krylov.cg`:
``vector(grid=None)``, ``grid(v)``, ``matvec(v)``, ``remove_mean(v)``, and calling the
object on a grid array applies the operator (``A`` itself, unsigned).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numba
import numpy as np

from ..runtime.compiled import CompiledStencil
from ..runtime.twins import twin


@twin
def _remove_mean_flat(x):
    m = 0.0
    for i in numba.prange(x.size):
        m += x[i]
    m /= x.size
    for i in numba.prange(x.size):
        x[i] -= m
    return m


class GridOperator:
    """``A`` given as a function on grid arrays; vectors are flat copies of grid arrays."""

    def __init__(self, apply: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...]):
        self.apply, self.shape = apply, tuple(shape)
        self.size = math.prod(self.shape)

    def __call__(self, grid: np.ndarray) -> np.ndarray:
        return self.apply(grid)

    def vector(self, grid: np.ndarray | None = None) -> np.ndarray:
        """A new flat float64 vector: zeros, or the values of ``grid``."""
        if grid is None:
            return np.zeros(self.size)
        return np.array(grid, dtype=np.float64).reshape(-1)

    def grid(self, v: np.ndarray) -> np.ndarray:
        return v.reshape(self.shape)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(self.apply(v.reshape(self.shape)), dtype=np.float64).reshape(-1)

    def remove_mean(self, v: np.ndarray) -> float:
        return float(_remove_mean_flat(v))


class StencilOperator:
    """``A x`` of a stencil linear in ``unknown``, with CG's vectors in the padded layout.

    Coefficient fields are validated and padded once; ``matvec`` writes into one reused
    output buffer (valid until the next call).

    Parameters
    ----------
    kernel : CompiledStencil
    unknown, rhs : str
        The field solved for and the stencil's output.
    coefficients : mapping
        Grid arrays of the other input fields.
    params : mapping
        Parameter values.
    shape : tuple of int
        The grid.
    """

    def __init__(self, kernel: CompiledStencil, unknown: str, rhs: str, coefficients: Mapping[str, np.ndarray],
                 params: Mapping[str, float], shape: tuple[int, ...]):
        self.kernel, self.unknown, self.rhs = kernel, unknown, rhs
        self.shape = tuple(shape)
        self.padded_shape = kernel.padded_shape(self.shape)
        self.inside = kernel.interior(self.shape)
        self.size = math.prod(self.padded_shape)
        self.params = {p: float(v) for p, v in params.items()}
        self.coefficients = {}
        for n, v in coefficients.items():
            self.coefficients[n] = np.zeros(self.padded_shape)
            self.coefficients[n][self.inside] = v
        self._out = np.zeros(self.padded_shape)  # ghost cells are never written: they stay zero
        self._arg = np.zeros(self.padded_shape)

    def __call__(self, grid: np.ndarray) -> np.ndarray:
        """``A grid`` as a new grid array."""
        self._arg[self.inside] = grid
        return self.grid(self.matvec(self._arg.reshape(-1))).copy()

    def vector(self, grid: np.ndarray | None = None) -> np.ndarray:
        v = np.zeros(self.padded_shape)
        if grid is not None:
            v[self.inside] = grid
        return v.reshape(-1)

    def grid(self, v: np.ndarray) -> np.ndarray:
        """The grid cells of a padded vector (a view)."""
        return v.reshape(self.padded_shape)[self.inside]

    def matvec(self, v: np.ndarray) -> np.ndarray:
        """``A v`` (padded, zero ghosts) in a reused buffer; fills the ghost cells of ``v``."""
        self.kernel.forward_padded({self.unknown: v.reshape(self.padded_shape), **self.coefficients},
                                   self.params, {self.rhs: self._out})
        return self._out.reshape(-1)

    def remove_mean(self, v: np.ndarray) -> float:
        """Subtract the mean over the grid cells (ghost cells untouched)."""
        cells = self.grid(v)
        m = float(cells.mean())
        cells -= m
        return m


__all__ = ["GridOperator", "StencilOperator"]
