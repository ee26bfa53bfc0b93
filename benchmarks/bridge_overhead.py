"""Per-call overhead of the PyTorch and JAX bridges against calling the compiled kernels directly.

Usage: python benchmarks/bridge_overhead.py [--repeat 20] [--sizes 10000 1000000]

Times forward + backward of the upwind stencil through ``stencil_function`` (autograd
graph, tensor <-> array sharing) and ``k.forward`` + ``k.vjp`` on the same arrays, side by
side, at a small and a large grid (``--sizes``); best of ``--repeat`` calls.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import dpgen as dp
from dpgen.bridges.torch import stencil_function
from dpgen.stencils import upwind


def best(fn, repeat: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="calls per measurement (the best is kept)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000], help="grid sizes (cells)")
    args = parser.parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", True)
    from dpgen.bridges.jax import stencil_function as jax_function

    k = dp.compile(upwind(1), wrt=("d", "u"))
    f = stencil_function(k)
    fj = jax_function(k)
    print(f"{'cells':>9} {'direct (us)':>12} {'torch (us)':>11} {'ratio':>6} {'jax jit (us)':>13} {'ratio':>6}")
    for n in args.sizes:
        rng = np.random.default_rng(0)
        d, u, g = rng.random(n), rng.uniform(-1, 1, n), rng.standard_normal(n)
        params = dict(dt=0.4 / n, dx=1.0 / n)

        def direct():
            k.forward(d=d, u=u, **params)
            k.vjp({"d": g}, d=d, u=u, **params)

        td, tu, tg = (torch.from_numpy(a).requires_grad_(True) for a in (d, u, g))

        def bridged():
            out = f(d=td, u=tu, **params)["d"]
            out.backward(tg.detach())

        jd, ju, jg = (jax.numpy.asarray(a) for a in (d, u, g))
        vjp_jit = jax.jit(lambda d, u, g: jax.vjp(lambda d, u: fj(d=d, u=u, **params)["d"], d, u)[1](g))

        def bridged_jax():
            jax.block_until_ready(vjp_jit(jd, ju, jg))

        t_direct, t_torch, t_jax = (best(fn, args.repeat) for fn in (direct, bridged, bridged_jax))
        print(f"{n:>9} {t_direct * 1e6:>12.1f} {t_torch * 1e6:>11.1f} {t_torch / t_direct:>6.2f} "
              f"{t_jax * 1e6:>13.1f} {t_jax / t_direct:>6.2f}")


if __name__ == "__main__":
    main()
