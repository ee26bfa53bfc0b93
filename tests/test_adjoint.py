"""Adjoint layer: gather-form derivation, lowering, and the symbolic queries."""

import numpy as np
import pytest
import sympy as sp

import dpgen as dp
from dpgen.adjoint import is_homogeneous_linear, lower_nonsmooth, operator_matrix
from dpgen.errors import WrtError
from dpgen.stencils import laplacian, upwind
from dpgen.symbolic import shift

dt, dx = sp.symbols("dt dx", positive=True)
RULES = ("periodic", "zero", "edge", "symmetric", "reflect")


def readme_upwind(bc="periodic"):
    d, u = dp.fields("d u", ndim=1, bc=bc)
    return dp.Stencil(
        "upwind",
        {d: d[0] - dt * (sp.Min(u[0] / dx, 0) * (d[1] - d[0]) + sp.Max(u[0] / dx, 0) * (d[0] - d[-1]))},
    )


def test_gather_form_shifts_every_access_not_only_the_cotangent():
    # y[i] = k[i] * p[i+1]: a_bar[j] = k[j-1] * y_bar[j-1]. The classic bug shifts only
    # y_bar and would give k[j] * y_bar[j-1].
    p, k = dp.fields("p k")
    s = dp.Stencil("s", {p: k[0] * p[1]})
    adj = s.adjoint("p")
    (term,) = adj.field_terms["p"]
    assert term.shift == (1,)
    assert term.coefficient == k[-1]
    assert adj.expression("p") == k[-1] * adj.cotangent_field("p")[-1]


def test_upwind_derivative_in_u_matches_the_hand_derivation():
    s = readme_upwind()
    d, u = s.field("d"), s.field("u")
    (term,) = s.adjoint("u").field_terms["u"]
    c = term.coefficient
    # for u < 0 the derivative is (dt/dx) (d_i - d_{i+1}); for u > 0 it is (dt/dx)(d_{i-1} - d_i)
    neg = c.subs(sp.Heaviside(-u[0] / dx, sp.Rational(1, 2)), 1).subs(sp.Heaviside(u[0] / dx, sp.Rational(1, 2)), 0)
    pos = c.subs(sp.Heaviside(-u[0] / dx, sp.Rational(1, 2)), 0).subs(sp.Heaviside(u[0] / dx, sp.Rational(1, 2)), 1)
    assert sp.simplify(neg - dt / dx * (d[0] - d[1])) == 0
    assert sp.simplify(pos - dt / dx * (d[-1] - d[0])) == 0


def test_needs_only_what_the_adjoint_reads():
    s = readme_upwind()
    assert s.needs("d") == ("u",)  # linear in d: the state is not needed
    assert s.needs("u") == ("d", "u")
    assert s.needs(("d", "dt")) == ("d", "u")
    assert laplacian(2).needs("p") == ()
    assert laplacian(2).needs("dx") == ("p",)


def test_linearity_queries():
    s = readme_upwind()
    assert s.is_linear("d") and not s.is_linear("u")
    p, q = dp.fields("p q")
    bilinear = dp.Stencil("b", {p: p[0] * q[1]})
    assert bilinear.is_linear("p") and bilinear.is_linear("q")
    assert not is_homogeneous_linear(bilinear, ["p", "q"])
    assert is_homogeneous_linear(bilinear, ["p"])
    affine = dp.Stencil("a", {p: p[0] + 1})
    assert affine.is_linear("p") and not is_homogeneous_linear(affine, ["p"])


@pytest.mark.parametrize("rule", RULES)
def test_laplacian_self_adjointness_per_boundary_rule(rule):
    expected = rule != "reflect"  # reflect doubles the neighbour in the boundary row
    assert laplacian(2, bc=rule).is_self_adjoint() is expected
    assert laplacian(3, bc=rule).is_self_adjoint() is expected


def test_self_adjointness_against_the_explicit_matrix():
    p, k = dp.fields("p k", bc="edge")
    variable = dp.Stencil("vc", {p: (k[0] + k[1]) / 2 * (p[1] - p[0]) - (k[-1] + k[0]) / 2 * (p[0] - p[-1])})
    wide = dp.Field("p", bc="edge")
    fourth = dp.Stencil("l4", {wide: -wide[2] + 16 * wide[1] - 30 * wide[0] + 16 * wide[-1] - wide[-2]})
    advection = upwind(1)
    for s, unknown, expected in [(variable, "p", True), (fourth, "p", False)]:
        assert s.is_self_adjoint(unknown) is expected
        m = operator_matrix(s, s.field(unknown), (7,))
        assert (m == m.T) is expected
    assert advection.is_self_adjoint("d") is False
    one_sided = dp.Stencil("fd", {p: p[1] - p[0]})
    assert one_sided.is_self_adjoint() is False


def test_wrt_errors_name_the_culprit():
    s = readme_upwind()
    with pytest.raises(WrtError, match="'q'.*inputs: d, u; params: dt, dx"):
        s.adjoint("q")
    lap = laplacian(1)
    with pytest.raises(WrtError, match="output only"):
        lap.adjoint("lap")


def test_lowering_gives_one_documented_value_at_the_kink():
    x = sp.Symbol("x", real=True)
    lowered = lower_nonsmooth(sp.diff(sp.Max(x, 0), x))
    assert lowered.subs(x, 0) == sp.Rational(1, 2)
    assert lower_nonsmooth(sp.diff(sp.Abs(x), x)).subs(x, 0) == 0
    assert lower_nonsmooth(sp.diff(sp.sign(x), x)) == 0


def test_kink_value_matches_a_central_difference():
    d = dp.Field("d")
    k = dp.compile(dp.Stencil("relu_kink", {d: sp.Max(d[0], 0) + sp.Abs(d[0])}), wrt="d")
    x = np.array([0.0, 1.0, -1.0])
    grad = k.vjp({"d": np.ones(3)}, d=x)["d"]
    np.testing.assert_array_equal(grad, [0.5, 2.0, -1.0])


def test_user_written_heaviside_keeps_its_value_at_zero():
    d = dp.Field("d")
    k = dp.compile(dp.Stencil("h_at_zero", {d: sp.Heaviside(d[0], 0) * d[1] + sp.Heaviside(d[0])}), wrt="d")
    x = np.array([0.0, 1.0, -1.0])
    np.testing.assert_array_equal(k.forward(d=x)["d"], [0.5, 0.0, 0.0])
    # d_bar[j] = H0(d[j-1]) with H0(0) = 0 as written (not the 1/2 of derived kinks)
    np.testing.assert_array_equal(k.vjp({"d": np.ones(3)}, d=x)["d"], [0.0, 0.0, 1.0])


def test_printing_and_latex_are_readable():
    adj = readme_upwind().adjoint(("d", "u", "dt"))
    text = str(adj)
    assert "d_bar[0] =" in text and "u_bar[0] =" in text and "dt_bar = sum over cells" in text
    assert "forward cell i = j+1" in text
    latex = adj.latex()
    assert r"\bar{d}_{i}" in latex and r"\bar{d}_{i+1}" in latex


def test_adjoint_expression_equals_the_transposed_sum():
    # a_bar[j] = sum_k shift(df/da[k], -k) * y_bar[j-k], rebuilt independently
    p, k = dp.fields("p k", ndim=2)
    s = dp.Stencil("s", {p: sp.tanh(k[0, 0] * p[1, 0]) - p[0, -1] ** 2 * k[1, 1]})
    y_bar = dp.Field("p_bar", ndim=2, bc="zero")
    expected = sum(
        shift(sp.diff(s.outputs[p], p[o]), tuple(-x for x in o)) * y_bar[tuple(-x for x in o)]
        for o in s.offsets("p")
    )
    got = s.adjoint("p").expression("p")
    assert sp.simplify(got - expected) == 0
