"""JAX bridge: check_grads in reverse mode on a stencil, a step with a linear solve and a 20-step rollout."""

import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import dpgen as dp  # noqa: E402
from dpgen.bridges.jax import rollout_function, stencil_function  # noqa: E402
from dpgen.stencils import upwind  # noqa: E402

from helpers import ROOT  # noqa: E402


def velocity(n, seed):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.choice([-1.0, 1.0], n) * rng.uniform(0.2, 1.0, n))


def test_import_dpgen_does_not_import_jax():
    code = "import sys, dpgen; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_stencil_check_grads_under_grad_and_jit():
    f = stencil_function(dp.compile(upwind(1, bc="edge"), wrt=("d", "u", "dt")))
    d = jnp.asarray(np.random.default_rng(0).random(16))
    u = velocity(16, 0)

    def loss(d, u, dt):
        return jnp.sum(f(d=d, u=u, dt=dt, dx=1 / 16)["d"] ** 2)

    check_grads(lambda d, u, dt: f(d=d, u=u, dt=dt, dx=1 / 16)["d"], (d, u, 0.01), order=1, modes=["rev"])
    g_plain = jax.grad(loss, argnums=(0, 1, 2))(d, u, 0.01)
    g_jit = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(d, u, 0.01)
    for a, b in zip(g_plain, g_jit):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)


def test_step_with_a_linear_solve_and_rollout_check_grads():
    d = dp.Field("d", bc="periodic")
    nu, dt, dx = sp.symbols("nu dt dx", positive=True)
    implicit = dp.Stencil("implicit_diffusion_jax", {d: d[0] - nu * dt * (d[1] - 2 * d[0] + d[-1]) / dx**2})
    step = dp.Step([upwind(1), dp.LinearSolve(implicit, unknown="d", rtol=1e-13)])
    f = rollout_function(dp.Rollout(step, 1))
    d0 = jnp.asarray(np.random.default_rng(1).random(12))
    check_grads(lambda d0, u, nu: f(d=d0, u=u, nu=nu, dt=0.02, dx=1 / 12)["d"], (d0, velocity(12, 1), 0.05),
                order=1, modes=["rev"])
    g = rollout_function(dp.Rollout(dp.Step([upwind(1)]), 20))
    check_grads(jax.jit(lambda d0, u: g(d=d0, u=u, dt=0.02, dx=1 / 16)["d"]),
                (jnp.asarray(np.random.default_rng(2).random(16)), velocity(16, 2)), order=1, modes=["rev"])
