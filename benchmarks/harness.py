"""The pieces every problem shares: the implementation interface, timing, agreement checks.

An *implementation* is one way of computing a problem (dpgen, hand-written NumPy, JAX,
...). It sets itself up in ``__init__`` from the problem's data (NumPy arrays and
scalars), compiling there where its library allows it (JAX ahead-of-time), and then
offers :meth:`Implementation.forward` and :meth:`Implementation.value_and_grad`, both
blocking until the result exists.

Implementations are named by ``"module:Class"`` strings and imported on use, so that a
missing optional library (``jax``, ``torch``) turns into a "not installed" row and a
memory-measuring subprocess imports only the library it measures.
"""

from __future__ import annotations

import dataclasses
import importlib
import statistics
import time
from typing import Any, Callable, Mapping

import numpy as np

#: libraries whose absence makes a row "not installed" instead of an error
OPTIONAL_LIBRARIES = ("jax", "jaxlib", "torch")

#: ``(value, {name: gradient})`` as NumPy
Result = tuple[float, dict[str, np.ndarray]]


class Unavailable(Exception):
    """An optional peer library is not installed (its row says so and the run goes on)."""


class Implementation:
    """One way of computing a problem's forward pass and its value and gradient.

    Parameters
    ----------
    data : mapping
        The problem's inputs (``make_data`` of the problem module): NumPy arrays and
        Python scalars.
    """

    #: the library whose version the row reports (``numpy``, ``jax``, ...)
    library: str = "numpy"

    def __init__(self, data: Mapping[str, Any]):
        self.data = data

    def forward(self) -> Any:
        """The forward result (blocks until computed)."""
        raise NotImplementedError

    def value_and_grad(self) -> tuple[Any, dict[str, Any]]:
        """``(value, {input name: gradient})`` (blocks until computed)."""
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """Extra facts for the notes column: compile time, solver iterations, ..."""
        return {}

    @classmethod
    def warmup(cls, data: Mapping[str, Any]) -> None:
        """Compile every code path on a tiny problem (memory runs call this first)."""
        cls(data).value_and_grad()


class DpgenImplementation(Implementation):
    """Base of the dpgen rows: the warm-up loads both kernel variants.

    dpgen calls a kernel's ``prange`` variant only from ``DPGEN_PARALLEL_THRESHOLD``
    cells on, its serial twin below; a tiny warm-up would otherwise load just one.
    """

    library = "dpgen"

    @classmethod
    def warmup(cls, data: Mapping[str, Any]) -> None:
        from dpgen.config import override

        with override(parallel_threshold=0):
            cls(data).value_and_grad()
        cls(data).value_and_grad()


def load(spec: str) -> type[Implementation]:
    """Import ``"package.module:Class"``; a missing optional library raises :class:`Unavailable`."""
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in OPTIONAL_LIBRARIES:
            raise Unavailable(f"{missing} not installed") from exc
        raise
    return getattr(module, attr)


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array from a NumPy, JAX or PyTorch array (or a scalar)."""
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def as_result(result: tuple[Any, Mapping[str, Any]]) -> Result:
    """``value_and_grad``'s output as ``(float, {name: ndarray})``."""
    value, grads = result
    return float(to_numpy(value)), {name: to_numpy(g) for name, g in grads.items()}


def relative_error(got: np.ndarray | float, want: np.ndarray | float) -> float:
    """``max |got - want| / max |want|`` (absolute error where ``want`` is all zero)."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    return diff / scale if scale > 0 else diff


def compare(result: Result, reference: Result) -> tuple[float, float]:
    """Relative error of the value and the largest one over the reference's gradients."""
    value, grads = result
    ref_value, ref_grads = reference
    grad_error = max((relative_error(grads[n], g) if n in grads else float("inf")) for n, g in ref_grads.items())
    return relative_error(value, ref_value), grad_error


@dataclasses.dataclass
class Stats:
    """Seconds of repeated calls: median, min, max and every sample."""

    median: float
    min: float
    max: float
    raw: list[float]

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        return cls(statistics.median(samples), min(samples), max(samples), list(samples))


def time_calls(fn: Callable[[], Any], repeat: int, budget: float | None = None) -> Stats:
    """Call ``fn`` ``repeat`` times (it must block until done); the wall-clock statistics.

    The caller warms ``fn`` up (compilation, first-touch allocation) beforehand. With a
    ``budget`` (seconds; the quick smoke run), stop early once the samples add up to
    more than it, keeping at least one.
    """
    samples: list[float] = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if budget is not None and sum(samples) > budget:
            break
    return Stats.of(samples)
