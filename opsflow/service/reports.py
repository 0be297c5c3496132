"""A report entry's slot: the KPI report over [slot − since, slot), rendered, and sent to its notify targets.

A schedule entry with ``report: {since: 7d, service, hours, format: html, title}`` instead of a
runbook builds :func:`opsflow.reports.kpi.build_report` over the span that ends at its slot (the
slot it was meant for: a late, deferred or retried fire still reports the intended week), renders it
as ``opsflow report --format`` does, and sends it through Apprise to the entry's notify targets that
hear of ``succeeded``: a short plain-text summary as the body (runs, success rate, objectives met,
the breached ones, schedule adherence), the rendered report attached (``report.html``, ``.md``,
``.csv`` or ``.json``). The file lives in a private directory (0700, the file 0600) removed after
sending.

The fire's record gets outcome ``succeeded`` when every target took it, ``failed`` otherwise (the
report could not be built, no target, a target refused it), with the reason; the targets that hear
of ``failed`` are told. Nothing here raises into the scheduler.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsflow.errors import OpsflowError
from opsflow.notify import Kind, Notification
from opsflow.schedule import tz as tzmod
from opsflow.schedule.models import REPORT_SUFFIX, ReportSpec
from opsflow.service.notifications import Notices
from opsflow.service.runs import Fire
from opsflow.store.base import Store

log = logging.getLogger("opsflow.scheduler")

MAX_LISTED = 20  # breached objectives named in the body; the attachment has them all


def period(fire: Fire) -> tuple[float, float]:
    """[start, end) of the report of ``fire``: the span before the slot it was meant for."""
    spec = fire.entry.spec.report
    assert spec is not None
    end = fire.origin if fire.origin is not None else min([fire.slot, *fire.deferred_from])
    return end - spec.since, end


def _figure(value: Any, unit: str | None) -> str:
    if value is None:
        return "no data"
    if unit == "ratio":
        return f"{float(value) * 100:.1f}%"
    seconds = round(float(value))
    if seconds < 60:
        return f"{round(float(value), 1):g}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds % 60 else f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds % 3600 // 60 else f"{seconds // 3600}h"


def _local(ts: float, zone: Any) -> str:
    return datetime.fromtimestamp(ts, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def summary(report: dict[str, Any], start: float, end: float, zone: Any, zone_name: str) -> str:
    """The body of a report's notification: the figures a reader wants before opening the attachment."""
    totals = report.get("totals") or {}
    lines = [f"Period: {_local(start, zone)} to {_local(end, zone)} ({zone_name})"
             + (f"; service {report['service']}" if report.get("service") else "")
             + (f"; within the hours of {report['hours']}" if report.get("hours") else "")]
    runs = totals.get("runs") or 0
    lines.append(f"Runs: {runs} ({totals.get('succeeded') or 0} succeeded, {totals.get('failed') or 0} failed)")
    lines.append(f"Success rate: {_figure(totals.get('success_rate'), 'ratio')}")
    objectives = {(o.get("service"), o.get("name")): o for s in report.get("services") or []
                  for o in s.get("objectives") or []}
    breached = [o for o in objectives.values() if o.get("met") is False]
    lines.append(f"Objectives met: {totals.get('objectives_met') or 0}/{totals.get('objectives') or 0}")
    if breached:
        lines.append("Breached objectives:")
        for o in breached[:MAX_LISTED]:
            lines.append(f"  - {o.get('service')}/{o.get('name')} ({o.get('kind')}): "
                         f"{_figure(o.get('actual'), o.get('unit'))} against {_figure(o.get('target'), o.get('unit'))}")
        if len(breached) > MAX_LISTED:
            lines.append(f"  … and {len(breached) - MAX_LISTED} more (see the attachment)")
    schedule = report.get("schedule") or {}
    if schedule.get("slots"):
        lines.append(f"Schedule adherence: {_figure(schedule.get('adherence'), 'ratio')} "
                     f"({schedule.get('run_in_slot') or 0} of {schedule['slots']} slots run in their slot)")
    return "\n".join(lines)


def _write_private(directory: Path, name: str, content: str) -> Path:
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    return path


def _build(store: Store, spec: ReportSpec, start: float, end: float, schedules: str | None,
           now: float) -> tuple[dict[str, Any], str]:
    from opsflow.cli.report import render
    from opsflow.reports.kpi import build_report

    data = build_report(store, start, end, service=spec.service, hours=spec.hours, schedules=schedules, now=now)
    return data, render(data, spec.format)


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, OpsflowError) else f"{type(exc).__name__}: {exc}"


def send_report(fire: Fire, store: Store, notices: Notices, schedules: str | None, now: float) -> None:
    """Build, render and send the report of a fired report slot; record its outcome; never raises."""
    entry, spec = fire.entry, fire.entry.spec.report
    assert spec is not None
    start, end = period(fire)
    title = spec.title or f"opsflow report: {entry.name}"
    subject = f"{title} ({_local(start, entry.tz)[:10]} to {_local(end, entry.tz)[:10]})"
    outcome, detail = "failed", ""
    try:
        data, content = _build(store, spec, start, end, schedules, now)
    except Exception as exc:  # noqa: BLE001 - a report that cannot be built is a failed slot, never a dead loop
        detail = f"the report could not be built: {_reason(exc)}"
    else:
        body = summary(data, start, end, entry.tz, entry.spec.timezone)
        private = Path(tempfile.mkdtemp(prefix="opsflow-report-"))  # mode 0700
        try:
            path = _write_private(private, f"report.{REPORT_SUFFIX[spec.format]}", content)
            note = Notification(Kind.REPORT, subject, body=body, entry=entry.name, attachments=[path])
            deliveries = notices.deliver(entry, note)
        except Exception as exc:  # noqa: BLE001 - a full disk, a bug in a channel: the slot fails, the loop goes on
            detail, deliveries = f"the report could not be sent: {_reason(exc)}", []
        finally:
            shutil.rmtree(private, ignore_errors=True)
        if deliveries is None or (not deliveries and not detail):
            detail = ("the report went nowhere: none of the notify targets that hear of succeeded is a URL or a "
                      "known contact")
        elif deliveries:
            failed = [d for d in deliveries if not d.ok]
            if failed:
                detail = "report not delivered to " + "; ".join(f"{d.target}: {d.error}" for d in failed)
            else:
                size = len(content.encode())
                outcome, detail = "succeeded", f"report ({size:,} bytes) sent to {len(deliveries)} target(s)"
    fire.outcome = outcome
    fire.reason += f"; {detail}"
    try:
        store.update_fire(entry.name, fire.slot, outcome=outcome, reason=fire.reason)
        for original in fire.deferred_from:
            store.update_fire(entry.name, original, outcome=outcome)
    except OpsflowError as exc:
        log.error("%s: the report's outcome is not recorded: %s", entry.name, exc)
    slot = tzmod.iso(datetime.fromtimestamp(fire.slot, UTC), entry.tz)
    if outcome == "succeeded":
        log.info("%s %s: %s", entry.name, slot, detail)
        return
    log.error("%s %s: report failed: %s", entry.name, slot, detail)
    notices.send(entry, "failed", f"{entry.name}: the report of {slot} failed",
                 f"Schedule entry {entry.name} ({entry.what}): {detail}", reason="report failed")


__all__ = ["period", "send_report", "summary"]
