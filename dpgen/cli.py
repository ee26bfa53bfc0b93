"""Command line: ``dpgen build``, ``dpgen check``, ``dpgen show`` and ``dpgen demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence


def _cmd_build(args: argparse.Namespace) -> int:
    from .build import build

    report = build(args.spec, args.output, check=args.check)
    print(report)
    if args.check and not report.up_to_date:
        print(f"{args.output} is stale: run `dpgen build {args.spec} -o {args.output}`", file=sys.stderr)
        return 1
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .build import load_spec
    from .verify import check_stencil, format_reports

    entries = load_spec(args.spec)
    if args.stencil:
        entries = [e for e in entries if e.stencil.name in args.stencil]
    reports = []
    for entry in entries:
        reports.append(check_stencil(entry.stencil, entry.wrt, seed=args.seed, rtol=args.rtol))
    print(format_reports(reports))
    failed = [r for r in reports if not r.passed]
    for r in failed:
        for result in (r.vjp, r.dot, r.taylor):
            if result is not None and not result.passed:
                print(result, file=sys.stderr)
    return 1 if failed else 0


def _cmd_show(args: argparse.Namespace) -> int:
    from .build import load_spec

    for entry in load_spec(args.spec):
        if args.stencil and entry.stencil.name not in args.stencil:
            continue
        print(entry.stencil)
        print(entry.stencil.adjoint(entry.wrt))
        print()
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.name == "upwind":
        from .demos import upwind

        return upwind.run(n=args.n or 1_000_000)
    if args.name == "burgers":
        from .demos import burgers

        out = args.out if args.out != "advection_demo.png" else "burgers_demo.png"
        iterations = args.iterations if args.iterations != 200 else 300
        return burgers.run(iterations=iterations, out=out, progress=not args.quiet and sys.stderr.isatty())
    if args.name == "pressure":
        from .demos import pressure

        out = args.out if args.out != "advection_demo.png" else "pressure_demo.png"
        return pressure.run(iterations=args.iterations, out=out, progress=not args.quiet and sys.stderr.isatty())
    from .demos import advection

    return advection.run(n=args.n or 128, steps=args.steps, iterations=args.iterations, out=args.out,
                         progress=not args.quiet and sys.stderr.isatty())


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpgen", description="Generate and verify adjoint stencil kernels from SymPy stencils."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build", help="generate modules for every stencil in a spec file")
    p.add_argument("spec", type=Path, help="Python file defining dpgen Stencils")
    p.add_argument("-o", "--output", type=Path, required=True, help="folder for the generated modules")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the folder is stale")
    p.set_defaults(func=_cmd_build)

    p = sub.add_parser("check", help="verify the adjoint of every stencil in a spec file")
    p.add_argument("spec", type=Path)
    p.add_argument("--stencil", action="append", help="check only this stencil (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rtol", type=float, default=1e-7, help="finite-difference tolerance")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("show", help="print the stencils of a spec file and their derived adjoints")
    p.add_argument("spec", type=Path)
    p.add_argument("--stencil", action="append")
    p.set_defaults(func=_cmd_show)

    p = sub.add_parser("demo", help="run a demo: advection (the inverse problem), burgers (initial state from a "
                       "later observation), pressure (steering a flow through the pressure projection) or "
                       "upwind (the core walk-through)")
    p.add_argument("name", nargs="?", default="advection", choices=["advection", "burgers", "pressure", "upwind"])
    p.add_argument("-n", type=int, default=None, help="grid cells (advection: 128; upwind timing: 1e6)")
    p.add_argument("--steps", type=int, default=100, help="advection: time steps")
    p.add_argument("--iterations", type=int, default=200, help="optimiser iterations (advection, pressure)")
    p.add_argument("--out", default="advection_demo.png", help="PNG to write (pressure: pressure_demo.png)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    from .errors import DpgenError

    try:
        return args.func(args)
    except DpgenError as exc:
        print(f"dpgen: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
