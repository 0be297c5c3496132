"""Terminal rendering of runs: live progress, result tables, JSON and JUnit."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, TextIO
from xml.etree import ElementTree as ET

from opsflow.plan import Plan, PlannedStep
from opsflow.results import HostStatus, RunResult, StepResult

_COLOR = {"ok": "green", "changed": "yellow", "failed": "red", "unreachable": "magenta", "skipped": "dim",
          "timeout": "red", "succeeded": "green", "partial": "yellow", "canceled": "yellow",
          "abandoned": "magenta", "running": "cyan"}


def console_for(stream: TextIO) -> Any:
    """A rich console; when the output is not a terminal (CI logs, pipes), wide enough for tables."""
    from rich.console import Console

    console = Console(file=stream, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(file=stream, highlight=False, soft_wrap=True, width=max(console.width, 160))
    return console


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
        self.console.print(f"[bold]run {run_id}[/] {plan.name} on {len(plan.targets)} host(s){mode}")

    def step_started(self, step: PlannedStep, hosts: list[str]) -> None:
        if self.quiet:
            return
        label = "on_failure: " if step.phase == "on_failure" else ""
        self.console.print(f"[bold cyan]▶ {label}{step.step.name}[/] [dim]({step.step.action}, {len(hosts)} host(s))[/]")
        if self.console.is_terminal and len(hosts) > 1:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("  "), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                      console=self.console, transient=True)
            self._task = self._progress.add_task(step.step.name, total=len(hosts))
            self._progress.start()

    def waiting(self, run_id: str, step: PlannedStep, message: str, deadline: float) -> None:
        if self.quiet:
            return
        left = max(0, deadline - time.time())
        self.console.print(f"[bold yellow]⏸ waiting for approval:[/] {message} — "
                           f"`opsflow approve {run_id}` or `opsflow deny {run_id}` (deny in {left:.0f} s)")

    def host_done(self, result: StepResult) -> None:
        if self.quiet:
            return
        with self._lock:
            color = _COLOR.get(str(result.status), "white")
            extra = f" [dim]{result.error}[/]" if result.error else ""
            if result.phase == "rollback":
                extra = f" [magenta](rollback)[/]{extra}"
            diff = result.data.get("diff") if result.data.get("check_mode") or result.data.get("diff") else None
            tries = f" [dim](attempt {result.attempts})[/]" if result.attempts > 1 else ""
            self.console.print(f"  [{color}]{result.status:<11}[/] {result.host:<16} {result.duration:7.2f}s{tries}{extra}",
                               markup=True)
            if diff:
                self.console.print("\n".join(f"      {line}" for line in str(diff).splitlines()), markup=False)
            for task in result.data.get("tasks", []) if result.data.get("check_mode") else []:
                if task.get("diff"):
                    self.console.print(f"      {task['task']}: {json.dumps(task['diff'], default=str)[:2000]}",
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

    table = Table(title=f"run {result.run_id} — {result.runbook}", title_justify="left")
    table.add_column("host")
    for col in ("ok", "changed", "failed", "skipped", "time", "status"):
        table.add_column(col, justify="right")
    for host, status in result.hosts.items():
        rows = [r for r in result.steps if r.host == host and r.phase == "main"]
        count = {s: sum(1 for r in rows if r.status == s) for s in HostStatus}
        failed = count[HostStatus.FAILED] + count[HostStatus.UNREACHABLE] + count[HostStatus.TIMEOUT]
        table.add_row(host, str(count[HostStatus.OK]), str(count[HostStatus.CHANGED]), str(failed),
                      str(count[HostStatus.SKIPPED]), f"{sum(r.duration for r in rows):.2f}s",
                      f"[{_COLOR.get(str(status), 'white')}]{status}[/]")
    console.print(table)
    color = _COLOR.get(str(result.status), "white")
    err = f" — {result.error}" if result.error else ""
    console.print(f"[bold {color}]{result.status}[/] in {result.duration:.2f}s{err}")


def run_json(record: dict[str, Any], results: list[dict[str, Any]]) -> str:
    return json.dumps({**record, "results": results}, indent=2, default=str)


def junit(record: dict[str, Any], results: list[dict[str, Any]]) -> bytes:
    suite = ET.Element("testsuite", name=f"opsflow.{record['runbook']}", timestamp=time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.gmtime(record["started_at"])), time=f"{record.get('duration') or 0:.3f}")
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    for r in results:
        counts["tests"] += 1
        case = ET.SubElement(suite, "testcase", classname=f"{record['runbook']}.{r['step']}", name=r["host"],
                             time=f"{r['duration'] or 0:.3f}")
        if r["status"] in ("failed", "unreachable", "timeout") and not r["data"].get("ignored"):
            counts["failures"] += 1
            fail = ET.SubElement(case, "failure", message=f"{r['status']}: {r['error'] or ''}"[:500],
                                 type=r["error_class"] or r["status"])
            fail.text = "\n".join(x for x in (r["stdout"], r["stderr"]) if x)
        elif r["status"] == "skipped":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=r["error"] or "skipped")
        if r["stdout"]:
            ET.SubElement(case, "system-out").text = r["stdout"]
    for k, v in counts.items():
        suite.set(k, str(v))
    suite.set("errors", "0")
    root = ET.Element("testsuites")
    root.append(suite)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def show_run(stream: TextIO, record: dict[str, Any], results: list[dict[str, Any]], verbose: bool = False) -> None:
    from rich.table import Table

    console = console_for(stream)
    color = _COLOR.get(record["status"], "white")
    console.print(f"[bold]run {record['id']}[/] {record['runbook']} [{color}]{record['status']}[/]  "
                  f"trigger={record['trigger']} by={record['started_by']}  "
                  f"duration={(record['duration'] or 0):.2f}s  hash={record['runbook_hash'][:12]}")
    if record.get("params"):
        console.print(f"params: {json.dumps(record['params'], default=str)}")
    if record.get("parent_run"):
        console.print(f"parent run: {record['parent_run']}")
    if record.get("error"):
        console.print(f"[red]error:[/] {record['error']}")
    table = Table()
    for col in ("#", "step", "host", "status", "rc", "time", "detail"):
        table.add_column(col)
    for r in results:
        detail = r["error"] or (r["stdout"].strip().splitlines() or [""])[-1][:80]
        c = _COLOR.get(r["status"], "white")
        table.add_row(str(r["step_index"]), ("↳ " if r["phase"] != "main" else "") + r["step"], r["host"],
                      f"[{c}]{r['status']}[/]", "" if r["rc"] is None else str(r["rc"]),
                      f"{(r['duration'] or 0):.2f}s", detail)
    console.print(table)
    if verbose:
        for r in results:
            for name in ("stdout", "stderr"):
                if r[name]:
                    console.print(f"[bold]── {r['step']} @ {r['host']} {name}[/]")
                    console.print(r[name], markup=False)
