"""Run metrics from the store for Prometheus: a ``prometheus_client`` collector read at scrape time.

``StoreCollector(store)`` yields, from a handful of ``GROUP BY`` queries (never row by row):

- ``opsflow_runs_total{runbook,status,trigger}`` — finished runs (check-mode runs apart, in
  ``opsflow_check_runs_total{runbook,status}``). Only final statuses are counted: a run that is still
  ``running`` or ``waiting`` is in the ``opsflow_runs_running{runbook}`` gauge, and enters the counter
  once, when it ends (a counter whose ``status="running"`` series went down would read as a reset);
- ``opsflow_run_duration_seconds{runbook}`` — histogram of the durations of succeeded runs (check mode
  apart), in the buckets that ``duration`` objectives name (``opsflow.slo.models.DURATION_BOUNDS``), so
  ``le="300.0"`` over ``_count`` is exactly the SLI of "95% within 5m" that the reports compute;
- ``opsflow_backup_age_seconds``, ``opsflow_backup_drill_rto_seconds``, ``opsflow_backup_drill_age_seconds``
  and ``opsflow_backup_drill_rpo_seconds`` ``{name}`` — what ``opsflow backup report`` shows
  (``opsflow.reports.backups``); an age of ``+Inf`` means never;
- ``opsflow_schedule_slots_total{entry,decision}`` — the scheduler's decisions (table schedule_fires);
- ``opsflow_remediations_total{rule,outcome}`` — the daemon's decisions that are final:
  ``remediated`` (the run succeeded), ``failed`` (it ran and did not), ``suppressed``, ``canceled``
  (a ``queued`` or ``started`` one is not counted yet);
- ``opsflow_objective_target|attainment|met|budget_remaining{service,objective,runbook}`` — from the
  ``objectives`` callable, when given;
- ``opsflow_store_up`` — 1, or 0 when the store could not be read (then no store family is exported).

Known label values are exported at 0 (every final status of every runbook and trigger seen, every
decision of every entry, every final outcome of every rule), so series do not appear only with their
first increment. Label values are names, statuses, triggers, decisions and outcomes — never event
data, parameters or output.

The run counts come from :func:`rollup_counts`: the daily roll-ups (``run_rollups``, made as days
end) for every rolled day, and one aggregate over the ``runs`` of the days after them — so a scrape
of a store of millions of runs reads a few thousand roll-up rows and a day of runs.
:func:`run_counts` is the plain aggregate over every run; ``query_rollups`` takes any callable
returning :class:`RunCount` rows.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from opsflow.errors import OpsflowError, StoreError
from opsflow.reports.backups import backup_status
from opsflow.results import RunStatus
from opsflow.slo.models import DURATION_BOUNDS
from opsflow.store.schedule import FIRE_DECISIONS
from opsflow.store.sql import SqlStore

log = logging.getLogger("opsflow.metrics")

DURATION_BUCKETS = DURATION_BOUNDS  # +Inf added
IN_PROGRESS = (str(RunStatus.RUNNING), str(RunStatus.WAITING))
FINAL_STATUSES = tuple(str(s) for s in RunStatus if str(s) not in IN_PROGRESS)
FINAL_OUTCOMES = ("remediated", "failed", "suppressed", "canceled")
OBJECTIVE_LABELS = ("service", "objective", "runbook")
Objectives = Callable[[], list[dict[str, Any]]]

HELP: dict[str, str] = {
    "opsflow_runs_total": "Finished runs, by runbook, final status and trigger (check-mode runs excluded).",
    "opsflow_check_runs_total": "Finished check-mode (dry) runs, by runbook and final status.",
    "opsflow_run_duration_seconds": "Durations of succeeded runs, by runbook (check-mode runs excluded).",
    "opsflow_runs_running": "Runs in progress (running or waiting for approval), by runbook.",
    "opsflow_backup_age_seconds": "Seconds since the last successful backup (+Inf: never).",
    "opsflow_backup_drill_rto_seconds": "Restore time measured by the last restore drill.",
    "opsflow_backup_drill_rpo_seconds": "Data-loss window (backup age at restore) of the last restore drill.",
    "opsflow_backup_drill_age_seconds": "Seconds since the last successful restore drill (+Inf: never).",
    "opsflow_schedule_slots_total": "Schedule slots decided, by entry and decision.",
    "opsflow_remediations_total": "Event remediations decided for good, by rule and outcome.",
    "opsflow_objective_target": "Service-level objective: its target.",
    "opsflow_objective_attainment": "Service-level objective: the value attained.",
    "opsflow_objective_met": "Service-level objective: 1 when met.",
    "opsflow_objective_budget_remaining": "Service-level objective: share of the error budget left.",
    "opsflow_store_up": "1 when the store could be read for these metrics.",
}
KINDS = {"opsflow_runs_total": "counter", "opsflow_check_runs_total": "counter",
         "opsflow_run_duration_seconds": "histogram", "opsflow_schedule_slots_total": "counter",
         "opsflow_remediations_total": "counter"}  # every other family is a gauge
_OBJECTIVE_VALUES = {"opsflow_objective_target": "target", "opsflow_objective_attainment": "actual",
                     "opsflow_objective_met": "met", "opsflow_objective_budget_remaining": "budget_remaining"}


@dataclass(frozen=True)
class RunCount:
    """Runs of one (runbook, status, trigger, check_mode): how many, and their durations."""

    runbook: str
    status: str
    trigger: str
    check_mode: bool
    count: int
    timed: int  # runs with a duration (the histogram's count)
    duration_sum: float
    buckets: tuple[int, ...]  # cumulative: runs with a duration ≤ each of DURATION_BUCKETS


def query(store: SqlStore, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one read-only statement without parameters, on SQLite or PostgreSQL."""
    try:
        with store.connection() as conn:
            return list(conn.execute(sql).fetchall())
    except Exception as exc:  # noqa: BLE001 - sqlite3 and psycopg errors alike
        raise StoreError(f"store {store.url}: {type(exc).__name__}: {exc}") from exc


def run_counts(store: SqlStore, since: float | None = None) -> list[RunCount]:
    """One aggregate over the runs (started at ``since`` or later): a row per (runbook, status,
    trigger, check_mode)."""
    buckets = ", ".join(f"SUM(CASE WHEN duration <= {b!r} THEN 1 ELSE 0 END)" for b in DURATION_BUCKETS)
    where = f"WHERE started_at >= {float(since)!r} " if since is not None else ""
    rows = query(store, "SELECT runbook, status, COALESCE(trigger, ''), COALESCE(check_mode, 0), COUNT(*), "
                        f"COUNT(duration), COALESCE(SUM(duration), 0), {buckets} FROM runs {where}"
                        "GROUP BY runbook, status, COALESCE(trigger, ''), COALESCE(check_mode, 0)")
    return [RunCount(str(r[0]), str(r[1]), str(r[2]), bool(r[3]), int(r[4]), int(r[5]), float(r[6]),
                     tuple(int(n or 0) for n in r[7:])) for r in rows]


def rollup_counts(store: SqlStore) -> list[RunCount]:
    """Run counts from the daily roll-ups (rolling up the days that ended first) and the runs after them."""
    import json

    from opsflow.reports.rollup import DAY, day_start, roll_up

    try:
        roll_up(store)
    except StoreError as exc:  # a store opened read-only: count from the runs themselves
        log.warning("metrics: no roll-up: %s", exc)
    last = query(store, "SELECT MAX(day) FROM rollup_days")[0][0]
    if last is None:
        return run_counts(store)
    acc: dict[tuple[str, str, str, bool], list[Any]] = {}
    for runbook, status, trigger, check, n, sketch in query(
            store, "SELECT runbook, status, trigger, check_mode, runs, sketch FROM run_rollups"):
        data = json.loads(sketch)
        key = (str(runbook), str(status), str(trigger), bool(check))
        row = acc.setdefault(key, [0, 0, 0.0, [0] * len(DURATION_BUCKETS)])
        row[0] += int(n)
        row[1] += int(data["n"])
        row[2] += float(data["t"])
        row[3] = [a + b for a, b in zip(row[3], data["b"], strict=True)]
    out = [RunCount(rb, st, tr, ck, c, timed, total, tuple(_cumulative(b))) for (rb, st, tr, ck), (c, timed, total, b)
           in acc.items()]
    return out + run_counts(store, since=day_start(str(last)) + DAY)


_SERVICES: dict[tuple[str, str, str], tuple[tuple[Any, ...], Any]] = {}  # dirs → (their files' stat, ServiceSet)
_SERVICES_LOCK = threading.Lock()


def _files_stat(*directories: str) -> tuple[Any, ...]:
    """(path, mtime, size) of every directory and file under ``directories``: what changes when a file is
    edited, added, renamed or removed. A few stat calls, no parsing."""
    out: list[Any] = []
    for top in directories:
        for root, dirs, files in os.walk(top):
            dirs.sort()
            for name in [".", *sorted(files)]:
                path = os.path.join(root, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                out.append((path, st.st_mtime_ns, st.st_size))
        out.append(top)
    return tuple(out)


def configured_services() -> Any:
    """The services of the settings in force (:func:`opsflow.slo.loader.load_configured`), loaded again
    only when a file of the services, runbooks or schedules directory changed: a scrape does not parse
    YAML. A set that does not load raises every time (nothing is cached)."""
    from opsflow.settings import current
    from opsflow.slo.loader import load_configured

    cfg = current()
    key = (str(cfg.services), str(cfg.runbooks), str(cfg.schedules))
    seen = _files_stat(*key)
    with _SERVICES_LOCK:
        cached = _SERVICES.get(key)
    if cached is not None and cached[0] == seen:
        return cached[1]
    services = load_configured()
    with _SERVICES_LOCK:
        _SERVICES[key] = (seen, services)
    return services


def service_levels(store: SqlStore) -> list[dict[str, Any]]:
    """Every objective of the services directory in force, each over its own window ending now, in the
    shape of the ``objectives`` callable (none without a services directory). The services are read
    again only when their files change (:func:`configured_services`)."""
    from opsflow.reports.kpi import objective_status

    services = configured_services()
    if not services.services:
        return []
    return [{"service": r["service"], "objective": r["name"], "runbook": "", "target": r["target"],
             "actual": r["actual"], "met": r["met"], "budget_remaining": r["budget_remaining"]}
            for r in objective_status(store, services, None, time.time())]


def _cumulative(counts: list[int]) -> list[int]:
    out, acc = [], 0
    for n in counts:
        acc += n
        out.append(acc)
    return out


def _family(name: str, labels: Iterable[str]) -> Metric:
    kind, labels = KINDS.get(name, "gauge"), list(labels)
    if kind == "counter":
        return CounterMetricFamily(name, HELP[name], labels=labels)
    if kind == "histogram":
        return HistogramMetricFamily(name, HELP[name], labels=labels)
    return GaugeMetricFamily(name, HELP[name], labels=labels)


LABELS: dict[str, tuple[str, ...]] = {
    "opsflow_runs_total": ("runbook", "status", "trigger"), "opsflow_check_runs_total": ("runbook", "status"),
    "opsflow_run_duration_seconds": ("runbook",), "opsflow_runs_running": ("runbook",),
    "opsflow_backup_age_seconds": ("name",), "opsflow_backup_drill_rto_seconds": ("name",),
    "opsflow_backup_drill_rpo_seconds": ("name",), "opsflow_backup_drill_age_seconds": ("name",),
    "opsflow_schedule_slots_total": ("entry", "decision"), "opsflow_remediations_total": ("rule", "outcome"),
    **{name: OBJECTIVE_LABELS for name in _OBJECTIVE_VALUES}, "opsflow_store_up": (),
}
NAMES = tuple(LABELS)


class StoreCollector:
    """Run, backup, schedule, remediation and objective metrics of one store, read when collected."""

    def __init__(self, store: SqlStore, objectives: Objectives | None = None,
                 query_rollups: Callable[[SqlStore], Iterable[RunCount]] | None = None,
                 exclude: Iterable[str] = (), clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.objectives = objectives  # service levels, evaluated when collected (opsflow.reports.objectives)
        self.query_runs: Callable[[SqlStore], Iterable[RunCount]] = query_rollups or rollup_counts
        self.exclude = frozenset(exclude)  # families another collector of the registry exports
        unknown = self.exclude - set(NAMES)
        if unknown:
            raise ValueError(f"no such store metric: {', '.join(sorted(unknown))}")
        self.clock = clock
        self.last_up: bool | None = None  # whether the last collect() could read the store

    def describe(self) -> Iterator[Metric]:
        """The families, without samples (no query): for the registry's check of name clashes."""
        for name in NAMES:
            if name not in self.exclude:
                yield _family(name, LABELS[name])

    def collect(self) -> Iterator[Metric]:
        try:
            families = self._runs() + self._backups() + self._schedule() + self._remediations()
            up = 1.0
        except StoreError as exc:
            log.error("metrics: %s", exc)
            families, up = [], 0.0
        self.last_up = bool(up)
        families += self._objectives()
        store_up = _family("opsflow_store_up", ())
        assert isinstance(store_up, GaugeMetricFamily)
        store_up.add_metric([], up)
        yield from (f for f in [*families, store_up] if f.name not in self.exclude)

    # ---- families --------------------------------------------------------------------
    def _runs(self) -> list[Metric]:
        total: dict[tuple[str, str, str], float] = {}
        check: dict[tuple[str, str], float] = {}
        running: dict[str, int] = {}
        hist: dict[str, list[float]] = {}  # runbook → bucket counts…, +Inf count, sum
        for c in self.query_runs(self.store):
            running.setdefault(c.runbook, 0)
            if c.status in IN_PROGRESS:
                running[c.runbook] += c.count
                continue
            if c.check_mode:
                for status in FINAL_STATUSES:
                    check.setdefault((c.runbook, status), 0.0)
                check[(c.runbook, c.status)] = check.get((c.runbook, c.status), 0.0) + c.count
                continue
            for status in FINAL_STATUSES:
                total.setdefault((c.runbook, status, c.trigger), 0.0)
            total[(c.runbook, c.status, c.trigger)] = total.get((c.runbook, c.status, c.trigger), 0.0) + c.count
            h = hist.setdefault(c.runbook, [0.0] * (len(DURATION_BUCKETS) + 2))
            if c.status != "succeeded":
                continue
            for i, below in enumerate(c.buckets):
                h[i] += below
            h[-2] += c.timed
            h[-1] += c.duration_sum
        runs = _family("opsflow_runs_total", LABELS["opsflow_runs_total"])
        checks = _family("opsflow_check_runs_total", LABELS["opsflow_check_runs_total"])
        assert isinstance(runs, CounterMetricFamily) and isinstance(checks, CounterMetricFamily)
        for (runbook, status, trigger), n in sorted(total.items()):
            runs.add_metric([runbook, status, trigger], n)
        for (runbook, status), n in sorted(check.items()):
            checks.add_metric([runbook, status], n)
        durations = _family("opsflow_run_duration_seconds", ("runbook",))
        assert isinstance(durations, HistogramMetricFamily)
        for runbook, h in sorted(hist.items()):
            bounds = [*(str(b) for b in DURATION_BUCKETS), "+Inf"]
            durations.add_metric([runbook], list(zip(bounds, h[:-1], strict=True)), sum_value=h[-1])
        return [runs, checks, durations, _gauge("opsflow_runs_running", {(k,): float(v) for k, v in running.items()})]

    def _backups(self) -> list[Metric]:
        now = self.clock()
        entries = backup_status(self.store, now)
        age: dict[tuple[str, ...], float] = {}
        drill_age: dict[tuple[str, ...], float] = {}
        rto: dict[tuple[str, ...], float] = {}
        rpo: dict[tuple[str, ...], float] = {}
        for e in entries:
            key = (str(e["name"]),)
            age[key] = now - float(e["backup_at"]) if "backup_at" in e else math.inf
            drill_age[key] = now - float(e["drill_at"]) if "drill_at" in e else math.inf
            if "rto" in e:
                rto[key], rpo[key] = float(e["rto"]), float(e["rpo"])
        return [_gauge("opsflow_backup_age_seconds", age), _gauge("opsflow_backup_drill_rto_seconds", rto),
                _gauge("opsflow_backup_drill_rpo_seconds", rpo), _gauge("opsflow_backup_drill_age_seconds", drill_age)]

    def _schedule(self) -> list[Metric]:
        counts: dict[tuple[str, ...], float] = {}
        for entry, decision, n in query(self.store, "SELECT entry, decision, COUNT(*) FROM schedule_fires "
                                                    "GROUP BY entry, decision"):
            for known in FIRE_DECISIONS:
                counts.setdefault((str(entry), known), 0.0)
            counts[(str(entry), str(decision))] = float(n)
        return [_counter("opsflow_schedule_slots_total", counts)]

    def _remediations(self) -> list[Metric]:
        counts: dict[tuple[str, ...], float] = {}
        for rule, outcome, run_status, n in query(
                self.store, "SELECT rule, outcome, run_status, COUNT(*) FROM event_actions WHERE outcome IN "
                            "('finished', 'suppressed', 'canceled') GROUP BY rule, outcome, run_status"):
            for known in FINAL_OUTCOMES:
                counts.setdefault((str(rule), known), 0.0)
            if outcome == "finished":
                outcome = "remediated" if run_status == "succeeded" else "failed"
            counts[(str(rule), str(outcome))] += float(n)
        return [_counter("opsflow_remediations_total", counts)]

    def _objectives(self) -> list[Metric]:
        if self.objectives is None:
            return []
        try:
            rows = self.objectives()
        except OpsflowError as exc:
            log.error("metrics: service levels not evaluated: %s", exc)
            return []
        out: list[Metric] = []
        for name, key in _OBJECTIVE_VALUES.items():
            values: dict[tuple[str, ...], float] = {}
            for o in rows:
                value = o.get(key)
                if value is None or isinstance(value, str):
                    continue
                labels = (str(o.get("service") or ""), str(o.get("objective") or ""), str(o.get("runbook") or ""))
                values[labels] = float(value)  # bool → 1.0 / 0.0
            out.append(_gauge(name, values))
        return out


def _gauge(name: str, values: dict[tuple[str, ...], float]) -> Metric:
    family = _family(name, LABELS[name])
    assert isinstance(family, GaugeMetricFamily)
    for labels, value in sorted(values.items()):
        family.add_metric(list(labels), value)
    return family


def _counter(name: str, values: dict[tuple[str, ...], float]) -> Metric:
    family = _family(name, LABELS[name])
    assert isinstance(family, CounterMetricFamily)
    for labels, value in sorted(values.items()):
        family.add_metric(list(labels), value)
    return family
