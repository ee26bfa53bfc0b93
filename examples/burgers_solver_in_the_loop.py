"""Solver in the loop: a small PyTorch network corrects a coarse Burgers solver after every step.

Usage: python examples/burgers_solver_in_the_loop.py [--iterations 3000] [--unroll 8] [--quick]

* Fine reference: viscous Burgers on [-1, 1], zero boundary values, 128 cells, four
  substeps per coarse step (Godunov flux + explicit diffusion, a dpgen stencil).
* Coarse solver: the same scheme on 32 cells, one step per coarse step. A batch of
  states is one 2-D field (batch x cells) and the stencil reads neighbours along the
  cell axis only, so one kernel call advances the whole batch.
* Training: random initial conditions; the coarse solver and the network are unrolled
  for 8 steps and the misfit to the downsampled reference is backpropagated through
  the solver (dpgen's torch bridge) into the network.
* Evaluation: held-out initial conditions, 100-step rollouts; mean relative error of the
  coarse solver alone and of the corrected one.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import sympy as sp
import torch

import dpgen as dp
from dpgen.bridges.torch import stencil_function

NU = 0.02
COARSE, FINE, SUBSTEPS = 32, 128, 4
DT = 1.0 / 64


def burgers(bc_axis1: str = "zero") -> dp.Stencil:
    """One explicit Burgers step along axis 1 of a (batch, cells) field."""
    u = dp.Field("u", ndim=2, bc=("periodic", bc_axis1))
    dt, dx, nu = sp.symbols("dt dx nu", positive=True)

    def flux(left, right):
        return sp.Max(sp.Max(left, 0) ** 2 / 2, sp.Min(right, 0) ** 2 / 2)

    update = -dt / dx * (flux(u[0, 0], u[0, 1]) - flux(u[0, -1], u[0, 0]))
    update += nu * dt / dx**2 * (u[0, 1] - 2 * u[0, 0] + u[0, -1])
    return dp.Stencil("burgers_batch", {u: u[0, 0] + update})


def initial_conditions(rng: np.random.Generator, batch: int, cells: int) -> np.ndarray:
    x = -1 + (np.arange(cells) + 0.5) * 2 / cells
    modes = np.stack([np.sin(k * np.pi * (x + 1) / 2) for k in (1, 2, 3)])
    amps = rng.uniform(-0.7, 0.7, (batch, 3)) / np.array([1.0, 1.5, 2.0])
    return amps @ modes


def references(k_fine: dp.CompiledStencil, u0_fine: np.ndarray, steps: int) -> np.ndarray:
    """Fine trajectories, averaged onto the coarse cells: (steps + 1, batch, COARSE)."""
    params = {"dt": DT / SUBSTEPS, "dx": 2 / FINE, "nu": NU}
    out, u = [u0_fine.reshape(len(u0_fine), COARSE, -1).mean(-1)], u0_fine
    for _ in range(steps):
        for _ in range(SUBSTEPS):
            u = k_fine.forward(u=u, **params)["u"]
        out.append(u.reshape(len(u), COARSE, -1).mean(-1))
    return np.stack(out)


class Corrector(torch.nn.Module):
    """A small 1-D CNN: the correction to add after each coarse step."""

    def __init__(self, width: int = 24):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv1d(2, width, 5, padding=2), torch.nn.Tanh(),
            torch.nn.Conv1d(width, width, 5, padding=2), torch.nn.Tanh(),
            torch.nn.Conv1d(width, 1, 5, padding=2),
        ).double()
        self.register_buffer("x", torch.linspace(-1, 1, COARSE, dtype=torch.float64))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        features = torch.stack([u, self.x.expand_as(u)], dim=1)
        return DT * self.net(features)[:, 0]


def rollout(step, net, u: torch.Tensor, steps: int) -> list[torch.Tensor]:
    states = [u]
    for _ in range(steps):
        u = step(u=u, dt=DT, dx=2 / COARSE, nu=NU)["u"]
        if net is not None:
            u = u + net(u)
        states.append(u)
    return states


def relative_error(states: list[torch.Tensor], ref: np.ndarray) -> float:
    errs = [np.linalg.norm(s.detach().numpy() - r, axis=1) / np.linalg.norm(r, axis=1) for s, r in zip(states[1:], ref[1:])]
    return float(np.mean(errs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--unroll", type=int, default=8)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="a short run for CI")
    args = parser.parse_args()
    if args.quick:
        args.iterations = 300
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    k_fine = dp.compile(burgers(), wrt=())
    step = stencil_function(dp.compile(burgers(), wrt=("u",)))
    net = Corrector()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    t0 = time.perf_counter()
    for it in range(args.iterations):
        u0 = initial_conditions(rng, args.batch, FINE)
        ref = references(k_fine, u0, args.unroll)
        states = rollout(step, net, torch.from_numpy(ref[0].copy()), args.unroll)
        loss = sum(((s - torch.from_numpy(r)) ** 2).mean() for s, r in zip(states[1:], ref[1:]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if it % max(1, args.iterations // 10) == 0:
            print(f"iteration {it:5d}  loss {float(loss):.3e}")
    train_seconds = time.perf_counter() - t0

    test_rng = np.random.default_rng(12345)  # held-out initial conditions
    u0 = initial_conditions(test_rng, 32, FINE)
    ref = references(k_fine, u0, 100)
    with torch.no_grad():
        start = torch.from_numpy(ref[0].copy())
        alone = relative_error(rollout(step, None, start, 100), ref)
        corrected = relative_error(rollout(step, net, start, 100), ref)
    print(f"training: {args.iterations} iterations x {args.unroll} unrolled steps x batch {args.batch}, "
          f"{train_seconds:.1f} s on {torch.get_num_threads()} PyTorch thread(s)")
    print(f"held-out, 100-step rollouts: mean relative error coarse alone {alone:.4f}, corrected {corrected:.4f} "
          f"({alone / corrected:.2f}x lower)")


if __name__ == "__main__":
    main()
