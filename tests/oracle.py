"""An independent dense-Jacobian oracle for dpgen stencils on tiny grids.

Nothing here uses dpgen's adjoint derivation, halo code or code generation; only the
stencil's definition (``stencil.outputs``: ``{Field: expression over Access atoms}``,
each access with ``.field`` and ``.offset``; ``stencil.params``) is read:

1. every input field becomes an object array of SymPy symbols, one per cell;
2. that array is padded axis by axis with ``numpy.pad`` in the mode that *defines* the
   field's boundary rule on the axis (``PAD_MODE``, written out here on purpose);
3. each output expression is instantiated at every cell by substituting the padded
   symbols for its accesses;
4. forward values and the Jacobian (every output cell differentiated with respect to
   every input cell and parameter) are evaluated in 30-digit arithmetic; float64
   inputs are represented exactly.

:func:`check_against_oracle` compares a compiled kernel's ``forward`` and ``vjp`` with
``f`` and ``J^T g`` to ``RTOL`` relative to the magnitude ``|J|^T |g|`` of the summed
terms (so no cancellation can make a correct kernel fail).
"""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from typing import Iterator

import numpy as np
import sympy as sp

import dpgen as dp

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

#: Decimal digits of the reference arithmetic.
DIGITS = 30
#: Largest error accepted, relative to the magnitude of the terms of each result.
RTOL = 1e-12
#: Most cells a dense check may use (the Jacobian is built symbol by symbol).
MAX_CELLS = 12

Cell = tuple[int, ...]
Shape = tuple[int, ...]


def pad_symbols(cells: np.ndarray, rules: tuple[str, ...], width: tuple[int, ...]) -> np.ndarray:
    """Pad an object array of symbols by ``width`` ghost cells per side, one axis at a time."""
    padded = cells
    for axis, (rule, w) in enumerate(zip(rules, width)):
        pad = [(0, 0)] * cells.ndim
        pad[axis] = (w, w)
        extra = {"constant_values": sp.S.Zero} if rule == "zero" else {}
        padded = np.pad(padded, pad, mode=PAD_MODE[rule], **extra)
    return padded


def ghost_width(stencil: dp.Stencil) -> tuple[int, ...]:
    """Ghost cells per side and axis: the largest offset read (computed here, not by dpgen)."""
    reads = [s for e in stencil.outputs.values() for s in e.free_symbols if isinstance(s, dp.Access)]
    return tuple(max(abs(a.offset[axis]) for a in reads) for axis in range(stencil.ndim))


def smallest_shape(stencil: dp.Stencil) -> Shape:
    """The smallest grid dpgen accepts: every axis longer than its ghost width."""
    return tuple(w + 1 for w in ghost_width(stencil))


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
    shape: Shape
    symbols: dict[str, np.ndarray] = dataclasses.field(init=False)
    cell_exprs: dict[str, dict[Cell, sp.Expr]] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        width = ghost_width(self.stencil)
        if any(n <= w for n, w in zip(self.shape, width)) or len(self.shape) != len(width):
            raise ValueError(f"grid {self.shape} does not fit ghost width {width}")
        fields = {
            s.field.name: s.field
            for e in self.stencil.outputs.values()
            for s in e.free_symbols
            if isinstance(s, dp.Access)
        }
        self.symbols = {
            name: np.array(
                [sp.Symbol(f"{name}@{'_'.join(map(str, c))}", real=True) for c in self.cells()], dtype=object
            ).reshape(self.shape)
            for name in fields
        }
        padded = {name: pad_symbols(self.symbols[name], f.bc, width) for name, f in fields.items()}
        self.cell_exprs = {}
        for out, expr in self.stencil.outputs.items():
            reads = [s for s in expr.free_symbols if isinstance(s, dp.Access)]
            self.cell_exprs[out.name] = {
                cell: expr.xreplace({
                    a: padded[a.field.name][tuple(c + w + o for c, w, o in zip(cell, width, a.offset))]
                    for a in reads
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
        """Exact output values, rounded to float64."""
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
        """``J^T g`` for every input field and parameter, and the magnitude ``|J|^T |g|``."""
        point = self._point(fields, params)
        names = list(self.symbols) + [p.name for p in self.stencil.params]
        grads = {n: np.zeros(self.shape) if n in self.symbols else 0.0 for n in names}
        sizes = {n: np.zeros(self.shape) if n in self.symbols else 0.0 for n in names}
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


def random_fields(
    names: tuple[str, ...], shape: Shape, rng: np.random.Generator, positive: bool
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


def assert_close(got: object, ref: object, size: object, what: str) -> None:
    """``|got - ref| <= RTOL * max(size)`` elementwise; ``size`` bounds the summed terms."""
    got_arr, ref_arr = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    assert got_arr.shape == ref_arr.shape, f"{what}: shape {got_arr.shape} != {ref_arr.shape}"
    scale = float(np.max(np.abs(size), initial=0.0))
    err = float(np.max(np.abs(got_arr - ref_arr), initial=0.0))
    tol = RTOL * scale if scale > 0 else 1e-300
    assert err <= tol, f"{what}: max error {err:.3e} > {tol:.3e}\n got: {got_arr}\n ref: {ref_arr}"


def check_against_oracle(
    kernel: dp.CompiledStencil, stencil: dp.Stencil, shape: Shape, *, positive: bool = False
) -> None:
    """Assert that ``kernel`` (compiled from ``stencil``) matches the dense oracle on ``shape``.

    Data are random and non-uniform, seeded by the stencil's text (name, expressions,
    boundary rules) and the shape; every field and parameter in ``kernel.wrt`` is checked.
    """
    assert int(np.prod(shape)) <= MAX_CELLS, f"grid {shape} too large for a dense check"
    rng = np.random.default_rng(zlib.crc32(f"{stencil} {shape}".encode()))
    fields = random_fields(kernel.inputs, shape, rng, positive)
    params = {p: float(rng.uniform(0.5, 1.5)) for p in kernel.params}
    cotangents = {n: rng.standard_normal(shape) for n in kernel.outputs}
    oracle = DenseOracle(stencil, shape)

    expected = oracle.forward(fields, params)
    got = kernel.forward(**fields, **params)
    assert set(got) == set(expected)
    for name in expected:
        assert_close(got[name], expected[name], expected[name], f"{stencil.name} on {shape}: forward {name}")

    ref, size = oracle.vjp(cotangents, fields, params)
    grads = kernel.vjp(cotangents, **fields, **params)
    assert set(grads) == set(kernel.wrt)
    for name in kernel.wrt:
        assert_close(grads[name], ref[name], size[name], f"{stencil.name} on {shape}: vjp wrt {name}")
    if kernel.spec.get("has_periodic_adjoint"):
        check_periodic_adjoint(kernel, shape, fields, params, cotangents, ref, size, rng)


def check_periodic_adjoint(kernel, shape, fields, params, cotangents, ref, size, rng) -> None:
    """The fold-free ``adjoint_periodic`` path of the padded layer against the oracle's ``ref``.

    Ghost cells of the padded cotangents and of the outputs start as NaN: the kernel
    must fill the former and neither read nor need the latter. Every other field
    accumulates onto a random ``prev`` (``add``), as a rollout's time-constant fields do.
    """
    padded_shape, inside = kernel.padded_shape(shape), kernel.interior(shape)

    def padded_nan(values: np.ndarray) -> np.ndarray:
        out = np.full(padded_shape, np.nan)
        out[inside] = values
        return out

    inputs = {n: padded_nan(fields[n]) for n in kernel.needs}
    pbars = {n: padded_nan(cotangents[n]) for n in kernel.outputs}
    prev = {n: rng.standard_normal(shape) for n in kernel.wrt_fields}
    add = {n: i % 2 == 1 for i, n in enumerate(kernel.wrt_fields)}
    adj = {n: padded_nan(prev[n]) if add[n] else np.full(padded_shape, np.nan) for n in kernel.wrt_fields}
    unfolded = kernel.adjoint_padded({n: b[inside] for n, b in pbars.items()}, inputs, params, adj, add, pbars)
    assert unfolded is False, "a periodic stencil given padded cotangents must take the fold-free path"
    for name in kernel.wrt_fields:
        expected = ref[name] + (prev[name] if add[name] else 0.0)
        assert_close(kernel.grid_cells(adj[name]), expected, size[name] + np.abs(prev[name]) * add[name],
                     f"{kernel.name} on {shape}: adjoint_periodic wrt {name}")
