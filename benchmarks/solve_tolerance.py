"""Gradient accuracy of implicit linear solves versus solver tolerance, and iteration counts.

Usage: python benchmarks/solve_tolerance.py [--n 32]

For the 5-point Laplacian (periodic: singular, zero: definite) and a non-self-adjoint
advection-diffusion operator on an n x n grid, solves with rtol 1e-2 ... 1e-12 and
compares ``b_bar = A^-T g`` with the dense (pseudo-)inverse; prints forward and
backward iteration counts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_linear_solve import PARAMS, advection_diffusion, dense, laplacian  # noqa: E402

import dpgen as dp  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32)
    args = parser.parse_args()
    shape = (args.n, args.n)
    rng = np.random.default_rng(0)
    b, g = rng.standard_normal(shape), rng.standard_normal(shape)
    cases = [("laplacian periodic", laplacian("periodic"), PARAMS),
             ("laplacian zero", laplacian("zero"), PARAMS),
             ("advection-diffusion zero", advection_diffusion("zero"), {**PARAMS, "c": 0.8})]
    tolerances = [1e-2, 1e-4, 1e-6, 1e-8, 1e-10, 1e-12]
    print(f"relative error of b_bar = A^-T g against the dense (pseudo-)inverse, {args.n}x{args.n} grid")
    print(f"{'operator':<26}" + "".join(f"{t:>10.0e}" for t in tolerances) + "   iterations fwd/bwd at 1e-12")
    for name, stencil, params in cases:
        A = dense(dp.LinearSolve(stencil, unknown="p"), shape, params)
        exact = (np.linalg.pinv(A).T @ (g - g.mean()).ravel()) if "periodic" in name else np.linalg.solve(A.T, g.ravel())
        row = []
        for tol in tolerances:
            solve = dp.LinearSolve(stencil, unknown="p", rtol=tol)
            rhs = b - b.mean() if "periodic" in name else b
            solve.forward(b=rhs, **params)
            got = solve.vjp({"p": g}, b=rhs, **params)["b"].ravel()
            row.append(np.max(np.abs(got - exact)) / np.max(np.abs(exact)))
        print(f"{name:<26}" + "".join(f"{e:>10.1e}" for e in row)
              + f"   {solve.forward_info.iterations}/{solve.backward_info.iterations}")


if __name__ == "__main__":
    main()
