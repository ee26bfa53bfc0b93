"""JAX bridge: compiled stencils and rollouts as ``jax.custom_vjp`` functions.

The kernels run on the host through ``jax.pure_callback``, so the functions work under
``jax.grad`` and ``jax.jit`` (the callback is an opaque node in the compiled graph; its
vjp is another callback into dpgen's adjoint). Importing this module imports JAX;
``import dpgen`` never does. Use float64 (``jax.config.update("jax_enable_x64", True)``)
to check gradients.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("dpgen's JAX bridge needs JAX: pip install 'dpgen[jax]' (or pip install jax)") from exc

from ..losses import FunctionLoss
from ..rollout import Rollout
from ..runtime import CompiledStencil


def _host(values) -> list:
    return [np.asarray(v) for v in values]


def _custom(names: tuple[str, ...], out_names: tuple[str, ...], forward, backward, grid_index: int):
    """A custom_vjp function of positional values (one per name) returning one array per output."""

    def out_spec(values):
        grid = values[grid_index]
        return tuple(jax.ShapeDtypeStruct(grid.shape, grid.dtype) for _ in out_names)

    @jax.custom_vjp
    def fn(*values):
        return jax.pure_callback(lambda *v: tuple(forward(_host(v))), out_spec(values), *values)

    def fwd(*values):
        return fn(*values), values

    def bwd(values, cotangents):
        spec = tuple(jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v)) for v in values)
        n = len(values)
        grads = jax.pure_callback(lambda *a: tuple(backward(_host(a[:n]), _host(a[n:]))), spec,
                                  *values, *cotangents)
        return tuple(grads)

    fn.defvjp(fwd, bwd)
    return fn


def _as_values(inputs: dict) -> tuple[tuple[str, ...], list]:
    names = tuple(inputs)
    return names, [jnp.asarray(v, dtype=jnp.result_type(float)) if np.ndim(v) == 0 else jnp.asarray(v)
                   for v in inputs.values()]


def stencil_function(k: CompiledStencil) -> Callable[..., dict]:
    """``f(**inputs) -> {output: array}`` with gradients for the inputs and parameters in ``k.wrt``."""

    @functools.lru_cache(maxsize=None)
    def build(names: tuple[str, ...]):
        def forward(values):
            kw = {n: (float(v) if n in k.params else v) for n, v in zip(names, values)}
            out = k.forward(**kw)
            return [out[o] for o in k.outputs]

        def backward(values, cots):
            kw = {n: (float(v) if n in k.params else v) for n, v in zip(names, values)}
            res = k.vjp(dict(zip(k.outputs, cots)), **kw)
            return [np.asarray(res[n], dtype=v.dtype).reshape(v.shape) if n in res else np.zeros_like(v)
                    for n, v in zip(names, values)]

        grid_index = next(i for i, n in enumerate(names) if n in k.inputs)
        return _custom(names, k.outputs, forward, backward, grid_index)

    def apply(**inputs) -> dict:
        names, values = _as_values(inputs)
        return dict(zip(k.outputs, build(names)(*values)))

    return apply


def rollout_function(sim: Rollout) -> Callable[..., dict]:
    """``f(**inputs) -> {state field: final array}`` for a :class:`~dpgen.Rollout`."""
    state = sim.step.state

    @functools.lru_cache(maxsize=None)
    def build(names: tuple[str, ...]):
        def kwargs(values):
            return {n: (float(v) if np.ndim(v) == 0 else v) for n, v in zip(names, values)}

        def forward(values):
            final = sim.run(**kwargs(values))
            return [final[s] for s in state]

        def backward(values, cots):
            linear = FunctionLoss(lambda t, st: (0.0, dict(zip(state, cots))))
            _, res = sim.value_and_grad(linear, wrt=list(names), **kwargs(values))
            return [np.asarray(res[n], dtype=v.dtype).reshape(v.shape) for n, v in zip(names, values)]

        grid_index = next(i for i, n in enumerate(names) if n in state)
        return _custom(names, state, forward, backward, grid_index)

    def apply(**inputs) -> dict:
        names, values = _as_values(inputs)
        return dict(zip(state, build(names)(*values)))

    return apply


def step_function(step) -> Callable[..., dict]:
    """One :class:`~dpgen.Step` as a function: ``rollout_function`` of a one-step rollout."""
    return rollout_function(Rollout(step, 1))


__all__ = ["rollout_function", "step_function", "stencil_function"]
