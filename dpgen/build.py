"""Build time: generate the modules of every stencil a spec file defines.

A *spec file* is a Python file that defines :class:`~dpgen.symbolic.Stencil` objects.
dpgen collects them from ``STENCILS`` (a list) if the file has one, else from every
module-level name bound to a Stencil, in definition order. An optional ``WRT`` dict
maps stencil names to the inputs/parameters to generate adjoints for (default: every
input field).

Output is deterministic: the same spec gives byte-identical files, so ``--check`` can
tell whether a folder of generated modules is stale.
"""

from __future__ import annotations

import dataclasses
import runpy
from pathlib import Path
from typing import Iterable

from .codegen import CodegenOptions, render_module
from .compiler import write_atomic
from .errors import BuildError
from .symbolic import Stencil


@dataclasses.dataclass(frozen=True)
class SpecEntry:
    """One stencil of a spec file and the adjoints to generate for it."""

    stencil: Stencil
    wrt: tuple[str, ...] | None


def load_spec(path: str | Path) -> list[SpecEntry]:
    """Run a spec file and collect its stencils (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise BuildError(f"spec file {path} does not exist")
    namespace = runpy.run_path(str(path), run_name=f"dpgen_spec_{path.stem}")
    if "STENCILS" in namespace:
        stencils = list(namespace["STENCILS"])
        bad = [s for s in stencils if not isinstance(s, Stencil)]
        if bad:
            raise BuildError(f"{path}: STENCILS holds non-Stencil objects: {bad!r}")
    else:
        stencils = []
        for value in namespace.values():
            if isinstance(value, Stencil) and all(value is not s for s in stencils):
                stencils.append(value)
    if not stencils:
        raise BuildError(f"{path} defines no dpgen Stencil")
    names = [s.name for s in stencils]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BuildError(f"{path}: several stencils are named {', '.join(dupes)}; names must be unique")
    wrt = namespace.get("WRT", {})
    unknown = set(wrt) - set(names)
    if unknown:
        raise BuildError(f"{path}: WRT names unknown stencil(s) {', '.join(sorted(unknown))}")
    return [SpecEntry(s, tuple(wrt[s.name]) if s.name in wrt else None) for s in stencils]


@dataclasses.dataclass
class BuildReport:
    """What a build wrote, or (in check mode) what is stale."""

    out_dir: Path
    written: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    stale: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    extra: list[str] = dataclasses.field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not (self.stale or self.missing or self.extra)

    def __str__(self) -> str:
        parts = []
        for label in ("written", "unchanged", "stale", "missing", "extra"):
            items = getattr(self, label)
            if items:
                parts.append(f"{label}: {', '.join(items)}")
        return f"{self.out_dir}: " + ("; ".join(parts) or "nothing to do")


def build(
    spec: str | Path | Iterable[SpecEntry],
    out_dir: str | Path,
    *,
    check: bool = False,
    options: CodegenOptions = CodegenOptions(),
) -> BuildReport:
    """Write (or, with ``check``, compare) one module per stencil into ``out_dir``."""
    entries = load_spec(spec) if isinstance(spec, (str, Path)) else list(spec)
    out = Path(out_dir)
    report = BuildReport(out)
    expected = set()
    for entry in entries:
        target = out / f"{entry.stencil.name}.py"
        expected.add(target.name)
        source = render_module(entry.stencil, entry.wrt, options).source
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current == source:
            report.unchanged.append(target.name)
        elif check:
            (report.missing if current is None else report.stale).append(target.name)
        else:
            write_atomic(target, source)
            report.written.append(target.name)
    if check and out.is_dir():
        report.extra = sorted(p.name for p in out.glob("*.py") if p.name not in expected)
    return report
