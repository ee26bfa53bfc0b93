"""Memory-bandwidth probe: a Numba ``parallel=True`` STREAM triad ``a[i] = b[i] + s * c[i]``.

Two sizes: arrays far larger than the cache (3 x 800 MB, 100M float64 elements each)
and arrays that fit in the L3 cache (3 x 8 MB). GB/s count 3 arrays x 8 bytes per
element (read ``b`` and ``c``, write ``a``); the write-allocate read of ``a`` that a
cache without streaming stores adds is *not* counted, as in STREAM.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from numba import njit, prange

from .harness import Stats

LARGE = 100_000_000
IN_CACHE = 1_000_000
NOTE = "3 arrays x 8 bytes per element (read b, c; write a); write-allocate traffic not counted"


@njit(parallel=True, cache=True)
def triad(a: np.ndarray, b: np.ndarray, c: np.ndarray, s: float) -> None:
    for i in prange(a.size):
        a[i] = b[i] + s * c[i]


@njit(parallel=True, cache=True)
def _fill(a: np.ndarray, value: float) -> None:
    for i in prange(a.size):  # first touch by the threads that later use the pages
        a[i] = value


def measure(elements: int, repeat: int, inner: int) -> dict[str, Any]:
    """Triad GB/s over ``elements`` per array: median (min, max) of ``repeat`` samples of ``inner`` sweeps."""
    a, b, c = (np.empty(elements) for _ in range(3))
    for array, value in ((a, 0.0), (b, 1.0), (c, 2.0)):
        _fill(array, value)
    triad(a, b, c, 3.0)  # compile / load, and touch
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            triad(a, b, c, 3.0)
        samples.append((time.perf_counter() - t0) / inner)
    if not np.all(a[:: max(1, elements // 97)] == 7.0):
        raise RuntimeError("triad gave a wrong result")
    stats = Stats.of(samples)
    nbytes = 3 * 8 * elements
    return {"elements": elements, "bytes": nbytes, "seconds": stats.__dict__, "gbs": nbytes / stats.median / 1e9,
            "gbs_min": nbytes / stats.max / 1e9, "gbs_max": nbytes / stats.min / 1e9}


def run(quick: bool) -> dict[str, Any]:
    """Both probes; ``quick`` shrinks the large one to 1M elements."""
    large = measure(IN_CACHE if quick else LARGE, repeat=5, inner=3 if quick else 1)
    large["what"] = "quick run: in-cache size, stands in for DRAM" if quick else "far larger than the cache"
    cache = measure(IN_CACHE, repeat=7, inner=20 if quick else 100)
    cache["what"] = "fits in the L3 cache"
    return {"kernel": "numba parallel=True triad a[i] = b[i] + s*c[i]", "note": NOTE, "large": large, "cache": cache}
