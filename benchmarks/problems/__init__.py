"""The benchmark problems, one module each, and what a problem module provides.

A *side-by-side* problem module (``upwind1d``, ``diffusion2d``, ``pressure``,
``laplace3d``) defines

* ``TITLE``, ``TOLERANCE`` (largest relative error against the reference accepted),
* ``IMPLEMENTATIONS``: ``{row name: "module:Class"}``, the dpgen row(s) first; the
  first row that runs is the reference of the agreement check and of the speed-ups,
* ``cases(quick) -> list[Case]`` and ``tiny() -> Case`` (the memory runs' warm-up),
* ``make_data(case) -> dict``: the inputs, NumPy arrays and scalars,
* ``traffic(case) -> dict``: minimal bytes of one forward pass (``"forward"``) and one
  value+gradient (``"value_and_grad"``), for the GB/s columns (``None``: not meaningful),
  and ``"states"``: the bytes of every stored state (``None`` if nothing is stored),
* optionally ``limits(case, probe) -> dict``: a bandwidth-bound time limit.

Two modules are different: ``compile`` (``run(quick, repeat) -> dict``) measures fresh
processes, ``kernels`` (``run(quick, repeat, probe) -> dict``) times single generated
kernels against the bandwidth probe; each returns its own table.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any

#: every problem, in the order the report shows them
NAMES = ("upwind1d", "diffusion2d", "pressure", "laplace3d", "kernels", "compile")
#: problems with their own table, not implementations side by side
OWN_TABLE = ("kernels", "compile")


@dataclasses.dataclass(frozen=True)
class Case:
    """One size of a problem.

    Parameters
    ----------
    label : str
        How the report names it, e.g. ``"n=10000, T=1000"``.
    params : dict
        Sizes (and anything else ``make_data`` needs).
    big : bool
        Large cases default to 3 timing repeats instead of 5.
    """

    label: str
    params: dict[str, Any]
    big: bool = False


def get(name: str) -> ModuleType:
    """The module of problem ``name``."""
    if name not in NAMES:
        raise KeyError(f"unknown problem {name!r}; problems: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")
