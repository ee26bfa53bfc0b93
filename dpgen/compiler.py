"""``dpgen.compile``: a stencil to a loaded :class:`~dpgen.runtime.CompiledStencil`.

Generated modules go to a per-user cache keyed by their content hash
(``<cache_dir>/<stencil>_<hash[:16]>.py``). A cache hit imports the file without
running SymPy or the code generator, and Numba's ``cache=True`` reuses the machine
code it stored beside the file, so a second process compiles nothing. Files are
written to a temporary name and renamed into place (atomic on POSIX), so two
processes compiling the same stencil at once both succeed with identical content.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from .codegen import CodegenOptions, content_hash, render_module
from .config import config
from .runtime import CompiledStencil, load_module
from .symbolic import Stencil


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def cached_module_path(stencil: Stencil, wrt: str | Iterable[str] | None, options: CodegenOptions, cache_dir: Path) -> Path:
    """Where the cache keeps the module for ``stencil`` and ``wrt``."""
    return cache_dir / f"{stencil.name}_{content_hash(stencil, wrt, options)[:16]}.py"


def compile(
    stencil: Stencil,
    wrt: str | Iterable[str] | None = None,
    *,
    fastmath: bool | None = None,
    wide_vectors: bool | None = None,
    cache_dir: str | Path | None = None,
) -> CompiledStencil:
    """Generate (or fetch from the cache) and import the kernels of ``stencil``.

    Parameters
    ----------
    stencil : Stencil
        The forward stencil.
    wrt : str or iterable of str, optional
        Input fields and parameters to generate adjoints for. ``None`` means every
        input field (and no parameter); ``()`` generates the forward kernel only.
    fastmath : bool, optional
        Let LLVM reorder floating-point math. Off unless ``config.fastmath`` says
        otherwise; verification never uses it.
    wide_vectors : bool, optional
        Let LLVM vectorize every kernel with 512-bit registers on CPUs that have them
        (``True``) or none (``False``, LLVM's default of 256 bits). Unset:
        ``config.wide_vectors`` (``DPGEN_WIDE_VECTORS``), whose default widens the kernels
        of 3-D stencils only. The results are the same bits either way.
    cache_dir : path, optional
        Defaults to ``config.cache_dir`` (``DPGEN_CACHE_DIR``).

    Examples
    --------
    >>> import sympy as sp, dpgen as dp
    >>> d = dp.Field("d")
    >>> k = dp.compile(dp.Stencil("double_doc", {d: 2 * d[0]}), wrt="d")
    >>> k.wrt
    ('d',)
    """
    options = CodegenOptions(
        fastmath=config.fastmath if fastmath is None else bool(fastmath),
        wide_vectors=config.wide_vectors if wide_vectors is None else bool(wide_vectors),
    )
    folder = Path(cache_dir) if cache_dir is not None else Path(config.cache_dir)
    path = cached_module_path(stencil, wrt, options, folder)
    if not path.is_file():
        write_atomic(path, render_module(stencil, wrt, options).source)
    return CompiledStencil(load_module(path))


def load(path: str | Path) -> CompiledStencil:
    """Load a module generated at build time (e.g. ``generated/upwind_1d.py``)."""
    return CompiledStencil(load_module(path))
