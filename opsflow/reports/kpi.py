"""The KPI report: one dict (see :mod:`opsflow.reports`) built from the store, the services and the
schedules, that every format renders. ``opsflow report --format json`` prints it as it is."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsflow.errors import StoreError, UsageError
from opsflow.reports.hours import Clock, calendar_clock
from opsflow.reports.objectives import Context, action_state, evaluate, members_of, merge_state
from opsflow.reports.rollup import FINISHED, Agg, RunbookAgg, aggregate, roll_up
from opsflow.reports.stats import rnd
from opsflow.slo.loader import ServiceSet, load_configured
from opsflow.slo.models import DURATION_BOUNDS, ServiceSpec

_RELATIVE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DEFAULT_RPO = 26 * 3600.0
HEATMAP_HOSTS = 30


def parse_instant(text: str, now: float, what: str = "--since") -> float:
    """``7d`` (before now), or an ISO 8601 date or instant (UTC unless it has an offset)."""
    m = _RELATIVE.match(text.strip())
    if m:
        return now - float(m[1]) * _UNITS[m[2]]
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"{what} {text!r}: expected a span like 7d, 24h, 30m, 2w or an ISO 8601 date or "
                         "instant like 2026-11-01 or 2026-11-01T08:00:00+01:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def schedule_set(path: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """Calendars and entry → runbook of the schedules directory (empty when there is none)."""
    from opsflow.settings import current

    directory = Path(path or current().schedules)
    if not directory.exists():
        return {}, {}
    from opsflow.schedule.loader import load_schedules

    loaded = load_schedules(directory, check_runbooks=False)
    return dict(loaded.calendars), {name: e.runbook for name, e in loaded.entries.items()}


def _runbook_entry(rb: RunbookAgg, clock: Clock | None, objectives: list[dict[str, Any]], factor: float,
                   store: Any, since: float, until: float) -> dict[str, Any]:
    finished = rb.finished
    median = rb.wall.quantile(0.5)
    slow = []
    if median and rb.wall.count >= 5:
        for run in store.slow_runs(rb.name, since, until, factor * median):
            slow.append({**run, "started_at": iso(run["started_at"]), "duration_s": rnd(run["duration_s"]),
                         "ratio": rnd(run["duration_s"] / median, 2)})
    entry: dict[str, Any] = {
        "name": rb.name, "runs": sum(rb.statuses.values()), "succeeded": rb.statuses["succeeded"],
        "failed": rb.failed, "other": finished - rb.statuses["succeeded"] - rb.failed,
        "running": sum(rb.statuses.values()) - finished, "check_runs": rb.check_runs,
        "success_rate": rnd(rb.statuses["succeeded"] / finished, 6) if finished else None,
        "duration_p50_s": rnd(rb.sketch.quantile(0.5)), "duration_p95_s": rnd(rb.sketch.quantile(0.95)),
        "duration_mean_s": rnd(rb.sketch.mean), "slow_runs": slow, "outlier_factor": factor,
        "versions": [{"hash": h[:12], "first_run": iso(v.first), "runs": v.runs,
                      "success_rate": rnd(v.succeeded / v.finished, 6) if v.finished else None,
                      "duration_p50_s": rnd(v.sketch.quantile(0.5)), "duration_p95_s": rnd(v.sketch.quantile(0.95))}
                     for h, v in sorted(rb.versions.items(), key=lambda kv: kv[1].first)],
        "objectives": objectives,
    }
    if clock is not None:
        entry.update(wall_duration_p50_s=rnd(rb.wall.quantile(0.5)), wall_duration_p95_s=rnd(rb.wall.quantile(0.95)),
                     wall_duration_mean_s=rnd(rb.wall.mean))
    return entry


def _events(ctx: Context, rules: set[str] | None, runbooks: set[str] | None, clock: Clock | None,
            counts: tuple[int, int]) -> dict[str, Any]:
    actions = ctx.actions or []
    if rules is not None or runbooks is not None:
        actions = [a for a in actions if a[1] in (rules or set()) or a[-1] in (runbooks or set())]
    if clock is not None:
        actions = [a for a in actions if clock.inside(a[6])]
    events: dict[str, str] = {}
    suppressed: Counter[str] = Counter()
    starts, ends = [], []
    for a in actions:
        event_id, outcome, reason = a[0], a[2], a[3]
        if outcome in ("suppressed", "canceled"):
            suppressed[reason or outcome] += 1
        state = action_state(a)
        ok = state == "remediated"
        events[event_id] = merge_state(events.get(event_id), state)
        received, started, ended = a[6], a[7], a[8]
        measure = clock.elapsed if clock is not None else (lambda x, y: y - x)
        if started is not None:
            starts.append(measure(received, started))
        if ok and ended is not None:
            ends.append(measure(received, ended))
    from opsflow.reports.stats import Sketch

    received, matched = counts
    if rules is not None or runbooks is not None or clock is not None:
        received = matched = len(events)
    remediated = sum(1 for s in events.values() if s == "remediated")
    needing = sum(1 for s in events.values() if s != "repeat")
    return {"received": received, "matched": matched, "remediated_automatically": remediated,
            "automation_rate": rnd(remediated / needing, 6) if needing else None,
            "needed_human": sum(1 for s in events.values() if s == "human"),
            "repeats": sum(1 for s in events.values() if s == "repeat"),
            "suppressed": dict(sorted(suppressed.items())), "mttr_s": rnd(sum(ends) / len(ends)) if ends else None,
            "remediations": len(ends), "time_to_start_p50_s": rnd(Sketch.of(starts).quantile(0.5))}


def _backups(rows: list[dict[str, Any]], until: float, members: set[str] | None, rpo: float,
             expected: set[str]) -> list[dict[str, Any]]:
    """Per host/device: the last backup and drill. ``members``: only these (a service's); ``expected``:
    hosts a backup objective covers, listed (never backed up: overdue) even without any record."""
    known = {r["name"] for r in rows}
    rows = rows + [{"name": n} for n in sorted(expected - known)]
    out = []
    for row in sorted(rows, key=lambda r: r["name"]):
        if members is not None and row["name"] not in members:
            continue
        age = until - row["backup_at"] if "backup_at" in row else None
        out.append({"name": row["name"], "last_backup_age_s": rnd(age), "last_drill_rto_s": rnd(row.get("rto")),
                    "last_drill_age_s": rnd(until - row["drill_at"]) if "drill_at" in row else None,
                    "last_drill_rpo_s": rnd(row.get("rpo")), "rpo_s": rpo, "overdue": age is None or age > rpo,
                    "flags": row.get("flags") or (["never backed up"] if age is None else [])})
    return out


def _schedule(fires: list[tuple[Any, ...]], entries: set[str] | None) -> dict[str, Any]:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for entry, _slot, decision, *_ in fires:
        if entries is None or entry in entries:
            per[entry][decision] += 1

    def block(c: Counter[str]) -> dict[str, Any]:
        slots = sum(c.values())
        return {"slots": slots, "run_in_slot": c["fired"], "rescheduled": c["deferred"],
                "missed": c["missed"] + c["coalesced"], "skipped": c["skipped"],
                "adherence": rnd(c["fired"] / slots, 6) if slots else None}
    total: Counter[str] = Counter()
    for c in per.values():
        total += c
    return {**block(total), "entries": [{"entry": e, **block(c)} for e, c in sorted(per.items())]}


def _operators(rows: dict[str, list[tuple[Any, ...]]]) -> list[dict[str, Any]]:
    people: dict[str, dict[str, Any]] = {}

    def person(name: str | None) -> dict[str, Any]:
        key = name or "unknown"
        return people.setdefault(key, {"name": key, "runs_started": 0, "approvals": 0, "denials": 0,
                                       "approval_response_mean_s": None, "window_overrides": 0,
                                       "breaker_resets": 0, "_waits": []})
    for who, n in rows["runs"]:
        person(who)["runs_started"] += n
    for who, state, requested, decided in rows["approvals"]:
        p = person(who)
        p["approvals" if state == "approved" else "denials"] += 1
        if requested is not None and decided is not None:
            p["_waits"].append(decided - requested)
    for who, action, n in rows["audit"]:
        if action == "window_override":
            person(who)["window_overrides"] += n
        elif action == "breaker_reset":
            person(who)["breaker_resets"] += n
    out = []
    for p in sorted(people.values(), key=lambda p: p["name"]):
        waits = p.pop("_waits")
        p["approval_response_mean_s"] = rnd(sum(waits) / len(waits)) if waits else None
        out.append(p)
    return out


def _trends(agg: Agg) -> list[dict[str, Any]]:
    out = []
    for week, w in sorted(agg.weeks.items()):
        finished = sum(w.statuses[s] for s in FINISHED)
        out.append({"week": week, "runs": sum(w.statuses.values()), "succeeded": w.statuses["succeeded"],
                    "failed": sum(w.statuses[s] for s in ("partial", "failed", "abandoned", "crashed")),
                    "success_rate": rnd(w.statuses["succeeded"] / finished, 6) if finished else None,
                    "duration_p95_s": rnd(w.sketch.quantile(0.95))})
    return out


def _heatmap(agg: Agg) -> dict[str, Any]:
    per_host: Counter[str] = Counter()
    for (host, _rb), n in agg.heat.items():
        per_host[host] += n
    hosts = [h for h, n in per_host.most_common(HEATMAP_HOSTS) if n]
    runbooks = sorted({rb for (h, rb), n in agg.heat.items() if n and h in hosts})
    return {"hosts": hosts, "runbooks": runbooks,
            "failures": [[agg.heat[(h, rb)] for rb in runbooks] for h in hosts],
            "runs": [[agg.host_runs[(h, rb)] for rb in runbooks] for h in hosts]}


def _distributions(agg: Agg) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name, rb in sorted(agg.runbooks.items()):
        if rb.sketch.count:
            rows: list[dict[str, Any]] = [{"le": b, "count": n} for b, n in zip(DURATION_BOUNDS, rb.sketch.buckets, strict=True)]
            rows.append({"le": "+Inf", "count": rb.sketch.count - sum(rb.sketch.buckets)})
            out[name] = rows
    return out


def schedule_entries(path: str | None) -> dict[str, str]:
    """Schedule entry → runbook name (empty without a schedules directory)."""
    return schedule_set(path)[1]


def objective_status(store: Any, services: ServiceSet, service: str | None, now: float,
                     schedules: str | None = None) -> list[dict[str, Any]]:
    """Every objective (of one service) over its own window ending at ``now``."""
    from opsflow.reports.backups import backup_status

    try:
        roll_up(store, now)
    except StoreError:
        pass
    calendars, entry_runbooks = schedule_set(schedules)
    chosen = [services.service(service)] if service else list(services.services.values())
    backups = backup_status(store, now=now)
    contexts: dict[float, Context] = {}
    out = []
    for s in chosen:
        for o in s.objectives:
            if o.window not in contexts:
                since = now - o.window
                contexts[o.window] = Context(store=store, services=services, since=since, until=now,
                                             calendars=calendars, entry_runbooks=entry_runbooks, backups=backups,
                                             actions=store.action_rows(since, now), fires=store.fire_rows(since, now))
            out.append({**evaluate(contexts[o.window], s, o), "window_s": o.window})
    return out


def _lessons(store: Any, since: float, objectives: list[dict[str, Any]],
             runbooks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Open reviews and what is due for one (failed remediations, window overrides, breached
    objectives — each breach charged to the runbook of the objective that did worst); each runbook's
    entry gets its ``lessons``."""
    from opsflow.reviews.due import find_due
    from opsflow.reviews.summary import open_lessons_summary

    lessons, rows = open_lessons_summary(store)
    by_name = {r["name"]: r for r in runbooks}
    for r in runbooks:
        r["lessons"] = lessons.get(r["name"], {"open_reviews": 0, "open_actions": 0})
    breaches = []
    for o in objectives:
        if o["met"] or o["actual"] is None:
            continue
        ran = [by_name[n] for n in o["runbooks"] if n in by_name and by_name[n]["runs"]]
        worst = min(ran, key=lambda r: r["success_rate"] if r["success_rate"] is not None else 1.0)["name"] \
            if ran else (o["runbooks"][0] if o["runbooks"] else None)
        breaches.append({"runbook": worst, "service": o["service"], "objective": o["name"], "actual": o["actual"],
                         "target": o["target"], "at": since})
    due = find_due(store, since=since, breaches=breaches)
    for d in due:
        d["at"] = iso(d["at"]) if isinstance(d.get("at"), int | float) else d.get("at")
    return rows, due


def build_report(store: Any, since: float, until: float, service: str | None = None, hours: str | None = None,
                 services: ServiceSet | None = None, schedules: str | None = None, now: float | None = None,
                 roll: bool = True) -> dict[str, Any]:
    """The report over [since, until): see :mod:`opsflow.reports` for its keys."""
    now = time.time() if now is None else now
    if until <= since:
        raise UsageError(f"--until ({iso(until)}) must be after --since ({iso(since)})")
    if roll:
        try:
            roll_up(store, now)
        except StoreError:
            pass  # a read-only store: the report reads the runs themselves
    services = services if services is not None else load_configured(schedules=schedules)
    calendars, entry_runbooks = schedule_set(schedules)
    if hours is not None and hours not in calendars:
        import difflib

        close = difflib.get_close_matches(hours, list(calendars), n=1)
        raise UsageError(f"--hours {hours!r}: no such calendar" + (f"; did you mean {close[0]!r}?" if close else
                         f" (calendars: {', '.join(sorted(calendars)) or 'none — see schedules/'})"))
    chosen: list[ServiceSpec] = [services.service(service)] if service else list(services.services.values())
    scope = set().union(*(services.runbooks_of(s) for s in chosen)) if service else None
    clock = calendar_clock(calendars[hours], since, until) if hours else None
    ctx = Context(store=store, services=services, since=since, until=until, calendars=calendars,
                  entry_runbooks=entry_runbooks, hours=hours, actions=store.action_rows(since, until),
                  fires=store.fire_rows(since, until))
    members: set[str] | None = None
    rpo = DEFAULT_RPO
    for s in chosen:
        rpos = [o.rpo for o in s.objectives if o.rpo]
        rpo = min(rpos + [rpo]) if rpos else rpo
    from opsflow.reports.backups import backup_status

    ctx.backups = backup_status(store, now=until)
    if service:
        members = {r["name"] for r in members_of(ctx, chosen[0])}
    expected = {r["name"] for s in chosen if any(o.kind in ("backup_age", "restore_drill") for o in s.objectives)
                for r in members_of(ctx, s)}
    objectives = [evaluate(ctx, s, o) for s in chosen for o in s.objectives]
    agg = aggregate(store, since, until, tuple(sorted(scope)) if scope is not None else None,
                    keep=clock.inside if clock else None, clock=clock)
    names = set(agg.runbooks) | (scope or set())
    factors = {rb: s.outlier_factor for s in chosen for rb in services.runbooks_of(s)}
    runbooks = [_runbook_entry(agg.runbooks.get(n) or RunbookAgg(n), clock,
                               [o for o in objectives if n in o["runbooks"]], factors.get(n, 3.0), store, since, until)
                for n in sorted(names)]
    entries = (set().union(*(set(s.schedules) or {e for e, rb in entry_runbooks.items() if rb in (scope or set())}
                             for s in chosen)) if service else None)
    reviews, due = _lessons(store, since, objectives, runbooks)
    finished = sum(rb.finished for rb in agg.runbooks.values())
    succeeded = sum(rb.statuses["succeeded"] for rb in agg.runbooks.values())
    totals = {"runs": sum(r["runs"] for r in runbooks), "succeeded": succeeded, "failed": sum(r["failed"] for r in runbooks),
              "finished": finished, "success_rate": rnd(succeeded / finished, 6) if finished else None,
              "objectives": len(objectives), "objectives_met": sum(1 for o in objectives if o["met"]),
              "objectives_without_data": sum(1 for o in objectives if o["actual"] is None)}
    return {
        "generated_at": iso(now), "since": iso(since), "until": iso(until), "service": service, "hours": hours,
        "hours_open_s": rnd(clock.elapsed(since, until)) if clock else None,
        "totals": totals, "runbooks": runbooks,
        "services": [{"name": s.name, "description": s.description, "owner": s.owner,
                      "runbooks": services.runbooks_of(s), "hours": hours or s.hours, "corrections": s.corrections,
                      "objectives": [o for o in objectives if o["service"] == s.name]} for s in chosen],
        "events": _events(ctx, set().union(*(set(s.rules) for s in chosen)) if service else None, scope, clock,
                          store.event_counts(since, until)),
        "backups": _backups(ctx.backups, until, members, rpo, expected),
        "schedule": _schedule(ctx.fires or [], entries),
        "operators": _operators(store.people_rows(since, until)),
        "trends": _trends(agg), "heatmap": _heatmap(agg), "distributions": _distributions(agg),
        "reviews": reviews, "reviews_due": due,
        "store": {"rolled_days": agg.rolled_days, "runs_read": agg.raw_runs},
    }


__all__ = ["build_report", "iso", "objective_status", "parse_instant", "schedule_entries", "schedule_set"]
