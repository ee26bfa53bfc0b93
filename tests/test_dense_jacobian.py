"""Independent oracle: dpgen's forward and vjp against the exact dense Jacobian.

On tiny grids (at most 12 cells) the whole stencil is written out cell by cell, without
any of dpgen's adjoint, halo or code-generation machinery:

1. every input field becomes an object array of SymPy symbols, one per cell;
2. the array is padded axis by axis with ``numpy.pad`` in the mode that *defines* the
   field's boundary rule on that axis (``PAD_MODE`` below, written out here on purpose);
3. each output expression is instantiated at every cell by substituting the padded
   symbols for its accesses;
4. the Jacobian is the matrix of derivatives of every output cell with respect to every
   input cell (and parameter), evaluated in 30-digit arithmetic at random non-uniform
   float64 data.

The compiled kernels must then reproduce the forward values and ``J^T g`` (field and
parameter cotangents) to 1e-12, relative to the magnitude of the terms summed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import zlib
from typing import Iterator

import numpy as np
import pytest
import sympy as sp

import dpgen as dp
from dpgen.stencils import FACTORIES, upwind

#: Boundary rule -> ``numpy.pad`` mode (``"constant"`` pads with 0). Deliberately not
#: imported from dpgen: this table is the specification the kernels are checked against.
PAD_MODE = {
    "periodic": "wrap",
    "zero": "constant",
    "edge": "edge",
    "symmetric": "symmetric",
    "reflect": "reflect",
}
RULES = tuple(PAD_MODE)

#: Decimal digits of the reference arithmetic (float64 inputs are represented exactly).
DIGITS = 30
#: Largest error accepted, relative to the magnitude of the terms of each result.
RTOL = 1e-12

Cell = tuple[int, ...]


# --- the oracle -------------------------------------------------------------------------------


def pad_symbols(cells: np.ndarray, rules: tuple[str, ...], width: tuple[int, ...]) -> np.ndarray:
    """Pad an object array of symbols by ``width`` ghost cells per side, one axis at a time."""
    padded = cells
    for axis, (rule, w) in enumerate(zip(rules, width)):
        pad = [(0, 0)] * cells.ndim
        pad[axis] = (w, w)
        extra = {"constant_values": sp.S.Zero} if rule == "zero" else {}
        padded = np.pad(padded, pad, mode=PAD_MODE[rule], **extra)
    return padded


def _to_float(value: sp.Expr, what: str) -> float:
    number = sp.N(value, DIGITS)
    if not (number.is_Number and number.is_real and number.is_finite):
        raise AssertionError(f"oracle: {what} did not evaluate to a finite real number: {number}")
    return float(number)


@dataclasses.dataclass
class DenseOracle:
    """The stencil written out on every cell of a grid of ``shape``.

    Attributes
    ----------
    symbols : dict
        ``{input name: object array of cell symbols}``.
    cell_exprs : dict
        ``{output name: {cell: expression over cell symbols and parameters}}``.
    """

    stencil: dp.Stencil
    shape: tuple[int, ...]
    symbols: dict[str, np.ndarray] = dataclasses.field(init=False)
    cell_exprs: dict[str, dict[Cell, sp.Expr]] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        exprs = {out.name: e for out, e in self.stencil.outputs.items()}
        reads = {name: [s for s in e.free_symbols if isinstance(s, dp.Access)] for name, e in exprs.items()}
        all_reads = [a for rs in reads.values() for a in rs]
        # Ghost width per axis: the largest offset read (not dpgen's Stencil.halo).
        width = tuple(max(abs(a.offset[axis]) for a in all_reads) for axis in range(len(self.shape)))
        too_small = [n for n, w in zip(self.shape, width) if n <= w]
        assert not too_small, f"grid {self.shape} too small for ghost width {width}"
        fields = {a.field.name: a.field for a in all_reads}
        self.symbols = {
            name: np.array(
                [sp.Symbol(f"{name}@{'_'.join(map(str, c))}", real=True) for c in self.cells()], dtype=object
            ).reshape(self.shape)
            for name in fields
        }
        padded = {name: pad_symbols(self.symbols[name], f.bc, width) for name, f in fields.items()}
        self.cell_exprs = {}
        for name, expr in exprs.items():
            self.cell_exprs[name] = {
                cell: expr.xreplace({
                    a: padded[a.field.name][tuple(c + w + o for c, w, o in zip(cell, width, a.offset))]
                    for a in reads[name]
                })
                for cell in self.cells()
            }

    def cells(self) -> Iterator[Cell]:
        """Grid cells in C order."""
        return itertools.product(*(range(n) for n in self.shape))

    def _point(self, fields: dict[str, np.ndarray], params: dict[str, float]) -> dict[sp.Symbol, sp.Float]:
        point = {
            self.symbols[name][cell]: sp.Float(float(fields[name][cell]), DIGITS)
            for name in self.symbols
            for cell in self.cells()
        }
        point.update({p: sp.Float(float(params[p.name]), DIGITS) for p in self.stencil.params})
        return point

    def forward(self, fields: dict[str, np.ndarray], params: dict[str, float]) -> dict[str, np.ndarray]:
        """Exact output values (rounded to float64)."""
        point = self._point(fields, params)
        result = {}
        for name, per_cell in self.cell_exprs.items():
            out = np.empty(self.shape)
            for cell, expr in per_cell.items():
                out[cell] = _to_float(expr.xreplace(point), f"output {name} at {cell}")
            result[name] = out
        return result

    def vjp(
        self, cotangents: dict[str, np.ndarray], fields: dict[str, np.ndarray], params: dict[str, float]
    ) -> tuple[dict[str, np.ndarray | float], dict[str, np.ndarray | float]]:
        """``J^T g`` for every input field and parameter, and the magnitude ``|J|^T |g|``.

        The magnitude (same keys) bounds the round-off any correct evaluation may make.
        """
        point = self._point(fields, params)
        grads: dict[str, np.ndarray | float] = {name: np.zeros(self.shape) for name in self.symbols}
        sizes: dict[str, np.ndarray | float] = {name: np.zeros(self.shape) for name in self.symbols}
        grads.update({p.name: 0.0 for p in self.stencil.params})
        sizes.update({p.name: 0.0 for p in self.stencil.params})
        owner = {sym: (name, idx) for name, arr in self.symbols.items() for idx, sym in np.ndenumerate(arr)}
        for out, per_cell in self.cell_exprs.items():
            for cell, expr in per_cell.items():
                g = float(cotangents[out][cell])
                for var in expr.free_symbols:
                    term = g * _to_float(sp.diff(expr, var).xreplace(point), f"d {out}{cell} / d {var}")
                    if var in owner:
                        name, idx = owner[var]
                        grads[name][idx] += term
                        sizes[name][idx] += abs(term)
                    else:
                        grads[var.name] += term
                        sizes[var.name] += abs(term)
        return grads, sizes


# --- test data ----------------------------------------------------------------------------------


def random_fields(
    names: tuple[str, ...], shape: tuple[int, ...], rng: np.random.Generator, positive: bool
) -> dict[str, np.ndarray]:
    """Non-uniform values: in [0.5, 1.5) if ``positive``, else of both signs, |x| in [0.2, 1)."""
    if positive:
        return {n: rng.uniform(0.5, 1.5, size=shape) for n in names}
    result = {}
    for n in names:
        signs = rng.choice([-1.0, 1.0], size=shape)
        signs.flat[0], signs.flat[-1] = 1.0, -1.0  # both signs on every grid
        result[n] = signs * rng.uniform(0.2, 1.0, size=shape)
    return result


def assert_close(got: np.ndarray | float, ref: np.ndarray | float, size: np.ndarray | float, what: str) -> None:
    """``|got - ref| <= RTOL * max(size)``; ``size`` is the magnitude of the summed terms."""
    got_arr, ref_arr = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert got_arr.shape == ref_arr.shape, f"{what}: shape {got_arr.shape} != {ref_arr.shape}"
    scale = float(np.max(np.abs(size), initial=0.0))
    err = float(np.max(np.abs(got_arr - ref_arr), initial=0.0))
    tol = RTOL * scale if scale > 0 else 1e-300
    assert err <= tol, f"{what}: max error {err:.3e} > {tol:.3e}\n got: {got_arr}\n ref: {ref_arr}"


# --- stencils under test ---------------------------------------------------------------------------

DT = sp.Symbol("dt", positive=True)
DX = sp.Symbol("dx", positive=True)
ALPHA = sp.Symbol("alpha", real=True)


def two_outputs(bc_p: str, bc_k: str) -> dp.Stencil:
    """Variable-coefficient diffusion step and a flux, two outputs of two fields."""
    p, k = dp.Field("p", 1, bc_p), dp.Field("k", 1, bc_k)
    flux = (k[0] + k[1]) / 2 * (p[1] - p[0]) - (k[-1] + k[0]) / 2 * (p[0] - p[-1])
    q = dp.Field("q", 1, bc_p)
    return dp.Stencil("dense_two_outputs", {p: p[0] + DT / DX**2 * flux, q: k[0] * (p[1] - p[-1]) ** 2 / DX})


def width_two(bc: str) -> dp.Stencil:
    """Fourth-order Laplacian (offsets up to 2) with a variable coefficient."""
    p, c = dp.fields("p c", ndim=1, bc=bc)
    lap = (-p[2] + 16 * p[1] - 30 * p[0] + 16 * p[-1] - p[-2]) / (12 * DX**2)
    return dp.Stencil("dense_width_two", {p: c[0] * lap + ALPHA * c[-2] * p[2]})


def one_sided(bc: str) -> dp.Stencil:
    """Asymmetric stencil: reads offsets 0, +1 and +2 only (halo (0, 2))."""
    p, c = dp.fields("p c", ndim=1, bc=bc)
    return dp.Stencil("dense_one_sided", {p: (-3 * p[0] + 4 * p[1] - p[2]) / (2 * DX) * c[1] + ALPHA * c[2]})


def nonsmooth(bc: str) -> dp.Stencil:
    """exp, tanh, sin, Abs, Max, Min, sign and Piecewise on data of both signs."""
    p, u = dp.fields("p u", ndim=1, bc=bc)
    upw = sp.Piecewise((p[0] - p[-1], u[0] > 0), (p[1] - p[0], True))
    expr = (
        sp.exp(p[1] / 2) * sp.tanh(u[-1])
        + sp.sin(ALPHA * p[-1]) * sp.Abs(p[1] - p[0])
        + sp.Max(u[0], p[1]) - sp.Min(u[1], 0) * p[0]
        + sp.sign(u[0]) * p[0] ** 2
        + u[0] * upw
    )
    return dp.Stencil("dense_nonsmooth", {p: expr})


def positive_only(bc: str) -> dp.Stencil:
    """sqrt, log and a non-integer power: valid on positive data only."""
    p, c = dp.fields("p c", ndim=1, bc=bc)
    return dp.Stencil(
        "dense_positive",
        {p: sp.sqrt(p[1] * c[0]) - sp.log(p[-1] / c[1]) * ALPHA + p[0] ** sp.Rational(3, 2) / c[-1]},
    )


def diagonal_2d(bc_p: tuple[str, str], bc_k: tuple[str, str]) -> dp.Stencil:
    """2-D stencil with diagonal (corner-ghost) reads and different per-axis rules per field."""
    p, k = dp.Field("p", 2, bc_p), dp.Field("k", 2, bc_k)
    expr = k[1, 1] * p[1, 1] - k[-1, 1] * p[-1, -1] + p[0, 1] * p[1, -1] + sp.tanh(k[0, 0]) * p[0, -1]
    return dp.Stencil("dense_diagonal_2d", {p: expr / DX})


def width_two_2d(bc: tuple[str, str]) -> dp.Stencil:
    """2-D stencil with width-2 offsets on both axes (halo 2 on a 3 x 4 grid)."""
    p, c = dp.fields("p c", ndim=2, bc=bc)
    return dp.Stencil("dense_width_two_2d", {p: c[0, 0] * (p[2, 0] - p[-2, 0]) + c[0, -2] * p[0, 2] * p[1, -1]})


@dataclasses.dataclass(frozen=True)
class Case:
    """A stencil and the grid shapes to check it on."""

    name: str
    stencil: dp.Stencil
    shapes: tuple[tuple[int, ...], ...]
    positive: bool = False


def _shapes(stencil: dp.Stencil, salt: int) -> tuple[tuple[int, ...], ...]:
    """The smallest grid the halo allows, and a larger one of at most 12 cells."""
    smallest = tuple(max(h) + 1 for h in stencil.halo)
    larger = {1: (7 + salt % 6,), 2: (3, 4), 3: (2, 2, 3)}[stencil.ndim]
    return tuple(dict.fromkeys([smallest, larger]))


def _cases() -> list[Case]:
    built: list[tuple[str, dp.Stencil, bool]] = []
    for name, (factory, kwargs) in FACTORIES.items():
        built += [(f"{name}-{rule}", factory(bc=rule, **kwargs), False) for rule in RULES]
    built += [
        ("upwind_2d-periodic,reflect", upwind(ndim=2, bc=("periodic", "reflect")), False),
        ("upwind_3d-edge,zero,symmetric", upwind(ndim=3, bc=("edge", "zero", "symmetric")), False),
        ("diagonal_2d-mixed", diagonal_2d(("edge", "zero"), ("symmetric", "periodic")), False),
        ("diagonal_2d-reflect,periodic", diagonal_2d(("reflect", "periodic"), ("periodic", "reflect")), False),
        ("width_two_2d-reflect,symmetric", width_two_2d(("reflect", "symmetric")), False),
        ("two_outputs-reflect,edge", two_outputs("reflect", "edge"), False),
        ("two_outputs-zero,periodic", two_outputs("zero", "periodic"), False),
    ]
    for rule in RULES:
        built += [
            (f"width_two-{rule}", width_two(rule), False),
            (f"one_sided-{rule}", one_sided(rule), False),
        ]
    built += [(f"nonsmooth-{rule}", nonsmooth(rule), False) for rule in ("periodic", "edge", "reflect")]
    built += [(f"positive-{rule}", positive_only(rule), True) for rule in ("symmetric", "zero")]
    return [Case(name, s, _shapes(s, salt), pos) for salt, (name, s, pos) in enumerate(built)]


CASES = _cases()
PARAMS = [
    pytest.param(case, shape, id=f"{case.name}-{'x'.join(map(str, shape))}")
    for case in CASES
    for shape in case.shapes
]


# --- tests -----------------------------------------------------------------------------------------


def _wrt(stencil: dp.Stencil) -> tuple[str, ...]:
    return tuple(f.name for f in stencil.inputs) + tuple(p.name for p in stencil.params)


@pytest.mark.parametrize(("case", "shape"), PARAMS)
def test_forward_and_vjp_match_dense_jacobian(case: Case, shape: tuple[int, ...]) -> None:
    """Forward values, field cotangents and parameter gradients equal the dense oracle's."""
    stencil = case.stencil
    assert int(np.prod(shape)) <= 12
    kernel = dp.compile(stencil, wrt=_wrt(stencil))
    rng = np.random.default_rng(zlib.crc32(f"{case.name} {shape}".encode()))
    fields = random_fields(kernel.inputs, shape, rng, case.positive)
    params = {p: float(rng.uniform(0.5, 1.5)) for p in kernel.params}
    cotangents = {n: rng.standard_normal(shape) for n in kernel.outputs}
    oracle = DenseOracle(stencil, shape)

    expected = oracle.forward(fields, params)
    got = kernel.forward(**fields, **params)
    for name in kernel.outputs:
        assert_close(got[name], expected[name], expected[name], f"forward {name}")

    ref, size = oracle.vjp(cotangents, fields, params)
    grads = kernel.vjp(cotangents, **fields, **params)
    assert set(grads) == set(kernel.wrt)
    for name in kernel.wrt:
        assert_close(grads[name], ref[name], size[name], f"vjp wrt {name}")


def test_oracle_pads_like_numpy() -> None:
    """Sanity check of the oracle itself: per-axis padding and a hand-computed Jacobian."""
    syms = np.array(sp.symbols("a b c"), dtype=object)
    assert list(pad_symbols(syms, ("reflect",), (2,))) == list(sp.symbols("c b a b c b a"))
    assert list(pad_symbols(syms, ("zero",), (1,))) == [0, *sp.symbols("a b c"), 0]
    p = dp.Field("p", 1, "symmetric")
    oracle = DenseOracle(dp.Stencil("oracle_check", {p: p[1] - p[0]}), (3,))
    g = {"p": np.array([1.0, 10.0, 100.0])}
    ref, _ = oracle.vjp(g, {"p": np.zeros(3)}, {})
    # rows of J: [-1 1 0], [0 -1 1], [0 0 0] (p[3] reads p[2] under "symmetric")
    np.testing.assert_array_equal(ref["p"], [-1.0, 1 - 10.0, 10.0 + 100.0 - 100.0])
    assert math.isclose(oracle.forward({"p": np.array([1.0, 2.0, 4.0])}, {})["p"][1], 2.0)
