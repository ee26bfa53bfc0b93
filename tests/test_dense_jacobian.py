"""dpgen's forward and vjp against an independent dense Jacobian on tiny grids.

The oracle (``tests/oracle.py``) writes the stencil out cell by cell on grids of at
most 12 cells, pads symbol arrays with ``numpy.pad`` to realise the boundary rules,
and differentiates every output cell by every input cell and parameter. Each stencil
is checked on the smallest grid its halo allows (where several ghosts fold onto one
cell) and on a larger one; all of its input fields and parameters are in ``wrt``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sympy as sp

import dpgen as dp
from dpgen.config import override
from dpgen.stencils import FACTORIES, laplacian, upwind
from oracle import RULES, DenseOracle, Shape, check_against_oracle, pad_symbols, smallest_shape

DT = sp.Symbol("dt", positive=True)
DX = sp.Symbol("dx", positive=True)
ALPHA = sp.Symbol("alpha", real=True)


# --- stencils beyond the shipped ones ------------------------------------------------------


def two_outputs(bc_p: str, bc_k: str) -> dp.Stencil:
    """Variable-coefficient diffusion step plus a second output (two fields, two rules)."""
    p, k, q = dp.Field("p", 1, bc_p), dp.Field("k", 1, bc_k), dp.Field("q", 1, bc_p)
    flux = (k[0] + k[1]) / 2 * (p[1] - p[0]) - (k[-1] + k[0]) / 2 * (p[0] - p[-1])
    return dp.Stencil("dense_two_outputs", {p: p[0] + DT / DX**2 * flux, q: k[0] * (p[1] - p[-1]) ** 2 / DX})


def width_two(bc: str) -> dp.Stencil:
    """Fourth-order Laplacian (offsets up to +-2) times a coefficient field."""
    p, c = dp.fields("p c", ndim=1, bc=bc)
    lap = (-p[2] + 16 * p[1] - 30 * p[0] + 16 * p[-1] - p[-2]) / (12 * DX**2)
    return dp.Stencil("dense_width_two", {p: c[0] * lap + ALPHA * c[-2] * p[2]})


def one_sided(bc: str) -> dp.Stencil:
    """Asymmetric stencil reading offsets 0, +1, +2 only (halo (0, 2))."""
    p, c = dp.fields("p c", ndim=1, bc=bc)
    return dp.Stencil("dense_one_sided", {p: (-3 * p[0] + 4 * p[1] - p[2]) / (2 * DX) * c[1] + ALPHA * c[2]})


def nonsmooth(bc: str) -> dp.Stencil:
    """exp, tanh, sin, Abs, Max, Min, sign and Piecewise on data of both signs.

    Under "edge", "symmetric" and "reflect" some ghosts equal their neighbour, so
    ``Abs(p[1] - p[0])``, ``Max(p[1], p[0])`` and ``Min(p[-1], p[1])`` sit exactly on
    their kinks at boundary cells: the exact Jacobian there pins down dpgen's
    conventions (sign(0) = 0, Heaviside(0) = 1/2).
    """
    p, u = dp.fields("p u", ndim=1, bc=bc)
    upw = sp.Piecewise((p[0] - p[-1], u[0] > 0), (p[1] - p[0], True))
    expr = (
        sp.exp(p[1] / 2) * sp.tanh(u[-1])
        + sp.sin(ALPHA * p[-1]) * sp.Abs(p[1] - p[0])
        + sp.Max(u[0], p[1])
        - sp.Min(u[1], 0) * p[0]
        + sp.sign(u[0]) * p[0] ** 2
        + u[0] * upw
        + sp.Max(p[1], p[0]) * u[1]
        + 2 * sp.Min(p[-1], p[1])
    )
    return dp.Stencil("dense_nonsmooth", {p: expr})


def positive_only(bc: str) -> dp.Stencil:
    """sqrt, log and a fractional power: defined on positive data only."""
    p, c = dp.fields("p c", ndim=1, bc=bc)
    expr = sp.sqrt(p[1] * c[0]) - ALPHA * sp.log(p[-1] / c[1]) + p[0] ** sp.Rational(3, 2) / c[-1]
    return dp.Stencil("dense_positive", {p: expr})


def diagonal_2d(bc_p: tuple[str, str], bc_k: tuple[str, str]) -> dp.Stencil:
    """Diagonal (corner-ghost) reads, per-axis rules differing between the two fields."""
    p, k = dp.Field("p", 2, bc_p), dp.Field("k", 2, bc_k)
    expr = k[1, 1] * p[1, 1] - k[-1, 1] * p[-1, -1] + p[0, 1] * p[1, -1] + sp.tanh(k[0, 0]) * p[0, -1]
    return dp.Stencil("dense_diagonal_2d", {p: expr / DX})


def width_two_2d(bc: tuple[str, str]) -> dp.Stencil:
    """Width-2 offsets on both axes (halo 2 on grids of 3 x 3 and 3 x 4)."""
    p, c = dp.fields("p c", ndim=2, bc=bc)
    return dp.Stencil("dense_width_two_2d", {p: c[0, 0] * (p[2, 0] - p[-2, 0]) + c[0, -2] * p[0, 2] * p[1, -1]})


# --- cases -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """A stencil, a readable id and whether its data must be positive."""

    name: str
    stencil: dp.Stencil
    positive: bool = False

    def shapes(self, salt: int) -> tuple[Shape, ...]:
        """The smallest grid the halo allows and a larger one (at most 12 cells)."""
        larger = {1: (7 + salt % 6,), 2: (3, 4), 3: (2, 2, 3)}[self.stencil.ndim]
        return tuple(dict.fromkeys([smallest_shape(self.stencil), larger]))


def _cases() -> list[Case]:
    cases = []
    for name, (factory, kwargs) in FACTORIES.items():
        if name == "laplace_7pt":
            continue  # 3-D: covered by per-axis rule triples below (each compile costs ~4 s)
        cases += [Case(f"{name}-{rule}", factory(bc=rule, **kwargs)) for rule in RULES]
    # Every rule on the 3-D factory, two compiles: (periodic, zero, edge), (symmetric, reflect, periodic).
    for triple in (RULES[:3], RULES[3:] + RULES[:1]):
        cases.append(Case(f"laplace_7pt-{','.join(triple)}", laplacian(ndim=3, bc=triple)))
    cases.append(Case("laplace_7pt-periodic", laplacian(ndim=3, bc="periodic")))  # the fold-free 3-D adjoint
    cases += [
        Case("upwind_2d-periodic,reflect", upwind(ndim=2, bc=("periodic", "reflect"))),
        Case("diagonal_2d-mixed", diagonal_2d(("edge", "zero"), ("symmetric", "reflect"))),
        Case("width_two_2d-reflect,periodic", width_two_2d(("reflect", "periodic"))),
        Case("two_outputs-reflect,edge", two_outputs("reflect", "edge")),
        Case("two_outputs-zero,symmetric", two_outputs("zero", "symmetric")),
    ]
    for rule in RULES:
        cases += [Case(f"width_two-{rule}", width_two(rule)), Case(f"one_sided-{rule}", one_sided(rule))]
    cases += [Case(f"nonsmooth-{rule}", nonsmooth(rule)) for rule in ("periodic", "edge", "reflect")]
    # Not "zero": a zero ghost would put log(0) into the stencil.
    cases += [Case(f"positive-{rule}", positive_only(rule), positive=True) for rule in ("symmetric", "edge")]
    return cases


CASES = _cases()
PARAMS = [
    pytest.param(case, shape, id=f"{case.name}-{'x'.join(map(str, shape))}")
    for salt, case in enumerate(CASES)
    for shape in case.shapes(salt)
]


def _all_inputs_and_params(stencil: dp.Stencil) -> tuple[str, ...]:
    return tuple(f.name for f in stencil.inputs) + tuple(p.name for p in stencil.params)


@pytest.mark.parametrize(("case", "shape"), PARAMS)
def test_forward_and_vjp_match_dense_jacobian(case: Case, shape: Shape) -> None:
    """Forward values, field cotangents and parameter gradients equal the oracle's to 1e-12."""
    kernel = dp.compile(case.stencil, wrt=_all_inputs_and_params(case.stencil))
    check_against_oracle(kernel, case.stencil, shape, positive=case.positive)


#: Cases also run through the ``prange`` kernel variants (compiling those costs ~2-4 s each).
PARALLEL_CASES = ("upwind_2d-periodic,reflect", "two_outputs-reflect,edge")


@pytest.mark.parametrize("case", [c for c in CASES if c.name in PARALLEL_CASES], ids=lambda c: c.name)
def test_parallel_kernels_match_dense_jacobian(case: Case) -> None:
    """The parallel kernels, which large grids use, agree with the oracle as well."""
    kernel = dp.compile(case.stencil, wrt=_all_inputs_and_params(case.stencil))
    with override(parallel_threshold=0):
        check_against_oracle(kernel, case.stencil, case.shapes(salt=0)[-1], positive=case.positive)


def test_case_list_covers_factories_and_rules() -> None:
    """Every shipped factory meets every boundary rule; the parallel cases exist."""
    covered = {(case.name.split("-")[0], rule) for case in CASES for f in case.stencil.inputs for rule in f.bc}
    assert {(name, rule) for name in FACTORIES for rule in RULES} <= covered
    assert set(PARALLEL_CASES) <= {case.name for case in CASES}


def test_oracle_itself() -> None:
    """The oracle pads like numpy.pad and reproduces a Jacobian computed by hand."""
    a, b, c = sp.symbols("a b c")
    syms = np.array([a, b, c], dtype=object)
    assert list(pad_symbols(syms, ("reflect",), (2,))) == [c, b, a, b, c, b, a]
    assert list(pad_symbols(syms, ("symmetric",), (2,))) == [b, a, a, b, c, c, b]
    assert list(pad_symbols(syms, ("zero",), (1,))) == [0, a, b, c, 0]
    p = dp.Field("p", 1, "symmetric")
    oracle = DenseOracle(dp.Stencil("oracle_check", {p: p[1] - p[0]}), (3,))
    g = {"p": np.array([1.0, 10.0, 100.0])}
    # J = [[-1, 1, 0], [0, -1, 1], [0, 0, 0]]: the ghost p[3] is p[2] under "symmetric".
    ref, size = oracle.vjp(g, {"p": np.zeros(3)}, {})
    np.testing.assert_array_equal(ref["p"], [-1.0, 1.0 - 10.0, 10.0])
    np.testing.assert_array_equal(size["p"], [1.0, 11.0, 10.0])
    np.testing.assert_array_equal(oracle.forward({"p": np.array([1.0, 2.0, 4.0])}, {})["p"], [1.0, 2.0, 0.0])


def test_fold_free_periodic_adjoint_exactly_where_the_gather_stays_inside_the_halo() -> None:
    """Which cases get ``adjoint_periodic`` (checked against the oracle by every case that has it)."""
    from dpgen.adjoint import derive_adjoint
    from dpgen.codegen.plan import periodic_adjoint_applies

    has = {c.name: periodic_adjoint_applies(derive_adjoint(c.stencil, _all_inputs_and_params(c.stencil))) for c in CASES}
    periodic = {"upwind_1d", "upwind_2d", "laplace_5pt", "laplace_7pt", "diffusion_2d", "central_diff_1d"}
    assert all(has[f"{name}-periodic"] for name in periodic), has
    assert not any(has[name] for name in has if not name.endswith("-periodic")), has
    # c[-2] * p[2] gathers c[j - 4] (beyond the halo); a one-sided halo has no room for the
    # transposed reads; tanh(u[-1]) * exp(p[1] / 2) gathers u[j - 2]
    assert not has["width_two-periodic"] and not has["one_sided-periodic"] and not has["nonsmooth-periodic"]
