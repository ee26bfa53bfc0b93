"""512-bit against 256-bit vectors: the same kernels compiled both ways, timed side by side.

Usage: python benchmarks/wide_vectors.py [--rounds 24]

Compiles each stencil twice (``dp.compile(..., wide_vectors=True / False)``, private
cache folders) and times

* single forward and adjoint kernels at about 10^6 cells (padded-array layer, as in the
  ``kernels`` problem), in one process, and
* the 1-D upwind rollout's value + gradient (10^6 cells x 100 steps), in fresh processes,

after checking that both give the same bits. Two arrays of the same size can run a few
percent apart on this machine just by where they sit in memory (one kernel timed on two
such sets differed by 5 %), which a fixed pairing would report as a difference between
the variants. So the kernels alternate within every round and swap their data sets and
their order from round to round; a rollout keeps its recorded states in buffers of its
own, so each of its variants runs in new processes, alternating, and the ratio is the
median of the per-process medians. Prints medians and the ratio wide / narrow (< 1:
wide vectors are faster). On a CPU without AVX-512 both variants are the same code.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import dpgen as dp
from dpgen import stencils

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: `benchmarks` importable
from benchmarks.problems.kernels import kernel_data  # noqa: E402

KERNELS = {
    "upwind 1-D": ("upwind", 1, (1_000_000,)),
    "upwind 3-D": ("upwind", 3, (100, 100, 100)),
    "diffusion 2-D": ("diffusion", 2, (1024, 1024)),
    "diffusion 3-D": ("diffusion", 3, (100, 100, 100)),
    "5-point Laplacian": ("laplacian", 2, (1024, 1024)),
    "7-point Laplacian": ("laplacian", 3, (100, 100, 100)),
}


def _compile_both(stencil, wrt, folder: str) -> dict[bool, dp.CompiledStencil]:
    return {wide: dp.compile(stencil, wrt=wrt, wide_vectors=wide, cache_dir=f"{folder}/{wide}") for wide in (True, False)}


def _alternate(calls: dict[bool, list], rounds: int, inner: int) -> dict[bool, float]:
    """Median seconds per call of each variant; ``calls[wide][j]`` runs on data set ``j``."""
    samples: dict[bool, list[float]] = {True: [], False: []}
    for r in range(rounds):
        pairing = [(True, r % 2), (False, 1 - r % 2)]
        for wide, j in (pairing if (r // 2) % 2 else pairing[::-1]):
            calls[wide][j]()  # untimed: the other variant's arrays took the cache
            t0 = time.perf_counter()
            for _ in range(inner):
                calls[wide][j]()
            samples[wide].append((time.perf_counter() - t0) / inner)
    return {wide: statistics.median(v) for wide, v in samples.items()}


def kernels(rounds: int, folder: str) -> None:
    print(f"{'kernel':<28} {'narrow us':>10} {'wide us':>10} {'wide/narrow':>12}")
    for label, (factory, ndim, grid) in KERNELS.items():
        stencil = getattr(stencils, factory)(ndim=ndim, bc="periodic", name=f"wv_{factory}_{ndim}d")
        ks = _compile_both(stencil, tuple(f.name for f in stencil.inputs), folder)
        k = ks[False]
        rng = np.random.default_rng(0)
        sets = []
        for _ in range(2):
            padded, params, padded_bars, bars = kernel_data(k, grid, rng)
            sets.append({
                "padded": padded, "params": params, "padded_bars": padded_bars, "bars": bars,
                "outs": {wide: {n: np.zeros(k.padded_shape(grid)) for n in k.outputs} for wide in ks},
                "adjs": {wide: {n: np.zeros(k.padded_shape(grid)) for n in k.wrt_fields} for wide in ks},
            })
        overwrite = {n: False for n in k.wrt_fields}
        for kind in ("forward", "adjoint"):
            def call(wide, s, kind=kind):
                if kind == "forward":
                    return lambda: ks[wide].forward_padded(s["padded"], s["params"], s["outs"][wide])
                return lambda: ks[wide].adjoint_padded(s["bars"], s["padded"], s["params"], s["adjs"][wide], overwrite,
                                                       s["padded_bars"])
            calls = {wide: [call(wide, s) for s in sets] for wide in ks}
            for wide in ks:
                calls[wide][0]()
            results = sets[0]["outs" if kind == "forward" else "adjs"]
            for n in results[True]:
                if not np.array_equal(results[True][n], results[False][n]):
                    raise AssertionError(f"{label} {kind}: wide and narrow kernels differ in {n}")
            t = _alternate(calls, rounds, inner=5)
            print(f"{label + ' ' + kind:<28} {t[False] * 1e6:>10.1f} {t[True] * 1e6:>10.1f} {t[True] / t[False]:>12.3f}")


def one_rollout(wide: bool, folder: str, n: int = 1_000_000, steps: int = 100, repeat: int = 8) -> float:
    """Median seconds of the upwind rollout's value + gradient in this process."""
    k = dp.compile(stencils.upwind(ndim=1), wrt=("d", "u"), wide_vectors=wide, cache_dir=folder)
    rng = np.random.default_rng(0)
    args = {"d": rng.random(n), "u": rng.random(n) - 0.5, "dt": 0.4 / n, "dx": 1.0 / n}
    loss = dp.losses.L2(rng.random(n), field="d")
    sim = dp.Rollout(dp.Step([k]), steps)
    value, grads = sim.value_and_grad(loss, wrt=("d", "u"), **args)
    np.save(Path(folder) / f"grad_u_{wide}.npy", grads["u"])
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        sim.value_and_grad(loss, wrt=("d", "u"), **args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rollout(processes: int, folder: str) -> None:
    samples: dict[bool, list[float]] = {True: [], False: []}
    for i in range(processes):
        for wide in ((True, False) if i % 2 else (False, True)):
            out = subprocess.run([sys.executable, __file__, "--one-rollout", str(int(wide)), "--folder", folder],
                                 capture_output=True, text=True, check=True).stdout
            samples[wide].append(float(out.split()[-1]))
    grads = [np.load(Path(folder) / f"grad_u_{wide}.npy") for wide in (True, False)]
    if not np.array_equal(*grads):
        raise AssertionError("upwind rollout: wide and narrow kernels give different gradients")
    t = {wide: statistics.median(v) for wide, v in samples.items()}
    print(f"\nupwind 1-D rollout value+gradient, 10^6 cells x 100 steps, {processes} processes each")
    print(f"{'value+gradient':<28} {t[False] * 1e3:>8.1f} ms {t[True] * 1e3:>8.1f} ms {t[True] / t[False]:>12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--processes", type=int, default=6, help="fresh processes per rollout variant")
    parser.add_argument("--one-rollout", type=int, choices=(0, 1), help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_rollout is not None:
        print(one_rollout(bool(args.one_rollout), args.folder))
        return
    with tempfile.TemporaryDirectory() as folder:
        kernels(args.rounds, folder)
        rollout(args.processes, folder)


if __name__ == "__main__":
    main()
