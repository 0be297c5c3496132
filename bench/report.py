"""The table (terminal and bench/README.md) and the JSON record of a suite run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bench.core import Figure, Stats

TABLE_START = "<!-- bench:table:start -->"
TABLE_END = "<!-- bench:table:end -->"

# benchmarks of issue 7 that wait for a feature (none left: 7 events and 8 backups are measured)
PENDING: list[dict[str, str]] = []


def fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "CPU-s":
        return f"{value:.2f} CPU-s"
    if value >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.1f} {unit}"


def cell(stats: Stats | None, higher_is_better: bool, tail_kind: str = "") -> str:
    """p50 and the slow tail: p95 of a time, p5 of a rate (p99 / p1 when the figure says so)."""
    if stats is None:
        return "—"
    if stats.n == 1:
        return fmt(stats.p50, stats.unit)
    if tail_kind == "p99":
        tail, label = (stats.p1, "p1 ") if higher_is_better else (stats.p99, "p99 ")
    else:
        tail, label = (stats.p5 if higher_is_better else stats.p95), ""
    return f"{fmt(stats.p50, stats.unit)} ({label}{fmt(tail, stats.unit).split()[0]})"


def target_cell(fig: Figure) -> str:
    if not fig.target:
        return ""
    if fig.target_ok is None:
        return f"{fig.target} ?"
    return f"{fig.target} {'met' if fig.target_ok else '**missed**'}"


def table(figs: list[Figure]) -> str:
    head = ["#", "figure", "opsflow p50 (tail)", "baseline", "baseline p50 (tail)", "ratio", "rounds", "target"]
    rows = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    notes: list[tuple[int, str]] = []
    for i, f in enumerate(figs, 1):
        ratio = f"{f.ratio:.2f}×" if f.ratio is not None else "—"
        n = f.opsflow.n if f.opsflow else 0
        rounds = (f"{n:,} {f.samples}" if f.samples else f"{n}") + (f" (+{f.failures} failed)" if f.failures else "")
        name = f.name
        if f.note:
            notes.append((i, f.note))
            name += f" [{i}]"
        rows.append("| " + " | ".join([str(i), f"{f.bench}: {name}", cell(f.opsflow, f.higher_is_better, f.tail),
                                       f.baseline_name, cell(f.baseline, f.higher_is_better, f.tail), ratio,
                                       rounds, target_cell(f)]) + " |")
    out = "\n".join(rows)
    if notes:
        out += "\n\n" + "\n".join(f"- [{i}] {note}" for i, note in notes)
    return out


def legend() -> str:
    return ("Ratio = opsflow p50 ÷ baseline p50 of the metric shown (time: lower is better, so < 1 means opsflow "
            "is faster; rates: higher is better). Tail = p95 of a time, p5 of a rate (the slow side); p99 / p1 "
            "where marked. Rounds = measured rounds per contender after warm-up (or the events measured, where "
            "marked); contenders alternate order every round.")


def summary_line(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    v = m["versions"]
    return (f"Run {doc['started']} ({doc['size']} size, {doc['took_s']:.0f} s) on {m['os']}, {m['cores_usable']} "
            f"cores ({m['cpu_model']}), {m['memory_gib']} GiB; load {m['loadavg_at_start']} at start, "
            f"{doc['loadavg_at_end']} at end. Python {v['python']}, ansible-core {v['ansible-core']}, "
            f"ansible-runner {v['ansible-runner']}, Netmiko {v['netmiko']}, Nornir {v['nornir']}, "
            f"nornir-netmiko {v['nornir-netmiko']}, paramiko {v['paramiko']}, asyncssh {v['asyncssh']}, "
            f"OpenSSH {v['openssh']}, SQLite {v['sqlite']}. Lab: {doc.get('lab', {}).get('shape', 'none')}.")


def table_order(figs: list[Figure], order: list[str]) -> list[Figure]:
    """Figures grouped by benchmark in `order` (stable within a benchmark)."""
    rank = {name: i for i, name in enumerate(order)}
    return sorted(figs, key=lambda f: rank.get(f.bench, len(rank)))


Earlier = list[tuple[dict[str, Any], str, list[Figure]]]  # (record, its file as shown, the figures kept)


def earlier_runs(out_dir: Path, benches: list[str], exclude: Path | None = None) -> Earlier:
    """For each benchmark, its figures from the newest full record under out_dir that has them."""
    found: dict[str, tuple[dict[str, Any], str, list[Figure]]] = {}
    paths = sorted(out_dir.glob("*-full.json"), reverse=True)  # names start with the time: newest first
    for path in paths:
        if exclude is not None and path.resolve() == exclude.resolve():
            continue
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if rec.get("size") != "full":
            continue
        for name in benches:
            if name in found or name in (rec.get("errors") or {}):
                continue
            figs = [Figure.from_dict(f) for f in rec.get("figures", []) if f.get("bench") == name]
            if figs:
                found[name] = (rec, _shown(path), figs)
    out: Earlier = []
    for rec, shown, figs in found.values():
        for entry in out:
            if entry[1] == shown:
                entry[2].extend(figs)
                break
        else:
            out.append((rec, shown, list(figs)))
    return out


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        return str(path)


def render_section(doc: dict[str, Any], figs: list[Figure], results_file: str, earlier: Earlier | None = None,
                   order: list[str] | None = None) -> str:
    if not earlier:
        parts = [summary_line(doc), "", table(figs), "", legend(), "", f"Full record: `{results_file}`."]
    else:
        # a partial run merged with the rows of earlier full runs: say which row comes from which run
        merged = list(figs) + [f for _, _, fs in earlier for f in fs]
        merged = table_order(merged, order or [])
        parts = []
        for rec, shown, fs in [(doc, results_file, figs), *earlier]:
            names = ", ".join(dict.fromkeys(f.bench for f in fs))
            parts += [f"Rows of {names or 'none'}: {summary_line(rec)} Full record: `{shown}`.", ""]
        parts += [table(merged), "", legend()]
    errors = doc.get("errors") or {}
    if errors:
        parts += ["", "Benchmarks that did not run: " + "; ".join(
            f"{k}: {v.strip().splitlines()[-1]}" for k, v in errors.items())]
    if PENDING:
        parts += ["", "Pending (features not there yet): " + "; ".join(p["what"] for p in PENDING) + "."]
    return "\n".join(parts)


def write_json(path: Path, doc: dict[str, Any], figs: list[Figure]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    full = {**doc, "figures": [f.to_dict() for f in figs], "pending": PENDING}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(full, indent=2, default=str) + "\n")
    tmp.replace(path)


README_SKELETON = f"""# opsflow benchmarks

`python -m bench` (or `make bench`).

## Latest results

{TABLE_START}
{TABLE_END}
"""


def update_readme(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else README_SKELETON
    if TABLE_START not in text or TABLE_END not in text:
        text = text.rstrip() + f"\n\n## Latest results\n\n{TABLE_START}\n{TABLE_END}\n"
    new = re.sub(re.escape(TABLE_START) + r".*?" + re.escape(TABLE_END),
                 lambda _m: f"{TABLE_START}\n{section}\n{TABLE_END}", text, flags=re.S)
    path.write_text(new)
