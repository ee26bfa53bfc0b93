"""Acceptance: every shipped stencil under every boundary rule, against finite differences."""

import numpy as np
import pytest

import dpgen as dp
from dpgen.adjoint import is_homogeneous_linear
from dpgen.boundary import RULES
from dpgen.stencils import FACTORIES


def all_wrt(stencil):
    return tuple(f.name for f in stencil.inputs) + tuple(p.name for p in stencil.params)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("name", list(FACTORIES))
def test_shipped_vjp_matches_finite_differences(name, rule):
    factory, kwargs = FACTORIES[name]
    stencil = factory(bc=rule, **kwargs)
    k = dp.compile(stencil, all_wrt(stencil))
    fields, params = dp.random_inputs(k, seed=11)
    if "d" in fields:  # a density: positive and non-uniform; velocities keep both signs
        fields["d"] = np.abs(fields["d"]) + 0.1
    res = dp.check_vjp(k, fields, params, n_directions=2, seed=4)
    assert res.passed, str(res)
    assert res.error <= 1e-7
    inputs = tuple(f.name for f in stencil.inputs)
    # dot-product test of each linear map: all inputs jointly where the stencil is jointly
    # linear (divergence in u and v), else each field it is linear in alone (diffusion is
    # linear in c; affine in k, which the dot-product test does not cover)
    groups = [inputs] if is_homogeneous_linear(stencil, inputs) else [
        (f,) for f in inputs if is_homogeneous_linear(stencil, (f,))
    ]
    for group in groups:
        lin = dp.compile(stencil, group)
        dot = dp.dot_test(lin, fields, params, seed=4)
        assert dot.passed and dot.error <= 1e-12, f"{group}: {dot}"


@pytest.mark.parametrize("rule", RULES)
def test_upwind_3d_vjp_matches_finite_differences(rule):
    stencil = FACTORIES["upwind_1d"][0](ndim=3, bc=rule)
    k = dp.compile(stencil, all_wrt(stencil))
    fields, params = dp.random_inputs(k, seed=12)
    fields["d"] = np.abs(fields["d"]) + 0.1
    res = dp.check_vjp(k, fields, params, seed=5)
    assert res.passed and res.error <= 1e-7, str(res)


@pytest.mark.parametrize("rule", ["periodic", "zero", "edge", "symmetric"])
def test_laplacians_are_self_adjoint(rule):
    for ndim in (1, 2, 3):
        factory, _ = FACTORIES["laplace_5pt"]
        assert factory(ndim=ndim, bc=rule).is_self_adjoint()


def test_upwind_is_not_linear_in_the_velocity():
    factory, kwargs = FACTORIES["upwind_2d"]
    s = factory(**kwargs)
    assert s.is_linear("d") and not s.is_linear("u") and not s.is_linear("v")


def test_mac_divergence_of_gradient_is_the_5_point_laplacian():
    rng = np.random.default_rng(2)
    p = rng.standard_normal((9, 7))
    params = {"dx": 0.3, "dy": 0.7}
    grad = dp.compile(FACTORIES["gradient_2d"][0](), wrt=()).forward(p=p, **params)
    div = dp.compile(FACTORIES["divergence_2d"][0](), wrt=()).forward(u=grad["gx"], v=grad["gy"], **params)
    lap = dp.compile(FACTORIES["laplace_5pt"][0](ndim=2), wrt=()).forward(p=p, **params)
    np.testing.assert_allclose(div["div"], lap["lap"], rtol=1e-12, atol=1e-12)
