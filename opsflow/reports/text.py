"""The KPI report as text: Markdown, CSV and plain aligned tables for a terminal.

Every renderer takes the report dict of :mod:`opsflow.reports` and nothing else. Strings from the
store (runbook, host, operator names, review titles) are data: the Markdown escapes what Markdown
or HTML would read as markup, the terminal tables show control characters as ``\\xNN``
(:func:`opsflow.textsafe.for_terminal`), and the CSV keeps a spreadsheet from reading a name as
a formula.

CSV layout (RFC 4180, ``\\r\\n`` line ends, read it with :mod:`csv`): two blocks separated by one
empty row.

1. Runbooks, one row per runbook, header ``runbook, runs, succeeded, failed, other, check_runs,
   success_rate, duration_p50_s, duration_p95_s, duration_mean_s``.
2. Objectives, one row per objective (once, though the report lists it under its service and
   under each runbook it covers), header ``service, objective, kind, runbooks, target, actual,
   unit, met, budget_remaining, burn_rate, good, total``; ``runbooks`` is the runbooks it covers,
   space-separated; ``unit`` is ``ratio`` (target and actual are fractions) or ``seconds``;
   ``good``/``total`` count the events measured (``good`` only for ratios).

Numbers are written as they are in the report (rates as fractions 0…1, durations in seconds, no
rounding); an absent value (None) is an empty cell; ``met`` is ``true``, ``false`` or empty (no
data). A text cell that starts with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'``.

The formatting helpers (:func:`fmt_duration`, :func:`fmt_pct`, :func:`fmt_measure`…) are shared
with :mod:`opsflow.reports.html`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opsflow.textsafe import for_terminal

NO_DATA = "no data in this period"
_RATIO_UNITS = {"ratio", "fraction", "rate"}


# -- formatting shared with the HTML renderer -------------------------------------------------

def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def fmt_duration(seconds: Any) -> str:
    """``42 s``, ``3.2 s``, ``12 min 05 s``, ``3 h 04 min``, ``2 d 03 h``; ``—`` when absent."""
    s = _num(seconds)
    if s is None:
        return "—"
    if math.isinf(s):
        return "∞"
    sign, s = ("-" if s < 0 else ""), abs(s)
    if s < 10:
        text = f"{s:.1f} s" if s % 1 else f"{s:.0f} s"
    elif s < 60:
        text = f"{s:.0f} s"
    elif s < 3600:
        text = f"{int(s // 60)} min {int(s % 60):02d} s"
    elif s < 86400:
        text = f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"
    else:
        text = f"{int(s // 86400)} d {int(s % 86400 // 3600):02d} h"
    return sign + text


def fmt_pct(rate: Any, digits: int = 1) -> str:
    """A fraction 0…1 as ``97.5%``; ``—`` when absent."""
    r = _num(rate)
    if r is None:
        return "—"
    text = f"{r * 100:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text}%"


def fmt_num(value: Any) -> str:
    """A count or a number, ``—`` when absent."""
    v = _num(value)
    if v is None:
        return "—"
    return f"{int(v):,}" if v.is_integer() else f"{v:,.2f}"


def fmt_measure(value: Any, unit: Any) -> str:
    """An objective's target or actual in its unit: fractions as percentages, seconds as durations."""
    if _num(value) is None:
        return "—"
    u = str(unit or "").strip().lower()
    if u in _RATIO_UNITS:
        return fmt_pct(value, 2)
    if u in {"s", "sec", "second", "seconds"}:
        return fmt_duration(value)
    if u in {"%", "percent"}:
        return f"{fmt_num(value)}%"
    return f"{fmt_num(value)} {unit}".rstrip()


def fmt_burn(value: Any) -> str:
    v = _num(value)
    return "—" if v is None else f"{v:.2f}×"


def fmt_met(met: Any, actual: Any = 0) -> str:
    """✓/✗ with a word, never a colour alone; an objective with nothing measured says so."""
    if met is None or (met is True and actual is None):
        return "– no data"
    return "✓ met" if met else "✗ breached"


def short_hash(value: Any) -> str:
    return str(value or "")[:10]


def objective_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every objective once (by service and name), with ``runbooks`` it covers.

    ``build_report`` lists a service's objective under the service and again under each runbook it
    covers; a runbook's objective without its service in ``services`` still counts.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for service in report.get("services") or []:
        for obj in service.get("objectives") or []:
            key = (str(obj.get("service") or service.get("name")), str(obj.get("name")))
            rows.setdefault(key, {**obj, "service": key[0], "runbooks": list(obj.get("runbooks") or [])})
    for rb in report.get("runbooks") or []:
        for obj in rb.get("objectives") or []:
            row = rows.setdefault((str(obj.get("service")), str(obj.get("name"))),
                                  {**obj, "runbooks": list(obj.get("runbooks") or [])})
            if rb.get("name") not in row["runbooks"]:
                row["runbooks"].append(rb.get("name"))
    return list(rows.values())


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of the summary strip, computed from the sections (None when there is nothing)."""
    runbooks = report.get("runbooks") or []
    runs = sum(int(rb.get("runs") or 0) for rb in runbooks)
    succeeded = sum(int(rb.get("succeeded") or 0) for rb in runbooks)
    finished = succeeded + sum(int(rb.get("failed") or 0) + int(rb.get("other") or 0) for rb in runbooks)
    objectives = objective_rows(report)
    backups = report.get("backups") or []
    events = report.get("events") or {}
    schedule = report.get("schedule") or {}
    return {
        "runs": runs,
        "succeeded": succeeded,
        "failed": sum(int(rb.get("failed") or 0) for rb in runbooks),
        "success_rate": succeeded / finished if finished else None,
        "objectives_met": sum(1 for o in objectives if o.get("met") is True),
        "objectives_total": len(objectives),
        "automation_rate": events.get("automation_rate"),
        "events_received": events.get("received") or 0,
        "backups_overdue": sum(1 for b in backups if b.get("overdue")),
        "backups_total": len(backups),
        "adherence": schedule.get("adherence"),
        "slots": schedule.get("slots") or 0,
    }


# -- table sections, shared by Markdown and the terminal --------------------------------------

Table = tuple[list[str], list[list[str]]]


def _runbook_table(report: dict[str, Any]) -> Table:
    head = ["Runbook", "Runs", "Succeeded", "Failed", "Other", "Success rate", "p50", "p95", "Mean"]
    rows = [[str(rb.get("name")), fmt_num(rb.get("runs")), fmt_num(rb.get("succeeded")),
             fmt_num(rb.get("failed")), fmt_num(rb.get("other")), fmt_pct(rb.get("success_rate")),
             fmt_duration(rb.get("duration_p50_s")), fmt_duration(rb.get("duration_p95_s")),
             fmt_duration(rb.get("duration_mean_s"))] for rb in report.get("runbooks") or []]
    return head, rows


def _objective_table(report: dict[str, Any]) -> Table:
    head = ["Service", "Objective", "Runbooks", "Target", "Actual", "Met", "Budget left", "Burn rate"]
    rows = []
    for o in objective_rows(report):
        rows.append([str(o.get("service")), str(o.get("name")), ", ".join(map(str, o["runbooks"])), fmt_measure(o.get("target"), o.get("unit")),
                     fmt_measure(o.get("actual"), o.get("unit")), fmt_met(o.get("met"), o.get("actual")),
                     fmt_pct(o.get("budget_remaining")), fmt_burn(o.get("burn_rate"))])
    return head, rows


def _trend_table(report: dict[str, Any]) -> Table:
    head = ["Week of", "Runs", "Succeeded", "Failed", "Success rate", "p95"]
    rows = [[str(t.get("week")), fmt_num(t.get("runs")), fmt_num(t.get("succeeded")), fmt_num(t.get("failed")),
             fmt_pct(t.get("success_rate")), fmt_duration(t.get("duration_p95_s"))]
            for t in report.get("trends") or []]
    return head, rows


def _heatmap_table(report: dict[str, Any]) -> Table:
    hm = report.get("heatmap") or {}
    hosts, runbooks, counts = hm.get("hosts") or [], hm.get("runbooks") or [], hm.get("failures") or []
    if not any(any(row) for row in counts):
        return ["Host"], []
    return ["Host", *map(str, runbooks)], [[str(h), *(fmt_num(c) for c in row)] for h, row in zip(hosts, counts, strict=False)]


def _backup_table(report: dict[str, Any]) -> Table:
    head = ["Backup", "Last backup age", "RPO", "Overdue", "Last drill RTO", "Last drill age"]
    rows = [[str(b.get("name")), fmt_duration(b.get("last_backup_age_s")), fmt_duration(b.get("rpo_s")),
             "OVERDUE" if b.get("overdue") else "ok", fmt_duration(b.get("last_drill_rto_s")),
             fmt_duration(b.get("last_drill_age_s"))] for b in report.get("backups") or []]
    return head, rows


def event_rows(events: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [("Received", events.get("received")), ("Matched a runbook", events.get("matched")),
                                   ("Remediated automatically", events.get("remediated_automatically")),
                                   ("Needed a human", events.get("needed_human"))]
    rows += [(f"Suppressed: {reason}", n) for reason, n in sorted((events.get("suppressed") or {}).items())]
    return rows


def _event_table(report: dict[str, Any]) -> Table:
    ev = report.get("events") or {}
    if not ev.get("received"):
        return ["Events", "Count"], []
    rows = [[label, fmt_num(n)] for label, n in event_rows(ev)]
    rows += [["Automation rate", fmt_pct(ev.get("automation_rate"))], ["MTTR", fmt_duration(ev.get("mttr_s"))],
             ["Time to start (p50)", fmt_duration(ev.get("time_to_start_p50_s"))]]
    return ["Events", "Count"], rows


def _schedule_table(report: dict[str, Any]) -> Table:
    sc = report.get("schedule") or {}
    head = ["Entry", "Slots", "Run in slot", "Rescheduled", "Missed", "Skipped"]
    if not sc.get("slots") and not sc.get("entries"):
        return head, []
    rows = [[str(e.get("entry")), *(fmt_num(e.get(k)) for k in ("slots", "run_in_slot", "rescheduled", "missed",
                                                                  "skipped"))] for e in sc.get("entries") or []]
    rows.append([f"All (adherence {fmt_pct(sc.get('adherence'))})",
                 *(fmt_num(sc.get(k)) for k in ("slots", "run_in_slot", "rescheduled", "missed", "skipped"))])
    return head, rows


def _operator_table(report: dict[str, Any]) -> Table:
    head = ["Operator", "Runs started", "Approvals", "Mean approval response", "Window overrides", "Breaker resets"]
    rows = [[str(o.get("name")), fmt_num(o.get("runs_started")), fmt_num(o.get("approvals")),
             fmt_duration(o.get("approval_response_mean_s")), fmt_num(o.get("window_overrides")),
             fmt_num(o.get("breaker_resets"))] for o in report.get("operators") or []]
    return head, rows


def _version_table(report: dict[str, Any]) -> Table:
    head = ["Runbook", "Version", "First run", "Runs", "Success rate", "p50"]
    rows = [[str(rb.get("name")), short_hash(v.get("hash")), str(v.get("first_run") or "—"), fmt_num(v.get("runs")),
             fmt_pct(v.get("success_rate")), fmt_duration(v.get("duration_p50_s"))]
            for rb in report.get("runbooks") or [] if len(rb.get("versions") or []) > 1 for v in rb["versions"]]
    return head, rows


def _slow_table(report: dict[str, Any]) -> Table:
    head = ["Runbook", "Run", "Started", "Duration", "× median"]
    rows = [[str(rb.get("name")), str(s.get("run_id")), str(s.get("started_at")), fmt_duration(s.get("duration_s")),
             f"{_num(s.get('ratio')) or 0:.1f}×"] for rb in report.get("runbooks") or [] for s in rb.get("slow_runs") or []]
    return head, rows


def review_fields(review: Any) -> dict[str, str]:
    """A review (or a due review, whose shape may be leaner) as displayable fields."""
    if not isinstance(review, dict):
        return {"id": "", "title": str(review), "state": "", "runbooks": "", "open_actions": ""}
    runbooks = review.get("runbooks") or []
    return {"id": str(review.get("id") or ""), "title": str(review.get("title") or review.get("run_id") or ""),
            "state": str(review.get("state") or review.get("due") or review.get("reason") or ""),
            "runbooks": ", ".join(map(str, runbooks)) if isinstance(runbooks, list) else str(runbooks),
            "open_actions": fmt_num(review.get("open_actions")) if "open_actions" in review else ""}


def _review_table(key: str) -> Callable[[dict[str, Any]], Table]:
    def table(report: dict[str, Any]) -> Table:
        rows = [list(review_fields(r).values()) for r in report.get(key) or []]
        return ["Id", "Title", "State", "Runbooks", "Open actions"], rows
    return table


SECTIONS: list[tuple[str, Callable[[dict[str, Any]], Table]]] = [
    ("Runbooks", _runbook_table), ("Objectives against targets", _objective_table),
    ("Trends per week", _trend_table), ("Failures per host and runbook", _heatmap_table),
    ("Backups and drills", _backup_table), ("Events", _event_table), ("Schedule adherence", _schedule_table),
    ("Operators", _operator_table), ("Runbook versions", _version_table), ("Slow runs (≥ 3× median)", _slow_table),
    ("Open reviews", _review_table("reviews")), ("Reviews due", _review_table("reviews_due")),
]


def _period(report: dict[str, Any]) -> list[str]:
    lines = [f"Period: {report.get('since')} → {report.get('until')}",
             f"Service: {report.get('service') or 'all services'}"]
    if report.get("hours"):
        lines.append(f"Durations on operational hours: {report.get('hours')}")
    lines.append(f"Generated at: {report.get('generated_at')}")
    return lines


def _summary_lines(report: dict[str, Any]) -> list[str]:
    s = summary(report)
    return [f"Runs: {fmt_num(s['runs'])}", f"Success rate: {fmt_pct(s['success_rate'])}",
            f"Objectives met: {s['objectives_met']} / {s['objectives_total']}",
            f"Events remediated automatically: {fmt_pct(s['automation_rate'])}",
            f"Backups overdue: {s['backups_overdue']} / {s['backups_total']}",
            f"Schedule adherence: {fmt_pct(s['adherence'])}"]


# -- Markdown ---------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*\[\]|])")


def md_cell(value: Any) -> str:
    """A table cell: no line breaks, Markdown punctuation escaped, HTML never live."""
    text = for_terminal(value).replace("\n", " ").replace("\t", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _md_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(md_cell(h) for h in head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    out = ["# Operations KPI report", ""]
    out += [f"- {md_cell(line)}" for line in _period(report)] + ["", "## Summary", ""]
    out += [f"- {md_cell(line)}" for line in _summary_lines(report)]
    for title, build in SECTIONS:
        head, rows = build(report)
        out += ["", f"## {title}", ""]
        out += _md_table(head, rows) if rows else [f"_{NO_DATA}_"]
    return "\n".join(out) + "\n"


# -- CSV --------------------------------------------------------------------------------------

RUNBOOK_COLUMNS = ["runbook", "runs", "succeeded", "failed", "other", "check_runs", "success_rate",
                   "duration_p50_s", "duration_p95_s", "duration_mean_s"]
OBJECTIVE_COLUMNS = ["service", "objective", "kind", "runbooks", "target", "actual", "unit", "met",
                     "budget_remaining", "burn_rate", "good", "total"]


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = for_terminal(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def render_csv(report: dict[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(RUNBOOK_COLUMNS)
    for rb in report.get("runbooks") or []:
        writer.writerow([_csv_value(rb.get("name"))] + [_csv_value(rb.get(c)) for c in RUNBOOK_COLUMNS[1:]])
    writer.writerow([])
    writer.writerow(OBJECTIVE_COLUMNS)
    for o in objective_rows(report):
        values = {**o, "objective": o.get("name"), "runbooks": " ".join(map(str, o["runbooks"]))}
        writer.writerow([_csv_value(values.get(c)) for c in OBJECTIVE_COLUMNS])
    return buf.getvalue()


# -- terminal ---------------------------------------------------------------------------------

def _is_numeric(cell: str) -> bool:
    return bool(re.match(r"^[-+]?[\d.,]+\s*(%|×|s|min|h|d)?", cell)) or cell == "—"


def _plain_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    cells = [[for_terminal(c).replace("\n", " ") for c in row] for row in [head, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    right = [i > 0 and all(_is_numeric(row[i]) for row in cells[1:]) for i in range(len(head))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True)).rstrip()

    return [line(cells[0]), "  ".join("-" * w for w in widths), *(line(r) for r in cells[1:])]


def render_terminal(report: dict[str, Any]) -> str:
    out = ["OPERATIONS KPI REPORT", *(for_terminal(line) for line in _period(report)), "",
           "SUMMARY", *("  " + for_terminal(line) for line in _summary_lines(report))]
    for title, build in SECTIONS:
        head, rows = build(report)
        out += ["", title.upper()]
        out += ["  " + line for line in _plain_table(head, rows)] if rows else [f"  {NO_DATA}"]
    return "\n".join(out) + "\n"
