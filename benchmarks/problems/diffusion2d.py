"""2-D periodic variable-coefficient diffusion: ``T`` explicit steps, every state stored.

``c_new = c + dt sum_axes ((k[0] + k[e]) (c[e] - c[0]) - (k[-e] + k[0]) (c[0] - c[-e])) / (2 h**2)``
(``dpgen.stencils.diffusion(2)``), loss ``L = sum((c_T - target)**2)``, gradient with
respect to the initial state ``c`` and the time-constant coefficient ``k``. The peers
write the same update in flux form, ``F = (k[0] + k[e]) / (2 h**2) (c[e] - c[0])``,
``c_new = c + dt sum_axes (F - F[-e])``: equal up to rounding, fewer saved temporaries.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from . import Case, _explicit

TITLE = "diffusion2d: 2-D periodic variable-coefficient diffusion, value + gradient w.r.t. c0 and k"
TOLERANCE = 1e-6
BYTES_NOTE = _explicit.BYTES_NOTE
IMPLEMENTATIONS = {
    "dpgen": "benchmarks.problems.diffusion2d:Dpgen",
    "numpy (hand-written adjoint)": "benchmarks.peers.numpy_peer:Diffusion2D",
    "jax (jit, lax.scan)": "benchmarks.peers.jax_peer:Diffusion2D",
    "torch (eager autograd)": "benchmarks.peers.torch_peer:Diffusion2D",
}


def cases(quick: bool) -> list[Case]:
    n, steps = (64, 10) if quick else (1024, 100)
    return [Case(f"{n}x{n}, T={steps}", {"n": n, "T": steps}, big=not quick)]


def tiny() -> Case:
    return Case("tiny", {"n": 8, "T": 3})


def make_data(case: Case) -> dict[str, Any]:
    n, steps = case.params["n"], case.params["T"]
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, n, endpoint=False)
    X, Y = np.meshgrid(x, x, indexing="ij")
    c0 = np.exp(-((X - 0.5) ** 2 + (Y - 0.5) ** 2) / 0.1**2)
    k = 1.0 + 0.5 * rng.random((n, n))
    h = 1.0 / n
    return {"n": n, "T": steps, "c0": c0, "k": k, "dx": h, "dy": h, "dt": 0.2 * h * h / 1.5,
            "target": np.roll(c0, n // 7, axis=0)}


def traffic(case: Case) -> dict[str, int]:
    return _explicit.traffic(case.params["n"] ** 2, case.params["T"])


def limits(case: Case, probe: Mapping[str, Any]) -> dict[str, Any]:
    return _explicit.limits(case.params["n"] ** 2, case.params["T"], probe)


class Dpgen(_explicit.DpgenRollout):
    """``dp.Rollout(dp.Step([diffusion(2)]), T)``."""

    state, wrt = "c", ("c", "k")

    @staticmethod
    def stencil():
        from dpgen.stencils import diffusion

        return diffusion(ndim=2, bc="periodic")

    @staticmethod
    def inputs(data: Mapping[str, Any]) -> dict[str, Any]:
        return {"c": data["c0"], "k": data["k"], "dt": data["dt"], "dx": data["dx"], "dy": data["dy"]}
