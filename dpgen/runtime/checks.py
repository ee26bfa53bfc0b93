"""Small Numba helpers the runtime uses between kernels."""

import numba
import numpy as np


@numba.njit(cache=True)
def _all_finite(flat):
    for i in range(flat.size):
        if not np.isfinite(flat[i]):
            return False
    return True


def all_finite(a: np.ndarray) -> bool:
    """Whether every value of ``a`` is finite: one pass, no temporary array.

    >>> all_finite(np.array([1.0, np.inf]))
    False
    """
    return bool(_all_finite(a.reshape(-1)))
