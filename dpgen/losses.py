"""Losses for rollouts: a value and its gradient with respect to observed states.

A loss observes the state after ``t`` steps for every ``t`` in :attr:`Loss.steps`
(``None``: only after the last step) and returns ``(value, {field: gradient})``.
The rollout adds each gradient to the state cotangent when its reverse sweep passes
that step, so trajectory losses cost no extra stored states.

Examples
--------
>>> import numpy as np
>>> loss = L2(np.zeros(3), field="d")
>>> loss.evaluate(5, {"d": np.array([1.0, 2.0, 0.0])})
(5.0, {'d': array([2., 4., 0.])})
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from .errors import ShapeError, UnknownArgumentError
from .runtime.twins import copy_into, squared_misfit

State = Mapping[str, np.ndarray]


class Loss:
    """Base class: override :meth:`value_and_grad`; set ``steps`` to observe a trajectory."""

    #: steps ``t`` (0 = initial state, ``T`` = final) at which the state is observed
    steps: tuple[int, ...] | None = None
    #: whether the loss may keep a reference to the state arrays it is given (or return
    #: them as gradients). Only when this is False may a rollout reuse its state buffers
    #: after the loss has seen them; subclasses that copy what they keep can say so.
    keeps_state: bool = True

    def value_and_grad(self, t: int, state: State) -> tuple[float, dict[str, np.ndarray]]:
        raise NotImplementedError

    def observed_steps(self, total: int) -> tuple[int, ...]:
        """The observed steps for a rollout of ``total`` steps (validated)."""
        steps = (total,) if self.steps is None else tuple(sorted(set(int(s) for s in self.steps)))
        bad = [s for s in steps if not 0 <= s <= total]
        if bad:
            raise ValueError(f"loss observes step(s) {bad} outside 0..{total}")
        return steps

    def value_and_grad_into(
        self, t: int, state: State, out: Mapping[str, np.ndarray]
    ) -> tuple[float, dict[str, np.ndarray]]:
        """:meth:`value_and_grad`, free to write the gradient of a field in ``out`` into ``out[field]``.

        ``out`` holds buffers the caller owns, shaped like the state. This default writes
        nothing there; a loss that overrides it saves a new array per call (a rollout
        passes the buffer its reverse sweep starts from).
        """
        return self.value_and_grad(t, state)

    def evaluate(
        self, t: int, state: State, out: Mapping[str, np.ndarray] | None = None
    ) -> tuple[float, dict[str, np.ndarray]]:
        """:meth:`value_and_grad` with its gradient checked against the state.

        With ``out`` (buffers per state field), a gradient for a field in ``out`` is
        returned in that buffer: written there by :meth:`value_and_grad_into`, or copied.
        """
        value, grads = self.value_and_grad(t, state) if out is None else self.value_and_grad_into(t, state, out)
        checked = {}
        for name, g in grads.items():
            if name not in state:
                raise UnknownArgumentError(
                    f"loss returned a gradient for {name!r}, which is not a state field "
                    f"(state: {', '.join(state)})"
                )
            g = np.asarray(g)
            if g.shape != state[name].shape:
                raise ShapeError(
                    f"loss gradient for {name!r} at step {t} has shape {g.shape}; the state has "
                    f"shape {state[name].shape}"
                )
            if out is not None and name in out and g is not out[name]:
                copy_into(out[name], g)
                g = out[name]
            checked[name] = g
        return float(value), checked


class L2(Loss):
    """``sum (x_t - target_t)**2`` over the observed steps (squared Euclidean misfit).

    Parameters
    ----------
    target : array or mapping
        One array for every observed step, or ``{step: array}``.
    field : str
        The state field compared with the target.
    steps : sequence of int, optional
        Observed steps; default: the final state only (or the keys of ``target``).
    weight : float
        Factor on the value (and gradient).
    """

    keeps_state = False  # the gradient is a new array; no reference to the state is kept

    def __init__(
        self,
        target: np.ndarray | Mapping[int, np.ndarray],
        field: str,
        steps: Sequence[int] | None = None,
        weight: float = 1.0,
    ):
        self.field = field
        self.weight = float(weight)
        if isinstance(target, Mapping):
            self.targets = {int(k): np.asarray(v) for k, v in target.items()}
            self.steps = tuple(sorted(self.targets))
        else:
            self.targets = None
            self.target = np.asarray(target)
            self.steps = None if steps is None else tuple(steps)

    def _misfit(self, t: int, state: State, out: np.ndarray | None) -> tuple[float, dict[str, np.ndarray]]:
        if self.field not in state:
            raise UnknownArgumentError(f"L2 loss on {self.field!r}, which is not a state field ({', '.join(state)})")
        target = self.target if self.targets is None else self.targets[t]
        x = state[self.field]
        if target.shape != x.shape:
            raise ShapeError(f"L2 target for {self.field!r} has shape {target.shape}; the state has {x.shape}")
        squares, gradient = squared_misfit(x, target, 2.0 * self.weight, out)  # one pass over the state
        return self.weight * squares, {self.field: gradient}

    def value_and_grad(self, t: int, state: State) -> tuple[float, dict[str, np.ndarray]]:
        return self._misfit(t, state, None)

    def value_and_grad_into(
        self, t: int, state: State, out: Mapping[str, np.ndarray]
    ) -> tuple[float, dict[str, np.ndarray]]:
        return self._misfit(t, state, out.get(self.field))


class FunctionLoss(Loss):
    """Wrap ``fn(t, state) -> (value, {field: gradient})`` as a loss."""

    def __init__(self, fn: Callable[[int, State], tuple[float, Mapping[str, np.ndarray]]], steps: Sequence[int] | None = None):
        self.fn = fn
        self.steps = None if steps is None else tuple(steps)

    def value_and_grad(self, t: int, state: State) -> tuple[float, dict[str, np.ndarray]]:
        value, grads = self.fn(t, state)
        return value, dict(grads)


def as_loss(loss: Loss | Callable) -> Loss:
    """Accept a :class:`Loss` or a plain ``fn(t, state)`` (final state only)."""
    if isinstance(loss, Loss):
        return loss
    if callable(loss):
        return FunctionLoss(loss)
    raise TypeError(f"expected a dpgen Loss or a callable, got {type(loss).__name__}")
