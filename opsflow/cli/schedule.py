"""``opsflow schedule list|next|forecast|log`` and ``opsflow calendar check``: looking at the schedule.

The schedules directory is ``--schedules DIR`` [env OPSFLOW_SCHEDULES, the project file's
``schedules``; default ./schedules]; runbook names resolve in ``--runbooks DIR`` likewise.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import click

from opsflow.cli.options import db_opt
from opsflow.errors import UsageError
from opsflow.textsafe import for_terminal as safe

_schedules_opt = click.option("--schedules", "schedules_dir", default=None, metavar="DIR",
                              help="schedules directory [env OPSFLOW_SCHEDULES, project file; default ./schedules]")
_runbooks_opt = click.option("--runbooks", "runbooks_dir", default=None, metavar="DIR",
                             help="runbooks directory [env OPSFLOW_RUNBOOKS, project file; default ./runbooks]")


def _load(schedules_dir: str | None, runbooks_dir: str | None) -> Any:
    from opsflow.schedule.loader import load_schedules
    from opsflow.settings import current

    settings = current()
    directory = Path(schedules_dir or settings.schedules)
    if not directory.exists():
        raise UsageError(f"no schedules directory {str(directory)!r} (give --schedules DIR, or set OPSFLOW_SCHEDULES)")
    runbooks = runbooks_dir or (settings.runbooks if settings.sources.get("runbooks") != "default" else None)
    return load_schedules(directory, runbooks)


def _store(db: str | None) -> Any:
    """The store when there is one already (never created just to look); None otherwise."""
    from opsflow.errors import OpsflowError
    from opsflow.settings import current

    url = current(db=db).db if db else current().db
    if "://" not in url and not Path(url).exists():
        return None
    try:
        from opsflow.store import open_store

        return open_store(url)
    except OpsflowError:
        return None


def _instant(text: str | None, z: tzinfo, what: str) -> datetime:
    from opsflow.schedule.tz import parse_instant

    if text is None:
        return datetime.now(UTC)
    try:
        return parse_instant(text, z)
    except ValueError as exc:
        raise UsageError(f"{what} {text!r}: {exc}") from None


def _zone(name: str | None) -> tzinfo:
    from opsflow.schedule.tz import UnknownZone, zone

    if name is None:
        local = datetime.now().astimezone().tzinfo
        return local or UTC
    try:
        return zone(name)
    except UnknownZone as exc:
        raise UsageError(f"--timezone: {exc}") from None


@click.group("schedule")
def schedule() -> None:
    """The operations schedule: entries, their coming slots, a forecast."""


@schedule.command("list")
@_schedules_opt
@_runbooks_opt
@db_opt
@click.option("--json", "as_json", is_flag=True, help="a JSON list of entries")
def list_entries(schedules_dir: str | None, runbooks_dir: str | None, db: str | None, as_json: bool) -> None:
    """Entries with their trigger, next fire, calendars and last outcome."""
    from opsflow.schedule.history import last_outcomes, p95_duration
    from opsflow.schedule.slots import next_slots
    from opsflow.schedule.tz import iso

    sset = _load(schedules_dir, runbooks_dir)
    store = _store(db)
    outcomes = last_outcomes(store) if store is not None else {}
    now = datetime.now(UTC)
    rows = []
    for name, entry in sorted(sset.entries.items(), key=lambda kv: (-kv[1].spec.priority, kv[0])):
        report = entry.spec.report
        p95 = p95_duration(store, entry.runbook) if store is not None and report is None else None
        slots = next_slots(entry, start=now, count=50, p95=p95) if entry.spec.enabled else []
        nxt = next((s for s in slots if s.start is not None), None)
        rows.append({"name": name, "runbook": entry.runbook if report is None else None, "does": entry.runbook,
                     "report": report.model_dump(mode="json") if report is not None else None,
                     "trigger": entry.trigger.describe(),
                     "enabled": entry.spec.enabled, "priority": entry.spec.priority,
                     "next": iso(nxt.start, entry.tz) if nxt and nxt.start else None,
                     "next_action": nxt.action if nxt else None,
                     "calendars": [c.name for c in entry.calendars], "last_outcome": outcomes.get(name, "-")})
    if store is not None:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table
    from rich.text import Text

    from opsflow.cli.render import console_for

    table = Table()
    for col in ("entry", "runbook", "when", "next", "calendars", "last"):
        table.add_column(col)
    for r in rows:
        when = "disabled" if not r["enabled"] else (r["next"] or "-") + (" (deferred)" if r["next_action"] == "defer" else "")
        table.add_row(*(Text(safe(str(v))) for v in (r["name"], r["does"], r["trigger"], when,
                                                      ", ".join(r["calendars"]) or "-", r["last_outcome"])))
    import sys

    console_for(sys.stdout).print(table)


@schedule.command("next")
@click.argument("entry")
@click.option("--from", "from_", default=None, metavar="ISO8601", help="from this instant (default now; "
              "without an offset, in the entry's zone)")
@click.option("--count", "-n", default=10, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--p95", default=None, metavar="DURATION", help="assume this run duration (e.g. 45m) instead of "
              "the recorded one")
@_schedules_opt
@_runbooks_opt
@db_opt
@click.option("--json", "as_json", is_flag=True, help="a JSON list of {at, action, reason, to}")
def next_(entry: str, from_: str | None, count: int, p95: str | None, schedules_dir: str | None,
          runbooks_dir: str | None, db: str | None, as_json: bool) -> None:
    """The coming slots of ENTRY, in order: run, skip or defer, and why."""
    from opsflow.schedule.slots import next_slots

    sset = _load(schedules_dir, runbooks_dir)
    e = sset.entry(entry)
    start = _instant(from_, e.tz, "--from")
    duration: float | None
    if p95 is not None:
        from opsflow.events.models import parse_duration

        try:
            duration = parse_duration(p95)
        except ValueError as exc:
            raise UsageError(f"--p95: {exc}") from None
    else:
        from opsflow.schedule.history import p95_duration

        store = _store(db) if e.spec.report is None else None  # a report's seconds never miss a window
        duration = p95_duration(store, e.runbook) if store is not None else None
        if store is not None:
            store.close()
    slots = next_slots(e, start=start, count=count, p95=duration)
    if as_json:
        click.echo(json.dumps([s.as_dict(e.tz) for s in slots], indent=2))
        return
    if e.spec.report is not None:
        click.echo(safe(f"{e.name}: {e.runbook} over the span before each slot"), err=True)
    for s in slots:
        d = s.as_dict(e.tz)
        extra = f" → {d['to']}" if d.get("to") else ""
        click.echo(safe(f"{d['at']}  {s.action:<5}  {s.reason}{extra}"))


@schedule.command("forecast")
@click.option("--days", default=14, show_default=True, type=click.IntRange(1, 366))
@click.option("--from", "from_", default=None, metavar="ISO8601", help="from this instant (default now)")
@click.option("--timezone", "timezone", default=None, help="show times in this zone (default: this machine's)")
@click.option("--ics", "ics_file", default=None, type=click.Path(dir_okay=False),
              help="also write the forecast as an iCalendar file")
@_schedules_opt
@_runbooks_opt
def forecast(days: int, from_: str | None, timezone: str | None, ics_file: str | None, schedules_dir: str | None,
             runbooks_dir: str | None) -> None:
    """What will run when over the coming days, with windows and blackouts."""
    from opsflow.schedule import forecast as fcmod
    from opsflow.schedule.ics import export

    z = _zone(timezone)
    sset = _load(schedules_dir, runbooks_dir)
    fc = fcmod.forecast(sset, _instant(from_, z, "--from"), days)
    for line in fcmod.render_text(fc, z):
        click.echo(safe(line))
    if ics_file:
        try:
            Path(ics_file).write_bytes(export(fcmod.ics_items(fc, sset)))
        except OSError as exc:
            raise UsageError(f"--ics {ics_file}: cannot write: {exc.strerror or exc}") from None
        click.echo(f"wrote {ics_file}", err=True)


@schedule.command("log")
@click.option("--since", default=None, help="slots since, e.g. 30m, 12h, 7d (default: all)")
@click.option("--entry", default=None, help="only this entry")
@click.option("--limit", "-n", default=200, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--timezone", "timezone", default=None, help="show times in this zone (default: this machine's)")
@db_opt
@click.option("--json", "as_json", is_flag=True, help="a JSON list of {entry, slot, decision, reason, deferred_to, "
              "run_id, outcome}")
def log(since: str | None, entry: str | None, limit: int, timezone: str | None, db: str | None,
        as_json: bool) -> None:
    """Every fire decision of the scheduler and what became of it, newest first."""
    from opsflow.cli.options import parse_since
    from opsflow.schedule.tz import iso

    z = _zone(timezone)
    since_ts = parse_since(since) if since else None
    store = _store(db)
    rows = store.fires(since=since_ts, entry=entry, limit=limit) if store is not None else []
    if store is not None:
        store.close()

    def when(ts: float | None) -> str | None:
        return iso(datetime.fromtimestamp(ts, UTC), z) if ts is not None else None

    out = [{"entry": r["entry"], "slot": when(r["slot"]), "decision": r["decision"], "reason": r["reason"],
            "deferred_to": when(r["deferred_to"]), "run_id": r["run_id"], "outcome": r["outcome"],
            "decided_at": when(r["decided_at"])} for r in rows]
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    if not out:
        click.echo("no fire decisions recorded" + (f" since {since}" if since else ""), err=True)
        return
    import sys

    from rich.table import Table
    from rich.text import Text

    from opsflow.cli.render import console_for

    table = Table()
    for col in ("slot", "entry", "decision", "run", "outcome", "reason"):
        table.add_column(col)
    for r in out:
        decision = str(r["decision"]) + (f" → {r['deferred_to']}" if r["deferred_to"] else "")
        table.add_row(*(Text(safe(str(v))) for v in (r["slot"], r["entry"], decision, r["run_id"] or "-",
                                                      r["outcome"] or "-", r["reason"] or "")))
    console_for(sys.stdout).print(table)


@click.group("calendar")
def calendar() -> None:
    """Maintenance windows and blackouts of the schedule."""


@calendar.command("check")
@click.argument("name")
@click.option("--at", "at", default=None, metavar="ISO8601", help="the instant (default now; without an "
              "offset, in the calendar's location)")
@_schedules_opt
@_runbooks_opt
@click.option("--json", "as_json", is_flag=True, help="a JSON object {open, reason, …}")
def check(name: str, at: str | None, schedules_dir: str | None, runbooks_dir: str | None, as_json: bool) -> None:
    """Whether calendar NAME is open at an instant (exit 0 open, 1 closed)."""
    import sys

    from opsflow.schedule.tz import iso

    sset = _load(schedules_dir, runbooks_dir)
    cal = sset.calendar(name)
    instant = _instant(at, cal.tz, "--at")
    is_open, reason = cal.open_at(instant)
    change = cal.next_change(instant)
    out = {"calendar": cal.name, "mode": cal.mode, "at": iso(instant, cal.tz), "open": is_open, "reason": reason,
           "next_change": iso(change, cal.tz) if change else None}
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(safe(f"{'open' if is_open else 'closed'}: {reason}"
                        + (f"; changes at {out['next_change']}" if change else "")))
    sys.exit(0 if is_open else 1)
