"""Kernel plans: what each generated kernel computes, as small printable dataclasses.

The plan is the stage between the symbolic adjoint and the template. It fixes the
array names, the loop nests (with the adjoint's boundary strips split off from the
branch-free interior), and the CSE'd statements of every loop body — everything the
template needs and nothing it has to compute.

Conventions of the generated code (names with ``__`` cannot clash with user names):

* every input field arrives *padded* by the stencil's common halo ``(lo, hi)`` per axis;
* ``out__y`` is the (unpadded) output ``y``; ``bar__y`` its (unpadded) cotangent;
* ``adj__a`` is the padded cotangent of input ``a`` before the halo fold;
* forward loops run over cells ``i`` of the grid; the adjoint loops run over padded
  cells ``q`` (``q = j + lo``) so that ghost cotangents exist to be folded.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import sympy as sp

from ..adjoint import AdjointStencil, is_homogeneous_linear, is_linear, lower_nonsmooth
from ..boundary import PAD_MODE
from ..symbolic import Access, Offset, Stencil
from .printer import NumbaPrinter


@dataclasses.dataclass(frozen=True)
class Loop:
    """``for var in range(start, stop)`` (``numba.prange`` when ``parallel``) around ``body``.

    ``body`` holds nested loops or the name of a statement block of the kernel.
    """

    var: str
    start: str
    stop: str
    parallel: bool
    body: tuple["Loop | str", ...]


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One ``@numba.njit`` function: arguments, setup lines, loop nests, statement blocks.

    ``body`` holds loops or names of blocks (emitted in place). Every kernel is emitted
    twice: with ``numba.prange`` and as its ``<name>_serial`` twin.
    """

    name: str
    doc: str
    args: tuple[str, ...]
    setup: tuple[str, ...]
    body: tuple[Loop | str, ...]
    blocks: dict[str, tuple[str, ...]]
    returns: str | None = None
    #: the ``_serial`` twin's own plan where it differs (no RowViews), else this one's
    serial: "Kernel | None" = None
    #: blocks the ``_serial`` twin emits instead of these (see :func:`_store_lines`)
    serial_blocks: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: whether the kernel reads its padded arguments' ghost cells (the caller fills them);
    #: False for the kernels of :class:`WrappedCells`
    reads_ghosts: bool = True
    #: whether it calls the module's ``prefetch`` helper (emitted only where a kernel does)
    prefetches: bool = False


@dataclasses.dataclass(frozen=True)
class HaloAxis:
    """Halo fill and fold of one field along one axis with one rule, as code lines."""

    axis: int
    rule: str
    pad_mode: str
    lo: int
    hi: int
    fill: tuple[str, ...]
    fold: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class KernelPlan:
    """Everything the module template renders for one stencil and one ``wrt``."""

    stencil_name: str
    ndim: int
    halo: tuple[tuple[int, int], ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: tuple[str, ...]
    wrt_fields: tuple[str, ...]
    wrt_params: tuple[str, ...]
    adjoint_inputs: tuple[str, ...]
    adjoint_cotangents: tuple[str, ...]
    param_inputs: tuple[str, ...]
    param_cotangents: tuple[str, ...]
    bc: dict[str, tuple[str, ...]]
    halo_axes: dict[str, tuple[HaloAxis, ...]]
    #: halo fill of the padded cotangents ``adjoint_periodic`` reads (periodic)
    cotangent_halo_axes: dict[str, tuple[HaloAxis, ...]]
    forward: Kernel
    adjoint: Kernel | None
    #: the fold-free adjoint of a periodic stencil (see :func:`periodic_adjoint_applies`)
    adjoint_periodic: Kernel | None
    #: the adjoints of two steps in one pass (see :mod:`dpgen.codegen.pair`)
    adjoint_periodic_pair: Kernel | None
    param_gradients: Kernel | None
    diagonal: Kernel | None
    source_lines: tuple[str, ...]
    adjoint_lines: tuple[str, ...]
    #: inputs in which every output is affine (their forward values are not needed)
    linear_in: tuple[str, ...]
    #: whether the outputs are jointly linear (not affine) in the requested fields
    linear_wrt: bool


def halo_plan(rules: tuple[str, ...], halo: tuple[tuple[int, int], ...], array: str = "a") -> tuple[HaloAxis, ...]:
    """Fill and fold code per axis of padded ``array``, in padded coordinates (``n{axis}`` interior cells).

    A ghost of the low side at padded index ``g`` stands for cell ``p = g - lo < 0``;
    one of the high side at ``lo + n + r`` stands for cell ``p = n + r``. Its source is
    the padded index of ``boundary.source_index(rule, p, n)``, or none (zero). Each
    axis runs over the full padded extent of the other axes, so corners get the
    product of the per-axis maps, exactly as successive ``numpy.pad`` calls do. The
    other axes are explicit loops (``k1``, ``k2``): Numba compiles them much faster
    than slice assignments.
    """
    nd = len(rules)
    axes = []
    for axis, (rule, (lo, hi)) in enumerate(zip(rules, halo)):
        n = f"n{axis}"
        pairs: list[tuple[str, str | None]] = []
        for g in range(lo):
            src = {
                "periodic": _plus(n, g),
                "zero": None,
                "edge": str(lo),
                "symmetric": str(2 * lo - 1 - g),
                "reflect": str(2 * lo - g),
            }[rule]
            pairs.append((str(g), src))
        for r in range(hi):
            src = {
                "periodic": str(lo + r),
                "zero": None,
                "edge": _plus(n, lo - 1),
                "symmetric": _plus(n, lo - 1 - r),
                "reflect": _plus(n, lo - 2 - r),
            }[rule]
            pairs.append((_plus(n, lo + r), src))
        others = [a for a in range(nd) if a != axis]
        loops = [f"{'    ' * depth}for k{a} in range({array}.shape[{a}]):" for depth, a in enumerate(others)]
        pad = "    " * len(others)

        def at(index: str) -> str:
            parts = [index if a == axis else f"k{a}" for a in range(nd)]
            return f"{array}[{', '.join(parts)}]"

        fill = [f"{pad}{at(g)} = {at(src) if src else '0.0'}" for g, src in pairs]
        fold = [f"{pad}{at(src)} += {at(g)}" for g, src in pairs if src]
        axes.append(HaloAxis(
            axis, rule, PAD_MODE[rule], lo, hi,
            tuple(loops + fill) if fill else (),
            tuple(loops + fold) if fold else (),
        ))
    return tuple(axes)


def _plus(var: str, k: int) -> str:
    return var if k == 0 else (f"{var} + {k}" if k > 0 else f"{var} - {-k}")


def _index(var: str, ndim: int, offsets: Offset) -> str:
    return ", ".join(_plus(f"{var}{axis}", k) for axis, k in zip(range(ndim), offsets))


class RowViews:
    """Views ``a[k:]`` of arrays shifted along axis 0, so that the parallel loop indexes them bare.

    Numba guards every signed index with a negative-index wraparound select. LLVM sees
    through it for a serial ``range`` that starts at 0, but not for the index of a parfor
    (its bounds arrive from the scheduler), and with ``a[i + 1]``, ``a[i + 2]`` it then
    gathers where it could load vectors. ``a__s2[i]`` with ``a__s2 = a[2:]`` (still a
    C-contiguous array type) loads vectors: the 1-D upwind adjoint at 10^6 cells went
    from 1.97 to 0.88 ms. Only offsets >= 0 are viewed, and only in 1-D: in 2-D and 3-D
    the vectorized loop is the serial innermost one and the parallel row index is
    invariant in it (measured: no change). Serial twins index plainly (``enabled=False``):
    there the views cost 20 % on the upwind adjoint at 10^4 cells.

    In 3-D, kernels built with ``rows=True`` also read through row views: one 1-D view
    ``a__r<o0>_<o1> = a[j0 + o0, j1 + o1]`` per array and leading offsets, made in the
    axis-1 loop (:meth:`row_lines`), so the innermost loop does no 3-D index arithmetic.
    The 7-point forward at 100^3 went from 388 to 345 us (old and new kernels alternating
    in one process); the periodic adjoint did not change (339 against 336 us), nor did
    the 2-D 5-point forward with row views (304 against 306 us), so 2-D kernels keep
    indexing plainly.
    """

    def __init__(self, enabled: bool = True, rows: bool = False) -> None:
        self.enabled, self.rows = enabled, rows
        self.names: dict[tuple[str, int], str] = {}
        self.row_names: dict[tuple[str, str, int, int], str] = {}

    def at(self, array: str, var: str, offsets: Offset) -> str:
        """``array[var0 + offsets[0], var1 + offsets[1], ...]`` with axis 0 through a view."""
        if self.rows and len(offsets) == 3:
            tag = "_".join(str(o).replace("-", "m") for o in offsets[:2])
            name = self.row_names.setdefault((array, var, *offsets[:2]), f"{array}__r{tag}")
            return f"{name}[{_plus(f'{var}2', offsets[2])}]"
        first = offsets[0]
        if self.enabled and first > 0 and len(offsets) == 1:  # see the class docstring
            base = self.names.setdefault((array, first), f"{array}__s{first}")
            parts = [f"{var}0"]
        else:
            base, parts = array, [_plus(f"{var}0", first)]
        parts += [_plus(f"{var}{axis}", k) for axis, k in enumerate(offsets) if axis > 0]
        return f"{base}[{', '.join(parts)}]"

    def lines(self) -> tuple[str, ...]:
        return tuple(f"{name} = {array}[{k}:]" for (array, k), name in self.names.items())

    def row_lines(self) -> tuple[str, ...]:
        """The row views' definitions, for the axis-1 loop (empty unless 3-D ``rows``)."""
        return tuple(f"{name} = {array}[{_plus(f'{var}0', o0)}, {_plus(f'{var}1', o1)}]"
                     for (array, var, o0, o1), name in self.row_names.items())


class Hoister:
    """Move parameter-only subexpressions out of the loops (``c__N = ...`` in the setup).

    LLVM cannot hoist ``x / dx**2`` into ``x * c`` by itself (not bit-exact), so the
    division would run in every cell. The hoisted form is an equally valid evaluation
    of the same SymPy expression; the forward and adjoint kernels use it consistently.
    """

    def __init__(self) -> None:
        self.assignments: dict[sp.Expr, sp.Symbol] = {}

    def _name(self, expr: sp.Expr) -> sp.Expr:
        if expr.is_Atom or expr.is_Relational:
            return expr
        if expr not in self.assignments:
            self.assignments[expr] = sp.Symbol(f"c__{len(self.assignments)}")
        return self.assignments[expr]

    def __call__(self, expr: sp.Expr) -> sp.Expr:
        if not any(isinstance(s, Access) for s in expr.free_symbols):
            return self._name(expr) if isinstance(expr, sp.Expr) else expr
        if isinstance(expr, (sp.Add, sp.Mul)):
            fixed = [a for a in expr.args if not any(isinstance(s, Access) for s in a.free_symbols)]
            varying = [self(a) for a in expr.args if any(isinstance(s, Access) for s in a.free_symbols)]
            head = [self._name(expr.func(*fixed))] if fixed else []
            return expr.func(*head, *varying)
        if not expr.args:
            return expr
        return expr.func(*[self(a) for a in expr.args])

    def lines(self, printer: NumbaPrinter) -> tuple[str, ...]:
        return tuple(f"{sym} = {printer.doprint(e)}" for e, sym in self.assignments.items())


def exact_rewrites(expr: sp.Expr) -> sp.Expr:
    """Cheaper forms of ``expr`` that evaluate to the same floating-point numbers.

    * ``Heaviside(-x)`` with value 1/2 at 0 becomes ``1 - Heaviside(x)``: the values are
      0, 1/2 and 1, so the subtraction is exact, and ``-x`` is exactly the negation
      the hoisted ``x * (-1/dx)`` computes. CSE then evaluates one Heaviside where the
      upwind adjoint had two.
    * ``Max(0, x) - Min(0, x)`` becomes ``Abs(x)``: one of the two is 0, and subtracting
      0 is exact.

    With the accumulators that start from their first term (:func:`_sums`), the upwind
    adjoint's serial twin at 8192 cells, in L2 and bound by instruction issue, went from
    1.28-1.31 to 1.12-1.21 ns per cell.
    """

    def negated_heaviside(e: sp.Basic) -> bool:
        return (isinstance(e, sp.Heaviside) and len(e.args) == 2 and e.args[1] == sp.Rational(1, 2)
                and e.args[0].could_extract_minus_sign())

    expr = expr.replace(negated_heaviside, lambda e: 1 - sp.Heaviside(-e.args[0], sp.Rational(1, 2)))

    def abs_pair(e: sp.Basic) -> bool:
        if not isinstance(e, sp.Add) or len(e.args) != 2:
            return False
        maxes = [a for a in e.args if isinstance(a, sp.Max) and len(a.args) == 2 and sp.S.Zero in a.args]
        mins = [a.args[1] for a in e.args if isinstance(a, sp.Mul) and a.args[0] == -1 and len(a.args) == 2
                and isinstance(a.args[1], sp.Min) and len(a.args[1].args) == 2 and sp.S.Zero in a.args[1].args]
        return bool(maxes and mins) and set(maxes[0].args) == set(mins[0].args)

    def to_abs(e: sp.Add) -> sp.Expr:
        m = next(a for a in e.args if isinstance(a, sp.Max))
        # unevaluated: SymPy would move a positive factor out (Abs(u/dx) -> Abs(u)/dx), another rounding
        return sp.Abs(next(a for a in m.args if a != 0), evaluate=False)

    return expr.replace(abs_pair, to_abs)


def _cse_block(
    exprs: list[sp.Expr],
    targets: list[str],
    op: str | list[str],
    printer: NumbaPrinter,
    counter: itertools.count,
    hoister: Hoister,
) -> tuple[str, ...]:
    """Hoist invariants, CSE ``exprs`` and print ``target op expr`` lines (temporaries ``t__N``).

    ``op``: one operator for every target, or one per target.
    """
    ops = [op] * len(targets) if isinstance(op, str) else op
    symbols = (sp.Symbol(f"t__{next(counter)}") for _ in itertools.count())
    replacements, reduced = sp.cse([hoister(exact_rewrites(e)) for e in exprs], symbols=symbols, order="canonical")
    lines = [f"{sym} = {printer.doprint(value)}" for sym, value in replacements]
    lines += [f"{target} {o} {printer.doprint(e)}" for target, o, e in zip(targets, ops, reduced)]
    return tuple(lines)


def _sums(groups: dict, printer: NumbaPrinter, counter: itertools.count, hoister: Hoister,
          describe) -> tuple[list[str], set[str]]:
    """``acc__<a> = ...`` then ``+= ...`` per group of terms (comment ``describe(shift)``); the names written.

    For cells where every group applies (the guarded shell adds to 0.0 instead).

    The first term assigns rather than adds to 0.0: without fast-math LLVM must keep
    ``0.0 + x`` (it turns -0.0 into +0.0), an add per accumulator and cell. Names no
    group writes start at 0.0.
    """
    started: set[str] = set()
    block: list[str] = []
    for k in sorted(groups):
        names = list(groups[k])
        block.append(describe(k))
        block.extend(_cse_block([groups[k][n] for n in names], [f"acc__{n}" for n in names],
                                ["+=" if n in started else "=" for n in names], printer, counter, hoister))
        started.update(names)
    return block, started


def _grid_sizes(array: str, halo: tuple[tuple[int, int], ...]) -> tuple[str, ...]:
    """``n<axis> = <array>.shape[axis] - lo - hi``: the grid cells of padded ``array`` per axis."""
    return tuple(f"n{axis} = {array}.shape[{axis}] - {lo + hi}" for axis, (lo, hi) in enumerate(halo))


def _count_nonfinite(outs: list) -> str:
    """The forward kernels' count of cells with a non-finite output (see :func:`_forward_kernel`)."""
    return "bad__ += not (" + " + ".join(f"(v__{f.name} - v__{f.name})" for f in outs) + " == 0.0)"


def _forward_args(stencil: Stencil) -> tuple[str, ...]:
    return (tuple(f.name for f in stencil.inputs) + tuple(p.name for p in stencil.params)
            + tuple(f"out__{f.name}" for f in stencil.outputs))


def _full_loops(var: str, ndim: int, stop: str, block: str, first: int = 0, rows: str | None = None) -> Loop:
    """Loops over ``var{first}..var{ndim-1}`` in ``[0, stop{axis})``; the outermost parallel.

    ``rows`` names a block emitted in the axis-1 loop before the innermost one (3-D row views).
    """
    body: Loop | str = block
    for axis in reversed(range(first, ndim)):
        inner = (rows, body) if rows and axis == ndim - 2 else (body,)
        body = Loop(f"{var}{axis}", "0", f"{stop}{axis}", axis == 0, inner)
    return body  # type: ignore[return-value]


def _with_rows(views: RowViews, blocks: dict[str, tuple[str, ...]]) -> tuple[str | None, dict[str, tuple[str, ...]]]:
    """The name of the row-view block (None if there is none) and ``blocks`` with it added."""
    lines = views.row_lines()
    return ("rows", {**blocks, "rows": lines}) if lines else (None, blocks)


def _is_cotangent(a: Access, ndim: int) -> bool:
    return a.field.name.endswith("_bar") and a.field.bc == ("zero",) * ndim


def _cell_printer(stencil: Stencil, views: RowViews) -> NumbaPrinter:
    """Printer for loops over forward cells ``i``: inputs padded, cotangents not."""
    lo = [h[0] for h in stencil.halo]
    nd = stencil.ndim

    def index_access(a: Access) -> str:
        if _is_cotangent(a, nd):
            return views.at(f"bar__{a.field.name[:-4]}", "i", a.offset)
        return views.at(a.field.name, "i", tuple(o + l for o, l in zip(a.offset, lo)))

    return NumbaPrinter(index_access)


def _twins(build, rows: bool = False) -> Kernel:
    """``build(views)`` for the parallel kernel, and again without RowViews for its serial twin.

    Only where the parallel kernel reads through axis-0 views (1-D): otherwise both twins
    are the same code but for ``Kernel.serial_blocks``, and the SymPy work of a second
    build would be wasted. ``rows`` turns on the 3-D row views (for both twins).
    """
    views = RowViews(rows=rows)
    kernel = build(views)
    return dataclasses.replace(kernel, serial=build(RowViews(enabled=False, rows=rows))) if views.names else kernel


def plan_forward(stencil: Stencil) -> Kernel:
    """Forward kernel: ``out__y[i] = f(...)`` over the grid, inputs and outputs padded.

    Outputs are padded too (their ghost cells are not written): a kernel that writes into
    the grid cells of a padded array, rather than into a view of them, gets a contiguous
    array type from Numba and vectorizes its stores (a view is 1.5x slower to write), and
    rollouts and solvers keep every field in the padded layout with no copies. Where
    :func:`forward_wraps`, the kernel reads no ghost cell (:func:`_wrapped_forward_kernel`).
    """
    if forward_wraps(stencil):
        return _wrapped_forward_kernel(stencil)
    return _twins(lambda views: _forward_kernel(stencil, views), rows=True)


def forward_wraps(stencil: Stencil) -> bool:
    """Whether the forward kernel reads periodic neighbours at their wrapped grid cells.

    For 2-D and 3-D stencils whose inputs are all periodic on every axis (see
    :class:`WrappedCells`); 1-D fills are two cells.
    """
    nd = stencil.ndim
    return nd >= 2 and all(f.bc == ("periodic",) * nd for f in stencil.inputs)


def _wrapped_forward_kernel(stencil: Stencil) -> Kernel:
    """The forward kernel of a fully periodic 2-D or 3-D stencil, reading no ghost cell (see :class:`WrappedCells`)."""
    outs = list(stencil.outputs)
    wrapped = WrappedCells(stencil.ndim, stencil.halo, "i")

    def cell(at, hoister: Hoister) -> tuple[str, ...]:
        printer = NumbaPrinter(lambda a: at(a.field.name, a.offset))
        block = _cse_block([stencil.outputs[f] for f in outs], [f"v__{f.name}" for f in outs], "=", printer,
                           itertools.count(), hoister)
        block += tuple(f"{at(f'out__{f.name}', (0,) * stencil.ndim, plain=True)} = v__{f.name}" for f in outs)
        return (*block, _count_nonfinite(outs))

    body, blocks, hoisted = wrapped.loops(cell)
    return Kernel(
        "forward",
        "Forward stencil of a periodic grid: every output cell from the inputs' grid cells (their ghost "
        "cells are not read); returns the count of non-finite outputs.",
        _forward_args(stencil),
        _grid_sizes(f"out__{outs[0].name}", stencil.halo) + hoisted + ("bad__ = 0",),
        body,
        blocks,
        "bad__",
        reads_ghosts=False,
    )


class WrappedCells:
    """Loops over the grid cells of a fully periodic 2-D or 3-D grid that read no ghost cell.

    The rows an axis-0 or axis-1 offset reaches are chosen once per row by their wrapped
    index (padded: ``w0__m1 = (i0 + 0 + n0 if i0 < 1 else i0 + 0)``); along the
    innermost axis the first ``lo`` and last ``hi`` cells, whose neighbours wrap around,
    run in loops of their own with wrapped indices, and the cells between in the
    vectorized loop with plain ones. Every
    cell evaluates the same statements either way, so kernels give the bits of their
    ghost-reading versions. 3-D kernels read through 1-D row views made in the axis-1
    loop (see :class:`RowViews`).

    Kernels on such grids need no halo fill before each call: it wrote some 2 10^4 ghost
    cells at 100^3, each in a cache line of its own. Alternating in one process with the
    fill-and-kernel pair: 7-point forward 364 against 387 us and adjoint 361 against 382
    us at 100^3; 5-point forward 316 against 390 us, diffusion adjoint 1016 against 1118
    us at 1024^2.
    """

    def __init__(self, ndim: int, halo: tuple[tuple[int, int], ...], var: str):
        self.nd, self.halo, self.var = ndim, halo, var
        self.lo = [h[0] for h in halo]
        self.offsets: list[set[int]] = [set() for _ in range(ndim)]
        self.rows: dict[tuple[str, tuple[int, ...]], str] = {}  # 3-D: (array, leading offsets) -> row view

    def _wrapped(self, axis: int, o: int) -> str:
        return f"w{axis}__{'m' if o < 0 else 'p'}{abs(o)}"

    def _outer(self, axis: int, o: int) -> str:
        self.offsets[axis].add(o)
        return _plus(f"{self.var}{axis}", self.lo[axis]) if o == 0 else self._wrapped(axis, o)

    def _wrap(self, axis: int, o: int) -> str:
        """The padded index of grid cell ``i + o`` along ``axis``, wrapped around once.

        No modulo (an integer division per edge cell cost the 7-point adjoint at 100^3
        its whole gain): grids have more cells than the halo is wide (``min_cells``), so
        ``|o| < n`` and one wrap is enough.
        """
        i, n, lo = f"{self.var}{axis}", f"n{axis}", self.lo[axis]
        # both branches arithmetic: a parfor's index is unsigned, and Numba unifies a bare
        # unsigned branch with a signed one to float64, which cannot index
        plain = f"{i} + {o + lo}" if o + lo >= 0 else f"{i} - {-(o + lo)}"
        if o < 0:
            return f"({plain} + {n} if {i} < {-o} else {plain})"
        return f"({plain} - {n} if {_plus(i, o)} >= {n} else {plain})"

    def _inner(self, o: int, wrap: bool) -> str:
        last = self.nd - 1
        if wrap and o != 0:
            return self._wrap(last, o)
        return _plus(f"{self.var}{last}", o + self.lo[last])

    def at(self, array: str, offset: tuple[int, ...], wrap: bool) -> str:
        """``array`` (padded) at the grid cell ``offset`` from the loops' cell."""
        if self.nd == 3:
            tag = "_".join(str(o).replace("-", "m") for o in offset[:2])
            self.offsets[0].add(offset[0])
            self.offsets[1].add(offset[1])
            name = self.rows.setdefault((array, offset[:2]), f"{array}__r{tag}")
            return f"{name}[{self._inner(offset[2], wrap)}]"
        return f"{array}[{self._outer(0, offset[0])}, {self._inner(offset[1], wrap)}]"

    def loops(self, cell) -> tuple[tuple[Loop, ...], dict[str, tuple[str, ...]], tuple[str, ...]]:
        """The loop nest, its blocks and the hoisted setup lines for ``cell(at, hoister)``.

        ``cell`` prints one cell's statements with ``at(array, offset, plain=False)``; it
        is called twice (wrapped and plain innermost index) with one hoister, so both
        blocks name their hoisted coefficients alike.
        """
        nd, last, var = self.nd, self.nd - 1, self.var
        hoister = Hoister()
        blocks = {
            name: cell(lambda array, offset, plain=False, wrap=wrap: self.at(array, offset, wrap and not plain),
                       hoister)
            for name, wrap in (("cell_wrapped", True), ("cell", False))
        }
        for axis in range(last):
            blocks[f"wrap{axis}"] = tuple(f"{self._wrapped(axis, o)} = {self._wrap(axis, o)}"
                                          for o in sorted(self.offsets[axis]) if o != 0)
        if nd == 3:
            blocks["wrap1"] += tuple(f"{name} = {array}[{self._outer(0, o[0])}, {self._outer(1, o[1])}]"
                                     for (array, o), name in self.rows.items())
        # the innermost axis: cells [0, lo) and [n - hi, n) wrap, those between do not
        a, b = self.halo[last]
        n = f"n{last}"
        split = f"max({a}, {n} - {b})"
        body: tuple[Loop, ...] = (
            Loop(f"{var}{last}", "0", f"min({a}, {n})", False, ("cell_wrapped",)),
            Loop(f"{var}{last}", str(a), split, False, ("cell",)),
            Loop(f"{var}{last}", split, n, False, ("cell_wrapped",)),
        )
        for axis in reversed(range(last)):
            body = (Loop(f"{var}{axis}", "0", f"n{axis}", axis == 0, (f"wrap{axis}", *body)),)
        return body, blocks, hoister.lines(NumbaPrinter(str))


def _forward_kernel(stencil: Stencil, views: RowViews) -> Kernel:
    printer = _cell_printer(stencil, views)
    outs = list(stencil.outputs)
    cell = tuple(lo for lo, _ in stencil.halo)
    hoister = Hoister()
    block = _cse_block(
        [stencil.outputs[f] for f in outs], [f"v__{f.name}" for f in outs], "=", printer,
        itertools.count(), hoister,
    )
    # Store each value and count the non-finite ones on the way (v - v is NaN exactly for
    # NaN and +-inf): rollouts stop on NaN without a second pass over the outputs, and an
    # integer reduction does not keep LLVM from vectorizing the loop.
    # One update of the reduction variable per iteration (Numba's parfors allow no more):
    # the sum of v - v over the outputs is NaN as soon as one of them is not finite.
    block += tuple(f"{views.at(f'out__{f.name}', 'i', cell)} = v__{f.name}" for f in outs)
    block += (_count_nonfinite(outs),)
    setup = _grid_sizes(f"out__{outs[0].name}", stencil.halo) + views.lines() + hoister.lines(printer) + ("bad__ = 0",)
    rows, blocks = _with_rows(views, {"cell": block})
    return Kernel(
        "forward",
        "Forward stencil: every output cell from padded inputs; returns the count of non-finite outputs.",
        _forward_args(stencil),
        setup,
        (_full_loops("i", stencil.ndim, "n", "cell", rows=rows),),
        blocks,
        "bad__",
    )


def _cell_desc(shift: Offset) -> str:
    """``j0 + 1, j1`` for the forward cell ``i = j - shift`` (``j + 1`` in 1-D), for comments."""
    nd = len(shift)
    return ", ".join(_plus(f"j{axis}" if nd > 1 else "j", -x) for axis, x in enumerate(shift))


def _store_lines(wrt: list[str], at, through_prev: bool) -> tuple[str, ...]:
    """Write ``acc__<a>`` into ``adj__<a>`` at cell ``at(array)``, adding its old value where ``add__<a>``.

    ``add__<a>`` (a bool) makes the kernel accumulate: rollouts sum the padded cotangents
    of time-constant fields over all steps and fold the halo once at the end (folding is
    linear). ``prev__<a>`` is ``adj__<a>`` itself (the runtime passes the same array).

    Only a 1-D parallel kernel reads the old value through that second name
    (``through_prev``): there the vectorized loop is the parfor itself, and a
    read-modify-write of ``adj`` next to shifted reads of other arrays defeats LLVM's
    alias analysis (measured 2.5 -> 1.9 ms for the upwind adjoint at 10^6 cells).
    Everywhere else the vectorized loop is an ordinary loop (a serial twin's, or the
    innermost one inside a 2-D or 3-D parfor), which LLVM vectorizes behind a runtime
    overlap check of the arrays it writes against those it reads, and two names for
    one array fail that check: the loop then runs scalar. Reading ``adj__<a>`` itself:
    the upwind periodic adjoint's serial twin at 4096 cells 14.6 -> 4.7 us; the 3-D
    variable-coefficient diffusion's periodic adjoint at 100^3, 3.3 -> 1.1 ms; the
    7-point one accumulating, 0.69 -> 0.39 ms (the same bits).
    """
    old = "prev" if through_prev else "adj"
    return tuple(
        line
        for name in wrt
        for line in (
            f"if add__{name}:",
            f"    acc__{name} += {at(f'{old}__{name}')}",
            f"{at(f'adj__{name}')} = acc__{name}",
        )
    )


def _adjoint_args(adj: AdjointStencil, adjoint_inputs: tuple[str, ...], cotangents: tuple[str, ...],
                  cotangent: str) -> tuple[str, ...]:
    """Arguments of both adjoint kernels (``cotangent``: ``bar``, or ``pbar`` for padded cotangents)."""
    wrt = tuple(adj.field_terms)
    args = adjoint_inputs + tuple(f"{cotangent}__{c}" for c in cotangents) + tuple(p.name for p in adj.stencil.params)
    return args + tuple(f"{role}__{name}" for role in ("adj", "prev", "add") for name in wrt)


def plan_adjoint(
    adj: AdjointStencil, adjoint_inputs: tuple[str, ...], cotangents: tuple[str, ...]
) -> Kernel:
    """Fused gather-form adjoint of every requested input, over padded cells ``q``.

    Terms are grouped by forward-cell shift ``k``; a group is valid where the forward
    cell ``i = j - k`` lies on the grid. In the interior box every group is valid and
    the loop body has no branches; in the shell of cells around it each group is
    guarded, in one loop nest of the same kernel.
    """
    return _twins(lambda views: _adjoint_kernel(adj, adjoint_inputs, cotangents, views))


def _adjoint_kernel(
    adj: AdjointStencil, adjoint_inputs: tuple[str, ...], cotangents: tuple[str, ...], views: RowViews
) -> Kernel:
    s = adj.stencil
    nd = s.ndim
    lo = [h[0] for h in s.halo]

    def index_access(a: Access) -> str:
        if _is_cotangent(a, nd):
            # cotangent y_bar[-k] of the forward cell i = j - k, unpadded: i = q - lo - k
            return f"bar__{a.field.name[:-4]}[{_index('q', nd, [o - l for o, l in zip(a.offset, lo)])}]"
        return f"{a.field.name}[{_index('q', nd, a.offset)}]"

    printer = NumbaPrinter(index_access)
    counter = itertools.count()
    hoister = Hoister()
    wrt = list(adj.field_terms)
    groups = adj.gather_groups

    # Interior box along each axis: every shift valid, i.e. lo + kmax <= q < n + lo + kmin.
    shifts = list(groups)
    starts = [lo[axis] + max(k[axis] for k in shifts) for axis in range(nd)]
    ends = [lo[axis] + min(k[axis] for k in shifts) for axis in range(nd)]

    # The branch-free interior loops run over s = q - start (from 0): every index there is
    # `s + c` with a constant c >= 0, which Numba and LLVM see cannot be negative. With
    # `q - c` Numba keeps its negative-index wraparound select, and LLVM then gathers
    # instead of loading vectors (the 5-point adjoint ran 1.9x slower).
    # Along axis 0 (the parallel loop) arrays are read through RowViews for the same reason.

    def fast_at(array: str, offsets) -> str:
        return views.at(array, "s", tuple(starts[axis] + o for axis, o in enumerate(offsets)))

    def fast_access(a: Access) -> str:
        if _is_cotangent(a, nd):
            return fast_at(f"bar__{a.field.name[:-4]}", [o - l for o, l in zip(a.offset, lo)])
        return fast_at(a.field.name, a.offset)

    fast_printer = NumbaPrinter(fast_access)
    cell = _index("q", nd, (0,) * nd)
    guarded: list[str] = [f"acc__{name} = 0.0" for name in wrt]
    fast, started = _sums(groups, fast_printer, counter, hoister, lambda k: f"# forward cell i = {_cell_desc(k)}")
    fast = [f"acc__{name} = 0.0" for name in wrt if name not in started] + fast
    for k in sorted(groups):
        names = list(groups[k])
        block = _cse_block([groups[k][n] for n in names], [f"acc__{n}" for n in names], "+=", printer, counter,
                           hoister)
        desc = _cell_desc(k)
        conds = " and ".join(
            f"{l + x} <= q{axis} < {_plus(f'n{axis}', l + x)}" for axis, (l, x) in enumerate(zip(lo, k))
        )
        guarded.append(f"if {conds}:  # forward cell i = {desc} is on the grid")
        guarded.extend("    " + line for line in block)

    def stores(through_prev: bool) -> dict[str, tuple[str, ...]]:
        return {"fast": (*fast, *_store_lines(wrt, lambda array: fast_at(array, (0,) * nd), through_prev)),
                "guarded": (*guarded, *_store_lines(wrt, lambda array: f"{array}[{cell}]", through_prev))}

    # both variants (1-D) before the setup lines, which define the views their stores read through
    blocks = stores(through_prev=nd == 1)
    serial_blocks = stores(through_prev=False) if nd == 1 else {}

    data_args = _adjoint_args(adj, adjoint_inputs, cotangents, "bar")
    grid = tuple(f"n{axis} = bar__{cotangents[0]}.shape[{axis}]" for axis in range(nd))
    setup = list(grid)
    setup += [f"N{axis} = adj__{wrt[0]}.shape[{axis}]" for axis in range(nd)]
    # [lo__k, hi__k): the interior box of padded cells along axis k (names with "__" cannot clash)
    setup += [f"lo__{axis} = {starts[axis]}" for axis in range(nd)]
    setup += [f"hi__{axis} = max(lo__{axis}, {_plus(f'n{axis}', ends[axis])})" for axis in range(nd)]
    setup += views.lines()
    setup += hoister.lines(printer)

    # The shell of padded cells around the box, in one loop nest with one copy of the
    # guarded block: every outer index runs over the whole axis (flag e__k: outside the
    # box along an axis so far) and the innermost one only over the cells it must visit,
    # all of them where an outer axis is already outside, else the two strips, through
    # r__ -> q. (A call per shell cell to a guarded function cost 3x the interior in 3-D;
    # inlining that function at each of its call sites cost seconds of compile time.)
    last = nd - 1
    outside = f"e__{last - 1}" if nd > 1 else "False"
    for axis in range(nd - 1):
        before = f"e__{axis - 1} or " if axis else ""
        blocks[f"edge{axis}"] = (f"e__{axis} = {before}q{axis} < lo__{axis} or q{axis} >= hi__{axis}",)
    blocks["count"] = (f"m__ = N{last} if {outside} else lo__{last} + N{last} - hi__{last}",)
    blocks["remap"] = (f"q{last} = r__ if ({outside} or r__ < lo__{last}) else hi__{last} + r__ - lo__{last}",)
    # never prange: a parfor index is unsigned and would make the remapped q a float; in 1-D
    # the shell is four cells
    shell: Loop | str = Loop("r__", "0", "m__", False, ("remap", "guarded"))
    shell_body: tuple[Loop | str, ...] = ("count", shell)
    for axis in reversed(range(nd - 1)):
        shell = Loop(f"q{axis}", "0", f"N{axis}", axis == 0, (f"edge{axis}", *shell_body))
        shell_body = (shell,)
    box: Loop | str = "fast"
    for axis in reversed(range(nd)):
        box = Loop(f"s{axis}", "0", f"hi__{axis} - lo__{axis}", axis == 0, (box,))

    return Kernel(
        "adjoint",
        "Fused adjoint: padded cotangents of " + ", ".join(wrt) + " (fold the halo afterwards).",
        data_args,
        tuple(setup),
        (*shell_body, box),
        blocks,
        serial_blocks=serial_blocks,
    )


def periodic_adjoint_applies(adj: AdjointStencil) -> bool:
    """Whether the adjoint can gather from a periodically padded cotangent, with no fold.

    On a grid that is periodic for every field the adjoint differentiates or reads, the
    forward cell ``i = j - k`` of a cell ``j`` near the boundary is the periodic image
    of a cell on the other side, and every forward value it reads is a periodic image
    too. So the gather formula, evaluated at every grid cell with the cotangent padded
    periodically (halo filled like a field's), is the whole adjoint: no ghost
    cotangents, no boundary strips, no fold. It needs every access of the formula to
    fall inside the halo (``c[-2] * p[2]`` with halo 2 gathers ``c[j - 4]``, which does
    not), and then replaces the guarded boundary shell, which cost as much as the
    interior in 3-D (0.31 against 0.35 ms for the 7-point adjoint at 100^3).
    """
    s = adj.stencil
    nd = s.ndim
    periodic = ("periodic",) * nd
    groups = adj.gather_groups
    if not groups:
        return False
    if any(f.bc != periodic for f in s.inputs if f.name in adj.field_terms):
        return False
    for per_field in groups.values():
        for expr in per_field.values():
            for a in expr.free_symbols:
                if not isinstance(a, Access):
                    continue
                if not _is_cotangent(a, nd) and a.field.bc != periodic:
                    return False
                if any(not -lo <= o <= hi for o, (lo, hi) in zip(a.offset, s.halo)):
                    return False
    return True


def periodic_gather_block(adj: AdjointStencil, printer: NumbaPrinter, hoister: Hoister) -> list[str]:
    """Statements that sum every forward cell's contribution into ``acc__<a>`` at one cell ``j``.

    The periodic adjoint's loop body before its stores; ``printer`` decides where each
    access reads. Kernels that must agree bit for bit (``adjoint_periodic`` and the
    two-step ``adjoint_periodic_pair``) build it with this one function, and it numbers
    its temporaries from ``t__0`` every time: SymPy orders the terms of a sum by the
    names of their symbols (``t__10`` before ``t__8``), and the order of a sum is part
    of its rounding. ``hoister`` must have seen the same expressions in the same order
    (``c__N`` names order sums too).
    """
    block, started = _sums(adj.gather_groups, printer, itertools.count(), hoister,
                           lambda k: f"# forward cell i = {_cell_desc(k)} (its periodic image)")
    return [f"acc__{name} = 0.0" for name in adj.field_terms if name not in started] + block


def plan_adjoint_periodic(
    adj: AdjointStencil, adjoint_inputs: tuple[str, ...], cotangents: tuple[str, ...]
) -> Kernel:
    """The adjoint of a periodic stencil over grid cells ``j``, from padded cotangents ``pbar__<y>``.

    Only where :func:`periodic_adjoint_applies`. The caller fills the cotangents' halos
    (``fill_halo_bar__<y>``); ``adj__<a>`` is written at the grid cells of the padded
    array and its ghost cells are left alone (there is nothing to fold).
    """
    if adj.stencil.ndim >= 2:  # every field is periodic: read the wrapped cells, fill nothing
        return _wrapped_periodic_adjoint_kernel(adj, adjoint_inputs, cotangents)
    return _twins(lambda views: _periodic_adjoint_kernel(adj, adjoint_inputs, cotangents, views), rows=True)


def _wrapped_periodic_adjoint_kernel(
    adj: AdjointStencil, adjoint_inputs: tuple[str, ...], cotangents: tuple[str, ...]
) -> Kernel:
    """``adjoint_periodic`` in 2-D and 3-D, reading no ghost cell of the inputs or cotangents (:class:`WrappedCells`)."""
    s = adj.stencil
    nd = s.ndim
    wrt = list(adj.field_terms)

    def cell(at, hoister: Hoister) -> tuple[str, ...]:
        def access(a: Access) -> str:
            return at(f"pbar__{a.field.name[:-4]}" if _is_cotangent(a, nd) else a.field.name, a.offset)

        block = periodic_gather_block(adj, NumbaPrinter(access), hoister)
        return (*block, *_store_lines(wrt, lambda array: at(array, (0,) * nd, plain=True), through_prev=False))

    body, blocks, hoisted = WrappedCells(nd, s.halo, "j").loops(cell)
    return Kernel(
        "adjoint_periodic",
        "Adjoint of the periodic stencil from the grid cells of padded cotangents (their ghost cells, and "
        "the inputs', are not read): grid cells of " + ", ".join(f"adj__{n}" for n in wrt) + " (no fold).",
        _adjoint_args(adj, adjoint_inputs, cotangents, "pbar"),
        _grid_sizes(f"pbar__{cotangents[0]}", s.halo) + hoisted,
        body,
        blocks,
        reads_ghosts=False,
    )


def _periodic_adjoint_kernel(
    adj: AdjointStencil, adjoint_inputs: tuple[str, ...], cotangents: tuple[str, ...], views: RowViews
) -> Kernel:
    s = adj.stencil
    nd = s.ndim
    lo = tuple(h[0] for h in s.halo)

    def access(a: Access) -> str:
        array = f"pbar__{a.field.name[:-4]}" if _is_cotangent(a, nd) else a.field.name
        return views.at(array, "j", tuple(o + l for o, l in zip(a.offset, lo)))

    printer = NumbaPrinter(access)
    hoister = Hoister()
    wrt = list(adj.field_terms)
    block = periodic_gather_block(adj, printer, hoister)

    def cell(through_prev: bool) -> tuple[str, ...]:
        return (*block, *_store_lines(wrt, lambda array: views.at(array, "j", lo), through_prev))

    # both variants (1-D) before the setup and row lines, which define the views they read through
    blocks = {"cell": cell(through_prev=nd == 1)}
    serial_blocks = {"cell": cell(through_prev=False)} if nd == 1 else {}
    setup = _grid_sizes(f"pbar__{cotangents[0]}", s.halo) + views.lines() + hoister.lines(printer)
    rows, blocks = _with_rows(views, blocks)
    return Kernel(
        "adjoint_periodic",
        "Adjoint of the periodic stencil from periodically padded cotangents: grid cells of "
        + ", ".join(f"adj__{n}" for n in wrt) + " (no fold).",
        _adjoint_args(adj, adjoint_inputs, cotangents, "pbar"),
        setup,
        (_full_loops("j", nd, "n", "cell", rows=rows),),
        blocks,
        serial_blocks=serial_blocks,
    )


def plan_param_gradients(
    adj: AdjointStencil, param_inputs: tuple[str, ...], cotangents: tuple[str, ...]
) -> Kernel:
    """Parameter gradients: ``p_bar = sum_i sum_out y_bar[i] * df/dp`` as one reduction."""
    return _twins(lambda views: _param_kernel(adj, param_inputs, cotangents, views))


def _param_kernel(
    adj: AdjointStencil, param_inputs: tuple[str, ...], cotangents: tuple[str, ...], views: RowViews
) -> Kernel:
    s = adj.stencil
    nd = s.ndim
    printer = _cell_printer(s, views)
    hoister = Hoister()
    names = list(adj.param_terms)
    block = _cse_block(
        [adj.expression(n) for n in names], [f"acc__{n}" for n in names], "+=", printer, itertools.count(), hoister
    )
    setup = tuple(f"n{axis} = bar__{cotangents[0]}.shape[{axis}]" for axis in range(nd))
    setup += views.lines() + hoister.lines(printer)
    setup += tuple(f"acc__{n} = 0.0" for n in names)
    args = param_inputs + tuple(f"bar__{c}" for c in cotangents) + tuple(p.name for p in s.params)
    returns = "(" + ", ".join(f"acc__{n}" for n in names) + ",)"
    return Kernel(
        "param_gradients",
        "Parameter gradients (" + ", ".join(names) + ") as sums over the grid.",
        args,
        setup,
        (_full_loops("i", nd, "n", "cell"),),
        {"cell": block},
        returns,
    )


def plan_diagonal(stencil: Stencil) -> Kernel | None:
    """Smallest centre coefficient ``df_x/dx[0]`` over the grid, per explicit update ``x -> x_new``.

    For an explicit step that is linear in ``x`` the update is monotone (and, for upwind
    advection and diffusion, within its CFL limit) where every centre coefficient is
    ``>= 0``; ``1 - min`` is then the Courant (or diffusion) number. The runtime uses
    it to warn before every rollout call: a pass over the grid like one forward step, so
    it runs in parallel on large grids (serially it cost a 10^6-cell rollout of 100 steps
    3.7 ms, 7 % of its forward).
    """
    names = [f.name for f in stencil.outputs if f in set(stencil.inputs)]
    if not names:
        return None
    return _twins(lambda views: _diagonal_kernel(stencil, names, views))


def _diagonal_kernel(stencil: Stencil, names: list[str], views: RowViews) -> Kernel:
    printer = _cell_printer(stencil, views)
    hoister = Hoister()
    exprs = [lower_nonsmooth(sp.diff(stencil.outputs[stencil.field(n)], stencil.field(n).center)) for n in names]
    block = _cse_block(exprs, [f"val__{n}" for n in names], "=", printer, itertools.count(), hoister)
    block += tuple(f"low__{n} = min(low__{n}, val__{n})" for n in names)
    first = stencil.inputs[0].name
    setup = tuple(f"n{axis} = {first}.shape[{axis}] - {sum(stencil.halo[axis])}" for axis in range(stencil.ndim))
    setup += views.lines() + hoister.lines(printer) + tuple(f"low__{n} = math.inf" for n in names)
    return Kernel(
        "diagonal_min",
        "Smallest centre coefficient d(" + ", ".join(f"{n}_new)/d{n}[0]" for n in names) + " over the grid.",
        tuple(f.name for f in stencil.inputs) + tuple(p.name for p in stencil.params),
        setup,
        (_full_loops("i", stencil.ndim, "n", "cell"),),
        {"cell": block},
        "(" + ", ".join(f"low__{n}" for n in names) + ",)",
    )


def fills_own_halos(kernel: Kernel, fields: Sequence[str], cotangents: Sequence[str]) -> Kernel:
    """``kernel`` (1-D) filling the ghost cells of its padded arguments itself, before its loop.

    The runtime then fills none before calling it (``SPEC["kernels_fill_halos"]``). A 1-D
    halo is a few cells, but each fill called from Python was a Numba dispatch of its own:
    a 64-cell upwind step cost 0.9 us with its two fills, against 0.28 us for the kernel
    alone. Padded arguments are the fields (``d``), a pair kernel's earlier states
    (``early__d``) and periodic cotangents (``pbar__d``); grid-shaped cotangents
    (``bar__d``) and outputs have no ghost cells to fill.
    """
    calls = []
    for arg in kernel.args:
        role, _, name = arg.rpartition("__")
        if role in ("", "early") and name in fields:
            calls.append(f"fill_halo_{name}({arg})")
        elif role == "pbar" and name in cotangents:
            calls.append(f"fill_halo_bar__{name}({arg})")
    setup = ("# halo: filled here, not by the caller (1-D)",) + tuple(calls) if calls else ()

    def with_fills(k: Kernel) -> Kernel:
        return dataclasses.replace(k, setup=setup + k.setup)

    return dataclasses.replace(with_fills(kernel), serial=None if kernel.serial is None else with_fills(kernel.serial))


def make_plan(adj: AdjointStencil) -> KernelPlan:
    """Plan every kernel of the module for ``adj.stencil`` and the adjoints in ``adj``."""
    from .pair import pair_applies, plan_adjoint_periodic_pair  # pair builds on this module's pieces

    s = adj.stencil
    field_exprs = [t.coefficient for ts in adj.field_terms.values() for t in ts]
    param_exprs = [t.derivative for ts in adj.param_terms.values() for t in ts]
    field_order = [f.name for f in s.inputs]

    def reads(exprs: list[sp.Expr]) -> tuple[str, ...]:
        names = {a.field.name for e in exprs for a in e.free_symbols if isinstance(a, Access)}
        return tuple(n for n in field_order if n in names)

    def cots(outs: set[str]) -> tuple[str, ...]:
        return tuple(f.name for f in s.outputs if f.name in outs)

    adjoint_inputs = reads(field_exprs)
    adjoint_cots = cots({t.output for ts in adj.field_terms.values() for t in ts})
    param_inputs = reads(param_exprs)
    param_cots = cots({t.output for ts in adj.param_terms.values() for t in ts})
    has_field_terms = any(adj.field_terms.values())
    periodic = has_field_terms and periodic_adjoint_applies(adj)
    has_param_terms = any(adj.param_terms.values())

    source = [f"{f.name}_new[0] = {e}" for f, e in s.outputs.items()]
    adjoint_lines = str(adj).splitlines()[1:] if adj.wrt else []

    def own(kernel: Kernel | None) -> Kernel | None:
        """1-D kernels fill their own halos (see :func:`fills_own_halos`)."""
        return kernel if s.ndim != 1 or kernel is None else fills_own_halos(kernel, field_order, adjoint_cots)

    return KernelPlan(
        stencil_name=s.name,
        ndim=s.ndim,
        halo=s.halo,
        inputs=tuple(field_order),
        outputs=tuple(f.name for f in s.outputs),
        params=tuple(p.name for p in s.params),
        wrt_fields=tuple(adj.field_terms),
        wrt_params=tuple(adj.param_terms),
        adjoint_inputs=adjoint_inputs,
        adjoint_cotangents=adjoint_cots,
        param_inputs=param_inputs,
        param_cotangents=param_cots,
        bc={f.name: f.bc for f in s.inputs},
        halo_axes={f.name: halo_plan(f.bc, s.halo) for f in s.inputs},
        cotangent_halo_axes={c: halo_plan(("periodic",) * s.ndim, s.halo) for c in adjoint_cots} if periodic else {},
        forward=own(plan_forward(s)),
        adjoint=own(plan_adjoint(adj, adjoint_inputs, adjoint_cots) if has_field_terms else None),
        adjoint_periodic=own(plan_adjoint_periodic(adj, adjoint_inputs, adjoint_cots) if periodic else None),
        adjoint_periodic_pair=own(
            plan_adjoint_periodic_pair(adj, adjoint_inputs, adjoint_cots) if pair_applies(adj, periodic) else None
        ),
        param_gradients=own(plan_param_gradients(adj, param_inputs, param_cots) if has_param_terms else None),
        diagonal=own(plan_diagonal(s)),
        source_lines=tuple(source),
        adjoint_lines=tuple(adjoint_lines),
        linear_in=tuple(n for n in field_order if is_linear(s, n)),
        linear_wrt=bool(adj.field_terms) and is_homogeneous_linear(s, list(adj.field_terms)),
    )
