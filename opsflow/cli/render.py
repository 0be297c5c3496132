"""Terminal rendering of runs: live progress, result tables, JSON and JUnit.

Everything from targets, events and records is data: it is shown with its control characters
escaped (:mod:`opsflow.textsafe`) and never read as Rich markup — it goes into markup strings
through :func:`_m`, into table cells through :func:`_t`, and alone with ``markup=False``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO

from opsflow.planning import Plan, PlannedStep
from opsflow.results import HostStatus, RunResult, StepResult
from opsflow.textsafe import for_terminal, for_xml, markup_literal

_COLOR = {"ok": "green", "changed": "yellow", "failed": "red", "unreachable": "magenta", "skipped": "dim",
          "timeout": "red", "succeeded": "green", "partial": "yellow", "canceled": "yellow",
          "abandoned": "magenta", "crashed": "bold magenta", "running": "cyan"}


def console_for(stream: TextIO) -> Any:
    """A rich console; when the output is not a terminal (CI logs, pipes), wide enough for tables.

    No emoji codes (``:warning:`` in data stays text) and no highlighting.
    """
    from rich.console import Console

    console = Console(file=stream, highlight=False, soft_wrap=True, emoji=False)
    if not console.is_terminal:
        console = Console(file=stream, highlight=False, soft_wrap=True, emoji=False, width=max(console.width, 160))
    return console


def _m(value: Any) -> str:
    """Data inside a markup string: controls escaped, brackets literal."""
    return markup_literal(value)


def _t(value: Any, style: str = "") -> Any:
    """Data as a table cell (a Rich Text: never markup)."""
    from rich.text import Text

    return Text(for_terminal(value), style=style)


class ProgressObserver:
    """Host lines as they finish, a progress bar per step on a terminal, a table at the end."""

    def __init__(self, stream: TextIO = sys.stderr, quiet: bool = False) -> None:
        self.console: Any = None if quiet else console_for(stream)
        self.quiet = quiet
        self._lock = threading.Lock()
        self._progress: Any = None
        self._task: Any = None

    def run_started(self, run_id: str, plan: Plan) -> None:
        if self.quiet:
            return
        mode = " [yellow](check mode)[/]" if plan.request.check else ""
        self.console.print(f"[bold]run {_m(run_id)}[/] {_m(plan.name)} on {len(plan.targets)} host(s){mode}")

    def step_started(self, step: PlannedStep, hosts: list[str]) -> None:
        if self.quiet:
            return
        label = "on_failure: " if step.phase == "on_failure" else ""
        self.console.print(f"[bold cyan]▶ {label}{_m(step.step.name)}[/] "
                           f"[dim]({_m(step.step.action)}, {len(hosts)} host(s))[/]")
        if self.console.is_terminal and len(hosts) > 1:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("  "), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=self.console, transient=True)
            self._task = self._progress.add_task(for_terminal(step.step.name), total=len(hosts))
            self._progress.start()

    def waiting(self, run_id: str, step: PlannedStep, message: str, deadline: float) -> None:
        if self.quiet:
            return
        left = max(0, deadline - time.time())
        self.console.print(f"[bold yellow]⏸ waiting for approval:[/] {_m(message)} — "
                           f"`opsflow approve {_m(run_id)}` or `opsflow deny {_m(run_id)}` (deny in {left:.0f} s)")

    def host_done(self, result: StepResult) -> None:
        if self.quiet:
            return
        with self._lock:
            color = _COLOR.get(str(result.status), "white")
            extra = f" [dim]{_m(result.error)}[/]" if result.error else ""
            if result.phase == "rollback":
                extra = f" [magenta](rollback)[/]{extra}"
            diff = result.data.get("diff") if result.data.get("check_mode") or result.data.get("diff") else None
            tries = f" [dim](attempt {result.attempts})[/]" if result.attempts > 1 else ""
            self.console.print(f"  [{color}]{_m(f'{result.status:<11}')}[/] {_m(f'{result.host:<16}')} "
                               f"{result.duration:7.2f}s{tries}{extra}", markup=True)
            if diff:
                self.console.print(for_terminal("\n".join(f"      {line}" for line in str(diff).splitlines())),
                                   markup=False)
            for task in result.data.get("tasks", []) if result.data.get("check_mode") else []:
                if task.get("diff"):
                    self.console.print(for_terminal(f"      {task['task']}: "
                                                    f"{json.dumps(task['diff'], default=str)[:2000]}"),
                                       markup=False)
            if self._progress is not None:
                self._progress.advance(self._task)

    def step_done(self, step: PlannedStep) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def run_done(self, result: RunResult) -> None:
        if self.quiet:
            return
        print_summary(self.console, result)


def print_summary(console: Any, result: RunResult) -> None:
    from rich.table import Table

    table = Table(title=_t(f"run {result.run_id} — {result.runbook}"), title_justify="left")
    table.add_column("host")
    for col in ("ok", "changed", "failed", "skipped", "time", "status"):
        table.add_column(col, justify="right")
    for host, status in result.hosts.items():
        rows = [r for r in result.steps if r.host == host and r.phase == "main"]
        count = {s: sum(1 for r in rows if r.status == s) for s in HostStatus}
        failed = count[HostStatus.FAILED] + count[HostStatus.UNREACHABLE] + count[HostStatus.TIMEOUT]
        table.add_row(_t(host), str(count[HostStatus.OK]), str(count[HostStatus.CHANGED]), str(failed),
                      str(count[HostStatus.SKIPPED]), f"{sum(r.duration for r in rows):.2f}s",
                      _t(status, _COLOR.get(str(status), "white")))
    console.print(table)
    color = _COLOR.get(str(result.status), "white")
    err = f" — {_m(result.error)}" if result.error else ""
    console.print(f"[bold {color}]{result.status}[/] in {result.duration:.2f}s{err}")


def run_json(record: dict[str, Any], results: list[dict[str, Any]]) -> str:
    return json.dumps({**record, "results": results}, indent=2, default=str)


def _iso(ts: float | None) -> str:
    """An ISO 8601 timestamp with the zone offset of this machine (``2025-01-01T12:00:00+01:00``)."""
    from datetime import datetime

    return datetime.fromtimestamp(ts or 0.0).astimezone().isoformat(timespec="seconds")


def _case_names(record: dict[str, Any], results: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(classname, name) of each result: ``<runbook>.<step>`` and the host, unique within the file.

    A step whose name an earlier step (or a rollback / on_failure step) already has is told apart by
    its place, ``<step> (step N)`` — the first keeps its plain name, so its history in CI stays —
    and anything still equal (a step literally named like that) gets ``#2``, ``#3``.
    """
    first: dict[str, tuple[str, int]] = {}
    used: set[tuple[str, str]] = set()
    out = []
    for r in results:
        step, phase, index = str(r["step"]), str(r.get("phase") or "main"), int(r.get("step_index") or 0)
        owner = first.setdefault(step, (phase, index))
        if owner != (phase, index):
            where = f"step {index + 1}" if phase == "main" else f"{phase} step {index + 1}"
            step = f"{step} ({where})"
        key = (f"{record['runbook']}.{step}", str(r["host"]))
        n = 1
        while key in used:
            n += 1
            key = (f"{record['runbook']}.{step} #{n}", str(r["host"]))
        used.add(key)
        out.append(key)
    return out


def junit(record: dict[str, Any], results: list[dict[str, Any]]) -> bytes:
    """JUnit XML (valid against Jenkins' junit-10.xsd); every text and attribute from data passes
    :func:`for_xml`, so the file is always well-formed XML 1.0 whatever the targets printed.

    One test case per step and host, named uniquely; stdout and stderr of every case, passing or
    not, in ``system-out`` / ``system-err``; timestamps with their zone offset.
    """
    from xml.etree import ElementTree as ET

    x = for_xml
    suite = ET.Element("testsuite", name=x(f"opsflow.{record['runbook']}"), timestamp=_iso(record["started_at"]),
                       time=f"{record.get('duration') or 0:.3f}")
    props = ET.SubElement(suite, "properties")
    for key in ("id", "trigger", "started_by", "runbook_hash", "status"):
        if record.get(key) is not None:
            ET.SubElement(props, "property", name="run_id" if key == "id" else key, value=x(record[key]))
    ET.SubElement(props, "property", name="check_mode", value="true" if record.get("check_mode") else "false")
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    for r, (classname, name) in zip(results, _case_names(record, results), strict=True):
        counts["tests"] += 1
        case = ET.SubElement(suite, "testcase", classname=x(classname), name=x(name),
                             time=f"{r['duration'] or 0:.3f}")
        if r.get("started_at"):
            case.set("timestamp", _iso(r["started_at"]))
        if r["status"] in ("failed", "unreachable", "timeout") and not r["data"].get("ignored"):
            counts["failures"] += 1
            fail = ET.SubElement(case, "failure", message=x(f"{r['status']}: {r['error'] or ''}"[:500]),
                                 type=x(r["error_class"] or r["status"]))
            fail.text = x("\n".join(v for v in (r["error"], r["stdout"], r["stderr"]) if v))
        elif r["status"] == "skipped":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=x(r["error"] or "skipped"))
        for tag, key in (("system-out", "stdout"), ("system-err", "stderr")):
            if r[key]:
                ET.SubElement(case, tag).text = x(r[key])
    for k, v in counts.items():
        suite.set(k, str(v))
    suite.set("errors", "0")
    root = ET.Element("testsuites", name="opsflow", tests=str(counts["tests"]), failures=str(counts["failures"]),
                      errors="0", time=f"{record.get('duration') or 0:.3f}")
    root.append(suite)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def show_run(stream: TextIO, record: dict[str, Any], results: list[dict[str, Any]], verbose: bool = False) -> None:
    from rich.table import Table

    console = console_for(stream)
    color = _COLOR.get(record["status"], "white")
    console.print(f"[bold]run {_m(record['id'])}[/] {_m(record['runbook'])} [{color}]{_m(record['status'])}[/]  "
                  f"trigger={_m(record['trigger'])} by={_m(record['started_by'])}  "
                  f"duration={(record['duration'] or 0):.2f}s  hash={_m(record['runbook_hash'][:12])}")
    if record.get("params"):
        console.print(for_terminal(f"params: {json.dumps(record['params'], default=str)}"), markup=False)
    if record.get("parent_run"):
        console.print(for_terminal(f"parent run: {record['parent_run']}"), markup=False)
    if record.get("error"):
        console.print(f"[red]error:[/] {_m(record['error'])}")
    table = Table()
    for col in ("#", "step", "host", "status", "rc", "time", "detail"):
        table.add_column(col)
    for r in results:
        detail = r["error"] or (r["stdout"].strip().splitlines() or [""])[-1][:80]
        table.add_row(str(r["step_index"]), _t(("↳ " if r["phase"] != "main" else "") + r["step"]), _t(r["host"]),
                      _t(r["status"], _COLOR.get(r["status"], "white")), "" if r["rc"] is None else str(r["rc"]),
                      f"{(r['duration'] or 0):.2f}s", _t(detail))
    console.print(table)
    if verbose:
        for r in results:
            for name in ("stdout", "stderr"):
                if r[name]:
                    console.print(f"[bold]── {_m(r['step'])} @ {_m(r['host'])} {name}[/]")
                    console.print(for_terminal(r[name]), markup=False)


def describe_event(event: dict[str, Any]) -> str:
    """The event that started a run, for `opsflow show`."""
    a = event["action"]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["received_at"]))
    lines = [f"started by event {event['id']} ({event['source']}: {event['name']} {event['status']}, "
             f"host {event['host'] or '-'}) received {when}, rule {a['rule']}"]
    if event.get("message"):
        lines.append(f"  message: {event['message'][:200]}")
    if event.get("labels"):
        lines.append("  labels: " + ", ".join(f"{k}={v}" for k, v in sorted(event["labels"].items()))[:300])
    timing = [f"{k} {a[f]:.3f}s" for k, f in (("to start", "start_latency"), ("to end", "end_latency"))
              if a.get(f) is not None]
    if timing:
        lines.append("  latency from receipt: " + ", ".join(timing))
    return "\n".join(lines)
