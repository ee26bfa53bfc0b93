"""3-D periodic 7-point Laplacian: one application and its vjp with respect to ``p``.

Forward ``lap = L p``; "value and gradient" is the loss ``<g, L p>`` for a fixed random
``g`` and its gradient ``L^T g`` (dpgen: ``forward`` + ``vjp``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..harness import DpgenImplementation
from . import Case

TITLE = "laplace3d: 3-D periodic 7-point Laplacian, one application and its vjp w.r.t. p"
TOLERANCE = 1e-6
BYTES_NOTE = ("GB/s = minimal bytes / median time. Forward: 2 arrays (read p, write lap). Value+gradient: "
              "3 arrays (read p and g, write p_bar: a fused minimum).")
IMPLEMENTATIONS = {
    "dpgen": "benchmarks.problems.laplace3d:Dpgen",
    "numpy (pad + slices)": "benchmarks.peers.numpy_peer:Laplace3D",
    "jax (jit)": "benchmarks.peers.jax_peer:Laplace3D",
    "torch (eager autograd)": "benchmarks.peers.torch_peer:Laplace3D",
}


def cases(quick: bool) -> list[Case]:
    n = 16 if quick else 128
    return [Case(f"{n}^3", {"n": n})]


def tiny() -> Case:
    return Case("tiny", {"n": 4})


def make_data(case: Case) -> dict[str, Any]:
    n = case.params["n"]
    rng = np.random.default_rng(0)
    return {"n": n, "p": rng.standard_normal((n, n, n)), "g": rng.standard_normal((n, n, n)), "h": 1.0 / n}


def traffic(case: Case) -> dict[str, int | None]:
    """Forward: read p, write lap; value+gradient (fused minimum): read p and g, write p_bar."""
    cells = case.params["n"] ** 3
    return {"forward": 2 * cells * 8, "value_and_grad": 3 * cells * 8, "states": None}


class Dpgen(DpgenImplementation):
    """``dp.compile(laplacian(3), wrt=("p",))``: ``forward``, then ``vjp``."""

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        import dpgen as dp
        from dpgen.stencils import laplacian

        self.kernel = dp.compile(laplacian(3), wrt=("p",))
        h = data["h"]
        self.spacing = {"dx": h, "dy": h, "dz": h}

    def forward(self):
        return self.kernel.forward(p=self.data["p"], **self.spacing)["lap"]

    def value_and_grad(self):
        from dpgen.runtime.twins import dot  # not BLAS: see the pressure problem

        g = self.data["g"]
        value = dot(self.forward(), g)
        return value, {"p": self.kernel.vjp({"lap": g}, p=self.data["p"], **self.spacing)["p"]}
