"""The calling convention between generated modules and the runtime, as one number.

A generated module records the convention it was rendered with (``SPEC["kernel_abi"]``)
and :class:`~dpgen.runtime.CompiledStencil` refuses any other: Numba does not check
bounds, so calling a kernel with another convention's arguments would read and write
out of bounds instead of failing. Bump it whenever kernel arguments or array layouts
change, and say what changed here.

* 1 — dpgen 0.1.0 as first released: forward kernels write grid-shaped outputs; adjoint
  kernels accumulate with ``adj[q] += ...``.
* 2 — forward kernels write the grid cells of *padded* outputs and return the number of
  cells with a non-finite output; adjoint kernels take ``prev__<field>`` arrays (read
  where ``add__<field>``) after the ``adj__<field>`` arrays. The runtime passes each
  ``adj__<field>`` array itself as ``prev__<field>``, and kernels may rely on it: serial
  twins read the old value from ``adj__<field>`` (see ``codegen.plan._store_lines``).
* 3 — periodic stencils' modules add ``adjoint_periodic``, which takes the cotangents
  *padded* (``pbar__<output>``, halo filled by ``fill_halo_bar__<output>``) and writes
  only the grid cells of ``adj__<field>``; ``SPEC["has_periodic_adjoint"]`` says so.
* 4 — periodic stencils whose outputs are states add ``adjoint_periodic_pair`` (two
  reverse steps in one pass: inputs at ``t``, ``early__<state>`` at ``t - 1``, padded
  cotangents, parameters, ``adj__<field>`` and ``add__<field>`` (no ``prev__``), then
  one scratch array per state of shape ``(workers, rows per chunk + halo rows, ...)``);
  ``SPEC["has_periodic_pair"]`` says so. Later within 4, with the same arguments:
  ``SPEC["forward_reads_ghosts"]`` and ``SPEC["periodic_adjoint_reads_ghosts"]`` (True
  where missing) say whether ``forward`` and ``adjoint_periodic`` read ghost cells;
  on fully periodic 2-D and 3-D grids they read the wrapped grid cells instead, and
  the runtime fills no halo before them. ``SPEC["kernels_fill_halos"]`` (False where
  missing): every kernel fills the ghost cells of its padded arguments itself (1-D),
  and the runtime fills none before any of them.

This module imports nothing, so loading generated modules stays free of SymPy.
"""

KERNEL_ABI = 4
