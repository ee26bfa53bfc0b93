"""``python -m benchmarks run --quick``: every problem runs, and every implementation agrees with dpgen.

One quick run (a subprocess from the repository root, well under a minute on an idle
2-core machine) feeds all the checks below. Times are not checked. A peer whose
library is not installed (its row says "not installed") is reported as skipped.
"""

import json
import subprocess
import sys

import pytest

from helpers import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import problems  # noqa: E402

SIDE_BY_SIDE = [name for name in problems.NAMES if name not in problems.OWN_TABLE]
ROWS = [(name, impl) for name in SIDE_BY_SIDE for impl in problems.get(name).IMPLEMENTATIONS]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmarks")
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "run", "--quick", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, f"benchmark run failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    data = json.loads((out / "results.json").read_text())
    data["_markdown"] = (out / "results.md").read_text()
    data["_stdout"] = proc.stdout
    return data


def test_every_problem_ran_and_the_report_was_written(results):
    assert list(results["problems"]) == list(problems.NAMES)
    assert results["passed"] and results["quick"]
    markdown = results["_markdown"]
    assert markdown.startswith("# dpgen benchmarks") and "python -m benchmarks run --quick" in markdown
    assert "| implementation |" in results["_stdout"]
    for key in ("large", "cache"):
        assert results["probe"][key]["gbs"] > 0
    assert "write-allocate" in results["probe"]["note"]
    assert results["machine"]["cores"] >= 1 and results["machine"]["versions"]["dpgen"]


@pytest.mark.parametrize("problem, implementation", ROWS, ids=[f"{p}-{i.split()[0]}" for p, i in ROWS])
def test_implementation_agrees_with_dpgen(results, problem, implementation):
    for case in results["problems"][problem]["cases"]:
        assert case["reference"] is not None and case["reference"].startswith("dpgen")
        row = next(r for r in case["rows"] if r["implementation"] == implementation)
        if row["status"] == "not installed":
            pytest.skip(f"{implementation}: {row['error']}")
        assert row["status"] == "ok", row
        if implementation != case["reference"]:
            assert max(row["value_rel_err"], row["grad_rel_err"]) <= case["tolerance"]
        assert row["forward"]["median"] > 0 and row["value_and_grad"]["median"] > 0
        assert "extra_mb" in row["memory"], row["memory"]


def test_kernel_table_counts_minimal_bytes(results):
    rows = results["problems"]["kernels"]["rows"]
    assert {(r["stencil"], r["kernel"]) for r in rows} >= {("upwind_1d", "forward"), ("upwind_1d", "adjoint")}
    upwind = {r["kernel"]: r for r in rows if r["stencil"] == "upwind_1d"}
    cells = 10_000  # quick size
    # forward: read d, u, write d_new; adjoint: read d, u, d_bar, u_bar (+=), write d_bar, u_bar
    assert upwind["forward"]["bytes"] == 3 * 8 * cells and upwind["adjoint"]["bytes"] == 6 * 8 * cells
    assert all(r["gbs"] > 0 and r["of_cache_probe"] > 0 for r in rows)
    # the share of the probe timed beside the kernel, round by round
    section = results["problems"]["kernels"]
    assert section["repeat"] == section["rounds"] * section["per_round"]
    for r in rows:
        assert r["probe_beside_gbs"] > 0
        assert r["of_probe_beside_min"] <= r["of_probe_beside"] <= r["of_probe_beside_max"]
    assert "| of probe beside |" in results["_markdown"]


def test_compile_times_from_fresh_processes(results):
    rows = {r["step"]: r for r in results["problems"]["compile"]["rows"]}
    assert {"import dpgen", "first compile + call", "cached load + call"} <= set(rows)
    assert all(r["median"] > 0 for r in rows.values())


def test_each_round_rewarms_the_kernel_after_the_probe(monkeypatch):
    """Per round: the probe, one untimed call (the probe evicted the kernel's data), then the timed calls."""
    from benchmarks.problems import kernels

    events = []
    monkeypatch.setattr(kernels.bandwidth, "measure", lambda *a, **k: events.append("probe") or {"gbs": 50.0})
    stats, probe_gbs, shares = kernels._side_by_side(lambda: events.append("call"), 8_000_000, rounds=3, per_round=4)
    assert events == (["probe"] + ["call"] * 5) * 3
    assert len(stats.raw) == 3 * 4 and probe_gbs == [50.0] * 3 and len(shares) == 3


def test_wide_vector_comparison_swaps_data_sets_and_order():
    """Each variant runs on both data sets and first as often as second (placement bias cancels)."""
    from benchmarks import wide_vectors

    events = []
    calls = {wide: [lambda wide=wide, j=j: events.append((wide, j)) for j in (0, 1)] for wide in (True, False)}
    medians = wide_vectors._alternate(calls, rounds=4, inner=2)
    assert set(medians) == {True, False}
    # per round and variant: one untimed call, then `inner` timed ones, all on one data set
    runs = [events[i:i + 3] for i in range(0, len(events), 3)]
    assert len(runs) == 8 and all(len(set(r)) == 1 for r in runs)
    firsts = [runs[2 * r][0] for r in range(4)]
    assert sorted(w for w, _ in firsts) == [False, False, True, True]  # each variant first twice
    for wide in (True, False):
        assert {j for w, j in (r[0] for r in runs) if w == wide} == {0, 1}  # on both data sets


def test_ratio_floor_times_the_rollouts_own_work(capsys):
    """The kernel-level sweep it times gives the rollout's gradients bit for bit, and it reports all three ratios."""
    from benchmarks import ratio_floor

    ratio_floor.main(["--n", "3000", "--steps", "6", "--rounds", "2"])
    out = capsys.readouterr().out
    for line in ("Rollout.value_and_grad / Rollout.run:", "kernels: (recording + reverse, cold)", "floors: (write floor"):
        assert line in out


def test_ratio_floor_refuses_a_sweep_that_differs_from_the_rollout(monkeypatch, capsys):
    from benchmarks import ratio_floor

    parts = ratio_floor.Parts(500, 4)
    exact = parts.reverse
    monkeypatch.setattr(parts, "reverse", lambda warm=False: (exact(warm)[0], exact(warm)[1] * (1 + 1e-15)))
    with pytest.raises(SystemExit) as stop:
        ratio_floor.check(parts)
    assert stop.value.code == 1 and "w.r.t. u differs" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="even"):
        ratio_floor.Parts(500, 5)
