"""Single generated kernels at about 10⁶ cells, as rollouts and solvers call them.

Each kernel runs on the padded-array layer (``forward_padded`` / ``adjoint_padded``:
halo fill included, no validation, no copies), the way a rollout step and its reverse
call them (cotangents as grid cells of padded buffers, which periodic stencils' adjoints
read padded); the adjoint accumulates into the gradient of the time-constant field as in
a rollout. Achieved bandwidth counts the minimal bytes — every array the kernel must
read or write, once — and is compared with both figures of the bandwidth probe run in
the same session (the arrays, 8 MB each, fit in the L3 cache).

The in-cache comparison is also made side by side: each kernel is timed in rounds, and
every round first times the in-cache probe triad, then calls the kernel once untimed
(re-warming the caches the probe's arrays took), then times the kernel. The share of the
probe is the median over rounds of the two measured together, so a change in the
machine's state between the session's probe and the kernel (a shared virtual machine's
neighbours) moves both figures alike.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from .. import probe as bandwidth
from ..harness import Stats, time_calls

TITLE = "kernels: one forward and one adjoint kernel at about 10⁶ cells (padded-array layer)"

#: (stencil factory, its arguments, grid, fields whose gradient accumulates, as in a rollout)
CASES = {
    "upwind_1d": ("upwind", {"ndim": 1}, (1_000_000,), ("u",)),
    "diffusion_2d": ("diffusion", {"ndim": 2}, (1024, 1024), ("k",)),
    "laplace_5pt": ("laplacian", {"ndim": 2}, (1024, 1024), ()),
    "laplace_7pt": ("laplacian", {"ndim": 3}, (100, 100, 100), ()),
}
#: rounds of (probe, kernel) per kernel, calls of the kernel per round, triad sweeps per round
ROUNDS, PER_ROUND, PROBE_SWEEPS = 10, 5, 10
QUICK_GRIDS = {"upwind_1d": (10_000,), "diffusion_2d": (64, 64), "laplace_5pt": (64, 64), "laplace_7pt": (16, 16, 16)}


def kernel_data(k, grid: tuple[int, ...], rng: np.random.Generator):
    """Padded inputs, parameters, padded cotangents and their grid cells for kernel calls of ``k``."""
    padded = {}
    for n in k.inputs:
        padded[n] = np.zeros(k.padded_shape(grid))
        # positive, non-uniform fields (a density, a velocity, a diffusivity): no NaN paths
        padded[n][k.interior(grid)] = 0.5 + rng.random(grid)
    params = {p: 1.0 / max(grid) for p in k.params}
    # cotangents arrive as a rollout's reverse sweep hands them over: the grid cells of
    # padded buffers it owns (a periodic stencil's adjoint reads them padded, with no fold)
    padded_bars = {n: rng.standard_normal(k.padded_shape(grid)) for n in k.outputs}
    bars = {n: b[k.interior(grid)] for n, b in padded_bars.items()}
    return padded, params, padded_bars, bars


def _setup(name: str, quick: bool):
    import dpgen as dp
    from dpgen import stencils

    factory, kwargs, grid, accumulate = CASES[name]
    grid = QUICK_GRIDS[name] if quick else grid
    stencil = getattr(stencils, factory)(bc="periodic", name=f"bench_{name}", **kwargs)
    k = dp.compile(stencil, wrt=tuple(f.name for f in stencil.inputs))
    padded, params, padded_bars, bars = kernel_data(k, grid, np.random.default_rng(0))
    outs = {n: np.zeros(k.padded_shape(grid)) for n in k.outputs}
    adj = {n: np.zeros(k.padded_shape(grid)) for n in k.wrt_fields}
    add = {n: n in accumulate for n in k.wrt_fields}
    return k, grid, padded, params, outs, bars, padded_bars, adj, add


def _bytes(k, grid, add: Mapping[str, bool]) -> dict[str, int]:
    cells, word = math.prod(grid), 8
    forward = (len(k.inputs) + len(k.outputs)) * cells * word
    adjoint_arrays = (len(k.spec["adjoint_inputs"]) + len(k.spec["adjoint_cotangents"])
                      + sum(add.values()) + len(k.wrt_fields))
    return {"forward": forward, "adjoint": adjoint_arrays * cells * word}


def _side_by_side(call, nbytes: int, rounds: int, per_round: int) -> tuple[Stats, list[float], list[float]]:
    """Time ``call`` in rounds, each after the in-cache probe triad (:func:`benchmarks.probe.measure`)
    and one untimed call.

    Returns the kernel's seconds (every call), and per round the probe's GB/s and the
    kernel's share of it (kernel GB/s, from the round's median call, / probe GB/s).
    """
    samples, probe_gbs, shares = [], [], []
    for _ in range(rounds):
        probe_gbs.append(bandwidth.measure(bandwidth.IN_CACHE, repeat=1, inner=PROBE_SWEEPS)["gbs"])
        # One untimed call first: the probe's arrays pushed the kernel's out of the caches,
        # which a kernel run step after step never sees (without it the 7-point forward's
        # median was 10 % slower, 504-521 against 457-473 us, in alternating rounds).
        call()
        kernel = time_calls(call, per_round)
        samples += kernel.raw
        shares.append(nbytes / kernel.median / 1e9 / probe_gbs[-1])
    return Stats.of(samples), probe_gbs, shares


def run(quick: bool, repeat: int | None, probe: Mapping[str, Any]) -> dict[str, Any]:
    """``{"rows": [...]}``: per stencil and kernel, time, minimal bytes, GB/s, % of each probe figure."""
    rounds, per_round = (2, 2) if quick else (ROUNDS, PER_ROUND)
    if repeat:
        per_round = max(1, repeat // rounds)
    rows = []
    for name in CASES:
        k, grid, padded, params, outs, bars, padded_bars, adj, add = _setup(name, quick)
        calls = {
            "forward": lambda: k.forward_padded(padded, params, outs),
            "adjoint": lambda: k.adjoint_padded(bars, padded, params, adj, add, padded_bars),
        }
        minimal = _bytes(k, grid, add)
        for kernel, call in calls.items():
            call()  # compile or load, first-touch
            stats, probe_gbs, shares = _side_by_side(call, minimal[kernel], rounds, per_round)
            gbs = minimal[kernel] / stats.median / 1e9
            rows.append({
                "stencil": name, "grid": "x".join(map(str, grid)), "kernel": kernel,
                "wrt": ", ".join(f"{n} (+=)" if add.get(n) else n for n in k.wrt_fields) if kernel == "adjoint" else "",
                "bytes": minimal[kernel], "median_ms": 1e3 * stats.median, "min_ms": 1e3 * stats.min,
                "max_ms": 1e3 * stats.max, "gbs": gbs,
                "of_cache_probe": gbs / probe["cache"]["gbs"], "of_large_probe": gbs / probe["large"]["gbs"],
                "probe_beside_gbs": float(np.median(probe_gbs)),
                "of_probe_beside": float(np.median(shares)),
                "of_probe_beside_min": min(shares), "of_probe_beside_max": max(shares),
            })
    return {"repeat": rounds * per_round, "rounds": rounds, "per_round": per_round, "rows": rows}
