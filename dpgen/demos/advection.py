"""``dpgen demo advection``: recover a velocity field from where it carries a marker.

The inverse problem of the differentiable-physics text dpgen grew from: on a periodic
1-D grid, find a time-constant velocity ``u(x)`` that carries the marker density
``d0`` into ``d_target`` after ``T`` first-order upwind steps, minimising
``|d(T) - d_target|^2``. The target is made by the same solver from a hidden
velocity, so a perfect fit exists (the recovered ``u`` need not equal it where the
marker never passes). Gradients come from the generated adjoint chained through the
rollout; L-BFGS-B (with bounds that keep the Courant number <= 1/2) and plain
gradient descent run side by side from the same start: the constant velocity that
moves the marker's centroid to the target's.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from ..losses import L2
from ..optimize import OptimizationResult, gradient_descent, minimize
from ..rollout import Rollout, Step
from ..stencils import upwind

COURANT = 0.5  # dt = COURANT * dx: |u| <= 1 keeps the upwind step monotone


@dataclasses.dataclass
class AdvectionProblem:
    """Grid, initial marker, hidden velocity and target of the demo."""

    n: int
    steps: int
    x: np.ndarray
    d0: np.ndarray
    u_hidden: np.ndarray
    target: np.ndarray
    dt: float
    dx: float
    rollout: Rollout


def make_problem(n: int = 128, steps: int = 100) -> AdvectionProblem:
    """A Gaussian marker at x = 0.3 carried by ``u = 0.5 + 0.3 sin(2 pi x)``."""
    dx = 1.0 / n
    dt = COURANT * dx
    x = (np.arange(n) + 0.5) * dx
    d0 = np.exp(-(((x - 0.3) / 0.08) ** 2))
    u_hidden = 0.5 + 0.3 * np.sin(2 * np.pi * x)
    rollout = Rollout(Step([upwind(1)]), steps)
    target = rollout.run(d=d0, u=u_hidden, dt=dt, dx=dx)["d"]
    return AdvectionProblem(n, steps, x, d0, u_hidden, target, dt, dx, rollout)


def centroid_velocity(p: AdvectionProblem) -> float:
    """The constant velocity that moves the (periodic) centroid of ``d0`` onto the target's."""

    def centroid(d: np.ndarray) -> float:
        return float(np.angle(np.sum(d * np.exp(2j * np.pi * p.x))) / (2 * np.pi))

    shift = (centroid(p.target) - centroid(p.d0) + 0.5) % 1.0 - 0.5
    return shift / (p.steps * p.dt)


def solve(p: AdvectionProblem, iterations: int = 200, lr: float = 0.1, progress: bool = True):
    """Run L-BFGS-B and gradient descent from the centroid guess; return both results."""
    objective = p.rollout.objective(L2(p.target, field="d"), "u", d=p.d0, dt=p.dt, dx=p.dx)
    start = {"u": np.full(p.n, centroid_velocity(p))}
    bounds = {"u": (-1.0, 1.0)}
    t0 = time.perf_counter()
    lbfgs = minimize(objective, start, bounds=bounds, maxiter=iterations, progress=progress)
    t_lbfgs = time.perf_counter() - t0
    t0 = time.perf_counter()
    gd = gradient_descent(objective, start, lr=lr, steps=iterations, bounds=bounds, progress=progress)
    t_gd = time.perf_counter() - t0
    return lbfgs, gd, t_lbfgs, t_gd


def plot(p: AdvectionProblem, lbfgs: OptimizationResult, gd: OptimizationResult, path: Path) -> Path:
    """Write the PNG: marker densities, recovered velocities, loss curves."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    final = {
        name: p.rollout.run(d=p.d0, u=r.x["u"], dt=p.dt, dx=p.dx)["d"] for name, r in (("L-BFGS-B", lbfgs), ("GD", gd))
    }
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    ax.plot(p.x, p.d0, color="0.6", label="$d_0$")
    ax.plot(p.x, p.target, "k--", lw=2, label="target")
    ax.plot(p.x, final["L-BFGS-B"], color="C0", label="$d(T)$, L-BFGS-B")
    ax.plot(p.x, final["GD"], color="C1", ls=":", label="$d(T)$, gradient descent")
    ax.set(title=f"marker density, T = {p.steps} upwind steps", xlabel="x")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(p.x, p.u_hidden, "k--", label="hidden velocity (made the target)")
    ax.plot(p.x, lbfgs.x["u"], color="C0", label="recovered, L-BFGS-B")
    ax.plot(p.x, gd.x["u"], color="C1", ls=":", label="recovered, gradient descent")
    ax.axhline(centroid_velocity(p), color="0.6", lw=0.8, label="start: centroid velocity")
    ax.set(title="velocity u(x)", xlabel="x")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.semilogy(lbfgs.history.loss, color="C0", label="L-BFGS-B")
    ax.semilogy(gd.history.loss, color="C1", label="gradient descent")
    ax.set(title=r"loss $|d(T) - d_{target}|^2$", xlabel="iteration")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(n: int = 128, steps: int = 100, iterations: int = 200, out: str | Path = "advection_demo.png",
        progress: bool = True) -> int:
    """Run the demo; returns a process exit code (1 if L-BFGS-B gained less than 1e4x)."""
    p = make_problem(n, steps)
    u_start = centroid_velocity(p)
    loss = L2(p.target, field="d")
    no_flow = p.rollout.value(loss, d=p.d0, u=np.zeros(n), dt=p.dt, dx=p.dx)
    print(f"Advection inverse problem: {n} cells, {steps} upwind steps, Courant number <= {COURANT}")
    print(f"loss with no flow: {no_flow:.4g}; start (constant centroid velocity {u_start:.3f}): ", end="")
    lbfgs, gd, t_lbfgs, t_gd = solve(p, iterations, progress=progress)
    print(f"{lbfgs.history.loss[0]:.4g}")
    print(f"{'optimiser':<18} {'iterations':>10} {'final loss':>12} {'reduction':>10} {'seconds':>8}")
    for name, r, t in (("L-BFGS-B", lbfgs, t_lbfgs), ("gradient descent", gd, t_gd)):
        print(f"{name:<18} {len(r.history.loss) - 1:>10} {r.fun:>12.3e} {r.history.reduction:>9.3g}x {t:>8.2f}")
    path = plot(p, lbfgs, gd, Path(out))
    print(f"wrote {path}")
    return 0 if lbfgs.history.reduction >= 1e4 else 1
