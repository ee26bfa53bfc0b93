"""Build, first-compile and cached-load times of the upwind stencil, each in a fresh process.

Usage: python benchmarks/compile_time.py [--repeat 3]

Every measurement runs in a new interpreter with an empty (or, for the cached load,
pre-filled) private cache folder (``DPGEN_CACHE_DIR``), so nothing is shared with the
calling process:

* import    - ``import dpgen`` (SymPy, Numba, NumPy)
* build     - define the stencil, derive the adjoint, render the module (no Numba)
* compile   - ``dp.compile`` + first forward and vjp call: code generation and JIT
* cached    - the same in a new process once the cache holds module and machine code

The in-process times start after the interpreter is up; the "wall" rows are timed by
the parent from process start to exit (interpreter start-up and ``import dpgen``
included). :func:`measure` is also the ``compile`` problem of ``python -m benchmarks run``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np, sympy as sp
import dpgen as dp
t_import = time.perf_counter() - t0
mode = sys.argv[1]
if mode == "import":
    print(json.dumps({"import": t_import, "seconds": 0.0}))
    raise SystemExit
t0 = time.perf_counter()
d, u = dp.fields("d u", ndim=1, bc="periodic")
dt, dx = sp.symbols("dt dx", positive=True)
upwind = dp.Stencil("upwind", {d: d[0] - dt * (sp.Min(u[0] / dx, 0) * (d[1] - d[0]) + sp.Max(u[0] / dx, 0) * (d[0] - d[-1]))})
if mode == "build":
    from dpgen.codegen import render_module
    render_module(upwind, ("d", "u", "dt"))
    print(json.dumps({"import": t_import, "seconds": time.perf_counter() - t0}))
    raise SystemExit
k = dp.compile(upwind, wrt=("d", "u", "dt"))
x = np.linspace(0, 1, 64)
args = dict(d=x, u=x - 0.5, dt=1e-3, dx=1 / 64)
k.forward(**args)
k.vjp({"d": x}, **args)
print(json.dumps({"import": t_import, "seconds": time.perf_counter() - t0}))
"""


def run(mode: str, cache: str) -> dict:
    """One fresh process in ``mode`` (import, build, compile) with cache folder ``cache``.

    Returns the child's own ``import`` and ``seconds`` and the parent-timed ``wall``.
    """
    env = {**os.environ, "DPGEN_CACHE_DIR": cache}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, mode], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    wall = time.perf_counter() - t0
    return {**json.loads(out.strip().splitlines()[-1]), "wall": wall}


def measure(repeat: int) -> dict[str, list[float]]:
    """Seconds per step, ``repeat`` fresh sets of processes (each set with a new empty cache)."""
    rows: dict[str, list[float]] = {name: [] for name in STEPS}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as cache:
            imported = run("import", cache)
            build = run("build", cache)
            first = run("compile", cache)
            cached = run("compile", cache)
        rows["import dpgen"].append(first["import"])
        rows["process start to import dpgen done (wall)"].append(imported["wall"])
        rows["build (SymPy + codegen)"].append(build["seconds"])
        rows["first compile + call"].append(first["seconds"])
        rows["cached load + call"].append(cached["seconds"])
        rows["first: process start to first forward+vjp (wall)"].append(first["wall"])
        rows["cached: process start to first forward+vjp (wall)"].append(cached["wall"])
    return rows


STEPS = (
    "import dpgen",
    "process start to import dpgen done (wall)",
    "build (SymPy + codegen)",
    "first compile + call",
    "cached load + call",
    "first: process start to first forward+vjp (wall)",
    "cached: process start to first forward+vjp (wall)",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = measure(args.repeat)
    print(f"upwind stencil (wrt d, u, dt), median of {args.repeat} fresh processes each")
    print(f"{'step':<50} {'median s':>9} {'min s':>7}")
    for name, values in rows.items():
        print(f"{name:<50} {statistics.median(values):9.3f} {min(values):7.3f}")


if __name__ == "__main__":
    main()
