"""Two reverse steps in one pass (``adjoint_periodic_pair``): the same bits as two single steps.

The pair kernel cuts the grid into chunks of rows, recomputes the intermediate cotangent
on each chunk's halo rows (wrapping around the periodic grid) and adds the constant
fields' contributions of both steps; every case below compares it bit for bit with two
calls of the single-step ``adjoint_periodic``, on random non-uniform fields, with chunks
that do not divide the grid, chunks of one row, and more workers than chunks.
"""

import numpy as np
import pytest
import sympy as sp

import dpgen as dp
from dpgen.codegen.plan import exact_rewrites
from dpgen.config import override
from dpgen.stencils import diffusion, laplacian, upwind

def _two_states_1d():
    """Two coupled nonlinear states, a constant, a halo of 2."""
    a, b, k = (dp.Field(n, 1) for n in "abk")
    dt = sp.Symbol("dt")
    return dp.Stencil("two_states_1d", {
        a: a[0] + dt * (k[0] * (a[1] - a[-1]) + (a[2] - 2 * a[0] + a[-2]) / 2 + b[0] * a[-1]),
        b: b[0] - dt * k[0] * (b[1] - b[-1]) + dt * a[0] ** 2,
    })


STENCILS = {
    "upwind_1d": (lambda: upwind(1), (29,)),
    # long enough for the 1-D pair's fused loop (chunks of more than AHEAD_ROWS + halo rows)
    "upwind_1d_long": (lambda: upwind(1), (1601,)),
    "two_states_1d": (_two_states_1d, (1303,)),
    "upwind_2d": (lambda: upwind(2), (7, 5)),
    "upwind_3d": (lambda: upwind(3), (5, 4, 6)),
    "diffusion_2d": (lambda: diffusion(ndim=2), (9, 6)),
    "diffusion_3d": (lambda: diffusion(ndim=3), (7, 5, 4)),
}


def _fields(k, grid, rng):
    padded, inside = k.padded_shape(grid), k.interior(grid)

    def field(values):
        a = np.full(padded, np.nan)  # ghost cells are the kernels' to fill
        a[inside] = values
        return a

    late = {n: field(rng.uniform(0.5, 1.5, grid) * rng.choice([-1, 1], grid)) for n in k.inputs}
    early = {n: field(rng.uniform(0.5, 1.5, grid)) for n in k.outputs}
    bars = {c: field(rng.standard_normal(grid)) for c in k.outputs}
    params = {p: 0.03 + 0.01 * i for i, p in enumerate(k.params)}
    return late, early, bars, params


def _two_single_steps(k, late, early, bars, params, constants, start):
    """Step t then step t - 1 with ``adjoint_periodic``, constants accumulating from ``start``."""
    shape = next(iter(late.values())).shape
    add = {n: True for n in constants}
    adj = {n: start[n].copy() if n in constants else np.empty(shape) for n in k.wrt_fields}
    first = {c: b.copy() for c, b in bars.items()}
    k.adjoint_padded({c: k.grid_cells(b) for c, b in first.items()}, late, params, adj, add, first)
    mid = {c: adj[c] for c in k.outputs}
    adj2 = {n: adj[n] if n in constants else np.empty(shape) for n in k.wrt_fields}
    k.adjoint_padded({c: k.grid_cells(b) for c, b in mid.items()}, {**late, **early}, params, adj2, add, mid)
    return {n: k.grid_cells(a) for n, a in adj2.items()}


@pytest.mark.parametrize("name", sorted(STENCILS))
@pytest.mark.parametrize("threshold", [0, 10**9], ids=["parallel", "serial"])
def test_pair_equals_two_single_steps_bit_for_bit(name, threshold):
    factory, grid = STENCILS[name]
    k = dp.compile(factory())
    assert k.spec["has_periodic_pair"]
    rng = np.random.default_rng(7)
    late, early, bars, params = _fields(k, grid, rng)
    constants = [n for n in k.wrt_fields if n not in k.outputs]
    start = {n: rng.standard_normal(k.padded_shape(grid)) for n in constants}
    with override(parallel_threshold=threshold):
        expected = _two_single_steps(k, late, early, bars, params, constants, start)
        # rows per chunk: 1, 2, 3 (not dividing the grid), 600 (1-D: the fused loop, one
        # block of it with its prefetches and the rest, and the tail run), the default (1-D
        # long grids: several blocks, prefetches past the grid's end); 1 to 3 workers
        for rows in (1, 2, 3, 600, None):
            for workers in (1, 2, 3, None):
                adj = {n: start[n].copy() if n in constants else np.empty(k.padded_shape(grid)) for n in k.wrt_fields}
                padded_bars = {c: b.copy() for c, b in bars.items()}
                k.adjoint_pair_padded(padded_bars, late, early, params, adj, {n: True for n in constants},
                                      rows=rows, workers=workers)
                for n in k.wrt_fields:
                    np.testing.assert_array_equal(k.grid_cells(adj[n]), expected[n], err_msg=f"{n} rows={rows} w={workers}")


def test_pair_calls_with_changing_parameters_and_flags_use_their_own():
    """adjoint_pair_padded keeps the runner of its last call: a call with another time step
    or without accumulating must not run with the kept parameters or flags."""
    factory, grid = STENCILS["upwind_1d"]
    k = dp.compile(factory())
    rng = np.random.default_rng(11)
    late, early, bars, params = _fields(k, grid, rng)
    start = {"u": rng.standard_normal(k.padded_shape(grid))}
    for step_params, accumulate in ((params, True), ({**params, "dt": 2 * params["dt"]}, True),
                                    ({**params, "dt": 2 * params["dt"]}, False), (params, True)):
        # without accumulating, u gets both steps' contributions: as if accumulated onto zeros
        expected = _two_single_steps(k, late, early, bars, step_params, ["u"],
                                     start if accumulate else {"u": np.zeros(k.padded_shape(grid))})
        adj = {"d": np.empty(k.padded_shape(grid)), "u": start["u"].copy() if accumulate else np.empty(k.padded_shape(grid))}
        k.adjoint_pair_padded({c: b.copy() for c, b in bars.items()}, late, early, step_params, adj, {"u": accumulate})
        for n in ("d", "u"):
            np.testing.assert_array_equal(k.grid_cells(adj[n]), expected[n], err_msg=f"{n} {step_params} {accumulate}")


def test_pair_rows_keep_chunks_near_their_size_and_share_the_grid():
    k = dp.compile(upwind(1))
    assert k.pair_rows((10**6 + 2,), 8, 2) == 16384  # 1-D: 128 KiB of intermediate cotangent
    assert k.pair_rows((10**4 + 2,), 8, 2) == 5000  # at most a worker's share
    k3 = dp.compile(diffusion(ndim=3))
    assert k3.pair_rows((102, 102, 102), 8, 2) == 13  # 1 MiB of 83 kB rows
    assert k3.pair_rows((6, 102, 102), 8, 2) == 2


def test_the_pair_kernel_exists_where_outputs_are_differentiated_periodic_states():
    assert not dp.compile(laplacian(2)).spec["has_periodic_pair"]  # lap is not an input
    assert not dp.compile(upwind(1, bc="edge")).spec["has_periodic_pair"]  # no periodic adjoint
    assert not dp.compile(upwind(1), wrt=("u",)).spec["has_periodic_pair"]  # the state is not differentiated
    assert dp.compile(upwind(1), wrt=("d",)).spec["has_periodic_pair"]


def _upwind_problem(cells=40, steps=9, seed=3):
    rng = np.random.default_rng(seed)
    inputs = {
        "d": 1 + 0.3 * rng.standard_normal(cells),
        "u": rng.choice([-1.0, 1.0], cells) * rng.uniform(0.2, 1.0, cells),
        "dt": 0.3 / cells,
        "dx": 1.0 / cells,
    }
    return inputs, rng.standard_normal(cells)


def _both(sim, loss, **kwargs):
    results = []
    for fuse in (False, True):
        with override(fuse_adjoint_steps=fuse):
            results.append(sim.value_and_grad(loss, **kwargs))
            results.append(sim.stats.fused_pairs)
    (value, grads), unfused_pairs, (value_f, grads_f), pairs = results
    assert unfused_pairs == 0 and value_f == value
    assert grads_f.keys() == grads.keys()
    for name in grads:
        np.testing.assert_array_equal(grads_f[name], grads[name], err_msg=name)
    return grads, pairs


@pytest.mark.parametrize("steps, pairs", [(9, 4), (10, 5), (1, 0)])
def test_a_rollout_pairs_its_reverse_steps_with_the_same_gradients(steps, pairs):
    inputs, target = _upwind_problem(steps=steps)
    sim = dp.Rollout(dp.Step([upwind(1)]), steps)
    _, fused = _both(sim, dp.losses.L2(target, field="d"), wrt=("d", "u"), **inputs)
    assert fused == pairs and sim.stats.adjoint_steps == steps


def test_2d_rollout_pairs_with_the_same_gradients():
    rng = np.random.default_rng(5)
    shape = (11, 7)
    inputs = {"c": rng.uniform(0.5, 1.5, shape), "k": rng.uniform(0.5, 1.5, shape), "dt": 0.05, "dx": 1.0, "dy": 1.0}
    sim = dp.Rollout(dp.Step([diffusion(ndim=2)]), 6)
    _, fused = _both(sim, dp.losses.L2(rng.standard_normal(shape), field="c"), wrt=("c", "k"), **inputs)
    assert fused == 3


def test_pairs_stop_at_observed_steps_and_under_checkpointing():
    inputs, target = _upwind_problem(steps=12)
    # observing steps 5 and 12 leaves a loss gradient to add at step 5: no pair joins 6 and 5
    observed = dp.losses.L2({5: target, 12: 2 * target}, field="d")
    sim = dp.Rollout(dp.Step([upwind(1)]), 12)
    _, fused = _both(sim, observed, wrt=("d", "u"), **inputs)
    assert fused == 5  # steps 11..6 in three pairs, 4..0 in two and a single
    # checkpointing: Revolve records and reverses one step at a time, so nothing pairs
    checkpointed = dp.Rollout(dp.Step([upwind(1)]), 12, snapshots=3)
    _, fused = _both(checkpointed, dp.losses.L2(target, field="d"), wrt=("d", "u"), **inputs)
    assert fused == 0 and checkpointed.stats.max_recorded_steps == 1


def test_no_pairs_with_parameter_gradients_or_controls():
    inputs, target = _upwind_problem(steps=6)
    sim = dp.Rollout(dp.Step([upwind(1)]), 6)
    loss = dp.losses.L2(target, field="d")
    sim.value_and_grad(loss, wrt=("d", "dt"), **inputs)
    assert sim.stats.fused_pairs == 0
    controls = dict(inputs, u=np.repeat(inputs["u"][None], 6, axis=0))
    sim.value_and_grad(loss, wrt=("d", "u"), **controls)
    assert sim.stats.fused_pairs == 0
    sim.value_and_grad(loss, wrt=("d",), **inputs)
    assert sim.stats.fused_pairs == 3


def test_exact_rewrites_give_the_same_floats():
    x, a, b = sp.symbols("x a b", real=True)
    dx = sp.Symbol("dx", positive=True)
    half = sp.Rational(1, 2)
    expr = a * sp.Heaviside(-x / dx, half) + b * (sp.Max(0, x / dx) - sp.Min(0, x / dx))
    rewritten = exact_rewrites(expr)
    assert not any(h.args[0].could_extract_minus_sign() for h in rewritten.atoms(sp.Heaviside))
    assert rewritten.has(sp.Abs) and not rewritten.has(sp.Max, sp.Min)
    assert exact_rewrites(sp.Heaviside(-x, 1)) == sp.Heaviside(-x, 1)  # another value at 0: left alone
    heaviside = {"Heaviside": lambda v, h0: np.where(v > 0, 1.0, np.where(v < 0, 0.0, h0))}
    f = sp.lambdify((x, a, b, dx), expr, modules=[heaviside, "numpy"])
    g = sp.lambdify((x, a, b, dx), rewritten, modules=[heaviside, "numpy"])
    values = np.concatenate([np.random.default_rng(0).standard_normal(1000), [0.0, -0.0, 1e-300, -1e-300]])
    for spacing in (0.1, 3.0, 1e-7):
        np.testing.assert_array_equal(f(values, 1.3, -0.7, spacing), g(values, 1.3, -0.7, spacing))
