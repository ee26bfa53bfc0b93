"""Hand-written Numba passes compiled twice: serial, and parallel for big arrays.

Generated kernels come with a ``_serial`` twin; this gives the solvers' own streaming
passes (dot products, vector updates, grid transfers) the same choice. A parallel
region on a small array costs more in thread wake-ups than it saves — on a loaded
machine much more — so arrays below ``config.parallel_threshold`` elements run serially.
"""

from __future__ import annotations

import types
from typing import Callable

import numba
import numpy as np

from ..config import config


class Twin:
    """``fn`` (written with ``numba.prange``) as a serial and a parallel Numba function.

    Called like ``fn``; the size of the first array argument picks the version.

    Examples
    --------
    >>> import numba, numpy as np
    >>> def total(a):
    ...     s = 0.0
    ...     for i in numba.prange(a.size):
    ...         s += a[i]
    ...     return s
    >>> Twin(total, cache=False)(np.arange(4.0))
    6.0
    """

    def __init__(self, fn: Callable, cache: bool = True):
        # Two function objects with their own qualified names: Numba names its on-disk cache
        # after the function (qualname and line), not after the compile options, so twins of
        # one function share a cache entry and load whichever version was compiled first --
        # the parallel twin then runs serial code (CG's vector passes did, at any size).
        self.serial = numba.njit(cache=cache)(_renamed(fn, "serial"))
        self.parallel = numba.njit(cache=cache, parallel=True)(_renamed(fn, "parallel"))
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def __call__(self, first: np.ndarray, *rest):
        kernel = self.parallel if first.size >= config.parallel_threshold else self.serial
        return kernel(first, *rest)


def _renamed(fn: Callable, suffix: str) -> Callable:
    """A copy of ``fn`` named ``<name>__<suffix>`` (its own Numba cache entry)."""
    clone = types.FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}__{suffix}", fn.__defaults__, fn.__closure__)
    clone.__qualname__ = f"{fn.__qualname__}__{suffix}"
    clone.__module__ = fn.__module__
    clone.__doc__ = fn.__doc__
    return clone


def twin(fn: Callable) -> Twin:
    """Decorator form of :class:`Twin` (cached on disk)."""
    return Twin(fn)


def _dot_py(a, b):
    s = 0.0
    for i in numba.prange(a.size):
        s += a[i] * b[i]
    return s


_dot = Twin(_dot_py)


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """``sum(a * b)`` over two contiguous float64 arrays of one size, without BLAS.

    OpenBLAS's worker threads keep spinning for a while after each call and take the
    cores from the parallel kernels that follow (it halved a multigrid solve's speed on
    two cores), so dpgen's own hot paths avoid BLAS.

    >>> dot(np.arange(3.0), np.ones(3))
    3.0
    """
    return float(_dot(a.reshape(-1), b.reshape(-1)))


@twin
def _copy_1d(dst, src):
    for i in numba.prange(dst.shape[0]):
        dst[i] = src[i]


@twin
def _copy_2d(dst, src):
    for i in numba.prange(dst.shape[0]):
        for j in range(dst.shape[1]):
            dst[i, j] = src[i, j]


@twin
def _copy_3d(dst, src):
    for i in numba.prange(dst.shape[0]):
        for j in range(dst.shape[1]):
            for k in range(dst.shape[2]):
                dst[i, j, k] = src[i, j, k]


_COPIES = {1: _copy_1d, 2: _copy_2d, 3: _copy_3d}


@twin
def _misfit_1d(x, target, scale, out):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        r = x[i] - target[i]
        s += r * r
        out[i] = scale * r
    return s


@twin
def _misfit_2d(x, target, scale, out):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        for j in range(x.shape[1]):
            r = x[i, j] - target[i, j]
            s += r * r
            out[i, j] = scale * r
    return s


@twin
def _misfit_3d(x, target, scale, out):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        for j in range(x.shape[1]):
            for k in range(x.shape[2]):
                r = x[i, j, k] - target[i, j, k]
                s += r * r
                out[i, j, k] = scale * r
    return s


_MISFITS = {1: _misfit_1d, 2: _misfit_2d, 3: _misfit_3d}


def squared_misfit(
    x: np.ndarray, target: np.ndarray, scale: float, out: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """``sum((x - target)**2)`` and ``scale * (x - target)`` (in ``out``, or a new array), in one pass.

    ``x`` and ``out`` may be strided views (the grid cells of padded arrays): NumPy would
    make the difference on one core, and then take two more passes for the sum and the
    scaling (3.3 against 0.6 ms at 10^6 cells).

    >>> value, grad = squared_misfit(np.array([1.0, 3.0]), np.array([0.0, 1.0]), 2.0)
    >>> value, grad.tolist()
    (5.0, [2.0, 4.0])
    """
    if out is None:
        out = np.empty(x.shape, np.result_type(x, target))
    kernel = _MISFITS.get(x.ndim)
    if kernel is None or x.dtype != out.dtype or np.asarray(target).dtype != out.dtype:
        np.subtract(x, target, out=out)
        value = dot(out, out)  # no BLAS (see dot)
        out *= scale
        return value, out
    return float(kernel(x, target, float(scale), out)), out


def copy_into(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` for arrays (or views) of one shape, in parallel for big ones.

    NumPy copies strided views (the grid cells of a padded array) on one core.

    >>> a = np.zeros((4, 5)); copy_into(a[1:-1, 1:-1], np.ones((2, 3))); int(a.sum())
    6
    """
    kernel = _COPIES.get(dst.ndim)
    if kernel is None or dst.shape != np.shape(src) or dst.dtype != np.asarray(src).dtype:
        dst[...] = src
    else:
        kernel(dst, src)


def copy_grid(view: np.ndarray) -> np.ndarray:
    """A new C-contiguous copy of ``view`` (e.g. the grid cells of a padded array).

    >>> copy_grid(np.arange(12.0).reshape(3, 4)[1:, 1:3]).flags.c_contiguous
    True
    """
    out = np.empty(view.shape, view.dtype)
    copy_into(out, view)
    return out


__all__ = ["Twin", "copy_grid", "copy_into", "dot", "squared_misfit", "twin"]
