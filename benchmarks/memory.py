"""Peak extra memory of one value+gradient, each in a fresh process.

Parent side, :func:`measure_in_subprocess`: runs ``python -m benchmarks measure-memory
--problem P --case I --impl NAME [--quick]`` and reads the JSON line it prints.

Child side, :func:`measure`: imports only the measured implementation's library, warms
it up on the problem's tiny case (JIT compilation; both kernel variants for dpgen and
the hand-written Numba), sets up the real inputs (JAX compiles for the real shapes
here, ahead of time), then records the resident set size, resets the kernel's peak
counter (``/proc/self/clear_refs``, Linux), runs value+gradient once and reports the
peak minus the RSS before. Inputs allocated in the setup are not counted; everything
the call allocates (stored states, temporaries, the gradients it returns) is.

The peak is read as ``VmHWM`` from ``/proc/self/status``: the high-water mark of this
process's own address space, the counter ``clear_refs`` resets. ``ru_maxrss``
(``resource.getrusage``, KiB) is recorded too but is not usable here: on Linux it is
the larger of that counter and a per-process value carried over ``fork`` + ``exec``,
which holds the parent's resident size (hundreds of MB for the benchmark process,
with JAX and PyTorch loaded) and which no reset clears. Where ``clear_refs`` cannot be
written, the report falls back to ``ru_maxrss`` and says so.

So that freed memory kept by the C allocator cannot hide part of the peak, the child
runs with glibc's ``MALLOC_MMAP_THRESHOLD_=131072`` (every block from 128 KiB up is its
own mapping, returned to the system when freed; this also switches off glibc's dynamic
threshold) and calls ``malloc_trim(0)`` before it records the RSS.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import harness, problems

ROOT = Path(__file__).resolve().parent.parent


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise OSError(f"no {key} in /proc/self/status")


def rss_kib() -> int:
    """Current resident set size (KiB)."""
    return _status_kib("VmRSS")


def peak_kib() -> int:
    """High-water mark of the resident set size since start or the last :func:`reset_peak` (KiB)."""
    return _status_kib("VmHWM")


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (``ru_maxrss``) to the current RSS; False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def release_free_memory() -> None:
    """Hand memory the C allocator keeps back to the system (glibc ``malloc_trim``; no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(problem_name: str, case_index: int, impl_name: str, quick: bool) -> dict[str, Any]:
    """Child side: the peak extra memory (MB) of one value+gradient."""
    problem = problems.get(problem_name)
    case = problem.cases(quick)[case_index]
    cls = harness.load(problem.IMPLEMENTATIONS[impl_name])
    cls.warmup(problem.make_data(problem.tiny()))
    impl = cls(problem.make_data(case))
    gc.collect()
    release_free_memory()
    before = rss_kib()
    was_reset = reset_peak()
    result = impl.value_and_grad()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak_kib() if was_reset else maxrss
    del result
    return {
        "extra_mb": (peak - before) * 1024 / 1e6,
        "rss_before_mb": before * 1024 / 1e6,
        "peak_mb": peak * 1024 / 1e6,
        "peak_source": "VmHWM after clear_refs reset" if was_reset else "ru_maxrss (no reset possible)",
        "ru_maxrss_mb": maxrss * 1024 / 1e6,
    }


def measure_in_subprocess(problem_name: str, case_index: int, impl_name: str, quick: bool,
                          timeout: float = 1800) -> dict[str, Any]:
    """Parent side: run :func:`measure` in a fresh interpreter; ``{"error": ...}`` if it fails."""
    command = [sys.executable, "-m", "benchmarks", "measure-memory", "--problem", problem_name,
               "--case", str(case_index), "--impl", impl_name] + (["--quick"] if quick else [])
    try:
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])
