"""PyTorch bridge: gradcheck on a stencil, a step with a linear solve, and a 20-step rollout."""

import os
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

torch = pytest.importorskip("torch")

import dpgen as dp  # noqa: E402
from dpgen.bridges.torch import rollout_function, stencil_function  # noqa: E402
from dpgen.stencils import upwind  # noqa: E402

from helpers import ROOT  # noqa: E402


def velocity(n, seed):
    rng = np.random.default_rng(seed)
    return torch.tensor(rng.choice([-1.0, 1.0], n) * rng.uniform(0.2, 1.0, n), dtype=torch.float64, requires_grad=True)


def test_import_dpgen_does_not_import_torch():
    code = "import sys, dpgen; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_stencil_gradcheck_and_shared_memory():
    f = stencil_function(dp.compile(upwind(1, bc="edge"), wrt=("d", "u", "dt")))
    d = torch.rand(16, dtype=torch.float64, requires_grad=True)
    u = velocity(16, 0)
    dt = torch.tensor(0.01, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda d, u, dt: f(d=d, u=u, dt=dt, dx=1 / 16)["d"], (d, u, dt))
    out = f(d=d, u=u, dt=dt, dx=1 / 16)["d"]
    assert out.dtype == torch.float64 and out.shape == (16,)


def test_step_with_a_linear_solve_gradcheck():
    d = dp.Field("d", bc="periodic")
    nu, dt, dx = sp.symbols("nu dt dx", positive=True)
    implicit = dp.Stencil("implicit_diffusion_torch", {d: d[0] - nu * dt * (d[1] - 2 * d[0] + d[-1]) / dx**2})
    step = dp.Step([upwind(1), dp.LinearSolve(implicit, unknown="d", rtol=1e-13)])
    f = rollout_function(dp.Rollout(step, 1))
    d0 = torch.rand(12, dtype=torch.float64, requires_grad=True)
    u = velocity(12, 1)
    nu_t = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda d0, u, nu: f(d=d0, u=u, nu=nu, dt=0.02, dx=1 / 12)["d"], (d0, u, nu_t))


def test_twenty_step_rollout_gradcheck_and_network_upstream():
    f = rollout_function(dp.Rollout(dp.Step([upwind(1)]), 20))
    d0 = torch.rand(16, dtype=torch.float64, requires_grad=True)
    u = velocity(16, 2)
    assert torch.autograd.gradcheck(lambda d0, u: f(d=d0, u=u, dt=0.02, dx=1 / 16)["d"], (d0, u))
    # a tiny network upstream of the solver: gradients reach its parameters
    net = torch.nn.Linear(16, 16, dtype=torch.float64)
    loss = f(d=d0.detach(), u=torch.tanh(net(u.detach())), dt=0.02, dx=1 / 16)["d"].pow(2).sum()
    loss.backward()
    assert net.weight.grad is not None and float(net.weight.grad.abs().sum()) > 0


def test_solver_in_the_loop_example_quick():
    # One PyTorch thread: the tensors are small, and the test workers share the cores
    # (PyTorch's spinning pool threads made this run 4x slower beside another worker).
    out = subprocess.run(
        [sys.executable, "examples/burgers_solver_in_the_loop.py", "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    ).stdout
    line = out.strip().splitlines()[-1]
    alone = float(line.split("coarse alone ")[1].split(",")[0])
    corrected = float(line.split("corrected ")[1].split()[0])
    assert corrected < alone / 1.5, line  # the full run (3000 iterations) reaches ~3.9x


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_missing_framework_names_the_install_command(framework):
    code = (
        f"import sys; sys.modules[{framework!r}] = None\n"
        f"try:\n    import dpgen.bridges.{framework}\nexcept ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert f"pip install 'dpgen[{framework}]'" in out


def test_step_function_is_a_one_step_rollout():
    from dpgen.bridges.torch import step_function

    f = step_function(dp.Step([upwind(1)]))
    d0 = torch.rand(10, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda d0: f(d=d0, u=velocity(10, 3).detach(), dt=0.02, dx=0.1)["d"], (d0,))
