"""``adjoint_periodic_pair``: the adjoints of two consecutive time steps in one pass.

A reverse sweep over an explicit step ``x_{t+1} = f(x_t, c)`` reads and writes every
state cotangent once per step, and each of those grid arrays goes through the cache.
On a periodic grid the two steps ``t`` and ``t - 1`` can share one pass (temporal
blocking): the grid is cut into chunks of rows along axis 0; each chunk computes the
intermediate cotangent ``x_bar_t`` on its rows plus the halo rows the second step
reads (a few rows computed twice, by neighbouring chunks) into a buffer of its worker
thread's own, and from it the cotangent ``x_bar_{t-1}`` of its rows. ``x_bar_t`` never
goes through the shared cache, and the gradients of time-constant fields are read and
written once per pair.

Measured on 2 cores: the 1-D upwind pair at 10^6 cells with every array in the L3
cache, 1.35 against 1.6-1.7 ms for two single steps. In rollouts (``python -m
benchmarks run``, DPGEN_FUSE_ADJOINT_STEPS=0 and 1 alternating): upwind 10^4 cells x
1000 steps, value + gradient 40-41.5 against 34.6 ms; diffusion 1024^2 x 100, 220-222
against 207-215 ms.

In 1-D the two stages share one loop (see below). With the stages in separate loops
over each chunk, the upwind rollout at 10^6 cells x 100 steps did not gain (166 against
165-171 ms): there each step's state comes back from memory, and the stream of each
stage's state stopped and restarted with every chunk. In one loop both states stream
without a break: the reverse sweep alone (kernels called in a loop after a recording
forward) took 71-73 ms against 89 ms for single steps and 92 ms for the two-loop pair,
and the rollout's value + gradient 132 against 152 ms unpaired (alternating in one
process).

The kernel applies where every output of the stencil is also an input (a state) and
is differentiated, and the adjoint is the fold-free periodic one
(:func:`~dpgen.codegen.plan.periodic_adjoint_applies`). Each cell evaluates the same
statements as ``adjoint_periodic`` (:func:`~dpgen.codegen.plan.periodic_gather_block`)
in the same order, so a pair is bitwise equal to two single reverse steps.

Arguments: the adjoint inputs at step ``t`` (``<a>``), the state inputs among them at
step ``t - 1`` (``early__<a>``), the padded cotangents of the outputs after step ``t``
(``pbar__<y>``, halo filled), the parameters, ``adj__<a>`` and ``add__<a>`` per
differentiated field as for ``adjoint_periodic`` (no ``prev__<a>``), and one scratch
array per state, ``scratch__<y>`` of shape ``(workers, rows + lo + hi, <padded axes
1, 2>)``: its shape sets the rows per chunk and the number of workers, each of which
takes a contiguous run of chunks. States get the cotangent before step ``t - 1``
(``add__`` as usual); a time-constant field gets both steps' contributions (``add__``:
on top of its value).

Loops, per chunk of rows ``[r0__, r0__ + L__)``, in 2-D and 3-D:

1. the intermediate cotangents into ``mid__<y>`` (rows ``r0__ - lo`` to ``r0__ + L__ +
   hi``): the wrapped low rows, the chunk's own rows (which also add the first step's
   part of the constant fields' gradients), the wrapped high rows;
2. the periodic fill of ``mid__<y>`` along axes 1 and 2;
3. the chunk's rows of the second step, reading ``mid__<y>`` and ``early__<a>``.

In 1-D the vectorized loop runs along axis 0 itself, and stage 1 runs
:data:`AHEAD_ROWS` (plus the halo) rows ahead of stage 2 in one loop: the wrapped low
rows; stage 1 alone on the first ``K`` own rows; both stages, stage 1 at row ``m__ +
K`` and stage 2 at row ``m__``; the wrapped high rows; stage 2 alone on the last rows.
Each row still gets stage 1 before stage 2, in the same order of additions.

The 1-D fused loop runs in blocks of :data:`PREFETCH_BLOCK` rows, each of which first
asks (``prefetch``, a helper of the module) for the rows of both recorded states that the
loop reaches :data:`PREFETCH_AHEAD` rows later: the states come from memory, and the
hardware's stream prefetcher stops at every 4 KiB page. At 10^6 cells x 100 steps, with
the kernels called after a recording forward, the reverse sweep took 70 against 79 ms
(states in the cache: 61 against 59 ms); the upwind rollout's value + gradient 153
against 161 ms (alternating in one process); at 10^4 cells x 1000 steps, 41 against 42 ms.

Rows are read through views, so that every inner loop indexes from 0 (see
:class:`~dpgen.codegen.plan.RowViews`): in 1-D one view per array and offset per chunk
(``a__c1 = a[r0__ + 1:]``; the last loop's from row ``r0__ + E__``, ``a__e1``), in 2-D
and 3-D one per array and row offset per row (``a__p1 = a[g0 + 1]``).
"""

from __future__ import annotations

import dataclasses

from ..adjoint import AdjointStencil
from ..symbolic import Access
from .plan import (Hoister, Kernel, Loop, _full_loops, _grid_sizes, _is_cotangent, _plus, halo_plan,
                   periodic_gather_block)
from .printer import NumbaPrinter


#: 1-D: rows by which stage 1 runs ahead of stage 2 in their fused loop, beyond the
#: halo. LLVM vectorizes a loop that stores ``mid__<y>[m__ + d]`` and loads
#: ``mid__<y>[m__]`` only if the distance is safe for its vector width and, for store-to-
#: load forwarding, ``d`` is at least 64 vector lengths (``LoopAccessAnalysis``: 256
#: doubles at 4 per vector); 520 leaves room for 8 per vector.
AHEAD_ROWS = 520

#: 1-D: rows per block of the fused loop; each block first asks for the rows of the
#: recorded states it will read :data:`PREFETCH_AHEAD` rows later (``prefetch``)
PREFETCH_BLOCK = 64
#: 1-D: how far ahead the fused loop prefetches the states it streams from memory: 16 KiB
#: of doubles, four pages, past the 4 KiB page at which the hardware's streamer stops
#: (at 10^6 cells x 100 steps, 1,024-4,096 rows all gained about as much)
PREFETCH_AHEAD = 2048
#: rows per 64-byte cache line of doubles: one prefetch each
LINE_ROWS = 8


def _prefetching(loop: Loop, streams: list[tuple[str, int]], last: str,
                 blocks: dict[str, tuple[str, ...]]) -> list[Loop]:
    """The 1-D fused loop in blocks of :data:`PREFETCH_BLOCK` rows, and its remainder.

    Each block first prefetches, one cache line at a time, the rows :data:`PREFETCH_AHEAD`
    ahead of its own in each of ``streams`` (``(array, row shift)``: the stage reading
    ``array`` is that many rows ahead of ``m__``), clamped to the array's ``last`` row.
    The cells themselves are the same loop's, in the same order.
    """
    size = PREFETCH_BLOCK
    blocks["prefetch"] = (
        f"p__ = r0__ + {size} * b__ + {PREFETCH_AHEAD}",
        f"for q__ in range(0, {size}, {LINE_ROWS}):",
        *(f"    prefetch({array}, min({_plus('p__', shift)} + q__, {last}))" for array, shift in streams),
    )
    blocked = dataclasses.replace(loop, start=f"{size} * b__", stop=f"{size} * b__ + {size}")
    rest = dataclasses.replace(loop, start=f"E__ // {size} * {size}")
    return [Loop("b__", "0", f"E__ // {size}", False, ("prefetch", blocked)), rest]


def pair_applies(adj: AdjointStencil, periodic: bool) -> bool:
    """Whether the stencil gets ``adjoint_periodic_pair`` (``periodic``: it has ``adjoint_periodic``).

    Every output must be a differentiated input (a state), and every output's cotangent
    must be read by the adjoint (the second step reads all of them).
    """
    s = adj.stencil
    inputs = {f.name for f in s.inputs}
    read = {t.output for terms in adj.field_terms.values() for t in terms}
    return periodic and all(
        f.name in inputs and f.name in adj.field_terms and f.name in read for f in s.outputs
    )


class _Views:
    """How one loop of the pair kernel reads and writes arrays, and the views it reads through.

    ``at(array, q)`` prints the access of ``array`` at padded offset ``q`` from the loop's
    cell. ``rows`` gives, per array kind (``"mid"``: the chunk's buffers; ``"field"``:
    the whole-grid arrays), the index of the cell's row as ``(expression, constant)``,
    the row of offset ``q`` being ``expression + constant + q[0]``.

    1-D only: ``chunked`` loops read whole-grid arrays through views from row ``bases
    ["field"]`` (``a__c1 = a[r0__ + 1:]``, named with ``tag``) at ``m__ + shift``; with
    ``bases["mid"]`` the chunk's buffers are read through views too.
    """

    def __init__(self, nd: int, chunked: bool, rows: dict[str, tuple[str, int]], tag: str = "c",
                 shift: int = 0, bases: dict[str, str] | None = None):
        self.nd, self.chunked, self.rows = nd, chunked, rows
        self.tag, self.shift, self.bases = tag, shift, bases or {"field": "r0__"}
        self.plane: dict[tuple[str, int], str] = {}
        self.chunk: dict[tuple[str, int], str] = {}

    def _kind(self, array: str) -> str:
        return "mid" if array.startswith("mid__") else "field"

    def _row(self, array: str, q0: int) -> str:
        var, const = self.rows[self._kind(array)]
        return _plus(var, const + q0)

    def at(self, array: str, q: tuple[int, ...]) -> str:
        if self.nd == 1:
            if self.chunked and self._kind(array) in self.bases:
                name = self.chunk.setdefault((array, q[0]), f"{array}__{self.tag}{q[0]}")
                return f"{name}[{_plus('m__', self.shift)}]"
            return f"{array}[{self._row(array, q[0])}]"
        name = self.plane.setdefault((array, q[0]), f"{array}__p{q[0]}")
        return f"{name}[{', '.join(_plus(f'g{axis}', k) for axis, k in enumerate(q) if axis > 0)}]"

    def chunk_lines(self) -> tuple[str, ...]:
        """1-D: the views the loop reads through, made once per chunk."""
        return tuple(f"{name} = {array}[{_plus(self.bases[self._kind(array)], q0)}:]"
                     for (array, q0), name in self.chunk.items())

    def plane_lines(self) -> tuple[str, ...]:
        """2-D, 3-D: the views of the rows the loop reads, made in its axis-0 loop."""
        return tuple(f"{name} = {array}[{self._row(array, q0)}]" for (array, q0), name in self.plane.items())


def plan_adjoint_periodic_pair(
    adj: AdjointStencil, adjoint_inputs: tuple[str, ...], cotangents: tuple[str, ...]
) -> Kernel:
    """Plan ``adjoint_periodic_pair`` (see the module docstring); only where :func:`pair_applies`."""
    s = adj.stencil
    nd = s.ndim
    lo = tuple(h[0] for h in s.halo)  # the padded offset of the cell itself
    lo0, hi0 = s.halo[0]
    wrt = list(adj.field_terms)
    states = [f.name for f in s.outputs]
    constants = [n for n in wrt if n not in states]
    early = {n for n in adjoint_inputs if n in states}
    hoister = Hoister()

    def gather(views: _Views, cotangent: str, late: bool) -> list[str]:
        """The gather statements at one cell, reading cotangents from ``pbar__`` or ``mid__`` arrays."""

        def access(a: Access) -> str:
            if _is_cotangent(a, nd):
                array = f"{cotangent}__{a.field.name[:-4]}"
            else:
                name = a.field.name
                array = f"early__{name}" if not late and name in early else name
            return views.at(array, tuple(o + l for o, l in zip(a.offset, lo)))

        return periodic_gather_block(adj, NumbaPrinter(access), hoister)

    def stores(views: _Views, names: list[str], always_add: bool) -> tuple[str, ...]:
        """``adj__<a> = acc__<a>``, plus its old value where ``add__<a>`` (or ``always_add``).

        The old value is read from ``adj__<a>`` itself, never through ``prev__<a>``: the
        loops are ordinary loops inside the parfor, and two names for one array fail
        LLVM's runtime overlap check there as in the serial twins (see
        ``plan._store_lines``); reading ``prev__`` cost the upwind pair 4.2 against 1.4 ms
        at 10^6 cells.
        """
        lines: list[str] = []
        for name in names:
            read_old = f"acc__{name} += {views.at(f'adj__{name}', lo)}"
            lines += [read_old] if always_add else [f"if add__{name}:", f"    {read_old}"]
            lines.append(f"{views.at(f'adj__{name}', lo)} = acc__{name}")
        return tuple(lines)

    def axis0_loop(name: str, count: str, row: str | None, views: _Views) -> Loop:
        """``for m__ in range(count)``: the cell's grid row ``g0 = row`` (if needed), row views, the cells."""
        head = ((f"g0 = {row}",) if row and (nd > 1 or not views.chunked) else ()) + views.plane_lines()
        blocks[f"row_{name}"] = head
        return Loop("m__", "0", count, False, (f"row_{name}", _full_loops("g", nd, "n", f"cell_{name}", first=1)))

    blocks: dict[str, tuple[str, ...]] = {}
    chunk_lines: list[str] = []
    loops: list[Loop | str] = ["chunk"]

    def late_cells(views: _Views, own: bool) -> tuple[str, ...]:
        """Stage 1 at one cell: its cotangent after step t - 1 into ``mid__<y>`` (own rows: and the constants)."""
        body = gather(views, "pbar", late=True)
        body += [f"{views.at(f'mid__{y}', lo)} = acc__{y}" for y in states]
        # the wrapped rows belong to other chunks: only the own rows add to the constants' gradients
        return (*body, *(stores(views, constants, False) if own else ()))

    def early_cells(views: _Views) -> tuple[str, ...]:
        """Stage 2 at one of the chunk's own cells: the cotangents before step t - 1, reading ``mid__<y>``."""
        return (*gather(views, "mid", late=False), *stores(views, states, False), *stores(views, constants, True))

    def add_loop(name: str, count: str, grid_row: str | None, views: _Views, cells: tuple[str, ...]) -> None:
        blocks[f"cell_{name}"] = cells
        chunk_lines.extend(line for line in views.chunk_lines() if line not in chunk_lines)
        loops.append(axis0_loop(name, count, grid_row, views))

    # Stage 1 into mid__<y>, whose row 0 is grid row r0__ - lo0: the wrapped low rows ...
    wrapped_low = f"(r0__ - {lo0} + m__) % n0" if lo0 else "r0__"
    views = _Views(nd, chunked=False, rows={"mid": ("m__", -lo0), "field": ("g0", 0)})
    add_loop("low", str(lo0), wrapped_low, views, late_cells(views, own=False))
    # ... and the wrapped high rows, which belong to other chunks too
    high = _Views(nd, chunked=False, rows={"mid": ("L__ + m__", 0), "field": ("g0", 0)})
    wrapped_high = "(r0__ + L__ + m__) % n0"
    in_chunk = _Views(nd, chunked=True, rows={"mid": ("m__", 0), "field": ("g0", 0)})
    if nd == 1:
        # One streaming loop: stage 1 runs `ahead` rows in front of stage 2 (see the module docstring)
        ahead = AHEAD_ROWS + hi0
        add_loop("own", f"min(L__, {ahead})", None, in_chunk, late_cells(in_chunk, own=True))
        in_front = _Views(nd, chunked=True, rows={"mid": ("m__", ahead), "field": ("g0", 0)}, shift=ahead)
        add_loop("fused", "E__", None, in_front, late_cells(in_front, own=True) + early_cells(in_chunk))
        # the recorded states come from memory: both stages' streams are prefetched
        streamed = [n for n in adjoint_inputs if n in early]
        streams = [(n, ahead) for n in streamed] + [(f"early__{n}", 0) for n in streamed]
        if streams:
            loops[-1:] = _prefetching(loops[-1], streams, f"n0 + {lo0 + hi0 - 1}", blocks)
        chunk_lines.extend(line for line in in_chunk.chunk_lines() if line not in chunk_lines)
        add_loop("high", str(hi0), wrapped_high, high, late_cells(high, own=False))
        # stage 2 alone on the last rows, through views from row E__ so that the loop starts at 0
        # (LLVM did not vectorize it starting at E__: "unsafe indirect dependence")
        tail = _Views(nd, chunked=True, rows={"mid": ("m__", 0), "field": ("g0", 0)}, tag="e",
                      bases={"field": "r0__ + E__", "mid": "E__"})
        blocks["cell_early"] = early_cells(tail)
        blocks["tail_views"] = tail.chunk_lines()
        loops += ["tail_views", axis0_loop("early", "L__ - E__", None, tail)]
        chunk_start = (f"E__ = max(L__ - {ahead}, 0)",)
    else:
        add_loop("own", "L__", "r0__ + m__", in_chunk, late_cells(in_chunk, own=True))
        add_loop("high", str(hi0), wrapped_high, high, late_cells(high, own=False))
        blocks["fill_mid"] = tuple(line for y in states
                                   for ax in halo_plan(("periodic",) * nd, s.halo, f"mid__{y}")[1:] for line in ax.fill)
        loops.append("fill_mid")
        # Stage 2, the chunk's own rows of step t - 1: reads mid__<y> and the states before it
        second = _Views(nd, chunked=True, rows={"mid": ("m__", 0), "field": ("g0", 0)})
        add_loop("early", "L__", "r0__ + m__", second, early_cells(second))
        chunk_start = ()

    # 1-D: the views from the chunk's first row that its own-row loops read through
    blocks["chunk"] = ("r0__ = c__ * rows__", "L__ = min(rows__, n0 - r0__)", *chunk_start, *chunk_lines)
    # each worker w__ takes a contiguous run of chunks, through its own part of the scratch buffers
    blocks["worker"] = tuple(f"mid__{y} = scratch__{y}[w__]" for y in states)

    first = states[0]
    setup = _grid_sizes(f"pbar__{cotangents[0]}", s.halo)
    setup += (f"W__ = scratch__{first}.shape[0]", f"rows__ = scratch__{first}.shape[1] - {lo0 + hi0}",
              "C__ = (n0 + rows__ - 1) // rows__")
    setup += hoister.lines(NumbaPrinter(str))
    args = adjoint_inputs + tuple(f"early__{n}" for n in adjoint_inputs if n in early)
    args += tuple(f"pbar__{c}" for c in cotangents) + tuple(p.name for p in s.params)
    args += tuple(f"{role}__{name}" for role in ("adj", "add") for name in wrt)
    args += tuple(f"scratch__{y}" for y in states)
    chunks = Loop("c__", "w__ * C__ // W__", "(w__ + 1) * C__ // W__", False, tuple(loops))
    prefetches = "prefetch" in blocks
    return Kernel(
        "adjoint_periodic_pair",
        "Adjoints of steps t and t - 1 of the periodic stencil in one pass over chunks of rows "
        "(see dpgen.codegen.pair).",
        args,
        setup,
        (Loop("w__", "0", "W__", True, ("worker", chunks)),),
        blocks,
        # the serial twin runs on grids that stay in the cache: nothing to prefetch
        serial_blocks={"prefetch": ()} if prefetches else {},
        prefetches=prefetches,
    )
