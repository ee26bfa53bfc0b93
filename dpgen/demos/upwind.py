"""``dpgen demo upwind``: the core pipeline end to end on first-order upwind advection.

1. define the stencil in SymPy and print its derived adjoint;
2. generate and compile the kernels (timed: generation, first JIT, cached load);
3. verify the vjp against central finite differences under every boundary rule;
4. chain the vjp by hand through time steps to get d(loss)/du of a short rollout,
   checked against finite differences;
5. time forward and vjp on a large grid next to a NumPy implementation.
"""

from __future__ import annotations

import time

import numpy as np
import sympy as sp

from .. import Stencil, compile, fields
from ..boundary import RULES
from ..verify import check_vjp


def upwind_stencil(bc: str = "periodic") -> Stencil:
    """The README's upwind stencil."""
    d, u = fields("d u", ndim=1, bc=bc)
    dt, dx = sp.symbols("dt dx", positive=True)
    c_plus = sp.Min(u[0] / dx, 0)
    c_minus = sp.Max(u[0] / dx, 0)
    return Stencil("upwind", {d: d[0] - dt * (c_plus * (d[1] - d[0]) + c_minus * (d[0] - d[-1]))})


def _numpy_upwind(d: np.ndarray, u: np.ndarray, dt: float, dx: float) -> np.ndarray:
    c = u / dx
    return d - dt * (np.minimum(c, 0) * (np.roll(d, -1) - d) + np.maximum(c, 0) * (d - np.roll(d, 1)))


def _numpy_upwind_vjp(g: np.ndarray, d: np.ndarray, u: np.ndarray, dt: float, dx: float):
    c = u / dx
    cm, cp = np.minimum(c, 0), np.maximum(c, 0)
    gd = g * (1 - dt * (cp - cm)) + np.roll(g * dt * cp, -1) - np.roll(g * dt * cm, 1)
    hp = np.where(c > 0, 1.0, np.where(c < 0, 0.0, 0.5))
    gu = -g * dt / dx * ((1 - hp) * (np.roll(d, -1) - d) + hp * (d - np.roll(d, 1)))
    return gd, gu


def _best_of(fn, repeat: int = 5) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(n: int = 1_000_000) -> int:
    """Run the demo; returns a process exit code (1 if a gradient check failed)."""
    print("== 1. The stencil and its SymPy-derived adjoint ==")
    stencil = upwind_stencil()
    print(stencil)
    print(stencil.adjoint(wrt=("d", "u")))
    print()

    print("== 2. Generate and compile ==")
    t0 = time.perf_counter()
    k = compile(stencil, wrt=("d", "u", "dt"))
    t_gen = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    small = 64
    d0, u0, g = rng.uniform(0, 1, small), rng.uniform(-1, 1, small), rng.standard_normal(small)
    t0 = time.perf_counter()
    k.forward(d=d0, u=u0, dt=1e-3, dx=1 / small)
    k.vjp({"d": g}, d=d0, u=u0, dt=1e-3, dx=1 / small)
    t_jit = time.perf_counter() - t0
    print(f"module {k.path}")
    print(f"generate/look up: {t_gen:.2f} s, first calls (JIT or Numba cache): {t_jit:.2f} s")
    print()

    print("== 3. vjp vs central finite differences, every boundary rule ==")
    ok = True
    for rule in RULES:
        kb = compile(upwind_stencil(rule), wrt=("d", "u", "dt"))
        res = check_vjp(kb, {"d": d0, "u": u0}, {"dt": 1e-3, "dx": 1 / small}, n_directions=3)
        ok &= res.passed
        errs = ", ".join(f"{w}: {e:.1e}" for w, e in res.details.items())
        print(f"  {rule:<10} {'ok' if res.passed else 'FAILED'}  relative errors {errs}")
    print()

    print("== 4. Chaining vjps through 50 time steps: d loss / d u ==")
    steps, dt, dx = 50, 0.4 / small, 1 / small
    target = np.roll(d0, 3)

    def rollout_loss(u: np.ndarray) -> tuple[float, np.ndarray]:
        states = [d0]
        for _ in range(steps):
            states.append(k.forward(d=states[-1], u=u, dt=dt, dx=dx)["d"])
        residual = states[-1] - target
        d_bar, u_bar = residual.copy(), np.zeros_like(u)
        for t in reversed(range(steps)):  # the adjoint of upwind in d reads u only
            cot = k.vjp({"d": d_bar}, d=states[t], u=u, dt=dt, dx=dx)
            d_bar, u_bar = cot["d"], u_bar + cot["u"]
        return 0.5 * float(residual @ residual), u_bar

    loss, grad = rollout_loss(u0)
    direction = rng.standard_normal(small)
    h = 1e-6
    fd = (rollout_loss(u0 + h * direction)[0] - rollout_loss(u0 - h * direction)[0]) / (2 * h)
    rel = abs(fd - grad @ direction) / abs(fd)
    ok &= rel < 1e-7
    print(f"  loss {loss:.6f}; directional derivative: adjoint {grad @ direction:.12f}, "
          f"finite difference {fd:.12f}, relative error {rel:.1e}")
    print()

    print(f"== 5. Speed at n = {n:,} (float64, best of 5) ==")
    d1, u1, g1 = rng.uniform(0, 1, n), rng.uniform(-1, 1, n), rng.standard_normal(n)
    args = dict(d=d1, u=u1, dt=1e-3, dx=1 / n)
    k.forward(**args)
    k.vjp({"d": g1}, **args)
    t_fwd = _best_of(lambda: k.forward(**args))
    t_vjp = _best_of(lambda: k.vjp({"d": g1}, **args))
    t_np_fwd = _best_of(lambda: _numpy_upwind(d1, u1, 1e-3, 1 / n))
    t_np_vjp = _best_of(lambda: _numpy_upwind_vjp(g1, d1, u1, 1e-3, 1 / n))
    gd, gu = _numpy_upwind_vjp(g1, d1, u1, 1e-3, 1 / n)
    cot = k.vjp({"d": g1}, **args)
    same = all(
        np.max(np.abs(ref - cot[w])) <= 1e-12 * np.max(np.abs(ref)) for w, ref in (("d", gd), ("u", gu))
    )
    print(f"  forward: dpgen {t_fwd * 1e3:7.2f} ms   numpy {t_np_fwd * 1e3:7.2f} ms   "
          f"({t_np_fwd / t_fwd:.1f}x)")
    print(f"  vjp d,u,dt: dpgen {t_vjp * 1e3:7.2f} ms   numpy (d,u) {t_np_vjp * 1e3:7.2f} ms   "
          f"({t_np_vjp / t_vjp:.1f}x); numpy and dpgen gradients agree: {same}")
    print()
    print("all gradient checks passed" if ok else "GRADIENT CHECK FAILED")
    return 0 if ok else 1
