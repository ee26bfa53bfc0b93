"""Render a kernel plan into one readable Python module (Jinja2 template + loop emitter).

The module template (``templates/stencil_module.py.j2``) lays out the header, the
metadata, the halo fill/fold kernels and the compute kernels; the loop nests of the
compute kernels are emitted here from the plan's :class:`~dpgen.codegen.plan.Loop`
trees. Rendering is deterministic: the same stencil, ``wrt`` and options give a
byte-identical module whose header carries a content hash of exactly those inputs.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pprint
from pathlib import Path
from typing import Iterable

import jinja2
import sympy as sp

from .. import __version__
from ..adjoint import derive_adjoint, resolve_wrt
from ..errors import BuildError
from ..kernel_abi import KERNEL_ABI
from ..symbolic import Stencil
from .plan import Kernel, KernelPlan, Loop, make_plan

TEMPLATE_NAME = "stencil_module.py.j2"


def template_dir() -> Path:
    """``templates/`` of the source tree, or the copy installed inside the package."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here.parent / "templates", here / "_templates"):
        if (candidate / TEMPLATE_NAME).is_file():
            return candidate
    raise BuildError(f"cannot find dpgen's templates ({TEMPLATE_NAME}) next to {here}")


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


#: dpgen sources whose code decides what a generated module contains.
GENERATOR_SOURCES = (
    "symbolic.py", "boundary.py", "adjoint.py", "kernel_abi.py", "codegen/plan.py", "codegen/pair.py", "codegen/printer.py", "codegen/render.py",
)


@functools.lru_cache(maxsize=1)
def generator_digest() -> str:
    """SHA-256 over the templates and the generator's own sources.

    Part of every content hash: changing a template or the derivation changes the
    hash, so caches never serve modules made by other code and ``dpgen build --check``
    reports ``generated/`` stale.
    """
    h = hashlib.sha256()
    package = Path(__file__).resolve().parent.parent
    files = sorted(template_dir().glob("*.j2")) + [package / name for name in GENERATOR_SOURCES]
    for path in files:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class CodegenOptions:
    """Options baked into a generated module (and into its content hash).

    ``wide_vectors``: let LLVM vectorize the kernels' loops with 512-bit registers on CPUs
    that have them (``True``), keep LLVM's default of 256 bits there (``False``), or widen
    the kernels of 3-D stencils only (``None``, see :meth:`widens`). The results are the
    same bits either way.
    """

    fastmath: bool = False
    wide_vectors: bool | None = None

    def widens(self, ndim: int) -> bool:
        """Whether the kernels of an ``ndim``-D stencil ask for 512-bit vectors under these options.

        By default those of 3-D stencils: with neighbours along three axes their loops do
        the most arithmetic per byte, and they were the ones that gained in side-by-side
        runs (``benchmarks/wide_vectors.py``: 7-point Laplacian forward 4-10 % faster at
        100^3, 3-D upwind adjoint 6-9 %), while 1-D and 2-D kernels moved within the
        machine's noise and the 1-D upwind rollout at 10^4 cells lost 5 %.
        """
        return ndim >= 3 if self.wide_vectors is None else self.wide_vectors


def canonical_text(stencil: Stencil, wrt_fields: Iterable[str], wrt_params: Iterable[str], options: CodegenOptions) -> str:
    """A stable text of everything that determines the generated module."""
    lines = [f"dpgen {__version__}", f"generator {generator_digest()}", f"options {options}"]
    lines.append(f"stencil {stencil.name} ndim {stencil.ndim}")
    for f in sorted(set(stencil.inputs) | set(stencil.outputs), key=lambda f: f.name):
        lines.append(f"field {f.name} ndim {f.ndim} bc {','.join(f.bc)}")
    for f, e in stencil.outputs.items():
        lines.append(f"output {f.name} = {sp.srepr(e)}")
    lines.append(f"wrt fields {','.join(wrt_fields)} params {','.join(wrt_params)}")
    return "\n".join(lines) + "\n"


def content_hash(stencil: Stencil, wrt: str | Iterable[str] | None = None, options: CodegenOptions = CodegenOptions()) -> str:
    """SHA-256 of :func:`canonical_text`; it keys caches and marks generated files.

    Computing it needs no differentiation or code generation.
    """
    wrt_fields, wrt_params = resolve_wrt(stencil, wrt)
    return hashlib.sha256(canonical_text(stencil, wrt_fields, wrt_params, options).encode()).hexdigest()


def _emit_body(body: Iterable[Loop | str], kernel: Kernel, parallel: bool, depth: int, wide: bool = False) -> list[str]:
    pad = "    " * depth
    lines: list[str] = []
    for item in body:
        if isinstance(item, str):
            lines.extend(f"{pad}{line}" for line in kernel.blocks[item])
            continue
        rng = "numba.prange" if (item.parallel and parallel) else "range"
        start = "" if item.start == "0" else f"{item.start}, "
        lines.append(f"{pad}for {item.var} in {rng}({start}{item.stop}):")
        if wide:
            # inside the loop: Numba outlines each top-level prange nest into a function
            # of its own, and the attribute must reach the function that holds the loops
            lines.append(f"{pad}    wide_vectors()")
        lines.extend(_emit_body(item.body, kernel, parallel, depth + 1))
    return lines


def emit_kernel(kernel: Kernel, *, parallel: bool, options: CodegenOptions, wide: bool = False) -> str:
    """Source of one ``@numba.njit`` kernel (the parallel one, or its ``_serial`` twin).

    ``wide``: every top-level loop nest first calls the module's ``wide_vectors``.
    """
    flags = ["cache=True", "error_model=\"numpy\""]
    if parallel:
        flags.append("parallel=True")
    if options.fastmath:  # only on request; verification refuses such modules
        flags.append(f"fastmath={options.fastmath!r}")
    name = kernel.name if parallel else f"{kernel.name}_serial"
    doc = kernel.doc if parallel else f"Serial twin of {kernel.name} (no prange)."
    if not parallel:
        kernel = kernel.serial or kernel
        kernel = dataclasses.replace(kernel, blocks={**kernel.blocks, **kernel.serial_blocks})
    lines = [f"@numba.njit({', '.join(flags)})", f"def {name}({', '.join(kernel.args)}):", f'    """{doc}"""']
    lines += [f"    {line}" for line in kernel.setup]
    lines += _emit_body(kernel.body, kernel, parallel, 1, wide)
    if kernel.returns:
        lines.append(f"    return {kernel.returns}")
    return "\n".join(lines)


def spec_dict(plan: KernelPlan, digest: str, options: CodegenOptions) -> dict:
    """Metadata the runtime reads from a generated module (no SymPy needed to use it)."""
    return {
        "name": plan.stencil_name,
        "ndim": plan.ndim,
        "dpgen_version": __version__,
        "kernel_abi": KERNEL_ABI,
        "content_hash": digest,
        "halo": [list(h) for h in plan.halo],
        "inputs": list(plan.inputs),
        "outputs": list(plan.outputs),
        "params": list(plan.params),
        "bc": {name: list(rules) for name, rules in plan.bc.items()},
        "wrt_fields": list(plan.wrt_fields),
        "wrt_params": list(plan.wrt_params),
        "adjoint_inputs": list(plan.adjoint_inputs),
        "adjoint_cotangents": list(plan.adjoint_cotangents),
        "param_inputs": list(plan.param_inputs),
        "param_cotangents": list(plan.param_cotangents),
        "linear_in": list(plan.linear_in),
        "linear_wrt": plan.linear_wrt,
        "forward_reads_ghosts": plan.forward.reads_ghosts,
        "periodic_adjoint_reads_ghosts": plan.adjoint_periodic is None or plan.adjoint_periodic.reads_ghosts,
        # 1-D kernels fill the ghost cells they read (see codegen.plan.fills_own_halos)
        "kernels_fill_halos": plan.ndim == 1,
        "has_adjoint_kernel": plan.adjoint is not None,
        "has_param_kernel": plan.param_gradients is not None,
        "has_periodic_adjoint": plan.adjoint_periodic is not None,
        "has_periodic_pair": plan.adjoint_periodic_pair is not None,
        "diagonal_fields": [] if plan.diagonal is None else [
            n for n in plan.outputs if n in plan.inputs
        ],
        "fastmath": options.fastmath,
        "wide_vectors": options.widens(plan.ndim),
    }


@dataclasses.dataclass(frozen=True)
class GeneratedModule:
    """A rendered module: its source text, content hash and the plan it came from."""

    name: str
    content_hash: str
    source: str
    plan: KernelPlan


def render_module(
    stencil: Stencil, wrt: str | Iterable[str] | None = None, options: CodegenOptions = CodegenOptions()
) -> GeneratedModule:
    """Derive the adjoint, plan the kernels and render the module source."""
    adj = derive_adjoint(stencil, wrt)
    plan = make_plan(adj)
    digest = content_hash(stencil, wrt, options)
    planned = [k for k in (plan.forward, plan.adjoint, plan.adjoint_periodic, plan.adjoint_periodic_pair,
                           plan.param_gradients, plan.diagonal) if k is not None]
    wide = options.widens(plan.ndim)
    kernels = [emit_kernel(k, parallel=parallel, options=options, wide=wide) for k in planned for parallel in (True, False)]
    source = _environment().get_template(TEMPLATE_NAME).render(
        version=__version__,
        content_hash=digest,
        plan=plan,
        spec=pprint.pformat(spec_dict(plan, digest, options), sort_dicts=False, width=88),
        kernels=kernels,
        prefetch=any(k.prefetches for k in planned),
        wide_vectors=wide,
    )
    return GeneratedModule(stencil.name, digest, source, plan)
