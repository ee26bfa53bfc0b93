"""PyTorch bridge: compiled stencils and rollouts as ``torch.autograd.Function``s.

Tensors in, tensors out; CPU tensors are shared with NumPy without copies where the
layout allows (``Tensor.numpy()`` / ``torch.from_numpy``). Gradients flow upstream to
whatever produced the inputs (a network) and downstream from the loss. Importing this
module imports PyTorch; ``import dpgen`` never does.

Examples
--------
>>> import torch, dpgen as dp
>>> from dpgen.bridges.torch import stencil_function
>>> d = dp.Field("d")
>>> f = stencil_function(dp.compile(dp.Stencil("sq_doc", {d: d[0] ** 2 + d[1]}), wrt="d"))
>>> x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
>>> f(d=x)["d"].sum().backward()
>>> x.grad
tensor([3., 5., 7.], dtype=torch.float64)
"""

from __future__ import annotations

from typing import Callable

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "dpgen's PyTorch bridge needs PyTorch: pip install 'dpgen[torch]' (or pip install torch)"
    ) from exc

from ..losses import FunctionLoss
from ..rollout import Rollout
from ..runtime import CompiledStencil


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    """Share a CPU tensor's memory with NumPy (a copy only for GPU or non-strided tensors)."""
    return t.detach().cpu().numpy()


def _to_torch(a: np.ndarray | float, like: torch.Tensor | None = None) -> torch.Tensor:
    if np.ndim(a) == 0:
        return torch.tensor(float(a), dtype=like.dtype if like is not None else torch.float64)
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t if like is None else t.to(like.device)


class _StencilFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, k: CompiledStencil, names: tuple[str, ...], *values: torch.Tensor):
        arrays = {n: _to_numpy(v) for n, v in zip(names, values) if n in k.inputs}
        params = {n: float(v) for n, v in zip(names, values) if n in k.params}
        ctx.k, ctx.names = k, names
        ctx.save_for_backward(*values)
        out = k.forward(**arrays, **params)
        like = next(v for v in values if v.ndim > 0)
        return tuple(_to_torch(out[o], like) for o in k.outputs)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        k, names = ctx.k, ctx.names
        values = ctx.saved_tensors
        arrays = {n: _to_numpy(v) for n, v in zip(names, values) if n in k.inputs}
        params = {n: float(v) for n, v in zip(names, values) if n in k.params}
        cot = {o: _to_numpy(g) for o, g in zip(k.outputs, grads) if g is not None}
        if not cot:
            return (None, None) + (None,) * len(values)
        res = k.vjp(cot, **arrays, **params)
        result = []
        for n, v in zip(names, values):
            result.append(_to_torch(res[n], v) if n in res and ctx.needs_input_grad[2 + len(result)] else None)
        return (None, None, *result)


def stencil_function(k: CompiledStencil) -> Callable[..., dict[str, torch.Tensor]]:
    """``f(**inputs) -> {output: tensor}``, differentiable w.r.t. the inputs and parameters in ``k.wrt``.

    Parameters may be Python numbers (constants) or 0-d tensors (differentiable if in
    ``wrt``).
    """

    def apply(**inputs: torch.Tensor | float) -> dict[str, torch.Tensor]:
        names = tuple(inputs)
        values = [v if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=torch.float64) for v in inputs.values()]
        outs = _StencilFunction.apply(k, names, *values)
        return dict(zip(k.outputs, outs))

    return apply


class _RolloutFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sim: Rollout, names: tuple[str, ...], *values: torch.Tensor):
        inputs = {n: (_to_numpy(v) if v.ndim else float(v)) for n, v in zip(names, values)}
        ctx.sim, ctx.names = sim, names
        ctx.save_for_backward(*values)
        final = sim.run(**inputs)
        like = next(v for v in values if v.ndim > 0)
        return tuple(_to_torch(final[s], like) for s in sim.step.state)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor):
        sim, names = ctx.sim, ctx.names
        values = ctx.saved_tensors
        inputs = {n: (_to_numpy(v) if v.ndim else float(v)) for n, v in zip(names, values)}
        cot = {s: _to_numpy(g) for s, g in zip(sim.step.state, grads) if g is not None}
        wrt = [n for n, need in zip(names, ctx.needs_input_grad[2:]) if need]
        if not cot or not wrt:
            return (None, None) + (None,) * len(values)
        # the incoming cotangent as a linear loss on the final state: <cot, state_T>
        linear = FunctionLoss(lambda t, state: (0.0, {n: c for n, c in cot.items()}))
        _, res = sim.value_and_grad(linear, wrt=wrt, **inputs)
        return (None, None, *[_to_torch(res[n], v) if n in res else None for n, v in zip(names, values)])


def rollout_function(sim: Rollout) -> Callable[..., dict[str, torch.Tensor]]:
    """``f(**inputs) -> {state field: final tensor}`` for a :class:`~dpgen.Rollout`.

    The backward pass runs the rollout's reverse sweep with the incoming cotangent
    (the forward is recomputed there; checkpointing settings of ``sim`` apply).
    """

    def apply(**inputs: torch.Tensor | float) -> dict[str, torch.Tensor]:
        names = tuple(inputs)
        values = [v if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=torch.float64) for v in inputs.values()]
        outs = _RolloutFunction.apply(sim, names, *values)
        return dict(zip(sim.step.state, outs))

    return apply


def step_function(step) -> Callable[..., dict]:
    """One :class:`~dpgen.Step` as a function: ``rollout_function`` of a one-step rollout."""
    return rollout_function(Rollout(step, 1))


__all__ = ["rollout_function", "step_function", "stencil_function"]
