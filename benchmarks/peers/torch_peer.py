"""PyTorch peers: eager float64 tensors on the CPU, ``torch.roll`` shifts, ``loss.backward()``.

The thread count is set to the machine's core count (2 here), as Numba's default.
The pressure row is a plain CG loop in tensors wrapped in a ``torch.autograd.Function``
whose backward is one more CG solve (the operator is symmetric), i.e. an implicit
gradient, not autograd through the iterations.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import torch

from ..harness import Implementation

torch.set_num_threads(os.cpu_count() or 1)


def _tensors(data: Mapping[str, Any], *names: str) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(data[n], dtype=np.float64)) for n in names]


def _leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Fresh leaves (sharing memory) that collect gradients."""
    return [t.detach().requires_grad_(True) for t in tensors]


class Upwind1D(Implementation):
    library = "torch"

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        self.d0, self.u, self.target = _tensors(data, "d0", "u", "target")

    def _final(self, d: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        dt, c = self.data["dt"], u / self.data["dx"]
        cm, cp = torch.clamp(c, max=0.0), torch.clamp(c, min=0.0)
        for _ in range(self.data["T"]):
            dplus = torch.roll(d, -1) - d
            d = d - dt * (cm * dplus + cp * torch.roll(dplus, 1))
        return d

    def forward(self):
        with torch.no_grad():
            return self._final(self.d0, self.u)

    def value_and_grad(self):
        d0, u = _leaves(self.d0, self.u)
        r = self._final(d0, u) - self.target
        loss = (r * r).sum()
        loss.backward()
        return loss.detach(), {"d": d0.grad, "u": u.grad}


class Diffusion2D(Implementation):
    library = "torch"

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        self.c0, self.k, self.target = _tensors(data, "c0", "k", "target")
        self.scale = (2 * data["dx"] ** 2, 2 * data["dy"] ** 2)

    def _final(self, c: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        faces = [(k + torch.roll(k, -1, axis)) / s for axis, s in enumerate(self.scale)]
        for _ in range(self.data["T"]):
            total = torch.zeros_like(c)
            for axis, K in enumerate(faces):
                flux = K * (torch.roll(c, -1, axis) - c)
                total = total + flux - torch.roll(flux, 1, axis)
            c = c + self.data["dt"] * total
        return c

    def forward(self):
        with torch.no_grad():
            return self._final(self.c0, self.k)

    def value_and_grad(self):
        c0, k = _leaves(self.c0, self.k)
        r = self._final(c0, k) - self.target
        loss = (r * r).sum()
        loss.backward()
        return loss.detach(), {"c": c0.grad, "k": k.grad}


def _neg_laplacian(p: torch.Tensor, h: float) -> torch.Tensor:
    return -sum(torch.roll(p, -1, a) - 2 * p + torch.roll(p, 1, a) for a in (0, 1)) / h**2


def _cg(b: torch.Tensor, h: float, rtol: float) -> tuple[torch.Tensor, int]:
    """Plain CG on the (positive semi-definite) negative Laplacian, zero-mean right-hand side."""
    b = b - b.mean()
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), torch.vdot(r.flatten(), r.flatten())
    stop = rtol**2 * float(rr)
    for iteration in range(10 * b.numel()):
        if float(rr) <= stop:
            return x, iteration
        ap = _neg_laplacian(p, h)
        alpha = rr / torch.vdot(p.flatten(), ap.flatten())
        x += alpha * p
        r -= alpha * ap
        rr_new = torch.vdot(r.flatten(), r.flatten())
        p = r + (rr_new / rr) * p
        rr = rr_new
    raise RuntimeError("torch CG did not converge")


class _Solve(torch.autograd.Function):
    """``p = (-lap)^+ b`` with the implicit backward ``b_bar = (-lap)^+ p_bar``."""

    @staticmethod
    def forward(ctx, b, h, rtol, counts):
        ctx.h, ctx.rtol, ctx.counts = h, rtol, counts
        x, counts["forward_iterations"] = _cg(b, h, rtol)
        return x

    @staticmethod
    def backward(ctx, p_bar):
        lam, ctx.counts["backward_iterations"] = _cg(p_bar, ctx.h, ctx.rtol)
        return lam, None, None, None


class Pressure(Implementation):
    library = "torch"

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        self.u, self.v, self.w_u, self.w_v = _tensors(data, "u", "v", "w_u", "w_v")
        self.counts: dict[str, int] = {}

    def _project(self, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.data["h"]
        div = (torch.roll(u, -1, 0) - u) / h + (torch.roll(v, -1, 1) - v) / h
        p = _Solve.apply(-div, h, self.data["rtol"], self.counts)
        return u - (p - torch.roll(p, 1, 0)) / h, v - (p - torch.roll(p, 1, 1)) / h

    def forward(self):
        with torch.no_grad():
            return self._project(self.u, self.v)

    def value_and_grad(self):
        u, v = _leaves(self.u, self.v)
        u_n, v_n = self._project(u, v)
        loss = (u_n * self.w_u).sum() + (v_n * self.w_v).sum()
        loss.backward()
        return loss.detach(), {"u": u.grad, "v": v.grad}

    def info(self) -> dict[str, Any]:
        return dict(self.counts)


class Laplace3D(Implementation):
    library = "torch"

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        self.p, self.g = _tensors(data, "p", "g")

    def _laplacian(self, p: torch.Tensor) -> torch.Tensor:
        return sum(torch.roll(p, -1, a) - 2 * p + torch.roll(p, 1, a) for a in (0, 1, 2)) / self.data["h"] ** 2

    def forward(self):
        with torch.no_grad():
            return self._laplacian(self.p)

    def value_and_grad(self):
        (p,) = _leaves(self.p)
        loss = (self._laplacian(p) * self.g).sum()
        loss.backward()
        return loss.detach(), {"p": p.grad}
