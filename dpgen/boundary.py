"""Boundary rules: which value a ghost cell holds, in ``numpy.pad``'s vocabulary.

A field is padded by a halo (ghost layer) on every axis before a stencil reads it.
Each rule is an *index map*: the ghost cell at index ``p`` (``p < 0`` or ``p >= n``)
copies the interior cell ``source_index(rule, p, n)``, or is zero.

==============  ======================  ================================================
rule            ``numpy.pad`` mode      ghost value for ``p < 0`` (mirror for ``p >= n``)
==============  ======================  ================================================
``periodic``    ``wrap``                ``x[p + n]``
``zero``        ``constant`` (0)        ``0``
``edge``        ``edge``                ``x[0]``
``symmetric``   ``symmetric``           ``x[-p - 1]``
``reflect``     ``reflect``             ``x[-p]``
==============  ======================  ================================================

Filling the halo is linear; its transpose *folds* a ghost cotangent back onto the
cell it was copied from. That is what makes every boundary adjoint exact.

Examples
--------
>>> [source_index("reflect", p, 5) for p in (-2, -1, 5, 6)]
[2, 1, 3, 2]
>>> normalize_bc("edge", 2)
('edge', 'edge')
"""

from __future__ import annotations

from typing import Sequence

from .errors import BoundaryRuleError

#: Boundary rule name -> ``numpy.pad`` mode with exactly the same ghost values.
PAD_MODE = {
    "periodic": "wrap",
    "zero": "constant",
    "edge": "edge",
    "symmetric": "symmetric",
    "reflect": "reflect",
}

RULES = tuple(PAD_MODE)


def normalize_bc(bc: str | Sequence[str], ndim: int, *, field: str = "?") -> tuple[str, ...]:
    """Return one rule per axis from a single rule or a per-axis tuple."""
    rules = (bc,) * ndim if isinstance(bc, str) else tuple(bc)
    if len(rules) != ndim:
        raise BoundaryRuleError(
            f"field {field!r} is {ndim}-D but got {len(rules)} boundary rules {rules!r}; "
            f"give one rule for all axes or exactly {ndim}"
        )
    for rule in rules:
        if rule not in PAD_MODE:
            raise BoundaryRuleError(
                f"unknown boundary rule {rule!r} for field {field!r}; "
                f"choose one of {', '.join(RULES)}"
            )
    return rules


def source_index(rule: str, p: int, n: int) -> int | None:
    """Interior index that ghost (or interior) index ``p`` reads on an axis of ``n`` cells.

    Returns ``None`` where the value is zero. Valid for ``-n < p < 2n - 1``; dpgen
    requires every axis to be longer than its halo, which keeps ``p`` in that range.
    """
    if 0 <= p < n:
        return p
    if rule == "periodic":
        return p % n
    if rule == "zero":
        return None
    if rule == "edge":
        return 0 if p < 0 else n - 1
    if rule == "symmetric":
        return -p - 1 if p < 0 else 2 * n - p - 1
    if rule == "reflect":
        return -p if p < 0 else 2 * n - p - 2
    raise BoundaryRuleError(f"unknown boundary rule {rule!r}")


def min_cells(halo: tuple[int, int]) -> int:
    """Smallest axis length that a halo of ``(lo, hi)`` ghost cells allows.

    ``reflect`` needs ``n > width`` (it skips the edge cell); dpgen asks the same of
    every rule so that a grid valid for one rule is valid for all.
    """
    return max(halo) + 1
