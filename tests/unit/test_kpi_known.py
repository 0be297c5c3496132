"""Known data, known answers: a store built by hand, KPIs computed independently (by hand or plain
SQL) and compared with ``build_report`` — before and after the daily roll-ups, and within
operational hours across midnight, a weekend, a DST change and a maintenance-window correction."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from opsflow.events.models import Event
from opsflow.reports.kpi import build_report, parse_instant
from opsflow.reports.rollup import roll_up
from opsflow.results import HostStatus, RunStatus, StepResult
from opsflow.slo.loader import load_services
from opsflow.store import SqlStore
from opsflow.store.base import RunRecord

PARIS = ZoneInfo("Europe/Paris")
UTC = ZoneInfo("UTC")


def paris(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Builder:
    def __init__(self, store: SqlStore):
        self.store = store
        self.n = 0

    def run(self, runbook: str, start: float, end: float | None, status: str = "succeeded", *, check: bool = False,
            trigger: str = "cli", by: str = "alice", rb_hash: str = "h1", hosts: dict[str, str] | None = None) -> str:
        self.n += 1
        run_id = f"run{self.n:04d}"
        self.store.create_run(RunRecord(id=run_id, runbook=runbook, runbook_path=f"{runbook}.yaml", runbook_hash=rb_hash,
                                        params={}, trigger=trigger, started_by=by, started_at=start, check_mode=check))
        if end is not None:
            self.store.finish_run(run_id, RunStatus(status), end, hosts or {})
        return run_id


SERVICES = """
services:
  - name: app
    runbooks: [deploy]
    rules: [disk]
    groups: [h*]
    objectives:
      - {name: ok, kind: success_rate, target: 90%}
      - {name: fast, kind: duration, percentile: 50, max: 30s}
      - {name: auto, kind: auto_remediation, target: 75%}
      - {name: mttr, kind: mttr, max: 5m}
      - {name: rpo, kind: backup_age, rpo: 1d}
      - {name: on-time, kind: schedule_adherence, target: 90%}
  - name: office
    runbooks: [office-job]
    hours: business-hours
    corrections: [nightly]
    objectives:
      - {name: ok, kind: success_rate, target: 50%}
"""

CALENDARS = """
calendars:
  - name: business-hours
    mode: allowed
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: '08:00', end_time: '18:00'}]
        location: Europe/Paris
  - name: nightly
    mode: allowed
    time_intervals:
      - times: [{start_time: '12:00', end_time: '13:00'}]
        location: Europe/Paris
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "runbooks").mkdir()
    for name in ("deploy", "office-job"):
        (tmp_path / "runbooks" / f"{name}.yaml").write_text(f"name: {name}\ntargets: localhost\nsteps: []\n")
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "calendars.yaml").write_text(CALENDARS)
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "s.yaml").write_text(SERVICES)
    monkeypatch.setenv("OPSFLOW_SCHEDULES", str(tmp_path / "schedules"))
    monkeypatch.setenv("OPSFLOW_RUNBOOKS", str(tmp_path / "runbooks"))
    monkeypatch.setenv("OPSFLOW_INVENTORY", str(tmp_path / "no-inventory"))
    return tmp_path


@pytest.fixture
def store(sql_store: SqlStore) -> SqlStore:
    """On SQLite and on PostgreSQL (conftest)."""
    return sql_store


def report(store: SqlStore, project: Path, since: float, until: float, **kw: Any) -> dict[str, Any]:
    services = load_services(project / "services", project / "runbooks", project / "schedules")
    return build_report(store, since, until, services=services, schedules=str(project / "schedules"), now=until,
                        roll=False, **kw)


def by_name(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(i for i in items if i["name"] == name)


def test_runbook_kpis_match_plain_sql_and_numpy_before_and_after_rollups(project: Path, store: SqlStore) -> None:
    b = Builder(store)
    t0 = utc("2026-11-02T06:00:00")  # a Monday
    durations = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 300.0]
    for i, d in enumerate(durations):
        b.run("deploy", t0 + i * 86400, t0 + i * 86400 + d, hosts={"h1": "ok", "h2": "ok"})
    b.run("deploy", t0 + 3600, t0 + 3700, "failed", hosts={"h1": "ok", "h2": "failed"})
    b.run("deploy", t0 + 7200, t0 + 7205, "canceled")
    b.run("deploy", t0 + 9000, t0 + 9010, "succeeded", check=True)
    b.run("deploy", t0 + 9000, t0 + 9010, "failed", check=True)
    b.run("deploy", t0 + 20 * 86400, t0 + 20 * 86400 + 5)  # outside the report's span
    since, until = t0 - 3600, t0 + 14 * 86400
    before = report(store, project, since, until)
    rb = by_name(before["runbooks"], "deploy")
    counts = dict(store._exec("SELECT status, COUNT(*) FROM runs WHERE runbook = 'deploy' AND check_mode = 0 AND "
                              "started_at >= ? AND started_at < ? GROUP BY status", (since, until)))
    assert (rb["runs"], rb["succeeded"], rb["failed"], rb["other"], rb["check_runs"]) == \
           (sum(counts.values()), counts["succeeded"], counts["failed"], counts["canceled"], 2) == (10, 8, 1, 1, 2)
    assert rb["success_rate"] == pytest.approx(8 / 10)
    for q, key in ((50, "duration_p50_s"), (95, "duration_p95_s")):
        exact = float(np.percentile(durations, q, method="lower"))
        assert rb[key] == pytest.approx(exact, rel=0.011), key
    assert rb["duration_mean_s"] == pytest.approx(sum(durations) / len(durations), rel=1e-9)
    # 300 s is ≥ 3× the median (40 s): flagged, with its ratio
    assert [r["duration_s"] for r in rb["slow_runs"]] == [300.0]
    assert rb["slow_runs"][0]["ratio"] == pytest.approx(300 / rb["duration_p50_s"], rel=0.01)
    assert before["heatmap"]["hosts"] == ["h2"] and before["heatmap"]["failures"] == [[1]]
    assert [w["runs"] for w in before["trends"]] == [9, 1]  # Mon 2 – Sun 8 Nov: 7 + the failed and canceled; Mon 9 Nov
    # objectives: 8 of 10 succeed against 90% — breached, budget 10%, 20% spent twice over
    ok = by_name([o | {"name": o["name"]} for o in rb["objectives"] if o["service"] == "app"], "ok")
    assert (ok["actual"], ok["met"], ok["burn_rate"], ok["budget_remaining"]) == (0.8, False, pytest.approx(2.0),
                                                                                   pytest.approx(-1.0))
    fast = by_name(rb["objectives"], "fast")  # p50 ≤ 30 s: 3 of 8 succeeded runs within 30 s
    assert (fast["good"], fast["total"], fast["met"]) == (3, 8, False)

    assert roll_up(store, now=until + 2 * 86400) >= 14
    after = report(store, project, since, until)
    assert after["store"]["rolled_days"] >= 13
    for key in ("runbooks", "services", "trends", "heatmap", "distributions", "events", "schedule", "operators"):
        assert after[key] == before[key], key
    # partial days at both edges come from the runs themselves, whole days from the roll-ups
    mid = report(store, project, t0 + 1800, t0 + 5 * 86400 + 43200)
    assert by_name(mid["runbooks"], "deploy")["runs"] == store._exec(
        "SELECT COUNT(*) FROM runs WHERE runbook = 'deploy' AND check_mode = 0 AND started_at >= ? AND started_at < ?",
        (t0 + 1800, t0 + 5 * 86400 + 43200))[0][0]


def test_operational_hours_midnight_weekend_dst_and_corrections(project: Path, store: SqlStore) -> None:
    b = Builder(store)
    # Tue 17:00 → Wed 09:00 Paris: 1 h before midnight's evening close, 1 h after the morning opening
    b.run("office-job", paris("2026-10-20T17:00"), paris("2026-10-21T09:00"))
    # Fri 17:30 → Mon 08:30 over a weekend: 30 min + 30 min
    b.run("office-job", paris("2026-10-16T17:30"), paris("2026-10-19T08:30"))
    # Fri 17:00 CEST → Mon 09:00 CET across the end of DST (Sun 25 Oct): 1 h + 1 h of 65 wall hours
    b.run("office-job", paris("2026-10-23T17:00"), paris("2026-10-26T09:00"))
    # started on a Saturday: outside operational hours, counts on neither clock's rates
    b.run("office-job", paris("2026-10-24T10:00"), paris("2026-10-24T10:10"), "failed")
    # failed at 12:30 on a Thursday: inside the 'nightly' correction window — no budget burnt
    b.run("office-job", paris("2026-10-22T12:30"), paris("2026-10-22T12:40"), "failed")
    # failed at 14:00 on a Thursday: counts
    b.run("office-job", paris("2026-10-22T14:00"), paris("2026-10-22T14:05"), "failed")
    since, until = paris("2026-10-12T00:00"), paris("2026-11-02T00:00")
    r = report(store, project, since, until, hours="business-hours")
    rb = by_name(r["runbooks"], "office-job")
    # runs started within hours: the three long ones and the two Thursday failures
    assert (rb["runs"], rb["succeeded"], rb["failed"]) == (5, 3, 2)
    in_hours = sorted([7200.0, 3600.0, 7200.0])
    assert rb["duration_p50_s"] == pytest.approx(7200.0, rel=0.011)
    assert rb["duration_mean_s"] == pytest.approx(sum(in_hours) / 3, rel=1e-9)
    walls = sorted([16 * 3600.0, 63 * 3600.0, 65 * 3600.0])  # 65 h: the night of the DST change has 25 hours
    assert rb["wall_duration_mean_s"] == pytest.approx(sum(walls) / 3, rel=1e-9)
    # the service's objective (hours + corrections): 3 good of 4 — the 12:30 failure is corrected away
    ok = by_name(rb["objectives"], "ok")
    assert (ok["good"], ok["total"]) == (3, 4)
    assert ok["actual"] == pytest.approx(0.75)
    # without --hours every run counts, on the wall clock
    plain = by_name(report(store, project, since, until)["runbooks"], "office-job")
    assert (plain["runs"], plain["failed"]) == (6, 3)
    assert plain["duration_mean_s"] == pytest.approx(sum(walls) / 3, rel=1e-9)
    # open time of the span: 15 working days × 10 h
    assert r["hours_open_s"] == pytest.approx(15 * 10 * 3600.0)


def test_events_backups_schedule_and_operators(project: Path, store: SqlStore) -> None:
    b = Builder(store)
    t = utc("2026-11-10T10:00:00")

    def event(i: int, *actions: dict[str, Any]) -> None:
        store.add_event(Event(source="webhook", name="DiskFull", id=f"e{i}", received_at=t + i), ["disk"] if actions else [])
        for j, a in enumerate(actions):
            store.add_action({"id": f"a{i}{j}", "event_id": f"e{i}", "rule": "disk", "received_at": t + i, **a})

    r1 = b.run("deploy", t + 10, t + 301, trigger="event", by="webhook:disk")
    r2 = b.run("deploy", t + 12, t + 102, trigger="event", by="webhook:disk")
    r4 = b.run("deploy", t + 14, t + 40, "failed", trigger="event", by="webhook:disk")
    event(1, {"outcome": "finished", "run_id": r1, "run_status": "succeeded", "started_at": t + 10, "ended_at": t + 301})
    event(2, {"outcome": "finished", "run_id": r2, "run_status": "succeeded", "started_at": t + 12, "ended_at": t + 102})
    event(3, {"outcome": "suppressed", "reason": "duplicate"})
    event(4, {"outcome": "finished", "run_id": r4, "run_status": "failed", "started_at": t + 14, "ended_at": t + 40})
    event(5)
    # backups: h1 10 h before the end of the span, h2 30 h before (overdue, and its run began before the span),
    # a drill of h1 taking 120 s; alice started the backup of h1 and the drill inside the span
    until = t + 86400
    for host, age in (("h1", 10 * 3600), ("h2", 30 * 3600)):
        run = b.run("deploy", until - age - 60, until - age)
        store.add_result(run, StepResult(step="backup", host=host, status=HostStatus.OK, action="backup",
                                         started_at=until - age - 60, ended_at=until - age))
    drill = b.run("deploy", until - 3600, until - 3480)
    store.add_result(drill, StepResult(step="restore", host="h3", status=HostStatus.OK, action="restore",
                                       data={"rto_seconds": 120.0, "rpo_seconds": 36000.0, "source": "h1"},
                                       started_at=until - 3600, ended_at=until - 3480))
    # schedule: 10 slots of an entry; 8 ran in their slot, 1 deferred, 1 missed
    for i in range(10):
        decision = "fired" if i < 8 else ("deferred" if i == 8 else "missed")
        assert store.claim_fire("nightly-deploy", t + i * 60, decision)
    # people: bob answers an approval after 60 s; alice overrides a window; carol resets a breaker
    store.request_approval(r1, 0, "go", "ok?", t + 1000)
    store._exec("UPDATE approvals SET state = 'approved', decided_by = 'bob', requested_at = ?, decided_at = ? "
                "WHERE run_id = ?", (t + 20, t + 80, r1))
    for actor, action, target in (("alice", "window_override", f"run {r2} of deploy"), ("carol", "breaker_reset", "disk")):
        store._exec("INSERT INTO audit (at, actor, action, target) VALUES (?, ?, ?, ?)", (t + 500, actor, action, target))
    store.audit("dave", "window_override", "run x of deploy")  # now: after the span, not counted
    r = report(store, project, t - 60, until)
    ev = r["events"]
    assert (ev["received"], ev["matched"], ev["remediated_automatically"], ev["needed_human"]) == (5, 4, 2, 1)
    assert ev["suppressed"] == {"duplicate": 1}
    assert ev["automation_rate"] == pytest.approx(2 / 3)  # the duplicate needed nothing
    assert ev["mttr_s"] == pytest.approx(((301 - 1) + (102 - 2)) / 2)
    backups = {x["name"]: x for x in r["backups"]}
    assert backups["h1"]["last_backup_age_s"] == pytest.approx(10 * 3600) and not backups["h1"]["overdue"]
    assert backups["h2"]["last_backup_age_s"] == pytest.approx(30 * 3600) and backups["h2"]["overdue"]
    assert backups["h1"]["last_drill_rto_s"] == 120.0
    sched = r["schedule"]
    assert (sched["slots"], sched["run_in_slot"], sched["rescheduled"], sched["missed"]) == (10, 8, 1, 1)
    people = {p["name"]: p for p in r["operators"]}
    assert people["alice"]["runs_started"] == 2 and people["alice"]["window_overrides"] == 1
    assert people["bob"]["approvals"] == 1 and people["bob"]["approval_response_mean_s"] == pytest.approx(60.0)
    assert people["carol"]["breaker_resets"] == 1 and "dave" not in people
    objectives = {o["name"]: o for o in r["services"][0]["objectives"]}
    assert (objectives["auto"]["good"], objectives["auto"]["total"], objectives["auto"]["met"]) == (2, 3, False)
    assert objectives["mttr"]["actual"] == pytest.approx(200.0) and objectives["mttr"]["met"]
    assert objectives["mttr"]["budget_remaining"] == pytest.approx(1 - 200 / 300, abs=1e-6)
    assert (objectives["rpo"]["good"], objectives["rpo"]["total"]) == (1, 2)
    assert objectives["on-time"]["actual"] is None  # no entry of the schedules runs 'deploy'
    json.dumps(r)  # every figure is plain JSON


def test_since_until_parsing() -> None:
    now = utc("2026-12-02T12:00:00")
    assert parse_instant("7d", now) == now - 7 * 86400
    assert parse_instant("2026-11-01", now) == utc("2026-11-01T00:00:00")
    assert parse_instant("2026-11-01T08:00:00+01:00", now) == utc("2026-11-01T07:00:00")
    with pytest.raises(Exception, match="expected a span like 7d"):
        parse_instant("last week", now)
