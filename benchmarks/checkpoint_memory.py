"""Peak memory and recompute factor of a checkpointed rollout against storing every step.

Usage: python benchmarks/checkpoint_memory.py [--steps 10000] [--cells 100000] [--snapshots 20]

Runs 1-D upwind advection (gradient w.r.t. the initial state and the velocity) once
with Revolve checkpointing and, for a shorter horizon, once storing everything;
measures peak traced memory (``tracemalloc`` sees NumPy's allocations) in units of
one state copy, and compares the forward steps run with the count the schedule's
own action stream promises.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from checkpoint_schedules import EndReverse, Forward, MultistageCheckpointSchedule

import dpgen as dp
from dpgen.stencils import upwind


def promised_forward_steps(steps: int, snapshots: int) -> int:
    count = 0
    for action in MultistageCheckpointSchedule(steps, snapshots, 0):
        if isinstance(action, Forward):
            count += action.n1 - action.n0
        if isinstance(action, EndReverse):
            return count
    raise RuntimeError("schedule did not end")


def measure(steps: int, cells: int, snapshots: int | None) -> dict:
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, cells, endpoint=False)
    d0 = np.exp(-(((x - 0.5) / 0.1) ** 2))
    u = 0.5 + 0.1 * rng.standard_normal(cells)
    dx = 1.0 / cells
    sim = dp.Rollout(dp.Step([upwind(1)]), steps, snapshots=snapshots)
    loss = dp.losses.L2(np.zeros(cells), field="d")
    # Compile (or load) the kernels, and let checkpoint_schedules JIT its own schedule code
    # (a one-off per process, ~0.6 state copies here), outside the measurement.
    # (at this grid size: the serial and parallel kernel variants are separate functions)
    warm = dp.Rollout(dp.Step([upwind(1)]), 5, snapshots=2)
    warm.value_and_grad(loss, d=d0, u=u, dt=0.4 * dx, dx=dx)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    value, grads = sim.value_and_grad(loss, d=d0, u=u, dt=0.4 * dx, dx=dx)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {"sim": sim, "peak_states": peak / d0.nbytes, "seconds": seconds, "grads": grads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=20)
    parser.add_argument("--store-all-steps", type=int, default=500, help="horizon of the store-all comparison")
    args = parser.parse_args()

    cp = measure(args.steps, args.cells, args.snapshots)
    stats = cp["sim"].stats
    promised = promised_forward_steps(args.steps, args.snapshots)
    print(f"upwind 1-D, {args.cells:,} cells, {args.steps:,} steps, {stats.schedule}")
    print(f"  peak extra memory:   {cp['peak_states']:.1f} state copies (inputs and gradients included)")
    print(f"  snapshots held:      {stats.max_snapshots} (max), recorded steps held: {stats.max_recorded_steps}")
    print(f"  forward steps run:   {stats.forward_steps:,} = recompute factor {stats.recompute_factor:.3f}")
    print(f"  schedule promises:   {promised:,} = recompute factor {promised / args.steps:.3f}")
    print(f"  adjoint steps:       {stats.adjoint_steps:,}; wall time {cp['seconds']:.1f} s")

    short = args.store_all_steps
    stored = measure(short, args.cells, None)
    revolve = measure(short, args.cells, args.snapshots)
    same = all(np.array_equal(stored["grads"][k], revolve["grads"][k]) for k in stored["grads"])
    print(f"store all vs revolve({args.snapshots}) at {short} steps: peak {stored['peak_states']:.1f} vs "
          f"{revolve['peak_states']:.1f} state copies; time {stored['seconds']:.2f} vs {revolve['seconds']:.2f} s; "
          f"gradients bit-identical: {same}")


if __name__ == "__main__":
    main()
