"""One configuration object, read from environment variables, switchable in tests.

=========================  ====================================  =======================
setting                    environment variable                  default
=========================  ====================================  =======================
``cache_dir``              ``DPGEN_CACHE_DIR``                   ``~/.cache/dpgen``
``fastmath``               ``DPGEN_FASTMATH`` (``0``/``1``)      ``False``
``parallel_threshold``     ``DPGEN_PARALLEL_THRESHOLD``          ``32768`` cells
``fuse_adjoint_steps``     ``DPGEN_FUSE_ADJOINT_STEPS``          ``True``
``wide_vectors``           ``DPGEN_WIDE_VECTORS``                ``None`` (``auto``)
=========================  ====================================  =======================

``parallel_threshold`` is the grid size (number of cells) from which the runtime calls
the ``prange``-parallel kernel variant instead of the serial one: Numba's fork/join
costs several microseconds per parallel region, which only pays off on large grids.
Adjoint kernels, which do several times the work per cell, switch at a quarter of it.
Measured on 2 cores: a 1e5-cell upwind rollout's value and gradient takes 42 ms with
this default and 71 ms all serial; at 1e4 cells the parallel forward is slower.
On a busy machine (another process holding a core) the parallel variants slow down
several-fold: measure on an idle one.

``fuse_adjoint_steps`` lets a rollout of one periodic stencil run its reverse sweep two
steps per pass (``adjoint_periodic_pair``, see :mod:`dpgen.codegen.pair`); the
gradients are bitwise the same either way, so it is there to measure the difference.

``wide_vectors`` decides which kernels :func:`dpgen.compile` lets LLVM vectorize with
512-bit registers on AVX-512 CPUs, where LLVM keeps to 256 bits by default (older such
CPUs lower their clock for wide instructions): ``auto`` (``None``) those of 3-D stencils
(see :meth:`dpgen.codegen.CodegenOptions.widens`), ``1`` every kernel, ``0`` none. It
changes the generated module (and its content hash), never the results.

Examples
--------
>>> from dpgen.config import config, override
>>> with override(parallel_threshold=0):
...     config.parallel_threshold
0
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Iterator


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_auto_bool(name: str) -> bool | None:
    """``None`` for unset or ``auto``, else the value as :func:`_env_bool` reads it."""
    value = os.environ.get(name)
    if value is None or value.strip().lower() == "auto":
        return None
    return _env_bool(name, False)


def _default_cache_dir() -> Path:
    if "DPGEN_CACHE_DIR" in os.environ:
        return Path(os.environ["DPGEN_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", "~/.cache")
    return Path(base).expanduser() / "dpgen"


@dataclasses.dataclass
class Config:
    """dpgen's settings; see the module docstring for the environment variables."""

    cache_dir: Path = dataclasses.field(default_factory=_default_cache_dir)
    fastmath: bool = dataclasses.field(
        default_factory=lambda: _env_bool("DPGEN_FASTMATH", False)
    )
    parallel_threshold: int = dataclasses.field(
        default_factory=lambda: int(os.environ.get("DPGEN_PARALLEL_THRESHOLD", 32768))
    )
    fuse_adjoint_steps: bool = dataclasses.field(
        default_factory=lambda: _env_bool("DPGEN_FUSE_ADJOINT_STEPS", True)
    )
    wide_vectors: bool | None = dataclasses.field(
        default_factory=lambda: _env_auto_bool("DPGEN_WIDE_VECTORS")
    )


config = Config()


@contextlib.contextmanager
def override(**settings: object) -> Iterator[Config]:
    """Temporarily change settings of the global :data:`config`."""
    unknown = set(settings) - {f.name for f in dataclasses.fields(Config)}
    if unknown:
        raise TypeError(f"unknown dpgen setting(s): {', '.join(sorted(unknown))}")
    saved = {name: getattr(config, name) for name in settings}
    try:
        for name, value in settings.items():
            setattr(config, name, value)
        yield config
    finally:
        for name, value in saved.items():
            setattr(config, name, value)
