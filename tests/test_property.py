"""Property-based tests: random stencils compile to kernels with correct vjps.

Hypothesis draws 1-D and 2-D stencils over an unknown ``p`` and a coefficient field
``c`` that varies in space, each with a random boundary rule (per axis in 2-D) and
1-3 random offsets (``|offset| <= 2``), one or two outputs, a scalar parameter ``a``
and nonlinear functions from {tanh, sin, exp(x/4), x**2, Abs, Max(x, 0)}::

    out = a * sum_k w_k * G_k(c[m_k]) * F_k(p[o_k])  [+ H(c[m'])]

``F_k`` is the identity when the stencil is drawn linear in ``p``. Every example is
checked three ways: ``check_vjp`` against finite differences (rtol 1e-7), the
dot-product test where the kernel is linear in its ``wrt`` fields, and the dense
Jacobian oracle on the smallest grid the halo allows. Field values keep away from
the kinks of Abs and Max (|x| >= 0.2), so finite differences never straddle one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from typing import Callable

import numpy as np
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dpgen as dp
from oracle import RULES, check_against_oracle, random_fields, smallest_shape

#: The nonlinear functions a random stencil may apply to a field access.
FUNCTIONS: dict[str, Callable[[sp.Expr], sp.Expr]] = {
    "tanh": sp.tanh,
    "sin": sp.sin,
    "exp": lambda x: sp.exp(x / 4),
    "square": lambda x: x**2,
    "abs": sp.Abs,
    "relu": lambda x: sp.Max(x, 0),
}
WEIGHTS = (-2, -1, 1, 2)
A = sp.Symbol("a", real=True)


@dataclasses.dataclass(frozen=True)
class RandomStencil:
    """A generated stencil and the ``wrt`` to compile it with (printed by Hypothesis)."""

    stencil: dp.Stencil
    wrt: tuple[str, ...]

    def __repr__(self) -> str:
        return f"{self.stencil}\n  wrt {self.wrt}"


def _offsets(ndim: int) -> st.SearchStrategy[list[tuple[int, ...]]]:
    """1-3 distinct offsets with every component in [-2, 2]."""
    all_offsets = list(itertools.product(range(-2, 3), repeat=ndim))
    return st.lists(st.sampled_from(all_offsets), min_size=1, max_size=3, unique=True)


def _rule(ndim: int) -> st.SearchStrategy[str | tuple[str, ...]]:
    """One boundary rule for every axis, or (in 2-D and up) one per axis."""
    single = st.sampled_from(RULES)
    return single if ndim == 1 else st.one_of(single, st.tuples(*[single] * ndim))


def _function(draw: st.DrawFn) -> Callable[[sp.Expr], sp.Expr]:
    return FUNCTIONS[draw(st.sampled_from(sorted(FUNCTIONS)))]


def _stencil_name(ndim: int, fields: list[dp.Field], outputs: dict[dp.Field, sp.Expr]) -> str:
    """A valid, content-derived stencil name (identical stencils share kernels)."""
    text = repr((ndim, [(f.name, f.bc) for f in fields], [(f.name, sp.srepr(e)) for f, e in outputs.items()]))
    return "prop_" + hashlib.sha1(text.encode()).hexdigest()[:16]


@st.composite
def random_stencils(draw: st.DrawFn) -> RandomStencil:
    """Draw a stencil (see the module docstring) and its ``wrt``."""
    ndim = draw(st.sampled_from([1, 2]))
    p = dp.Field("p", ndim, draw(_rule(ndim)))
    c = dp.Field("c", ndim, draw(_rule(ndim)))
    p_offsets, c_offsets = draw(_offsets(ndim)), draw(_offsets(ndim))
    linear = draw(st.booleans())
    param_inside = draw(st.booleans())  # a inside the nonlinearity (a * p) or in front of the sum
    outputs: dict[dp.Field, sp.Expr] = {}
    for out in [p, dp.Field("q", ndim, p.bc)][: draw(st.integers(1, 2))]:
        total = sp.Integer(0)
        for o in p_offsets:
            coefficient = _function(draw)(c[draw(st.sampled_from(c_offsets))])
            inner = A * p[o] if param_inside else p[o]
            total += draw(st.sampled_from(WEIGHTS)) * coefficient * (inner if linear else _function(draw)(inner))
        expr = total if param_inside else A * total
        if not linear and draw(st.booleans()):
            expr += _function(draw)(c[draw(st.sampled_from(c_offsets))])
        outputs[out] = expr
    stencil = dp.Stencil(_stencil_name(ndim, [p, c], outputs), outputs)
    wrt = draw(st.sampled_from([("p", "a"), tuple(f.name for f in stencil.inputs) + ("a",)]))
    return RandomStencil(stencil, wrt)


@settings(
    max_examples=16,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=random_stencils(), seed=st.integers(0, 2**16))
def test_random_stencil_vjp(case: RandomStencil, seed: int) -> None:
    """check_vjp passes; the dot test passes for linear kernels; the dense oracle agrees."""
    kernel = dp.compile(case.stencil, wrt=case.wrt)
    assert set(kernel.wrt) == set(case.wrt)
    shape = {1: (24,), 2: (9, 7)}[kernel.ndim]
    fields = random_fields(kernel.inputs, shape, np.random.default_rng(seed), positive=False)

    result = dp.check_vjp(kernel, fields, seed=seed, rtol=1e-7)
    assert result.passed, str(result)
    if kernel.spec["linear_wrt"]:
        dot = dp.dot_test(kernel, fields, seed=seed)
        assert dot.passed, str(dot)
    check_against_oracle(kernel, case.stencil, smallest_shape(case.stencil))
