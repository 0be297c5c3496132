"""Objectives evaluated against the store over a span: target, actual, met, error budget, burn rate.

Each objective counts only its service's runbooks (or its own ``runbooks:``), only runs that
started inside the service's operational hours when it has ``hours:`` (or the report's ``--hours``),
and never runs that started inside a correction window (``corrections:``: maintenance windows are
excluded from the error budget). Durations of a service with operational hours are measured on that
clock: the seconds of a run that fell inside the hours.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsflow.reports.hours import Clock, active_clock, calendar_clock
from opsflow.reports.rollup import Agg, aggregate
from opsflow.reports.stats import Sketch, ratio_result, rnd, threshold_result
from opsflow.slo.loader import ServiceSet
from opsflow.slo.models import Objective, ServiceSpec


@dataclass
class Context:
    """What evaluating objectives over one span needs, computed once and shared."""

    store: Any
    services: ServiceSet
    since: float
    until: float
    calendars: dict[str, Any]
    entry_runbooks: dict[str, str]  # schedule entry → runbook name
    hours: str | None = None  # the report's --hours: overrides every service's own
    backups: list[dict[str, Any]] | None = None
    actions: list[tuple[Any, ...]] | None = None
    fires: list[tuple[Any, ...]] | None = None
    _clocks: dict[tuple[str, str], Clock] = field(default_factory=dict)
    _aggs: dict[Any, Agg] = field(default_factory=dict)

    def clock(self, name: str, kind: str = "hours") -> Clock:
        key = (kind, name)
        if key not in self._clocks:
            cal = self.calendars[name]
            make = calendar_clock if kind == "hours" else active_clock
            self._clocks[key] = make(cal, self.since, self.until)
        return self._clocks[key]

    def hours_of(self, service: ServiceSpec) -> str | None:
        return self.hours or service.hours

    def filters(self, service: ServiceSpec) -> tuple[Clock | None, Callable[[float], bool] | None]:
        hours = self.hours_of(service)
        clock = self.clock(hours) if hours else None
        corrections = [self.clock(c, "active") for c in service.corrections]
        if clock is None and not corrections:
            return None, None

        def keep(t: float) -> bool:
            return (clock is None or clock.inside(t)) and not any(c.inside(t) for c in corrections)
        return clock, keep

    def agg(self, service: ServiceSpec, runbooks: tuple[str, ...]) -> Agg:
        clock, keep = self.filters(service)
        key = (runbooks, self.hours_of(service), tuple(service.corrections))
        if key not in self._aggs:
            self._aggs[key] = aggregate(self.store, self.since, self.until, runbooks, keep=keep, clock=clock)
        return self._aggs[key]


def _runs(ctx: Context, service: ServiceSpec, obj: Objective) -> dict[str, Any]:
    runbooks = tuple(ctx.services.runbooks_of(service, obj))
    agg = ctx.agg(service, runbooks)
    if obj.kind == "success_rate":
        good = sum(rb.statuses["succeeded"] for rb in agg.runbooks.values())
        total = sum(rb.finished for rb in agg.runbooks.values())
        return ratio_result(good, total, obj.ratio or 0)
    sketch = Sketch()
    for rb in agg.runbooks.values():
        sketch.merge(rb.sketch)
    assert obj.max is not None
    out = ratio_result(sketch.at_most(obj.max), sketch.count, obj.ratio or 0)
    out["percentile_s"] = rnd(sketch.quantile(obj.ratio or 0.95))
    return out


def _events(ctx: Context, service: ServiceSpec, obj: Objective) -> dict[str, Any]:
    runbooks = set(ctx.services.runbooks_of(service, obj))
    rules = set(service.rules)
    clock, keep = ctx.filters(service)
    actions = [a for a in (ctx.actions or []) if (a[1] in rules or a[-1] in runbooks) and (keep is None or keep(a[6]))]
    if obj.kind == "auto_remediation":
        events: dict[str, str] = {}
        for a in actions:
            events[a[0]] = merge_state(events.get(a[0]), action_state(a))
        return ratio_result(sum(1 for s in events.values() if s == "remediated"),
                            sum(1 for s in events.values() if s != "repeat"), obj.ratio or 0)

    def span(a: tuple[Any, ...], end: float) -> float:
        return clock.elapsed(a[6], end) if clock is not None else end - a[6]

    assert obj.max is not None
    if obj.kind == "time_to_start":
        values = [span(a, a[7]) for a in actions if a[7] is not None]
        return threshold_result(Sketch.of(values).quantile(0.95), obj.max, len(values))
    values = [span(a, a[8]) for a in actions if a[5] == "succeeded" and a[8] is not None]
    return threshold_result(sum(values) / len(values) if values else None, obj.max, len(values))


REPEATS = ("duplicate", "resolved", "cooldown")


def action_state(a: tuple[Any, ...]) -> str:
    """What a rule action says of its event: remediated (its run succeeded), a repeat (a duplicate, a
    resolved alert, a cooldown: nothing was needed), or a human is needed (the run failed, or the
    automation declined: breaker open, budget, lock, queue full, unknown host …)."""
    if a[2] == "finished" and a[5] == "succeeded":
        return "remediated"
    return "repeat" if a[3] in REPEATS else "human"


def merge_state(previous: str | None, state: str) -> str:
    """An event with several actions: remediated if any was, else human if any needed one."""
    order = {"remediated": 2, "human": 1, "repeat": 0}
    return state if previous is None or order[state] > order[previous] else previous


def _schedule(ctx: Context, service: ServiceSpec, obj: Objective) -> dict[str, Any]:
    runbooks = set(ctx.services.runbooks_of(service, obj))
    entries = set(service.schedules) or {e for e, rb in ctx.entry_runbooks.items() if rb in runbooks}
    _, keep = ctx.filters(service)
    fires = [f for f in (ctx.fires or []) if f[0] in entries and (keep is None or keep(f[1]))]
    return ratio_result(sum(1 for f in fires if f[2] == "fired"), len(fires), obj.ratio or 0)


def members_of(ctx: Context, service: ServiceSpec) -> list[dict[str, Any]]:
    """Backup rows of the hosts and devices in the service's groups (names or fnmatch patterns, or
    inventory groups when the inventory resolves them)."""
    rows = ctx.backups or []
    names = {r["name"] for r in rows}
    members: set[str] = set()
    for pattern in service.groups:
        matched = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
        members |= matched or inventory_group(pattern)
    by_name = {r["name"]: r for r in rows}
    return [by_name.get(n, {"name": n}) for n in sorted(members)]


def inventory_group(group: str) -> set[str]:
    try:
        from opsflow.inventory import load_inventory_cached
        from opsflow.settings import current

        inv = load_inventory_cached(current().inventory)
        return set(inv.groups.get(group, [])) | ({group} if group in inv.hosts else set())
    except Exception:  # noqa: BLE001 - no inventory here: the group names no backed-up host
        return set()


def _backups(ctx: Context, service: ServiceSpec, obj: Objective) -> dict[str, Any]:
    members = members_of(ctx, service)
    good = 0
    for row in members:
        if obj.kind == "backup_age":
            good += "backup_at" in row and ctx.until - row["backup_at"] <= (obj.rpo or 0)
        else:
            good += ("drill_at" in row and ctx.until - row["drill_at"] <= (obj.max_age or 0)
                     and row.get("rto", float("inf")) <= (obj.rto or 0))
    out = ratio_result(good, len(members), obj.ratio or 0)
    out["hosts"] = [r["name"] for r in members]
    return out


def evaluate(ctx: Context, service: ServiceSpec, obj: Objective) -> dict[str, Any]:
    """One objective over the context's span, as the report shows it."""
    if obj.kind in ("success_rate", "duration"):
        result = _runs(ctx, service, obj)
    elif obj.kind in ("auto_remediation", "time_to_start", "mttr"):
        result = _events(ctx, service, obj)
    elif obj.kind == "schedule_adherence":
        result = _schedule(ctx, service, obj)
    else:
        result = _backups(ctx, service, obj)
    threshold = obj.threshold
    return {"service": service.name, "name": obj.name, "kind": obj.kind,
            "target": threshold if threshold is not None else obj.ratio,
            "unit": "seconds" if threshold is not None else "ratio", "description": obj.describe(),
            "hours": ctx.hours_of(service), "corrections": list(service.corrections),
            "runbooks": ctx.services.runbooks_of(service, obj), **result}


__all__ = ["Context", "action_state", "evaluate", "inventory_group", "members_of", "merge_state"]
