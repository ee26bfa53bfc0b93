"""Run one problem size side by side: set up every implementation, check, time, measure memory.

Order per case: set up all implementations (a missing optional library gives a
"not installed" row); run each value+gradient once and compare it with the reference
(the first dpgen row that ran); only then time forward and value+gradient; free
everything; then measure each implementation's peak memory in a fresh process (these
processes run side by side, one per core: a peak resident size is a process's own, and no
timing runs meanwhile).
"""

from __future__ import annotations

import gc
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any, Callable, Mapping

from . import harness, memory
from .problems import Case

#: row statuses that are not failures
PASSING = ("ok", "not installed")
#: seconds of timed calls per measurement in a quick run, after which it stops repeating
QUICK_BUDGET = 0.5


_START = time.perf_counter()
#: seconds of idle time before each implementation is timed (full runs)
SETTLE_S = 1.0
#: memory-measuring processes run at once (their start-up, imports and JIT compiles are CPU-bound)
MEMORY_WORKERS = os.cpu_count() or 1


def log(message: str) -> None:
    """Progress on stderr, with the seconds since the run started."""
    print(f"{time.perf_counter() - _START:7.1f} s  {message}", file=sys.stderr, flush=True)


def _setup(problem: ModuleType, data: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows, impls = [], {}
    for name, spec in problem.IMPLEMENTATIONS.items():
        row: dict[str, Any] = {"implementation": name, "status": "ok", "info": {}}
        try:
            cls = harness.load(spec)
            row["library"] = cls.library
            t0 = time.perf_counter()
            impls[name] = cls(data)
            row["setup_s"] = time.perf_counter() - t0
        except harness.Unavailable as exc:
            row.update(status="not installed", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a broken row must not stop the others
            row.update(status="error", error=f"{type(exc).__name__}: {exc}")
        rows.append(row)
    return rows, impls


def _fail(row: dict[str, Any], impls: dict[str, Any], exc: BaseException) -> None:
    row.update(status="error", error=f"{type(exc).__name__}: {exc}")
    impls.pop(row["implementation"], None)


def _check(problem: ModuleType, rows: list[dict[str, Any]], impls: dict[str, harness.Implementation]) -> str | None:
    """Run every value+gradient once; compare with the reference; return the reference's name."""
    results = {}
    for row in rows:
        name = row["implementation"]
        if name not in impls:
            continue
        try:
            results[name] = harness.as_result(impls[name].value_and_grad())
        except Exception as exc:  # noqa: BLE001
            _fail(row, impls, exc)
    reference = next((r["implementation"] for r in rows
                      if r.get("library") == "dpgen" and r["implementation"] in results), None)
    for row in rows:
        name = row["implementation"]
        if name not in results:
            continue
        row["value"] = results[name][0]
        if reference is None:
            row.update(status="FAIL", error="no dpgen row ran: nothing to compare with")
            continue
        value_err, grad_err = harness.compare(results[name], results[reference])
        row.update(value_rel_err=value_err, grad_rel_err=grad_err)
        if not max(value_err, grad_err) <= problem.TOLERANCE:
            row.update(status="FAIL", error=f"disagrees with {reference} by more than {problem.TOLERANCE:g}")
    return reference


def _time(rows: list[dict[str, Any]], impls: dict[str, harness.Implementation], repeat: int,
          budget: float | None) -> None:
    for row in rows:
        name = row["implementation"]
        if name not in impls:
            continue
        impl = impls[name]
        try:
            # Let the thread pools of the library timed before go idle: OpenBLAS, XLA and
            # PyTorch workers spin for a while after each call and would take the cores
            # from the next row's parallel kernels.
            time.sleep(0.0 if budget is not None else SETTLE_S)
            impl.forward()  # value_and_grad ran in the check: this warms up the forward
            row["forward"] = harness.time_calls(impl.forward, repeat, budget).__dict__
            row["value_and_grad"] = harness.time_calls(impl.value_and_grad, repeat, budget).__dict__
            row["info"].update(impl.info())
        except Exception as exc:  # noqa: BLE001
            _fail(row, impls, exc)


def _derive(rows: list[dict[str, Any]], reference: str | None, traffic: Mapping[str, Any],
            limits: Mapping[str, Any] | None) -> None:
    """grad/forward ratio, GB/s from the minimal bytes, dpgen's speed-up (row / reference), time / limit."""
    ref = next((r for r in rows if r["implementation"] == reference and "forward" in r), None)
    for row in rows:
        if "forward" not in row:
            continue
        fwd, vg = row["forward"]["median"], row["value_and_grad"]["median"]
        row["grad_over_forward"] = vg / fwd
        for key, seconds in (("forward", fwd), ("value_and_grad", vg)):
            if traffic.get(key):
                row[f"{key}_gbs"] = traffic[key] / seconds / 1e9
            if ref is not None:
                row[f"{key}_speedup"] = seconds / ref[key]["median"]
            if limits:
                row[f"{key}_over_limit"] = seconds / limits[key]


def run_case(problem: ModuleType, case: Case, case_index: int, *, quick: bool, repeat: int | None,
             probe: Mapping[str, Any], measure_memory: bool = True,
             progress: Callable[[str], None] = log) -> dict[str, Any]:
    """Everything about one size of one problem, as a JSON-ready dict."""
    repeats = repeat or (3 if case.big else 5)
    name = problem.__name__.rsplit(".", 1)[-1]
    progress(f"[{name} {case.label}] setting up")
    data = problem.make_data(case)
    rows, impls = _setup(problem, data)
    progress(f"[{name} {case.label}] checking value and gradient against dpgen")
    reference = _check(problem, rows, impls)
    progress(f"[{name} {case.label}] timing, {repeats} repeats")
    _time(rows, impls, repeats, QUICK_BUDGET if quick else None)
    del impls, data
    gc.collect()
    traffic = problem.traffic(case)
    limits = problem.limits(case, probe) if hasattr(problem, "limits") else None
    _derive(rows, reference, traffic, limits)
    if measure_memory:
        measured = [row for row in rows if row["status"] in ("ok", "FAIL") and "forward" in row]
        progress(f"[{name} {case.label}] peak memory of {len(measured)} implementations (fresh processes)")
        with ThreadPoolExecutor(max_workers=max(1, min(MEMORY_WORKERS, len(measured)))) as pool:
            results = pool.map(lambda row: memory.measure_in_subprocess(name, case_index, row["implementation"],
                                                                        quick), measured)
            for row, result in zip(measured, results):
                row["memory"] = result
    return {"label": case.label, "params": case.params, "repeat": repeats, "reference": reference,
            "tolerance": problem.TOLERANCE, "traffic_bytes": traffic,
            "stored_states_mb": None if traffic.get("states") is None else traffic["states"] / 1e6,
            "limits": limits, "rows": rows}
