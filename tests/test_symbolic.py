"""Symbolic layer: fields, accesses, stencil structure and definition-time errors."""

import pytest
import sympy as sp

import dpgen as dp
from dpgen.errors import (
    BoundaryRuleError,
    DuplicateOutputError,
    OffsetError,
    StencilDefinitionError,
    UnsupportedExpressionError,
)
from dpgen.symbolic import Access, accesses, shift

dt, dx = sp.symbols("dt dx", positive=True)


def test_access_is_a_sympy_atom_carrying_field_and_offset():
    p = dp.Field("p", ndim=2, bc=("periodic", "edge"))
    a = p[1, -2]
    assert isinstance(a, Access) and isinstance(a, sp.Symbol)
    assert a.field is p and a.offset == (1, -2)
    assert p[1, -2] == a and p[1, 2] != a
    assert sp.diff(a**2 * p[0, 0], a) == 2 * a * p[0, 0]
    assert p.bc == ("periodic", "edge")


def test_accesses_of_equal_name_but_other_boundary_rule_differ():
    assert dp.Field("d", bc="zero")[1] != dp.Field("d", bc="edge")[1]


def test_shift_moves_every_access():
    d, u = dp.fields("d u")
    assert shift(d[1] * u[0] + u[-1], (2,)) == d[3] * u[2] + u[1]


def test_stencil_structure_inputs_params_offsets_halo():
    d, u, k = dp.fields("d u k", ndim=2)
    s = dp.Stencil("s", {d: d[0, 0] + dt * u[2, 0] * d[0, -1] / dx, k: k[-1, 1]})
    assert [f.name for f in s.inputs] == ["d", "k", "u"]
    assert [p.name for p in s.params] == ["dt", "dx"]
    assert s.offsets("d") == ((0, -1), (0, 0))
    assert s.halo == ((1, 2), (1, 1))
    assert set(accesses(s.outputs[d])) == {d[0, 0], u[2, 0], d[0, -1]}


def test_parameters_without_assumptions_become_real():
    d = dp.Field("d")
    c = sp.Symbol("c")
    s = dp.Stencil("s", {d: sp.Abs(c * d[0])})
    (param,) = s.params
    assert param.is_real and param.name == "c"
    # d|c d|/dd stays a real expression (no re()/im() noise)
    assert not s.adjoint("d").field_terms["d"][0].coefficient.has(sp.re, sp.im)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda d: d[0.5], OffsetError, ["0.5", "not an integer"]),
        (lambda d: d[1.0], OffsetError, ["1.0"]),
        (lambda d: d[sp.Symbol("k")], OffsetError, ["k"]),
        (lambda d: d[1, 0], OffsetError, ["1-D", "2 in d[1, 0]"]),
        (lambda d: d[True], OffsetError, ["True"]),
    ],
)
def test_bad_accesses_are_typed_errors(make, error, words):
    d = dp.Field("d")
    with pytest.raises(error) as info:
        make(d)
    for w in words:
        assert w in str(info.value)


def test_wrong_number_of_indices_in_3d():
    q = dp.Field("q", ndim=3)
    assert q[0, -1, 2].offset == (0, -1, 2)
    with pytest.raises(OffsetError, match="3 offset"):
        q[0, 1]


def test_duplicate_output_is_rejected():
    d = dp.Field("d")
    with pytest.raises(DuplicateOutputError, match="'d'"):
        dp.Stencil("s", [(d, d[1]), (d, d[-1])])
    with pytest.raises(DuplicateOutputError):
        dp.Stencil("s", {d: d[1], d[0]: d[-1]})


def test_output_must_be_written_at_offset_zero():
    d = dp.Field("d")
    with pytest.raises(OffsetError, match="offset 0"):
        dp.Stencil("s", {d[1]: d[0]})


@pytest.mark.parametrize(
    "expr_of, words",
    [
        (lambda d: sp.Function("f")(d[0]), ["unknown function", "f"]),
        (lambda d: sp.floor(d[0]), ["floor"]),
        (lambda d: sp.gamma(d[0]), ["gamma"]),
        (lambda d: sp.Piecewise((d[0], d[0] > 0)), ["default branch"]),
        (lambda d: sp.oo * d[0], ["non-finite"]),
        (lambda d: sp.zoo * d[0], ["ComplexInfinity"]),
        (lambda d: sp.I * d[0], ["ImaginaryUnit"]),
    ],
)
def test_unsupported_constructs_are_named(expr_of, words):
    d = dp.Field("d")
    with pytest.raises(UnsupportedExpressionError) as info:
        dp.Stencil("s", {d: expr_of(d)})
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize(
    "build, words",
    [
        (lambda: dp.Stencil("s", {dp.Field("a"): dp.Field("b", ndim=2)[0, 0]}), ["different dimension"]),
        (lambda: dp.Stencil("s", {dp.Field("a"): dp.Field("a", bc="zero")[0] + dp.Field("a")[1]}), ["two different fields"]),
        (lambda: dp.Stencil("s", {dp.Field("a"): dp.Field("b")[0] * sp.Symbol("b")}), ["same name as a field"]),
        (lambda: dp.Stencil("s", {dp.Field("a"): sp.Integer(1)}), ["reads no field"]),
        (lambda: dp.Stencil("s", {}), ["no output"]),
        (lambda: dp.Stencil("bad name", {dp.Field("a"): dp.Field("a")[0]}), ["identifier"]),
        (lambda: dp.Field("i0"), ["reserved"]),
        (
            lambda: dp.Stencil("s", {dp.Field("p"): sp.Symbol("a") * dp.Field("p")[0] + sp.Symbol("a", positive=True)}),
            ["two different SymPy symbols are named 'a'"],
        ),
        (lambda: dp.Field("x__y"), ["__"]),
        (lambda: dp.Field("d", ndim=4), ["ndim"]),
        (lambda: dp.Stencil("s", {"a": dp.Field("a")[0]}), ["Fields"]),
        (lambda: dp.Stencil("s", {dp.Field("y"): dp.Field("y_bar")[0]}), ["cotangent"]),
    ],
)
def test_definition_errors(build, words):
    with pytest.raises(StencilDefinitionError) as info:
        build()
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize("bc, words", [("wrap", ["wrap", "periodic"]), (("edge",), ["2-D", "1 boundary"])])
def test_bad_boundary_rules(bc, words):
    with pytest.raises(BoundaryRuleError) as info:
        dp.Field("p", ndim=2, bc=bc)
    for w in words:
        assert w in str(info.value)


def test_latex_of_accesses():
    p = dp.Field("p", ndim=2)
    assert sp.latex(p[1, 0] - p[0, -1]) == "- p_{i,j-1} + p_{i+1,j}"


@pytest.mark.parametrize("name", ["max", "sign", "heaviside", "k1", "n0", "math"])
def test_names_the_generated_code_uses_are_reserved(name):
    with pytest.raises(StencilDefinitionError, match="reserved"):
        dp.Field(name)
    with pytest.raises(StencilDefinitionError, match="reserved"):
        dp.Stencil("s", {dp.Field("d"): sp.Symbol(name) * dp.Field("d")[0]})


def test_user_names_like_loop_bounds_do_not_clash():
    import numpy as np

    a0, b0 = dp.fields("a0 b0")
    k = dp.compile(dp.Stencil("bounds_clash", {a0: a0[1] * b0[-1]}), wrt=("a0", "b0"))
    assert dp.check_vjp(k, seed=2).passed
    np.testing.assert_allclose(k.forward(a0=np.arange(4.0), b0=np.ones(4))["a0"], [1, 2, 3, 0])
