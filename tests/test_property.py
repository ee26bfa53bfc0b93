"""Property-based tests: random stencils compile to kernels with correct vjps.

Hypothesis draws 1-D and 2-D stencils over an unknown ``p`` and a coefficient field
``c`` that varies in space, each with a random boundary rule (per axis in 2-D) and
1-3 random offsets (``|offset| <= 2``), one or two outputs, a scalar parameter ``a``
and nonlinear functions from {tanh, sin, exp(x/4), x**2, Abs, Max(x, 0)}::

    out = a * (sum_k w_k * G_k(c[m_k]) * F_k(p[o_k] [* p[o'_k]])  [+ H(c[m'])])

(or with ``a`` inside, ``F_k(a * ...)``); ``F_k`` is the identity and there is no
source ``H`` when the stencil is drawn linear in ``p``. Each example is checked three
ways: ``check_vjp`` against finite differences at rtol 1e-7, the dot-product test
where the kernel is linear in its ``wrt`` fields, and the dense Jacobian oracle of
``oracle.py`` on the smallest grid the halo allows.

Field values keep away from the kinks of Abs and Max (|x| >= 0.2, and ``F`` never
sees a difference of fields), so the finite differences never straddle one; that
lets the step be 1e-3 (relative), which keeps the round-off of the difference
quotient far below 1e-7 even where a directional derivative nearly cancels. Shrinking
is off: every shrink step would compile a new stencil. A failure prints the stencil.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from typing import Callable

import numpy as np
import sympy as sp
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import dpgen as dp
from oracle import RULES, check_against_oracle, random_fields, smallest_shape

#: The nonlinear functions a random stencil may apply (to an access or a product of two).
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
#: Relative finite-difference step of check_vjp (see the module docstring).
FD_STEP = 1e-3


@dataclasses.dataclass(frozen=True)
class RandomStencil:
    """A generated stencil, the ``wrt`` to compile it with, and whether it is linear in ``p``."""

    stencil: dp.Stencil
    wrt: tuple[str, ...]
    linear_in_p: bool

    def __repr__(self) -> str:
        return f"{self.stencil}\n  wrt {self.wrt}; linear in p: {self.linear_in_p}"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """Hypothesis prints falsifying examples with this (not the dataclass fields)."""
        printer.text(repr(self))


def _stencil_name(fields: list[dp.Field], outputs: dict[dp.Field, sp.Expr]) -> str:
    """A valid name derived from the content (identical stencils share one kernel module)."""
    text = repr(([(f.name, f.ndim, f.bc) for f in fields], [(f.name, sp.srepr(e)) for f, e in outputs.items()]))
    return "prop_" + hashlib.sha1(text.encode()).hexdigest()[:16]


def make_random_stencil(
    fields: list[dp.Field], outputs: dict[dp.Field, sp.Expr], wrt: tuple[str, ...], linear_in_p: bool
) -> RandomStencil:
    """Wrap ``outputs`` in a uniquely named Stencil."""
    return RandomStencil(dp.Stencil(_stencil_name(fields, outputs), outputs), wrt, linear_in_p)


def _offsets(ndim: int) -> st.SearchStrategy[list[tuple[int, ...]]]:
    """1-3 distinct offsets with every component in [-2, 2]."""
    all_offsets = list(itertools.product(range(-2, 3), repeat=ndim))
    return st.lists(st.sampled_from(all_offsets), min_size=1, max_size=3, unique=True)


def _rule(ndim: int) -> st.SearchStrategy[str | tuple[str, ...]]:
    """One boundary rule for every axis, or (in 2-D) one per axis."""
    single = st.sampled_from(RULES)
    return single if ndim == 1 else st.one_of(single, st.tuples(*[single] * ndim))


@st.composite
def random_stencils(draw: st.DrawFn) -> RandomStencil:
    """Draw a stencil (see the module docstring) and its ``wrt``."""
    ndim = draw(st.sampled_from([1, 2]))
    p, c = dp.Field("p", ndim, draw(_rule(ndim))), dp.Field("c", ndim, draw(_rule(ndim)))
    p_offsets, c_offsets = draw(_offsets(ndim)), draw(_offsets(ndim))
    linear = draw(st.booleans())
    param_inside = draw(st.booleans())  # F(a * p ...) rather than a * (...)
    function = st.sampled_from(sorted(FUNCTIONS)).map(FUNCTIONS.__getitem__)
    outputs: dict[dp.Field, sp.Expr] = {}
    for out in [p, dp.Field("q", ndim, p.bc)][: draw(st.integers(1, 2))]:
        total = sp.Integer(0)
        for o in p_offsets:
            coefficient = draw(function)(c[draw(st.sampled_from(c_offsets))])
            arg = p[o]
            if not linear and draw(st.booleans()):
                arg *= p[draw(st.sampled_from(p_offsets))]
            arg = A * arg if param_inside else arg
            total += draw(st.sampled_from(WEIGHTS)) * coefficient * (arg if linear else draw(function)(arg))
        if not linear and draw(st.booleans()):
            total += draw(function)(c[draw(st.sampled_from(c_offsets))])
        outputs[out] = total if param_inside else A * total
    wrt = draw(st.sampled_from([("p", "a"), ("c", "p", "a")]))
    return make_random_stencil([p, c], outputs, wrt, linear)


def _linear_2d_example() -> RandomStencil:
    """A fixed linear example, so the dot-product test runs whatever Hypothesis draws."""
    p, c = dp.Field("p", 2, ("symmetric", "zero")), dp.Field("c", 2, ("reflect", "periodic"))
    expr = A * (sp.tanh(c[1, -1]) * p[-2, 1] - 2 * c[0, 2] ** 2 * p[1, 1] + sp.Max(c[0, 0], 0) * p[0, -2])
    return make_random_stencil([p, c], {p: expr}, ("p", "a"), linear_in_p=True)


@settings(
    max_examples=16,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=random_stencils(), seed=st.integers(0, 2**16))
@example(case=_linear_2d_example(), seed=7)
def test_random_stencil_vjp(case: RandomStencil, seed: int) -> None:
    """check_vjp passes; the dot test passes for linear kernels; the dense oracle agrees."""
    kernel = dp.compile(case.stencil, wrt=case.wrt)
    assert set(kernel.wrt) == set(case.wrt)
    # Linear in the wrt fields exactly when linear in p and c is not among them (G(c) * p is bilinear).
    assert kernel.spec["linear_wrt"] == (case.linear_in_p and "c" not in case.wrt)
    shape = {1: (24,), 2: (9, 7)}[kernel.ndim]
    fields = random_fields(kernel.inputs, shape, np.random.default_rng(seed), positive=False)

    result = dp.check_vjp(kernel, fields, seed=seed, rtol=1e-7, eps=FD_STEP)
    assert result.passed, str(result)
    if kernel.spec["linear_wrt"]:
        dot = dp.dot_test(kernel, fields, seed=seed)
        assert dot.passed, str(dot)
    check_against_oracle(kernel, case.stencil, smallest_shape(case.stencil))
