"""``dpgen demo pressure``: steer a flow through the pressure projection.

On an 80 x 64 closed box (MAC grid), find a velocity field in the left half (x < 40)
such that after the Chorin pressure projection the velocity in the right half matches
a target: a Gaussian bump in the y-velocity centred at cell (50, 10), 32 cells wide
(``exp(-(r / 16)^2)``), amplitude 2, and zero x-velocity. The gradient flows back
through the divergence, the implicit pressure solve (one CG solve forward, one
backward, no iterations differentiated) and the gradient stencil.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..optimize import minimize
from ..solvers.projection import PressureProjection


def make_problem(nx: int = 80, ny: int = 64):
    x, y = np.meshgrid(np.arange(nx) + 0.5, np.arange(ny) + 0.5, indexing="ij")
    target_v = 2.0 * np.exp(-(((x - 50) ** 2 + (y - 10) ** 2) / 16.0**2))
    right = np.zeros((nx, ny), bool)
    right[nx // 2 :, :] = True
    return target_v, right


def run(nx: int = 80, ny: int = 64, iterations: int = 60, out: str | Path = "pressure_demo.png",
        rtol: float = 1e-10, progress: bool = False) -> int:
    """Run the demo; returns 0 if the L-BFGS loss decreased monotonically."""
    proj = PressureProjection("closed", rtol=rtol)
    target_v, right = make_problem(nx, ny)
    left = ~right
    spacing = {"dx": 1.0, "dy": 1.0}
    log: list[tuple[float, int, int]] = []

    def objective(xs):
        u = np.where(left, xs["u"], 0.0)
        v = np.where(left, xs["v"], 0.0)
        res = proj.forward(u=u, v=v, **spacing)
        fwd_it = proj.solve.forward_info.iterations
        du = np.where(right, res["u"], 0.0)
        dv = np.where(right, res["v"] - target_v, 0.0)
        loss = float(np.vdot(du, du) + np.vdot(dv, dv))
        grads = proj.vjp({"u": 2 * du, "v": 2 * dv}, **spacing)
        log.append((loss, fwd_it, proj.solve.backward_info.iterations))
        return loss, {"u": np.where(left, grads["u"], 0.0), "v": np.where(left, grads["v"], 0.0)}

    start = {"u": np.zeros((nx, ny)), "v": np.zeros((nx, ny))}
    print(f"Pressure projection demo: {nx} x {ny} closed box, optimise the left half, match the right half")
    t0 = time.perf_counter()
    result = minimize(objective, start, maxiter=iterations, progress=progress)
    seconds = time.perf_counter() - t0
    print(f"{'iteration':>9} {'loss':>12} {'CG fwd':>7} {'CG bwd':>7}")
    evaluations = {round(entry[0], 15): entry for entry in log}
    for i, loss in enumerate(result.history.loss):
        _, f_it, b_it = evaluations.get(round(loss, 15), (loss, -1, -1))
        print(f"{i:>9} {loss:>12.4e} {f_it:>7} {b_it:>7}")
    final = proj.forward(u=np.where(left, result.x["u"], 0.0), v=np.where(left, result.x["v"], 0.0), **spacing)
    div = proj.divergence(final["u"], final["v"], **spacing)
    rhs_scale = np.abs(proj.divergence(np.where(left, result.x["u"], 0.0), np.where(left, result.x["v"], 0.0),
                                       **spacing)).max()
    monotone = all(b <= a * (1 + 1e-12) for a, b in zip(result.history.loss, result.history.loss[1:]))
    print(f"loss {result.history.loss[0]:.4g} -> {result.fun:.4g} ({result.history.reduction:.3g}x) in "
          f"{len(result.history.loss) - 1} iterations, {len(log)} evaluations, {seconds:.1f} s; monotone: {monotone}")
    print(f"max |div u_n| = {np.abs(div).max():.2e} (max |div u| before projection {rhs_scale:.2e}, "
          f"solver rtol {rtol:g})")
    _plot(target_v, right, final, result.history.loss, Path(out))
    print(f"wrote {out}")
    return 0 if monotone else 1


def _plot(target_v, right, final, losses, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 4))
    vmax = max(float(np.abs(target_v).max()), float(np.abs(final["v"]).max()))
    shown = [(np.where(right, target_v, np.nan), "target v (right half)"),
             (final["v"], "v after projection"), (final["u"], "u after projection")]
    for ax, (field, title) in zip(axes[:3], shown):
        im = ax.imshow(field.T, origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.axvline(right.shape[0] // 2 - 0.5, color="k", lw=0.8)
        ax.set(title=title, xlabel="x (cells)", ylabel="y (cells)")
    fig.colorbar(im, ax=axes[:3], shrink=0.8)
    axes[3].semilogy(losses, "o-", ms=3)
    axes[3].set(title="loss (L-BFGS-B)", xlabel="iteration")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
