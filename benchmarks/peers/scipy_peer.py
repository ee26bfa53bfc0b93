"""SciPy pressure projection: ``scipy.sparse.linalg.cg`` on a matrix-free ``LinearOperator``.

The gradient is derived by hand. With ``D`` the forward-difference divergence and
``G`` the backward-difference gradient (periodic), ``D^T = -G`` and ``L = D G`` is the
symmetric 5-point Laplacian, so the projection ``P = I - G L^+ D`` is symmetric:
``P^T = I - D^T L^+ G^T = I - G L^+ D = P``. The gradient of ``<w, P u>`` is therefore
``P w``: the same projection applied to the weights, one more CG solve.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy.sparse.linalg import LinearOperator, cg

from ..harness import Implementation


class Pressure(Implementation):
    library = "scipy"

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        n, h = data["n"], data["h"]
        self.matvecs = 0

        def matvec(x: np.ndarray) -> np.ndarray:
            self.matvecs += 1
            p = x.reshape(n, n)
            lap = sum(np.roll(p, -1, a) - 2 * p + np.roll(p, 1, a) for a in (0, 1)) / h**2
            return -lap.ravel()

        self.operator = LinearOperator((n * n, n * n), matvec=matvec, dtype=np.float64)
        self.counts: dict[str, int] = {}

    def _project(self, u: np.ndarray, v: np.ndarray, which: str) -> tuple[np.ndarray, np.ndarray]:
        h = self.data["h"]
        div = (np.roll(u, -1, 0) - u) / h + (np.roll(v, -1, 1) - v) / h
        iterations = 0

        def count(_: np.ndarray) -> None:
            nonlocal iterations
            iterations += 1

        self.matvecs = 0
        p, status = cg(self.operator, -div.ravel(), rtol=self.data["rtol"], callback=count)
        if status != 0:
            raise RuntimeError(f"scipy cg did not converge (status {status})")
        self.counts[f"{which}_iterations"], self.counts[f"{which}_matvecs"] = iterations, self.matvecs
        p = p.reshape(u.shape)
        return u - (p - np.roll(p, 1, 0)) / h, v - (p - np.roll(p, 1, 1)) / h

    def forward(self):
        return self._project(self.data["u"], self.data["v"], "forward")

    def value_and_grad(self):
        u_n, v_n = self.forward()
        value = float(np.vdot(u_n, self.data["w_u"]) + np.vdot(v_n, self.data["w_v"]))
        u_bar, v_bar = self._project(self.data["w_u"], self.data["w_v"], "backward")
        return value, {"u": u_bar, "v": v_bar}

    def info(self) -> dict[str, Any]:
        return dict(self.counts)
