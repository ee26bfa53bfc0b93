"""1-D periodic first-order upwind advection: ``T`` steps, every state stored.

``d_new = d - dt (min(u/dx, 0) (d[i+1] - d[i]) + max(u/dx, 0) (d[i] - d[i-1]))``,
loss ``L = sum((d_T - target)**2)``, gradient with respect to the initial state ``d``
and the time-constant velocity ``u``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from . import Case, _explicit

TITLE = "upwind1d: 1-D periodic upwind advection, value + gradient w.r.t. d0 and u (all states stored)"
TOLERANCE = 1e-6
BYTES_NOTE = _explicit.BYTES_NOTE
IMPLEMENTATIONS = {
    "dpgen": "benchmarks.problems.upwind1d:Dpgen",
    "numba (hand-written)": "benchmarks.peers.numba_peer:Upwind1D",
    "numpy (hand-written adjoint)": "benchmarks.peers.numpy_peer:Upwind1D",
    "jax (jit, lax.scan)": "benchmarks.peers.jax_peer:Upwind1D",
    "torch (eager autograd)": "benchmarks.peers.torch_peer:Upwind1D",
}


def cases(quick: bool) -> list[Case]:
    sizes = [(10_000, 20)] if quick else [(10_000, 1000), (1_000_000, 100)]
    return [Case(f"n={n:,}, T={T}", {"n": n, "T": T}, big=n * T > 10**7) for n, T in sizes]


def tiny() -> Case:
    return Case("tiny", {"n": 64, "T": 4})


def make_data(case: Case) -> dict[str, Any]:
    n, steps = case.params["n"], case.params["T"]
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, n, endpoint=False)
    d0 = np.exp(-(((x - 0.5) / 0.1) ** 2))
    u = 0.5 + 0.1 * rng.standard_normal(n)
    dx = 1.0 / n
    return {"n": n, "T": steps, "d0": d0, "u": u, "dx": dx, "dt": 0.4 * dx, "target": np.roll(d0, n // 7)}


def traffic(case: Case) -> dict[str, int]:
    return _explicit.traffic(case.params["n"], case.params["T"])


def limits(case: Case, probe: Mapping[str, Any]) -> dict[str, Any]:
    return _explicit.limits(case.params["n"], case.params["T"], probe)


class Dpgen(_explicit.DpgenRollout):
    """``dp.Rollout(dp.Step([upwind(1)]), T)``."""

    state, wrt = "d", ("d", "u")

    @staticmethod
    def stencil():
        from dpgen.stencils import upwind

        return upwind(1)

    @staticmethod
    def inputs(data: Mapping[str, Any]) -> dict[str, Any]:
        return {"d": data["d0"], "u": data["u"], "dt": data["dt"], "dx": data["dx"]}
