"""``results.json`` and ``results.md``: the Markdown tables of a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .problems import NAMES

COLUMNS = ("implementation", "check", "rel. err value / grad", "forward ms", "value+grad ms", "grad/fwd",
           "peak extra MB", "fwd GB/s", "v+g GB/s", "dpgen speed-up fwd / v+g", "notes")


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "—"
    return f"{x:.{digits}g}" if abs(x) < 10 ** digits else f"{x:,.0f}"


def _ms(stats: Mapping[str, Any] | None, repeat: int) -> str:
    if not stats:
        return "—"
    text = f"{_num(stats['median'] * 1e3)} ({_num(stats['min'] * 1e3)}–{_num(stats['max'] * 1e3)})"
    return text if len(stats["raw"]) >= repeat else f"{text} [{len(stats['raw'])} runs]"


def _notes(row: Mapping[str, Any]) -> str:
    info, parts = row.get("info", {}), []
    if "compile_s" in info:
        parts.append(f"compile {info['compile_s']:.2f} s (excluded)")
    for which in ("forward", "backward"):
        if info.get(f"{which}_iterations") is not None:
            text = f"CG {which} {info[f'{which}_iterations']} it."
            if info.get(f"{which}_matvecs") is not None:
                text += f" / {info[f'{which}_matvecs']} matvecs"
            parts.append(text)
    if row.get("error"):
        parts.append(str(row["error"]))
    memory = row.get("memory") or {}
    if memory.get("error"):
        parts.append(f"memory run failed: {memory['error']}")
    elif str(memory.get("peak_source", "")).startswith("ru_maxrss"):
        parts.append("memory from ru_maxrss (peak counter could not be reset)")
    return "; ".join(parts).replace("|", "/")


def _row(row: Mapping[str, Any], reference: str | None, repeat: int) -> list[str]:
    errors = "—"
    if "value_rel_err" in row:
        errors = f"{row['value_rel_err']:.1e} / {row['grad_rel_err']:.1e}"
    if row["implementation"] == reference:
        errors, speedup = "reference", "1 (reference)"
    elif "forward_speedup" in row:
        speedup = f"{_num(row['forward_speedup'])}× / {_num(row['value_and_grad_speedup'])}×"
    else:
        speedup = "—"
    memory = row.get("memory") or {}
    return [row["implementation"], row["status"], errors,
            _ms(row.get("forward"), repeat), _ms(row.get("value_and_grad"), repeat),
            _num(row.get("grad_over_forward")), _num(memory.get("extra_mb")), _num(row.get("forward_gbs")),
            _num(row.get("value_and_grad_gbs")), speedup, _notes(row)]


def _table(header: tuple[str, ...] | list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(cells) + " |" for cells in body]


def _case(case: Mapping[str, Any]) -> list[str]:
    title = f"### {case['label']}: median (min–max) of {case['repeat']} runs"
    if case.get("stored_states_mb") is not None:
        title += f"; stored states {case['stored_states_mb']:,.1f} MB"
    lines = [title, ""]
    limits = case.get("limits")
    if limits:
        held = ", ".join(f"{r['implementation']} {r['value_and_grad_over_limit']:.2f}×" for r in case["rows"]
                         if "value_and_grad_over_limit" in r and r.get("library") in ("dpgen", "numba"))
        lines += [(f"Minimal-bytes limit of value+gradient: **{limits['value_and_grad'] * 1e3:.3g} ms** "
                   f"({limits['explain']}); time / limit: {held or '—'}."), ""]
    lines += _table(COLUMNS, [_row(r, case["reference"], case["repeat"]) for r in case["rows"]])
    return lines + [""]


def _machine(results: Mapping[str, Any]) -> list[str]:
    m = results["machine"]
    caches = ", ".join(f"{k} {v}" for k, v in m["caches"].items()) or "unknown"
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    probe = results["probe"]
    lines = ["## Machine", "",
             f"- CPU: {m['cpu']}; {m['cores']} cores; caches (per instance): {caches}; memory {m['memory_gb']} GB",
             (f"- Threads: Numba {m['numba_threads']} (layer {m['numba_threading_layer']}); torch = core count; "
              f"dpgen parallel kernels from {m['dpgen_parallel_threshold']:,} cells"),
             f"- Versions: {versions}", "",
             f"## Bandwidth probe: {probe['kernel']}", ""]
    body = []
    for key in ("large", "cache"):
        p = probe[key]
        body.append([f"{key}: 3 × {p['elements'] * 8 / 1e6:,.0f} MB ({p['what']})", f"{p['elements']:,}",
                     f"{p['gbs']:.1f} ({p['gbs_min']:.1f}–{p['gbs_max']:.1f})"])
    lines += _table(["arrays", "elements per array", "GB/s median (min–max)"], body)
    return lines + ["", f"GB/s count {probe['note']}.", ""]


def _compile(section: Mapping[str, Any]) -> list[str]:
    body = [[r["step"], f"{r['median']:.3f}", f"{r['min']:.3f}", f"{r['max']:.3f}"] for r in section["rows"]]
    return [f"## {section['title']}", "", f"{section['repeat']} fresh set(s) of processes.", ""] + \
        _table(["step", "median s", "min s", "max s"], body) + [""]


def _kernels(section: Mapping[str, Any]) -> list[str]:
    body = [[r["stencil"], r["grid"], r["kernel"], r["wrt"], f"{r['bytes'] / 1e6:,.1f}",
             f"{r['median_ms']:.3f} ({r['min_ms']:.3f}–{r['max_ms']:.3f})", f"{r['gbs']:.1f}",
             f"{100 * r['of_cache_probe']:.0f}%", f"{100 * r['of_large_probe']:.0f}%",
             f"{r['probe_beside_gbs']:.1f}",
             f"{100 * r['of_probe_beside']:.0f}% ({100 * r['of_probe_beside_min']:.0f}–"
             f"{100 * r['of_probe_beside_max']:.0f}%)"] for r in section["rows"]]
    note = ("Minimal bytes: every input, cotangent and output array once (plus the gradient read back where it "
            "accumulates, `+=`); % of the probe's in-cache and large-array figures, measured in this run. "
            f"Median (min–max) of {section['repeat']} calls, in {section['rounds']} rounds of "
            f"{section['per_round']}; each round first times the in-cache probe triad (\"probe beside\") and "
            "calls the kernel once untimed (the probe's arrays evicted its data), and "
            "the last column is the kernel's share of it: median (min–max) over the rounds.")
    return [f"## {section['title']}", "", note, ""] + _table(
        ["stencil", "grid", "kernel", "wrt", "minimal MB", "ms", "GB/s", "of in-cache probe", "of large probe",
         "probe beside GB/s", "of probe beside"],
        body) + [""]


def markdown(results: Mapping[str, Any]) -> str:
    """The whole report."""
    lines = ["# dpgen benchmarks", "",
             (f"Produced by `{results['command']}` on {results['started']} "
              f"({'quick sizes' if results['quick'] else 'full sizes'}; {results['seconds']:.0f} s)."), "",
             ("Check: value and gradient against the dpgen reference row (relative error = max |diff| / max |ref|); "
              "speed-up = this row's time / the reference's (> 1: dpgen is faster); GB/s from the minimal bytes "
              "stated per problem; peak extra memory from a fresh process per row (see benchmarks/README.md)."), ""]
    lines += _machine(results)
    for name in NAMES:
        section = results["problems"].get(name)
        if section is None:
            continue
        if name == "compile":
            lines += _compile(section)
            continue
        if name == "kernels":
            lines += _kernels(section)
            continue
        lines += [f"## {section['title']}", "", section["bytes_note"], ""]
        for case in section["cases"]:
            lines += _case(case)
    return "\n".join(lines).rstrip() + "\n"


def write(results: Mapping[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "results.md"
    json_path.write_text(json.dumps(results, indent=1, default=float) + "\n")
    md_path.write_text(markdown(results))
    return json_path, md_path
