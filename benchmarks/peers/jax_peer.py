"""JAX peers: float64 (``jax_enable_x64``), ``jax.jit`` compiled ahead of time.

Each implementation lowers and compiles its forward function and
``jit(value_and_grad(loss))`` in ``__init__`` (``jit(...).lower(...).compile()``), so the
timed calls run compiled code only; the compile time is reported in the notes. Time
steps are ``lax.scan`` loops; periodic shifts are ``jnp.roll``. Calls block with
``jax.block_until_ready``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from ..harness import Implementation

jax.config.update("jax_enable_x64", True)


class _Jax(Implementation):
    """Compiles ``fwd(*fwd_args)`` and ``value_and_grad(loss)(*vg_args)`` up front."""

    library = "jax"

    def _compile(self, fwd: Callable, loss: Callable, fwd_args: Sequence, vg_args: Sequence,
                 grad_names: Sequence[str]) -> None:
        self.fwd_args, self.vg_args, self.grad_names = tuple(fwd_args), tuple(vg_args), tuple(grad_names)
        t0 = time.perf_counter()
        self._fwd = jax.jit(fwd).lower(*self.fwd_args).compile()
        argnums = tuple(range(len(self.grad_names)))
        self._vg = jax.jit(jax.value_and_grad(loss, argnums=argnums)).lower(*self.vg_args).compile()
        self.compile_seconds = time.perf_counter() - t0

    def forward(self):
        return jax.block_until_ready(self._fwd(*self.fwd_args))

    def value_and_grad(self):
        value, grads = jax.block_until_ready(self._vg(*self.vg_args))
        return value, dict(zip(self.grad_names, grads))

    def info(self) -> dict[str, Any]:
        return {"compile_s": self.compile_seconds}


def _arrays(data: Mapping[str, Any], *names: str) -> list[jax.Array]:
    return [jnp.asarray(data[n]) for n in names]


class Upwind1D(_Jax):
    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        steps, dt, dx = data["T"], data["dt"], data["dx"]

        def final(d0, u):
            c = u / dx
            cm, cp = jnp.minimum(c, 0.0), jnp.maximum(c, 0.0)

            def step(d, _):
                dplus = jnp.roll(d, -1) - d
                return d - dt * (cm * dplus + cp * jnp.roll(dplus, 1)), None

            return lax.scan(step, d0, None, length=steps)[0]

        def loss(d0, u, target):
            r = final(d0, u) - target
            return jnp.sum(r * r)

        d0, u, target = _arrays(data, "d0", "u", "target")
        self._compile(final, loss, (d0, u), (d0, u, target), ("d", "u"))


class Diffusion2D(_Jax):
    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        steps, dt = data["T"], data["dt"]
        scale = (2 * data["dx"] ** 2, 2 * data["dy"] ** 2)

        def final(c0, k):
            faces = [(k + jnp.roll(k, -1, axis)) / s for axis, s in enumerate(scale)]

            def step(c, _):
                total = jnp.zeros_like(c)
                for axis, K in enumerate(faces):
                    flux = K * (jnp.roll(c, -1, axis) - c)
                    total = total + flux - jnp.roll(flux, 1, axis)
                return c + dt * total, None

            return lax.scan(step, c0, None, length=steps)[0]

        def loss(c0, k, target):
            r = final(c0, k) - target
            return jnp.sum(r * r)

        c0, k, target = _arrays(data, "c0", "k", "target")
        self._compile(final, loss, (c0, k), (c0, k, target), ("c", "k"))


class Pressure(_Jax):
    """``jax.scipy.sparse.linalg.cg`` on the negative Laplacian; its gradient is implicit
    (``lax.custom_linear_solve``: one more CG solve)."""

    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        h, rtol = data["h"], data["rtol"]

        def neg_laplacian(p):
            return -sum(jnp.roll(p, -1, a) - 2 * p + jnp.roll(p, 1, a) for a in (0, 1)) / h**2

        def project(u, v):
            div = (jnp.roll(u, -1, 0) - u) / h + (jnp.roll(v, -1, 1) - v) / h
            p, _ = jax.scipy.sparse.linalg.cg(neg_laplacian, -div, tol=rtol)
            return u - (p - jnp.roll(p, 1, 0)) / h, v - (p - jnp.roll(p, 1, 1)) / h

        def loss(u, v, w_u, w_v):
            u_n, v_n = project(u, v)
            return jnp.sum(u_n * w_u) + jnp.sum(v_n * w_v)

        u, v, w_u, w_v = _arrays(data, "u", "v", "w_u", "w_v")
        self._compile(project, loss, (u, v), (u, v, w_u, w_v), ("u", "v"))


class Laplace3D(_Jax):
    def __init__(self, data: Mapping[str, Any]):
        super().__init__(data)
        h = data["h"]

        def laplacian(p):
            return sum(jnp.roll(p, -1, a) - 2 * p + jnp.roll(p, 1, a) for a in (0, 1, 2)) / h**2

        def loss(p, g):
            return jnp.sum(laplacian(p) * g)

        p, g = _arrays(data, "p", "g")
        self._compile(laplacian, loss, (p,), (p, g), ("p",))
