"""Hand-written Numba upwind forward and adjoint: the reference dpgen's kernels are held against.

All ``T + 1`` states live in one ``(T + 1, n)`` array allocated per call (the forward-only
run uses two rows in turn). Each sweep is one compiled function with the time loop
inside; per step, a fused kernel (``_forward_cells``, ``_adjoint_cells``) handles a
contiguous block of cells, with the periodic neighbours of the first and last cell
wrapped explicitly so that the interior loop vectorises. The parallel drivers split the
cells into one block per thread (``prange`` over ``numba.get_num_threads()`` blocks,
passed in: reading it inside would make the function uncacheable); the serial ones do
one block. Like dpgen, the parallel variant is used from ``DPGEN_PARALLEL_THRESHOLD``
(default 262144) cells on.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numba
import numpy as np
from numba import njit, prange

from ..harness import Implementation

PARALLEL_THRESHOLD = int(os.environ.get("DPGEN_PARALLEL_THRESHOLD", "262144"))


@njit(cache=True, inline="always")
def _update(d, u, i, im, ip, dt, dx):
    c = u[i] / dx
    return d[i] - dt * (min(c, 0.0) * (d[ip] - d[i]) + max(c, 0.0) * (d[i] - d[im]))


@njit(cache=True)
def _forward_cells(d, out, u, dt, dx, lo, hi):
    n = d.size
    for i in range(max(lo, 1), min(hi, n - 1)):
        out[i] = _update(d, u, i, i - 1, i + 1, dt, dx)
    if lo == 0:
        out[0] = _update(d, u, 0, n - 1, 1 % n, dt, dx)
    if hi == n and n > 1:
        out[n - 1] = _update(d, u, n - 1, n - 2, 0, dt, dx)


@njit(cache=True, inline="always")
def _adjoint_cell(d, u, g, g_new, u_bar, j, jm, jp, dt, dx):
    c, cm_left, cp_right = u[j] / dx, min(u[jm] / dx, 0.0), max(u[jp] / dx, 0.0)
    g_new[j] = (1.0 + dt * (min(c, 0.0) - max(c, 0.0))) * g[j] - dt * cm_left * g[jm] + dt * cp_right * g[jp]
    h_minus = 1.0 if u[j] < 0 else (0.5 if u[j] == 0 else 0.0)  # d min(c, 0) / dc, H(0) = 1/2
    h_plus = 1.0 if u[j] > 0 else (0.5 if u[j] == 0 else 0.0)  # d max(c, 0) / dc
    u_bar[j] -= dt / dx * g[j] * (h_minus * (d[jp] - d[j]) + h_plus * (d[j] - d[jm]))


@njit(cache=True)
def _adjoint_cells(d, u, g, g_new, u_bar, dt, dx, lo, hi):
    n = d.size
    for j in range(max(lo, 1), min(hi, n - 1)):
        _adjoint_cell(d, u, g, g_new, u_bar, j, j - 1, j + 1, dt, dx)
    if lo == 0:
        _adjoint_cell(d, u, g, g_new, u_bar, 0, n - 1, 1 % n, dt, dx)
    if hi == n and n > 1:
        _adjoint_cell(d, u, g, g_new, u_bar, n - 1, n - 2, 0, dt, dx)


@njit(cache=True)
def _forward_serial(states, u, dt, dx, steps, blocks=1):
    rows = states.shape[0]  # T + 1: every state; 2: forward only, ping-pong
    for t in range(steps):
        _forward_cells(states[t % rows], states[(t + 1) % rows], u, dt, dx, 0, states.shape[1])


@njit(cache=True, parallel=True)
def _forward_parallel(states, u, dt, dx, steps, blocks):
    rows, n = states.shape[0], states.shape[1]
    for t in range(steps):
        for b in prange(blocks):
            lo, hi = b * n // blocks, (b + 1) * n // blocks
            _forward_cells(states[t % rows], states[(t + 1) % rows], u, dt, dx, lo, hi)


@njit(cache=True)
def _adjoint_serial(states, u, g, dt, dx, blocks=1):
    g_new, u_bar = np.empty_like(g), np.zeros_like(g)
    for t in range(states.shape[0] - 2, -1, -1):
        _adjoint_cells(states[t], u, g, g_new, u_bar, dt, dx, 0, g.size)
        g, g_new = g_new, g
    return g, u_bar


@njit(cache=True, parallel=True)
def _adjoint_parallel(states, u, g, dt, dx, blocks):
    g_new, u_bar = np.empty_like(g), np.zeros_like(g)
    n = g.size
    for t in range(states.shape[0] - 2, -1, -1):
        for b in prange(blocks):
            lo, hi = b * n // blocks, (b + 1) * n // blocks
            _adjoint_cells(states[t], u, g, g_new, u_bar, dt, dx, lo, hi)
        g, g_new = g_new, g
    return g, u_bar


class Upwind1D(Implementation):
    """Forward: ``T`` steps into a ``(T + 1, n)`` array; reverse: the fused hand-derived adjoint."""

    library = "numba"

    def __init__(self, data: Mapping[str, Any], parallel: bool | None = None):
        super().__init__(data)
        if parallel is None:
            parallel = data["n"] >= PARALLEL_THRESHOLD
        self._fwd = _forward_parallel if parallel else _forward_serial
        self._adj = _adjoint_parallel if parallel else _adjoint_serial
        self.blocks = numba.get_num_threads()

    def _run(self, rows: int) -> np.ndarray:
        steps = self.data["T"]
        states = np.empty((rows, self.data["n"]))
        states[0] = self.data["d0"]
        self._fwd(states, self.data["u"], self.data["dt"], self.data["dx"], steps, self.blocks)
        return states

    def forward(self):
        return self._run(2)[self.data["T"] % 2]  # two rows, used in turn

    def value_and_grad(self):
        steps = self.data["T"]
        states = self._run(steps + 1)
        residual = states[steps] - self.data["target"]
        value = float(np.vdot(residual, residual))
        d_bar, u_bar = self._adj(states, self.data["u"], 2.0 * residual, self.data["dt"], self.data["dx"],
                                 self.blocks)
        return value, {"d": d_bar, "u": u_bar}

    @classmethod
    def warmup(cls, data: Mapping[str, Any]) -> None:
        cls(data, parallel=True).value_and_grad()
        cls(data, parallel=False).value_and_grad()
