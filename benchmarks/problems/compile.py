"""Build and compile times of the upwind stencil with its adjoint, in fresh processes.

Reuses :func:`benchmarks.compile_time.measure` (also runnable on its own as
``python benchmarks/compile_time.py``): each repeat uses a new, empty
``DPGEN_CACHE_DIR`` for the first compile and the same folder for the cached load.
"""

from __future__ import annotations

import statistics
from typing import Any

from ..compile_time import measure

TITLE = "compile: upwind stencil (wrt d, u, dt), fresh processes, private DPGEN_CACHE_DIR"


def run(quick: bool, repeat: int | None) -> dict[str, Any]:
    """``{"repeat": N, "rows": [{"step", "median", "min", "max", "raw"}]}`` (seconds)."""
    repeats = repeat or (1 if quick else 3)
    rows = [{"step": step, "median": statistics.median(values), "min": min(values), "max": max(values),
             "raw": values} for step, values in measure(repeats).items()]
    return {"repeat": repeats, "rows": rows}
