"""Rollouts: gradients through time steps, checkpointing, losses and bad input."""

import warnings

import numpy as np
import pytest
import sympy as sp
from checkpoint_schedules import Forward, EndReverse, MultistageCheckpointSchedule, Revolve

import dpgen as dp
from dpgen.errors import MissingArgumentError, ShapeError, SimulationError, StabilityWarning, UnknownArgumentError, WrtError
from dpgen.stencils import upwind

nu = sp.Symbol("nu", positive=True)
dt = sp.Symbol("dt", positive=True)
SPACINGS = sp.symbols("dx dy", positive=True)


def diffuse_with_source(ndim: int, bc="periodic") -> dp.Stencil:
    """d_new = d + nu dt lap(d) + dt * s: s is a per-step control."""
    d, s = dp.fields("d s", ndim=ndim, bc=bc)
    zero = (0,) * ndim
    lap = sum(
        (d[tuple(int(a == ax) for a in range(ndim))] - 2 * d[zero] + d[tuple(-int(a == ax) for a in range(ndim))])
        / SPACINGS[ax] ** 2
        for ax in range(ndim)
    )
    return dp.Stencil(f"diffuse_src_{ndim}d_{bc}", {d: d[zero] + nu * dt * lap + dt * sp.tanh(s[zero])})


def problem(ndim: int, steps: int = 50, bc="periodic", seed: int = 0):
    rng = np.random.default_rng(seed)
    shape = (32,) if ndim == 1 else (12, 10)
    step = dp.Step([upwind(ndim, bc=bc), diffuse_with_source(ndim, bc)])
    x = [np.linspace(0, 1, n, endpoint=False) for n in shape]
    grid = np.meshgrid(*x, indexing="ij")
    d0 = 1 + np.exp(-sum((g - 0.5) ** 2 for g in grid) * 20) + 0.05 * rng.standard_normal(shape)
    # velocities of both signs, away from the upwind kink at 0 that finite differences must not straddle
    velocity = lambda: rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 1.0, size=shape)  # noqa: E731
    inputs = {"d": d0, "u": velocity(), "s": 0.3 * rng.standard_normal((steps,) + shape)}
    if ndim == 2:
        inputs["v"] = velocity()
    h = 1.0 / shape[0]
    inputs.update(dt=0.2 * h, dx=h, nu=0.05 * h)
    if ndim == 2:
        inputs["dy"] = 1.0 / shape[1]
    target = d0 + 0.2 * rng.standard_normal(shape)
    return dp.Rollout(step, steps), inputs, dp.losses.L2(target, field="d")


def directional_fd(sim, loss, inputs, name, direction, eps=1e-4):
    """Fourth-order central difference of the rollout loss along ``direction``."""
    scale = max(float(np.sqrt(np.mean(np.square(inputs[name])))), 1e-3) * eps
    vals = []
    for s in (-2, -1, 1, 2):
        moved = dict(inputs)
        moved[name] = inputs[name] + s * scale * direction
        vals.append(sim.value(loss, **moved))
    return (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * scale)


@pytest.mark.parametrize("ndim", [1, 2])
def test_rollout_gradients_match_finite_differences(ndim):
    sim, inputs, loss = problem(ndim)
    wrt = ["d", "u", "s", "nu"] + (["v"] if ndim == 2 else [])
    value, grads = sim.value_and_grad(loss, wrt=wrt, **inputs)
    assert value == pytest.approx(sim.value(loss, **inputs), rel=1e-14)
    rng = np.random.default_rng(1)
    for name in wrt:
        direction = rng.standard_normal(np.shape(inputs[name])) if np.ndim(inputs[name]) else 1.0
        fd = directional_fd(sim, loss, inputs, name, direction)
        ad = float(np.vdot(grads[name], direction)) if np.ndim(direction) else grads[name]
        assert abs(fd - ad) <= 1e-6 * max(abs(fd), abs(ad)), (name, fd, ad)
    assert grads["s"].shape == inputs["s"].shape and np.all(np.abs(grads["s"]).sum(axis=tuple(range(1, ndim + 1))) > 0)



def spy_on_folds(monkeypatch) -> list[bool]:
    """A list that receives, per adjoint kernel call of a reverse step, whether it left a halo to fold."""
    from dpgen.runtime.compiled import CompiledStencil

    folds: list[bool] = []
    real = CompiledStencil.adjoint_runner

    def runner(self, *args, **kwargs):
        run = real(self, *args, **kwargs)

        def spied(*call_args):
            folds.append(run(*call_args))
            return folds[-1]

        return spied

    monkeypatch.setattr(CompiledStencil, "adjoint_runner", runner)
    return folds


def test_reverse_sweep_hands_periodic_adjoints_their_cotangents_padded(monkeypatch):
    """Periodic stencils read the cotangent padded and fold nothing, the first adjoint too.

    The first adjoint of the sweep reads the loss gradient, copied into the grid cells of
    a padded buffer (``_Run.seed_cotangents``); every later one reads the buffer the one
    before wrote. The gradients equal those of the fold path everywhere.
    """
    from dpgen.rollout import _Run

    sim, inputs, loss = problem(2, steps=6)
    folds = spy_on_folds(monkeypatch)
    value, grads = sim.value_and_grad(loss, **inputs)
    assert folds == [False] * (2 * 6)

    monkeypatch.setattr(_Run, "_padded_cotangents", lambda self, bars, k: None)
    folds.clear()
    value_folded, grads_folded = sim.value_and_grad(loss, **inputs)
    assert all(folds) and value_folded == value
    for name, g in grads.items():
        np.testing.assert_allclose(g, grads_folded[name], rtol=1e-12, atol=1e-12 * np.max(np.abs(g)), err_msg=name)


def test_operators_with_different_halos_fold_and_match_finite_differences(monkeypatch):
    """A halo-2 operator next to a halo-1 one: their padded cotangent buffers differ in shape,
    so neither reads the other's padded (the fold path), and the gradient is right."""
    folds = spy_on_folds(monkeypatch)
    d = dp.Field("d", 1, "periodic")
    h = sp.Symbol("dx", positive=True)
    hyper = dp.Stencil("hyper_1d", {d: d[0] - nu * dt * (d[2] - 4 * d[1] + 6 * d[0] - 4 * d[-1] + d[-2]) / h**4})
    sim = dp.Rollout(dp.Step([upwind(1), hyper]), 8)
    rng = np.random.default_rng(3)
    n = 24
    inputs = {"d": 1 + 0.3 * rng.standard_normal(n), "u": rng.choice([-1.0, 1.0], n) * rng.uniform(0.2, 1.0, n),
              "dt": 0.2 / n, "dx": 1.0 / n, "nu": 0.01 / n**3}
    loss = dp.losses.L2(rng.standard_normal(n), field="d")
    _, grads = sim.value_and_grad(loss, wrt=["d", "u"], **inputs)
    # the first adjoint (hyper_1d's, of the last step) reads the loss gradient padded with
    # its own halo; after it, each operator reads a buffer padded with the other's halo
    assert folds == [False] + [True] * (2 * 8 - 1)
    for name in ("d", "u"):
        direction = rng.standard_normal(n)
        fd = directional_fd(sim, loss, inputs, name, direction)
        ad = float(np.vdot(grads[name], direction))
        assert abs(fd - ad) <= 1e-6 * max(abs(fd), abs(ad)), (name, fd, ad)


def test_rollout_taylor_test_has_slope_two():
    sim, inputs, loss = problem(1)

    def value_and_grad(**point):
        return sim.value_and_grad(loss, wrt=("d", "u", "s", "nu"), **{**inputs, **point})

    res = dp.taylor_test(value_and_grad, {n: inputs[n] for n in ("d", "u", "s", "nu")}, h0=1e-2)
    assert res.passed and abs(res.error - 2) <= 0.1, str(res)


def test_trajectory_loss_and_function_loss():
    sim, inputs, _ = problem(1, steps=20)
    rng = np.random.default_rng(3)
    targets = {t: rng.standard_normal(32) for t in (0, 5, 20)}
    traj = dp.losses.L2(targets, field="d")
    value, grads = sim.value_and_grad(traj, wrt=("d", "u"), **inputs)
    states = sim.trajectory(**inputs)["d"]
    assert value == pytest.approx(sum(np.sum((states[t] - y) ** 2) for t, y in targets.items()), rel=1e-13)
    direction = rng.standard_normal(32)
    fd = directional_fd(sim, traj, inputs, "u", direction)
    assert abs(fd - grads["u"] @ direction) <= 1e-6 * abs(fd)

    def mean_value(t, state):  # a user loss returning (value, gradient)
        return float(state["d"].mean()), {"d": np.full(32, 1 / 32)}

    value, grads = sim.value_and_grad(mean_value, wrt=("d",), **{**inputs, "u": np.full(32, -0.7)})
    # with a constant velocity upwind and diffusion conserve mass on a periodic grid:
    # d mean(d_T) / d d0 = 1/32 in every cell
    np.testing.assert_allclose(grads["d"], np.full(32, 1 / 32), rtol=1e-12)


def test_losses_write_their_gradient_into_buffers_they_are_given():
    rng = np.random.default_rng(4)
    x, target = rng.standard_normal(7), rng.standard_normal(7)
    out = np.full(9, np.nan)[1:-1]  # the grid cells of a padded buffer
    l2 = dp.losses.L2(target, field="d", weight=0.5)
    value, grads = l2.evaluate(3, {"d": x}, {"d": out})
    assert grads["d"] is out and value == pytest.approx(0.5 * np.sum((x - target) ** 2), rel=1e-14)
    np.testing.assert_array_equal(out, l2.value_and_grad(3, {"d": x})[1]["d"])

    def user_loss(t, state):  # returns an array of its own: copied into the buffer
        return float(state["d"].sum()), {"d": np.arange(7.0)}

    out[...] = np.nan
    grads = dp.losses.as_loss(user_loss).evaluate(3, {"d": x}, {"d": out})[1]
    assert grads["d"] is out
    np.testing.assert_array_equal(out, np.arange(7.0))


def test_the_final_loss_gradient_lands_where_the_reverse_sweep_starts(monkeypatch):
    """The L2 gradient of the final state is written into the padded buffer the first
    adjoint reads (no array of its own), with the same bits as a loss whose gradient is copied."""
    import dpgen.losses as losses

    sim, inputs, loss = problem(1, steps=6)
    written = []
    original = losses.squared_misfit
    monkeypatch.setattr(losses, "squared_misfit", lambda *a: written.append(a[3]) or original(*a))
    value, grads = sim.value_and_grad(loss, **inputs)
    assert len(written) == 1 and written[0] is not None and written[0].base is not None  # grid cells of a buffer

    def copied(t, state):  # the same loss as a callable: its gradient is a new array, copied
        return loss.value_and_grad(t, state)

    other_value, other = sim.value_and_grad(copied, **inputs)
    assert other_value == value
    for name in grads:
        np.testing.assert_array_equal(other[name], grads[name])


@pytest.mark.parametrize("ndim", [1, 2])
def test_run_value_and_trajectory_agree_with_reused_buffers(ndim):
    """run() and value() write each step over the state of two steps ago; the results
    must equal the trajectory's, which keeps every state."""
    sim, inputs, _ = problem(ndim, steps=9)
    states = sim.trajectory(**inputs)["d"]
    # the step's two stencils called one by one, outside any rollout buffer handling
    advect, diffuse = sim.step.compiled()
    d = inputs["d"]
    for t in range(9):
        d = advect.forward(**{n: inputs[n] for n in advect.inputs + advect.params if n != "d"}, d=d)["d"]
        d = diffuse.forward(**{n: inputs[n] for n in diffuse.params}, d=d, s=inputs["s"][t])["d"]
        np.testing.assert_array_equal(states[t + 1], d)
    np.testing.assert_array_equal(sim.run(**inputs)["d"], states[-1])
    assert sim.run(**inputs)["d"].flags.c_contiguous
    target = np.random.default_rng(5).standard_normal(states[0].shape)
    loss = dp.losses.L2({3: target, 9: 2 * target}, field="d")
    expected = np.sum((states[3] - target) ** 2) + np.sum((states[9] - 2 * target) ** 2)
    assert sim.value(loss, **inputs) == pytest.approx(expected, rel=1e-14)
    assert sim.value_and_grad(loss, **inputs)[0] == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("snapshots, disk", [(1, 0), (3, 0), (7, 0), (2, 3)])
def test_checkpointed_gradients_equal_stored_bit_for_bit(snapshots, disk):
    sim, inputs, loss = problem(1, steps=30)
    wrt = ("d", "u", "s", "nu", "dt")
    value, grads = sim.value_and_grad(loss, wrt=wrt, **inputs)
    checkpointed = dp.Rollout(sim.step, 30, snapshots=snapshots, disk_snapshots=disk)
    value_cp, grads_cp = checkpointed.value_and_grad(loss, wrt=wrt, **inputs)
    assert value_cp == value
    for name in wrt:
        assert np.array_equal(grads_cp[name], grads[name]), name
    stats = checkpointed.stats
    assert stats.max_snapshots <= snapshots and stats.max_recorded_steps == 1
    promised_by = {}
    for name, schedule in (("multistage", MultistageCheckpointSchedule(30, snapshots, disk)), ("revolve", Revolve(30, snapshots))):
        count = 0
        for action in schedule:
            if isinstance(action, Forward):
                count += action.n1 - action.n0
            if isinstance(action, EndReverse):
                break
        promised_by[name] = count
    if not disk:  # the fast multistage schedule is Revolve's binomial schedule
        assert promised_by["multistage"] == promised_by["revolve"]
    promised = promised_by["multistage"]
    assert stats.forward_steps == promised and stats.recompute_factor == promised / 30 > 1
    assert stats.adjoint_steps == 30 and sim.stats.recompute_factor == 1.0


def test_memory_budget_chooses_between_store_all_and_revolve():
    sim, inputs, loss = problem(1, steps=30)
    padded_state_bytes = (32 + 2) * 8  # states are kept padded by the step's halo (1, 1)
    roomy = dp.Rollout(sim.step, 30, memory_budget=10**9)
    roomy.value_and_grad(loss, wrt=("u",), **inputs)
    assert roomy.stats.schedule == "store all"
    tight = dp.Rollout(sim.step, 30, memory_budget=6 * padded_state_bytes)
    tight.value_and_grad(loss, wrt=("u",), **inputs)
    assert tight.stats.schedule.startswith("revolve: 4 ") and tight.stats.max_snapshots <= 4
    assert dp.rollout.parse_bytes("1.5 KiB") == 1536 and dp.rollout.parse_bytes("2MB") == 2_000_000


def test_adjoint_records_only_what_the_vjp_reads():
    sim, inputs, loss = problem(1, steps=5)
    ops = sim.step.compiled(["u"], [])
    assert ops[0].needs == ("d", "u")  # the u-adjoint of upwind reads d
    only_d = dp.Step([upwind(1)]).compiled()[0]
    assert only_d.needs == ("u",)  # ...the d-adjoint does not: a state copy saved per step


class _KeepingL2(dp.losses.L2):
    """L2 that says it keeps the states it sees: the rollout may then reuse no state buffer."""

    keeps_state = True


@pytest.mark.parametrize("single", [True, False])
def test_states_that_no_adjoint_reads_are_written_over(single):
    """W.r.t. the initial state only, upwind's and diffusion's adjoints read no state: the
    forward writes each step over the state of two steps ago instead of a fresh buffer,
    and the gradient keeps its bits (against a loss that forbids reusing states)."""
    sim, inputs, loss = problem(1, steps=40)
    if single:
        sim = dp.Rollout(dp.Step([upwind(1)]), 40)
        inputs = {n: inputs[n] for n in ("d", "u", "dt", "dx")}
    value, grads = sim.value_and_grad(loss, wrt=("d",), **inputs)
    assert sim.stats.max_recorded_steps == 0  # the tapes hold nothing
    (kept,) = sim._spare_buffers.values()  # what the call handed out, back in the rollout's pool
    reference = dp.Rollout(sim.step, 40)
    keeping = _KeepingL2(loss.target, field="d")
    value_ref, grads_ref = reference.value_and_grad(keeping, wrt=("d",), **inputs)
    assert value == value_ref and np.array_equal(grads["d"], grads_ref["d"])
    # a few buffers (states, the intermediate of two operators, adjoint buffers), whatever
    # the step count: 44 and 86 when every step took fresh ones
    assert len(kept) <= 10, len(kept)
    sim.value_and_grad(loss, wrt=("d", "u"), **inputs)  # u's adjoint reads d: every state is recorded
    assert len(next(iter(sim._spare_buffers.values()))) >= 40 and sim.stats.max_recorded_steps == 40


def test_cfl_violation_is_warned_with_the_courant_number():
    sim, inputs, loss = problem(1, steps=3)
    inputs = {**inputs, "u": np.full(32, 2.0), "dt": 1.0 / 32}  # Courant number 2
    with pytest.warns(StabilityWarning, match=r"Courant \(CFL\) number of 2(\.0+)? > 1"):
        sim.run(**inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        problem(1, steps=3)[0].run(**problem(1, steps=3)[1])


def test_the_stability_check_and_the_sweep_share_one_padded_initial_state(monkeypatch):
    """One pad per state and time-constant field per call: the sweep starts from the state the CFL check padded."""
    from dpgen import rollout as rollout_module

    sim, inputs, loss = problem(1, steps=4)
    padded = []
    original = rollout_module._Run.pad
    monkeypatch.setattr(rollout_module._Run, "pad",
                        lambda self, array, **kw: padded.append(array) or original(self, array, **kw))
    final = sim.run(**inputs)["d"]
    assert len(padded) == 2 and any(a is inputs["d"] for a in padded) and any(a is inputs["u"] for a in padded)
    padded.clear()
    value, grads = sim.value_and_grad(loss, **inputs)
    assert len(padded) == 2
    # the state the check padded (and filled the ghost cells of) is the one the sweep advanced
    assert value == pytest.approx(loss.value_and_grad(4, {"d": final})[0], rel=1e-14)
    assert np.isfinite(grads["d"]).all()


def test_nan_stops_the_rollout_with_the_step_number():
    sim, inputs, loss = problem(1, steps=40)
    source = inputs["s"].copy()
    source[7, 3] = np.nan  # enters the state during step 8 (t = 7)
    with pytest.raises(SimulationError, match=r"state field 'd' became NaN or infinite at step 8 of 40"):
        sim.value_and_grad(loss, **{**inputs, "s": source})
    blow_up = {**inputs, "u": np.full(32, 1e3), "dt": 1.0 / 32}  # Courant number 1000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StabilityWarning)
        with pytest.raises(SimulationError, match="became NaN or infinite at step"):
            dp.Rollout(sim.step, 400).run(**{**blow_up, "s": np.zeros((400, 32))})


def test_bad_rollout_input_is_named():
    sim, inputs, loss = problem(1, steps=10)
    with pytest.raises(MissingArgumentError, match="'u'"):
        sim.run(**{k: v for k, v in inputs.items() if k != "u"})
    with pytest.raises(UnknownArgumentError, match="'w'"):
        sim.run(**inputs, w=np.ones(32))
    with pytest.raises(ShapeError, match="'s' has 7 entries"):
        sim.run(**{**inputs, "s": np.zeros((7, 32))})
    with pytest.raises(WrtError, match="'q'"):
        sim.value_and_grad(loss, wrt=("q",), **inputs)

    def bad_gradient(t, state):
        return 0.0, {"d": np.zeros(31)}

    with pytest.raises(ShapeError, match=r"loss gradient for 'd' at step 10 has shape \(31,\)"):
        sim.value_and_grad(bad_gradient, **inputs)


def test_step_analysis_names_state_and_external():
    step = dp.Step([upwind(1), diffuse_with_source(1)])
    assert step.state == ("d",) and set(step.external) == {"u", "s"} and step.params == ("dt", "dx", "nu")
    k = dp.compile(upwind(1), wrt=("u",))
    with pytest.raises(WrtError, match="without adjoints for d"):
        dp.Step([k]).compiled()


def test_checkpointed_rollout_keeps_only_snapshots_and_a_few_working_fields():
    import tracemalloc

    cells, steps, snapshots = 20_000, 300, 10
    x = np.linspace(0, 1, cells, endpoint=False)
    d0, u = np.exp(-(((x - 0.5) / 0.1) ** 2)), 0.5 + 0.1 * np.sin(2 * np.pi * x)
    loss = dp.losses.L2(np.zeros(cells), field="d")
    step = dp.Step([upwind(1)])
    # compile (the kernel variants of this grid size), and JIT the schedule library, first
    dp.Rollout(step, 5, snapshots=2).value_and_grad(loss, d=d0, u=u, dt=0.4 / cells, dx=1 / cells)
    sim = dp.Rollout(step, steps, snapshots=snapshots)
    tracemalloc.start()
    try:
        sim.value_and_grad(loss, d=d0, u=u, dt=0.4 / cells, dx=1 / cells)
        peak = tracemalloc.get_traced_memory()[1] / d0.nbytes
    finally:
        tracemalloc.stop()
    # snapshots + the recorded state + cotangent in/out + padded u + u-gradient accumulator
    assert sim.stats.max_snapshots == snapshots and peak <= snapshots + 5.5, peak


def test_a_linear_solve_is_one_more_operator_of_a_step():
    """Upwind (explicit) then implicit diffusion (I - nu dt lap) d_new = d, solved by CG each step."""
    d = dp.Field("d", bc="periodic")
    implicit = dp.Stencil("implicit_diffusion", {d: d[0] - nu * dt * (d[1] - 2 * d[0] + d[-1]) / SPACINGS[0] ** 2})
    solve = dp.LinearSolve(implicit, unknown="d", rtol=1e-13)
    step = dp.Step([upwind(1), solve])
    assert step.state == ("d",) and set(step.external) == {"u"}
    sim = dp.Rollout(step, 20)
    rng = np.random.default_rng(11)
    x = np.linspace(0, 1, 32, endpoint=False)
    inputs = {"d": 1 + np.exp(-((x - 0.5) / 0.1) ** 2), "u": rng.choice([-1.0, 1.0], 32) * rng.uniform(0.2, 1, 32),
              "dt": 0.01, "dx": 1 / 32, "nu": 0.02}
    loss = dp.losses.L2(np.roll(inputs["d"], 3), field="d")
    value, grads = sim.value_and_grad(loss, wrt=("d", "u", "nu"), **inputs)
    for name in ("d", "u", "nu"):
        direction = rng.standard_normal(32) if name != "nu" else 1.0
        fd = directional_fd(sim, loss, inputs, name, direction)
        ad = float(np.vdot(grads[name], direction)) if name != "nu" else grads[name]
        assert abs(fd - ad) <= 1e-6 * abs(fd), (name, fd, ad)
    checkpointed = dp.Rollout(step, 20, snapshots=3).value_and_grad(loss, wrt=("d", "u", "nu"), **inputs)[1]
    for name in ("d", "u", "nu"):
        assert np.array_equal(checkpointed[name], grads[name])


def test_kept_buffers_never_alias_what_a_call_returned():
    """Recorded states are reused by the next value_and_grad (keep_buffers=True, default):
    gradients, run() results and states a state-keeping loss holds must not change under it."""
    sim, inputs, loss = problem(1, steps=12)
    first_value, first = sim.value_and_grad(loss, **inputs)
    kept = {n: np.array(g, copy=True) for n, g in first.items()}
    final = sim.run(**inputs)["d"]
    final_copy = final.copy()
    moved = dict(inputs, d=inputs["d"] * 1.3, u=-inputs["u"])
    second_value, second = sim.value_and_grad(loss, **moved)
    for name, g in first.items():
        np.testing.assert_array_equal(g, kept[name])
    np.testing.assert_array_equal(final, final_copy)
    assert second_value != first_value
    # the second call's numbers equal those of a rollout that keeps nothing
    fresh = dp.Rollout(sim.step, sim.steps, keep_buffers=False)
    value, grads = fresh.value_and_grad(loss, **moved)
    assert value == second_value
    for name in grads:
        np.testing.assert_array_equal(second[name], grads[name])
    assert fresh._spare_buffers == {} and sim._spare_buffers  # kept only where asked
    # the free adjoint buffer is kept too, and no kept buffer holds a returned gradient
    (kept_buffers,) = sim._spare_buffers.values()
    assert not any(np.may_share_memory(b, g) for b in kept_buffers for g in second.values())
    count = len(kept_buffers)
    sim.value_and_grad(loss, **moved)
    assert len(next(iter(sim._spare_buffers.values()))) == count  # bounded: no growth from call to call

    # a loss that keeps the states it sees (keeps_state = True): its arrays stay intact
    seen = []

    def keeping(t, state):
        seen.append(state["d"])
        return float(np.sum(state["d"])), {"d": np.ones_like(state["d"])}

    sim.value_and_grad(keeping, **inputs)
    snapshot = seen[-1].copy()
    sim.value_and_grad(loss, **moved)
    sim.value_and_grad(keeping, **moved)
    np.testing.assert_array_equal(seen[0], snapshot)
    sim.release_buffers()
    assert sim._spare_buffers == {}


def test_forward_sweeps_hold_a_bounded_number_of_states():
    """run() and value() keep a few padded states whatever the loss or the operators: buffers
    tracked for reuse must not outlive their last use (a callable loss, a step operator, the
    intermediate state between two stencils of a step)."""
    import tracemalloc

    cells, steps = 20_000, 200
    x = np.linspace(0, 1, cells, endpoint=False)
    d = dp.Field("d", bc="periodic")
    implicit = dp.Stencil("implicit_diffusion_mem", {d: d[0] - nu * dt * (d[1] - 2 * d[0] + d[-1]) / SPACINGS[0] ** 2})
    inputs = {"d": 1 + np.exp(-(((x - 0.5) / 0.1) ** 2)), "u": 0.5 + 0.1 * np.sin(2 * np.pi * x),
              "dt": 0.4 / cells, "dx": 1 / cells, "nu": 1e-9}

    def plain_loss(t, state):  # a callable: may keep the states it sees (it does not)
        return float(state["d"][0]), {"d": np.zeros(cells)}

    explicit = dp.Stencil("explicit_diffusion_mem", {d: d[0] + nu * dt * (d[1] - 2 * d[0] + d[-1]) / SPACINGS[0] ** 2})
    for operators in ([upwind(1)], [upwind(1), dp.LinearSolve(implicit, unknown="d", rtol=1e-10)], [upwind(1), explicit]):
        sim = dp.Rollout(dp.Step(operators), steps)
        args = {n: v for n, v in inputs.items() if n != "nu" or len(operators) > 1}
        sim.run(**args), sim.value(plain_loss, **args)  # compile first
        for sweep in (lambda: sim.run(**args), lambda: sim.value(plain_loss, **args)):
            tracemalloc.start()
            try:
                sweep()
                peak = tracemalloc.get_traced_memory()[1] / inputs["d"].nbytes
            finally:
                tracemalloc.stop()
            assert peak <= 20, (len(operators), peak)  # a solver's working vectors at most; not ~steps
