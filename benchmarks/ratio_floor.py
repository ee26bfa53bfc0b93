"""Where the upwind value + gradient spends its time, beside floors timed in the same run.

Usage: python benchmarks/ratio_floor.py [--n 1000000] [--steps 100] [--rounds 7]

The 1-D upwind rollout of the ``upwind1d`` problem (its data and its dpgen row; store
all states), taken apart on the padded-array layer that :class:`dpgen.Rollout` calls:

* **write floor**: ``steps`` records of one padded state written by a parallel fill,
  the bytes that storing every state must put in memory, with no arithmetic;
* **recording forward**: ``steps`` forward-kernel calls, each writing a new record;
* **plain forward**: the same calls between two buffers that stay in the cache;
* **reverse sweep, cold**: the fused two-step adjoint kernel over the records just
  written (what ``value_and_grad`` runs), and **warm**: over two records that the cache
  holds, i.e. the same arithmetic and cache traffic without the reads from memory;
* ``Rollout.run`` and ``Rollout.value_and_grad`` as users call them.

Each round times every item once, in an order that reverses from round to round (the
machine's speed drifts); medians are printed. The kernel-level sweep must reproduce
the rollout's gradients bit for bit, else the script exits with status 1 before
timing. The last lines give three ratios to the forward: the rollout's (value +
gradient over ``run``, Python and the loss included), the kernels' (recording and cold
reverse sweep over the plain forward), and the floors' (write floor and warm reverse
sweep over the plain forward): what the kernels' ratio would be if the recording ran
at the speed of the fill and the reverse sweep read nothing from memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np

import dpgen as dp
from dpgen.stencils import upwind

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: `benchmarks` importable
from benchmarks.problems import Case, upwind1d  # noqa: E402


@numba.njit(parallel=True, cache=True)
def _fill(a: np.ndarray, value: float) -> None:
    for i in numba.prange(a.shape[0]):
        a[i] = value


class Parts:
    """The upwind rollout's pieces on the padded-array layer, with their buffers."""

    def __init__(self, n: int, steps: int):
        if steps % 2:
            raise SystemExit("--steps must be even: the reverse sweep runs two steps per pass")
        data = upwind1d.make_data(Case("ratio_floor", {"n": n, "T": steps}))
        self.steps, self.d0, self.target = steps, data["d0"], data["target"]
        self.params = {"dt": data["dt"], "dx": data["dx"]}
        self.rollout = upwind1d.Dpgen(data)  # the benchmark's own dpgen row
        self.k = dp.compile(upwind(1), wrt=("d", "u"))
        if not self.k.spec.get("has_periodic_pair"):
            raise SystemExit("the upwind stencil has no fused two-step adjoint kernel")
        padded = n + 2
        self.records = [np.zeros(padded) for _ in range(steps + 1)]
        self.hot = [np.zeros(padded), np.zeros(padded)]
        self.u_padded = np.zeros(padded)
        self.u_padded[1:-1] = data["u"]
        self.bars = [np.zeros(padded), np.zeros(padded)]
        self.u_bar = np.zeros(padded)

    def write_floor(self) -> None:
        for record in self.records[1:]:
            _fill(record, 1.0)

    def _step(self, source: np.ndarray, target: np.ndarray) -> None:
        self.k.forward_padded({"d": source, "u": self.u_padded}, self.params, {"d": target})

    def recording_forward(self) -> None:
        self.records[0][1:-1] = self.d0
        for t in range(self.steps):
            self._step(self.records[t], self.records[t + 1])

    def plain_forward(self) -> None:
        self.hot[0][1:-1] = self.d0
        for t in range(self.steps):
            self._step(self.hot[t % 2], self.hot[(t + 1) % 2])

    def reverse(self, warm: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The gradients w.r.t. d0 and u from the records (``warm``: records 1 and 2 throughout)."""
        bar = self.bars[0]
        bar[1:-1] = 2.0 * (self.records[self.steps][1:-1] - self.target)  # the L2 loss's gradient
        self.u_bar[:] = 0.0
        for t in range(self.steps - 1, 0, -2):
            late, early = (self.records[1], self.records[2]) if warm else (self.records[t], self.records[t - 1])
            out = self.bars[1] if bar is self.bars[0] else self.bars[0]
            self.k.adjoint_pair_padded({"d": bar}, {"d": late, "u": self.u_padded}, {"d": early}, self.params,
                                       {"d": out, "u": self.u_bar}, {"u": True})
            bar = out
        return bar[1:-1], self.k.fold_halo("u", self.u_bar)

    def run(self) -> None:
        self.rollout.forward()

    def value_and_grad(self):
        return self.rollout.value_and_grad()


def check(parts: Parts) -> None:
    """Exit 1 unless the kernel-level sweep gives the rollout's gradients, bit for bit."""
    _, grads = parts.value_and_grad()
    parts.recording_forward()
    d_bar, u_bar = parts.reverse()
    for name, mine in (("d", d_bar), ("u", u_bar)):
        if not np.array_equal(mine, grads[name]):
            err = np.max(np.abs(mine - grads[name])) / np.max(np.abs(grads[name]))
            print(f"kernel-level gradient w.r.t. {name} differs from the rollout's (relative {err:.3g})")
            raise SystemExit(1)


def time_rounds(items: dict[str, object], rounds: int) -> dict[str, float]:
    """Median seconds of each item, every round timing all of them, the order reversing each round."""
    samples: dict[str, list[float]] = {name: [] for name in items}
    names = list(items)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            items[name]()
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(s) for name, s in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    parts = Parts(args.n, args.steps)
    check(parts)
    parts.recording_forward()
    parts.plain_forward()
    parts.write_floor()
    parts.run()  # the rollout's forward-only kernels (check() ran its value and gradient)
    items = {
        "write floor (fill the records)": parts.write_floor,
        # the cold sweep reads the records the recording just wrote: one item
        "recording forward + reverse sweep, cold": lambda: (parts.recording_forward(), parts.reverse()),
        "recording forward": parts.recording_forward,
        "reverse sweep, warm": lambda: parts.reverse(warm=True),
        "plain forward": parts.plain_forward,
        "Rollout.run": parts.run,
        "Rollout.value_and_grad": parts.value_and_grad,
    }
    ms = {name: 1e3 * s for name, s in time_rounds(items, args.rounds).items()}
    record_mb = parts.records[0].nbytes * args.steps / 1e6
    print(f"upwind 1-D, {args.n:,} cells x {args.steps} steps, {numba.get_num_threads()} threads, "
          f"{record_mb:,.0f} MB of records; medians of {args.rounds} rounds")
    for name, value in ms.items():
        print(f"  {name:42s} {value:8.1f} ms")
    recording, forward = ms["recording forward"], ms["plain forward"]
    reverse_cold = ms["recording forward + reverse sweep, cold"] - recording
    floor = ms["write floor (fill the records)"] + ms["reverse sweep, warm"]
    print(f"  {'reverse sweep, cold (the difference)':42s} {reverse_cold:8.1f} ms")
    print(f"Rollout.value_and_grad / Rollout.run:                 {ms['Rollout.value_and_grad'] / ms['Rollout.run']:.2f}")
    print(f"kernels: (recording + reverse, cold) / plain forward: {(recording + reverse_cold) / forward:.2f}")
    print(f"floors: (write floor + reverse, warm) / plain forward: {floor / forward:.2f}")


if __name__ == "__main__":
    sys.exit(main())
