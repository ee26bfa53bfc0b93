"""Optimisers for ``value_and_grad`` functions over named arrays: L-BFGS-B, gradient descent, Adam.

Every optimiser takes ``fun(x) -> (value, {name: gradient})`` with ``x`` a dict of
arrays (what :meth:`dpgen.Rollout.objective` returns), keeps a :class:`History` of
the loss and gradient norm per iteration, and can show a tqdm progress bar.

Examples
--------
>>> import numpy as np
>>> fun = lambda x: (float(np.sum((x["a"] - 3) ** 2)), {"a": 2 * (x["a"] - 3)})
>>> result = minimize(fun, {"a": np.zeros(4)}, bounds={"a": (None, 2.5)})
>>> np.round(result.x["a"], 6).tolist(), result.success
([2.5, 2.5, 2.5, 2.5], True)
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Mapping

import numpy as np
import scipy.optimize

ValueAndGrad = Callable[[Mapping[str, np.ndarray]], tuple[float, Mapping[str, object]]]
Bounds = Mapping[str, tuple[float | None, float | None]]


@dataclasses.dataclass
class History:
    """Loss and gradient norm after every iteration (index 0: the starting point)."""

    loss: list[float] = dataclasses.field(default_factory=list)
    grad_norm: list[float] = dataclasses.field(default_factory=list)
    seconds: list[float] = dataclasses.field(default_factory=list)

    def record(self, value: float, grad: np.ndarray, start: float) -> None:
        self.loss.append(float(value))
        self.grad_norm.append(float(np.linalg.norm(grad)))
        self.seconds.append(time.perf_counter() - start)

    @property
    def reduction(self) -> float:
        """First loss over last loss."""
        return self.loss[0] / self.loss[-1] if self.loss and self.loss[-1] > 0 else math.inf


@dataclasses.dataclass
class OptimizationResult:
    """The optimum found, the loss there, and how the run went."""

    x: dict[str, np.ndarray]
    fun: float
    history: History
    nit: int
    nfev: int
    success: bool
    message: str


class _Packer:
    """Named arrays <-> one float64 vector (what scipy's optimisers work on)."""

    def __init__(self, x0: Mapping[str, object]):
        self.names = list(x0)
        self.shapes = [np.shape(x0[n]) for n in self.names]
        self.sizes = [int(np.prod(s)) for s in self.shapes]

    def pack(self, x: Mapping[str, object]) -> np.ndarray:
        return np.concatenate([np.asarray(x[n], dtype=np.float64).ravel() for n in self.names])

    def unpack(self, vector: np.ndarray) -> dict[str, np.ndarray | float]:
        out: dict[str, np.ndarray | float] = {}
        start = 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            part = vector[start : start + size]
            out[name] = float(part[0]) if shape == () else part.reshape(shape)  # scalars stay scalars
            start += size
        return out

    def bounds(self, bounds: Bounds | None) -> list[tuple[float | None, float | None]] | None:
        if not bounds:
            return None
        unknown = set(bounds) - set(self.names)
        if unknown:
            raise KeyError(f"bounds for unknown variable(s) {sorted(unknown)}; variables: {self.names}")
        result = []
        for name, size in zip(self.names, self.sizes):
            result += [bounds.get(name, (None, None))] * size
        return result


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm  # imported here: not needed unless an optimiser runs

    return tqdm(total=total, disable=not enabled, desc=desc, leave=False)


def minimize(
    fun: ValueAndGrad,
    x0: Mapping[str, object],
    *,
    bounds: Bounds | None = None,
    method: str = "L-BFGS-B",
    maxiter: int = 100,
    tol: float | None = None,
    progress: bool = False,
    options: Mapping[str, object] | None = None,
) -> OptimizationResult:
    """Minimise with ``scipy.optimize.minimize`` (L-BFGS-B by default, with bounds).

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (value, {name: gradient})``.
    x0 : mapping
        Starting point: ``{name: array or float}``.
    bounds : mapping, optional
        ``{name: (low, high)}``, ``None`` for an open side; applied to every entry.
    maxiter : int
        Iteration limit.
    """
    packer = _Packer(x0)
    history = History()
    start = time.perf_counter()
    bar = _progress(maxiter, progress, method)
    evaluated: dict[bytes, tuple[float, np.ndarray]] = {}  # by x: the callback reports accepted points

    def scipy_fun(vector: np.ndarray) -> tuple[float, np.ndarray]:
        value, grads = fun(packer.unpack(vector.copy()))
        grad = packer.pack(grads)
        if len(evaluated) > 64:
            evaluated.clear()
        evaluated[vector.tobytes()] = (float(value), grad)
        if not history.loss:
            history.record(value, grad, start)
        return float(value), grad

    def callback(intermediate_result) -> None:
        value, grad = evaluated.get(np.asarray(intermediate_result.x).tobytes(), (float(intermediate_result.fun), np.full(1, np.nan)))
        history.record(value, grad, start)
        bar.update(1)
        bar.set_postfix(loss=f"{value:.3e}")

    try:
        res = scipy.optimize.minimize(
            scipy_fun,
            packer.pack(x0),
            jac=True,
            method=method,
            bounds=packer.bounds(bounds),
            tol=tol,
            callback=callback,
            options={"maxiter": maxiter, **(options or {})},
        )
    finally:
        bar.close()
    if history.loss[-1] != float(res.fun):  # make the last entry the reported optimum
        history.record(float(res.fun), np.asarray(res.jac), start)
    return OptimizationResult(packer.unpack(res.x), float(res.fun), history, int(res.nit), int(res.nfev),
                              bool(res.success), str(res.message))


def _first_order(
    fun: ValueAndGrad,
    x0: Mapping[str, object],
    steps: int,
    update: Callable[[np.ndarray, np.ndarray, int], np.ndarray],
    bounds: Bounds | None,
    progress: bool,
    desc: str,
) -> OptimizationResult:
    packer = _Packer(x0)
    x = packer.pack(x0)
    box = packer.bounds(bounds)
    low = None if box is None else np.array([-np.inf if b[0] is None else b[0] for b in box])
    high = None if box is None else np.array([np.inf if b[1] is None else b[1] for b in box])
    history = History()
    start = time.perf_counter()
    value = math.nan
    with _progress(steps, progress, desc) as bar:
        for it in range(steps + 1):
            value, grads = fun(packer.unpack(x))
            grad = packer.pack(grads)
            history.record(value, grad, start)
            if it == steps or not math.isfinite(value):
                break
            x = update(x, grad, it)
            if box is not None:
                x = np.clip(x, low, high)
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3e}")
    ok = math.isfinite(value)
    return OptimizationResult(packer.unpack(x), float(value), history, steps, steps + 1, ok,
                              "iteration limit reached" if ok else "loss became non-finite")


def gradient_descent(
    fun: ValueAndGrad,
    x0: Mapping[str, object],
    *,
    lr: float,
    steps: int = 100,
    bounds: Bounds | None = None,
    progress: bool = False,
) -> OptimizationResult:
    """Plain gradient descent ``x <- x - lr * grad`` (projected onto ``bounds``)."""
    return _first_order(fun, x0, steps, lambda x, g, it: x - lr * g, bounds, progress, "gradient descent")


def adam(
    fun: ValueAndGrad,
    x0: Mapping[str, object],
    *,
    lr: float = 1e-2,
    steps: int = 100,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    bounds: Bounds | None = None,
    progress: bool = False,
) -> OptimizationResult:
    """Adam (Kingma & Ba) with bias correction (projected onto ``bounds``)."""
    moments: dict[str, np.ndarray] = {}

    def update(x: np.ndarray, g: np.ndarray, it: int) -> np.ndarray:
        m = moments["m"] = betas[0] * moments.get("m", np.zeros_like(g)) + (1 - betas[0]) * g
        v = moments["v"] = betas[1] * moments.get("v", np.zeros_like(g)) + (1 - betas[1]) * g * g
        m_hat = m / (1 - betas[0] ** (it + 1))
        v_hat = v / (1 - betas[1] ** (it + 1))
        return x - lr * m_hat / (np.sqrt(v_hat) + eps)

    return _first_order(fun, x0, steps, update, bounds, progress, "adam")
