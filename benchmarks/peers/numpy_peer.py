"""Hand-written NumPy: forward sweeps that store every state, and reverse sweeps derived by hand.

Periodic shifts are ``np.roll`` (``roll(x, 1)[i] = x[i-1]``, ``roll(x, -1)[i] = x[i+1]``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..harness import Implementation


class Upwind1D(Implementation):
    """Upwind advection; adjoint of ``d_new = d - dt (cm (d[i+1] - d[i]) + cp (d[i] - d[i-1]))``.

    With ``cm = min(u/dx, 0)``, ``cp = max(u/dx, 0)`` and ``g = d_bar_new``:

    * ``d_bar[j] = (1 + dt cm[j] - dt cp[j]) g[j] - dt cm[j-1] g[j-1] + dt cp[j+1] g[j+1]``
    * ``u_bar[j] -= dt/dx g[j] (H(-u[j]) (d[j+1] - d[j]) + H(u[j]) (d[j] - d[j-1]))``

    (``H`` the Heaviside step with ``H(0) = 1/2``, dpgen's convention at the kink.)
    """

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        u, dx, self.dt = data["u"], data["dx"], data["dt"]
        c = u / dx
        self.cm, self.cp = np.minimum(c, 0.0), np.maximum(c, 0.0)
        half = 0.5 * (u == 0)
        self.hm, self.hp = (u < 0) + half, (u > 0) + half

    def _step(self, d: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        dplus = np.roll(d, -1) - d
        return np.subtract(d, self.dt * (self.cm * dplus + self.cp * np.roll(dplus, 1)), out=out)

    def forward(self):
        d = self.data["d0"]
        for _ in range(self.data["T"]):
            d = self._step(d)
        return d

    def value_and_grad(self):
        steps, dt, dx = self.data["T"], self.dt, self.data["dx"]
        states = np.empty((steps + 1, self.data["n"]))
        states[0] = self.data["d0"]
        for t in range(steps):
            self._step(states[t], out=states[t + 1])
        residual = states[steps] - self.data["target"]
        value = float(np.vdot(residual, residual))
        g = 2.0 * residual
        u_bar = np.zeros_like(g)
        diag, left, right = 1.0 + dt * (self.cm - self.cp), -dt * self.cm, dt * self.cp
        for t in reversed(range(steps)):
            d = states[t]
            dplus = np.roll(d, -1) - d
            u_bar -= (dt / dx) * g * (self.hm * dplus + self.hp * np.roll(dplus, 1))
            g = diag * g + np.roll(left * g, 1) + np.roll(right * g, -1)
        return value, {"d": g, "u": u_bar}


class Diffusion2D(Implementation):
    """Variable-coefficient diffusion in flux form; hand-written adjoint.

    Forward, per axis ``a``: ``K_a = (k + roll(k, -1, a)) / (2 h_a**2)``,
    ``F_a = K_a (roll(c, -1, a) - c)``, ``c_new = c + dt sum_a (F_a - roll(F_a, 1, a))``.
    Reverse with ``g = c_bar_new``: ``F_bar_a = dt (g - roll(g, -1, a))``,
    ``c_bar = g + sum_a (roll(W_a, 1, a) - W_a)`` with ``W_a = F_bar_a K_a``, and
    ``K_bar_a += F_bar_a (roll(c, -1, a) - c)``, folded at the end into
    ``k_bar = sum_a (K_bar_a + roll(K_bar_a, 1, a)) / (2 h_a**2)``.
    """

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        k = data["k"]
        self.scale = (2 * data["dx"] ** 2, 2 * data["dy"] ** 2)
        self.K = [(k + np.roll(k, -1, axis)) / s for axis, s in enumerate(self.scale)]

    def _step(self, c: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        total = np.zeros_like(c)
        for axis, K in enumerate(self.K):
            flux = K * (np.roll(c, -1, axis) - c)
            total += flux - np.roll(flux, 1, axis)
        return np.add(c, self.data["dt"] * total, out=out)

    def forward(self):
        c = self.data["c0"]
        for _ in range(self.data["T"]):
            c = self._step(c)
        return c

    def value_and_grad(self):
        steps, dt, n = self.data["T"], self.data["dt"], self.data["n"]
        states = np.empty((steps + 1, n, n))
        states[0] = self.data["c0"]
        for t in range(steps):
            self._step(states[t], out=states[t + 1])
        residual = states[steps] - self.data["target"]
        value = float(np.vdot(residual, residual))
        g = 2.0 * residual
        K_bar = [np.zeros_like(g) for _ in self.K]
        for t in reversed(range(steps)):
            c = states[t]
            new = g.copy()
            for axis, K in enumerate(self.K):
                f_bar = dt * (g - np.roll(g, -1, axis))
                w = f_bar * K
                new += np.roll(w, 1, axis) - w
                K_bar[axis] += f_bar * (np.roll(c, -1, axis) - c)
            g = new
        k_bar = sum((Kb + np.roll(Kb, 1, axis)) / s for axis, (Kb, s) in enumerate(zip(K_bar, self.scale)))
        return value, {"c": g, "k": k_bar}


class Laplace3D(Implementation):
    """7-point Laplacian from a wrap-padded copy; self-adjoint, so the vjp is ``L g``."""

    def _apply(self, p: np.ndarray) -> np.ndarray:
        h2 = self.data["h"] ** 2
        q = np.pad(p, 1, mode="wrap")
        c = q[1:-1, 1:-1, 1:-1]
        out = q[2:, 1:-1, 1:-1] + q[:-2, 1:-1, 1:-1]
        out += q[1:-1, 2:, 1:-1]
        out += q[1:-1, :-2, 1:-1]
        out += q[1:-1, 1:-1, 2:]
        out += q[1:-1, 1:-1, :-2]
        out -= 6.0 * c
        out /= h2
        return out

    def forward(self):
        return self._apply(self.data["p"])

    def value_and_grad(self):
        g = self.data["g"]
        return float(np.vdot(self.forward(), g)), {"p": self._apply(g)}
