"""2-D periodic pressure projection on a MAC grid: CG to ``rtol = 1e-8``, implicit gradient.

``div = (u[i+1] - u[i]) / dx + (v[j+1] - v[j]) / dy``, ``lap p = div`` (5-point,
periodic, zero-mean ``p``), ``u_n = u - (p[i] - p[i-1]) / dx``,
``v_n = v - (p[j] - p[j-1]) / dy``; loss ``sum(u_n w_u) + sum(v_n w_v)`` with fixed
random weights, gradient with respect to ``u`` and ``v`` (by one more solve: the
projection is symmetric, so the gradient is the projection of the weights).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..harness import DpgenImplementation
from . import Case

TITLE = "pressure: 2-D periodic MAC pressure projection, CG rtol 1e-8, value + implicit gradient w.r.t. u, v"
TOLERANCE = 1e-5
RTOL = 1e-8
BYTES_NOTE = "GB/s: not meaningful for an iterative solve; CG iteration counts are in the notes."
IMPLEMENTATIONS = {
    "dpgen (mg)": "benchmarks.problems.pressure:DpgenMG",
    "dpgen (jacobi)": "benchmarks.problems.pressure:DpgenJacobi",
    "dpgen (none)": "benchmarks.problems.pressure:DpgenPlain",
    "scipy (cg, LinearOperator)": "benchmarks.peers.scipy_peer:Pressure",
    "jax (jit, jax.scipy cg)": "benchmarks.peers.jax_peer:Pressure",
    "torch (cg loop, custom backward)": "benchmarks.peers.torch_peer:Pressure",
}


def cases(quick: bool) -> list[Case]:
    sizes = [32] if quick else [128, 512]
    return [Case(f"{n}x{n}", {"n": n}) for n in sizes]


def tiny() -> Case:
    return Case("tiny", {"n": 8})


def make_data(case: Case) -> dict[str, Any]:
    n = case.params["n"]
    rng = np.random.default_rng(0)
    u, v, w_u, w_v = (rng.standard_normal((n, n)) for _ in range(4))
    return {"n": n, "u": u, "v": v, "w_u": w_u, "w_v": w_v, "h": 1.0 / n, "rtol": RTOL}


def traffic(case: Case) -> dict[str, int | None]:
    """Iterative: no byte count is meaningful; no states are stored."""
    return {"forward": None, "value_and_grad": None, "states": None}


class _Dpgen(DpgenImplementation):
    """``PressureProjection("periodic", rtol=1e-8, preconditioner=...)``."""

    preconditioner: str | None = None

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        from dpgen.runtime.twins import dot
        from dpgen.solvers.projection import PressureProjection

        self._dot = dot
        self.proj = PressureProjection("periodic", rtol=data["rtol"], preconditioner=self.preconditioner)
        self.h = data["h"]

    def forward(self):
        return self.proj.forward(u=self.data["u"], v=self.data["v"], dx=self.h, dy=self.h)

    def value_and_grad(self):
        out = self.forward()
        # dpgen's own dot product, not np.vdot: OpenBLAS's worker threads spin after a call
        # and stall the parallel kernels that follow on 2 cores (the README's performance notes)
        value = self._dot(out["u"], self.data["w_u"]) + self._dot(out["v"], self.data["w_v"])
        grads = self.proj.vjp({"u": self.data["w_u"], "v": self.data["w_v"]}, dx=self.h, dy=self.h)
        return value, {"u": grads["u"], "v": grads["v"]}

    def info(self) -> dict[str, Any]:
        solve = getattr(self.proj, "solve", None)
        facts: dict[str, Any] = {}
        for key, attr in (("forward_iterations", "forward_info"), ("backward_iterations", "backward_info")):
            record = getattr(solve, attr, None)
            if record is not None:
                facts[key] = getattr(record, "iterations", None)
        return facts


class DpgenMG(_Dpgen):
    preconditioner = "mg"


class DpgenJacobi(_Dpgen):
    preconditioner = "jacobi"


class DpgenPlain(_Dpgen):
    preconditioner = None
