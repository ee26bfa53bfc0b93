"""dpgen against NumPy, SciPy, hand-written Numba, JAX and PyTorch, side by side in one run.

Usage (from the repository root):
    python -m benchmarks run [--quick] [--only PROBLEM ...] [--repeat N] [--out DIR] [--no-memory]
    python -m benchmarks measure-memory --problem P --case I --impl NAME [--quick]   (internal)

``run`` measures the bandwidth probe, then each problem (upwind1d, diffusion2d,
pressure, laplace3d, compile): for every size, it checks every implementation's value
and gradient against dpgen, then times forward and value+gradient (median, min, max),
then measures each implementation's peak extra memory in a fresh process. It writes
``DIR/results.json`` and ``DIR/results.md`` (default DIR: benchmarks/results/) and
prints the Markdown. ``--quick`` uses tiny sizes (a smoke test of well under a minute).
Exit status 1 if any check failed or any row broke; a peer that is not installed is
not a failure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from . import problems

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def run(args: argparse.Namespace) -> int:
    from . import machine, probe, report, runner

    started = time.perf_counter()
    names = [n for n in problems.NAMES if not args.only or n in args.only]
    results: dict[str, Any] = {
        "command": "python -m benchmarks " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "quick": args.quick,
        "repeat": args.repeat,
        "machine": machine.info(),
        "problems": {},
    }
    runner.log("bandwidth probe")
    results["probe"] = probe.run(args.quick)
    failed = False
    for name in names:
        problem = problems.get(name)
        if name == "compile":
            runner.log("[compile] fresh processes")
            results["problems"][name] = {"title": problem.TITLE, **problem.run(args.quick, args.repeat)}
            continue
        if name == "kernels":
            runner.log("[kernels] single kernels against the bandwidth probe")
            results["problems"][name] = {"title": problem.TITLE, **problem.run(args.quick, args.repeat,
                                                                                results["probe"])}
            continue
        cases = [runner.run_case(problem, case, index, quick=args.quick, repeat=args.repeat,
                                 probe=results["probe"], measure_memory=not args.no_memory)
                 for index, case in enumerate(problem.cases(args.quick))]
        failed |= any(row["status"] not in runner.PASSING for case in cases for row in case["rows"])
        results["problems"][name] = {"title": problem.TITLE, "tolerance": problem.TOLERANCE,
                                     "bytes_note": problem.BYTES_NOTE, "cases": cases}
    results["seconds"] = time.perf_counter() - started
    results["passed"] = not failed
    json_path, md_path = report.write(results, Path(args.out))
    print(report.markdown(results))
    runner.log(f"wrote {json_path} and {md_path}" + ("" if not failed else "; SOME CHECKS FAILED"))
    return 1 if failed else 0


def measure_memory(args: argparse.Namespace) -> int:
    from . import memory

    print(json.dumps(memory.measure(args.problem, args.case, args.impl, args.quick)))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("run", help="run the benchmarks, write results.json and results.md")
    p.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke test)")
    p.add_argument("--only", nargs="+", choices=problems.NAMES, metavar="PROBLEM",
                   help=f"problems to run (default: all of {', '.join(problems.NAMES)})")
    p.add_argument("--repeat", type=int, help="timed runs per measurement (default 5 small, 3 big; compile 3, quick 1)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default benchmarks/results)")
    p.add_argument("--no-memory", action="store_true", help="skip the per-row memory subprocesses")
    p.set_defaults(func=run)
    m = commands.add_parser("measure-memory", help="(internal) peak extra memory of one value+gradient")
    m.add_argument("--problem", required=True, choices=[n for n in problems.NAMES if n not in problems.OWN_TABLE])
    m.add_argument("--case", type=int, required=True, help="index into the problem's sizes")
    m.add_argument("--impl", required=True, help="row name, as in the problem's IMPLEMENTATIONS")
    m.add_argument("--quick", action="store_true")
    m.set_defaults(func=measure_memory)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
