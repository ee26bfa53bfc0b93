"""Optimisers over named arrays, and the demos built on them."""

import numpy as np
import pytest

import dpgen as dp
from dpgen.cli import main
from dpgen.demos import advection
from dpgen.optimize import adam, gradient_descent, minimize


def quadratic(x):
    """sum (a - c)^2 + 3 (b - 1)^2 with a 2-D array a and a scalar b."""
    c = np.arange(6.0).reshape(2, 3)
    return float(np.sum((x["a"] - c) ** 2) + 3 * (x["b"] - 1) ** 2), {"a": 2 * (x["a"] - c), "b": 6 * (x["b"] - 1)}


def test_lbfgs_handles_named_arrays_scalars_and_bounds():
    res = minimize(quadratic, {"a": np.zeros((2, 3)), "b": 0.0}, bounds={"a": (0.5, 4.0)})
    assert res.success and res.x["a"].shape == (2, 3)
    np.testing.assert_allclose(res.x["a"], np.clip(np.arange(6.0).reshape(2, 3), 0.5, 4.0), atol=1e-4)
    assert isinstance(res.x["b"], float) and res.x["b"] == pytest.approx(1.0, abs=1e-4)
    h = res.history
    # L-BFGS-B starts from x0 projected onto the bounds
    assert h.loss[0] == quadratic({"a": np.full((2, 3), 0.5), "b": 0.0})[0] and h.loss[-1] == pytest.approx(res.fun)
    assert len(h.loss) == len(h.grad_norm) == len(h.seconds) and h.reduction > 1
    with pytest.raises(KeyError, match="unknown variable"):
        minimize(quadratic, {"a": np.zeros((2, 3)), "b": 0.0}, bounds={"z": (0, 1)})


@pytest.mark.parametrize("method, kwargs", [(gradient_descent, {"lr": 0.1}), (adam, {"lr": 0.1})])
def test_first_order_methods_decrease_the_loss(method, kwargs):
    res = method(quadratic, {"a": np.zeros((2, 3)), "b": 0.0}, steps=300, **kwargs)
    assert res.fun < 1e-6 * res.history.loss[0] and len(res.history.loss) == 301
    bounded = method(quadratic, {"a": np.zeros((2, 3)), "b": 0.0}, steps=50, bounds={"b": (None, 0.5)}, **kwargs)
    assert bounded.x["b"] <= 0.5


def test_rollout_objective_feeds_an_optimiser():
    p = advection.make_problem(n=48, steps=30)
    objective = p.rollout.objective(dp.losses.L2(p.target, field="d"), "u", d=p.d0, dt=p.dt, dx=p.dx)
    value, grads = objective({"u": np.full(48, 0.5)})
    assert set(grads) == {"u"} and grads["u"].shape == (48,) and value > 0


def test_advection_demo_converges_and_writes_the_png(tmp_path, capsys):
    png = tmp_path / "advection.png"
    assert advection.run(n=64, steps=50, iterations=150, out=png, progress=False) == 0
    out = capsys.readouterr().out
    assert "L-BFGS-B" in out and "gradient descent" in out and png.stat().st_size > 20_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_demo_advection(tmp_path):
    png = tmp_path / "demo.png"
    assert main(["demo", "advection", "-n", "48", "--steps", "30", "--iterations", "80", "--out", str(png), "--quiet"]) == 0
    assert png.exists()


def test_burgers_demo_recovers_a_trajectory_shortened(tmp_path, capsys):
    from dpgen.demos import burgers

    burgers.run(iterations=80, out=tmp_path / "b.png")
    text = capsys.readouterr().out
    mae = float(text.split("space-time MAE vs reference: ")[1].split()[0])
    assert mae < 0.19  # better than the physics-informed network's 0.19 already after 80 iterations
    assert (tmp_path / "b.png").exists()
