"""Small Numba helpers the runtime uses between kernels."""

import numba
import numpy as np

from .twins import twin


@twin
def _count_nonfinite(flat):
    # x - x is 0 for finite x and NaN for NaN and +-inf; an integer sum of the comparison
    # is a reduction LLVM vectorizes (a float test with an early exit is not).
    bad = 0
    for i in numba.prange(flat.size):
        bad += not (flat[i] - flat[i] == 0.0)
    return bad


@twin
def _count_nonfinite_2d(a):
    bad = 0
    for i in numba.prange(a.shape[0]):
        for j in range(a.shape[1]):
            bad += not (a[i, j] - a[i, j] == 0.0)
    return bad


@twin
def _count_nonfinite_3d(a):
    bad = 0
    for i in numba.prange(a.shape[0]):
        for j in range(a.shape[1]):
            for k in range(a.shape[2]):
                bad += not (a[i, j, k] - a[i, j, k] == 0.0)
    return bad


def all_finite(a: np.ndarray) -> bool:
    """Whether every value of ``a`` is finite: one parallel pass, no temporary array.

    >>> all_finite(np.array([1.0, np.inf]))
    False
    >>> all_finite(np.array([[1.0, 2.0], [3.0, -4.0]]))
    True
    >>> all_finite(np.pad(np.ones((3, 3)), 1, constant_values=np.nan)[1:-1, 1:-1])
    True
    """
    # Views into padded arrays (the grid cells) are checked in place, not copied.
    if a.flags.c_contiguous or a.ndim == 1 or a.ndim > 3:
        return _count_nonfinite(a.reshape(-1)) == 0
    return (_count_nonfinite_2d(a) if a.ndim == 2 else _count_nonfinite_3d(a)) == 0
