"""Prometheus metrics of the store (``opsflow metrics``) and of the daemon (/metrics), against real stores,
a real daemon process and the real ``promtool``.

The store is filled through the store API with runs whose durations, statuses and triggers are known,
plus real runs of a ``local`` runbook through the CLI; every number exported is compared exactly with
what is counted here by hand.
"""

from __future__ import annotations

import http.client
import json
import math
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from opsflow.errors import StoreError
from opsflow.events.models import Event
from opsflow.reports.metrics import DURATION_BUCKETS, FINAL_STATUSES, RunCount, StoreCollector
from opsflow.results import HostStatus, RunStatus, StepResult
from opsflow.store.base import RunRecord
from opsflow.store.schedule import FIRE_DECISIONS
from opsflow.store.sql import SqlStore
from tests.helpers import ROOT, Cli, wait_for, write_runbook

SECRET = "s3cr3t-" + uuid.uuid4().hex  # a parameter, an error, an output, an event's text: never in a label
MARK = "MARK" + uuid.uuid4().hex[:8]
T0 = 1_700_000_000.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"series {key} twice"
            out[key] = s.value
    return out


def series(found: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in found.items() if n == name}


def lbl(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def promtool(text: str) -> None:
    if not shutil.which("promtool"):
        pytest.skip("promtool (Debian package prometheus) is not installed")
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout + check.stderr


def no_leak(found: Samples, text: str) -> None:
    assert SECRET not in text and MARK not in text
    for _, labels in found:
        for _, value in labels:
            assert SECRET not in value and MARK not in value, value


# ---- a store with known runs -------------------------------------------------------------------------------
RUNS = [  # runbook, trigger, status, check mode, duration (None: not ended)
    ("patch", "cli", "succeeded", False, 0.5), ("patch", "cli", "succeeded", False, 3.0),
    ("patch", "cli", "succeeded", False, 45.0), ("patch", "cli", "failed", False, 200.0),
    ("patch", "schedule", "succeeded", False, 4000.0), ("patch", "schedule", "partial", False, 10.0),
    ("patch", "cli", "running", False, None), ("patch", "cli", "waiting", False, None),
    ("restart", "event", "succeeded", False, 2.0), ("restart", "event", "canceled", False, 9000.0),
    ("restart", "event", "succeeded", False, 60.0),  # on a bucket's bound: counted in it (le is ≤)
    ("patch", "cli", "succeeded", True, 1.0), ("restart", "cli", "failed", True, 1.0),
]


def fill(store: SqlStore, now: float) -> None:
    for i, (runbook, trigger, status, check, duration) in enumerate(RUNS):
        run_id = f"run-{i}"
        started = T0 + i * 10_000
        store.create_run(RunRecord(id=run_id, runbook=runbook, runbook_path=f"/rb/{runbook}.yaml", runbook_hash="h",
                                   params={"password": SECRET, "note": MARK}, trigger=trigger,
                                   started_by=f"ops {MARK}", started_at=started, check_mode=check))
        if duration is not None:
            store.finish_run(run_id, RunStatus(status), started + duration, {"srv1": status},
                             error=f"{SECRET} {MARK}" if status == "failed" else None)
        elif status == "waiting":
            store.set_status(run_id, RunStatus.WAITING)
    store.create_run(RunRecord(id="run-bk", runbook="backup-all", runbook_path="/rb/b.yaml", runbook_hash="h",
                               params={}, trigger="schedule", started_by="scheduler", started_at=now - 5000))
    results = [  # action, host, status, ended_at, data
        ("backup", "srv1", HostStatus.OK, now - 100, {}),
        ("backup", "srv1", HostStatus.FAILED, now - 50, {}),  # newer, failed: the last backup stays the one above
        ("network.backup", "srv2", HostStatus.FAILED, now - 60, {}),  # srv2: never backed up
        ("restore", "srv3", HostStatus.OK, now - 1000, {"source": "srv1", "rto_seconds": 42.5, "rpo_seconds": 3600}),
    ]
    for i, (action, host, status, ended, data) in enumerate(results):
        store.add_result("run-bk", StepResult(step=f"step {i}", host=host, status=status, step_index=i, action=action,
                                              stdout=f"{SECRET} {MARK}", data=data, started_at=ended - 1,
                                              ended_at=ended))
    store.finish_run("run-bk", RunStatus.SUCCEEDED, now - 10, {})  # 4990 s: le 7200
    for entry, slot, decision in (("nightly", T0, "fired"), ("nightly", T0 + 86400, "skipped"),
                                  ("nightly", T0 + 2 * 86400, "fired"), ("weekly", T0, "missed")):
        assert store.claim_fire(entry, slot, decision, reason=f"{MARK}")
    event = Event(source="webhook", name=f"Disk{MARK}", host="srv1", message=SECRET, labels={"x": MARK},
                  id="ev-1", received_at=now)
    store.add_event(event, ["disk-full"])
    for i, outcome in enumerate(("finished", "suppressed", "canceled", "queued", "started")):
        store.add_action({"id": f"ev-1.{i}", "event_id": "ev-1", "rule": "disk-full", "host": "srv1",
                          "outcome": outcome, "reason": "cooldown" if outcome == "suppressed" else None,
                          "detail": SECRET})


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    h1: {ansible_host: 127.0.0.1}\n")
    return Cli(tmp_path / "home", inventory)


@pytest.fixture
def filled(cli: Cli, tmp_path: Path) -> float:
    """The Cli's store with RUNS, the backups, the schedule and the actions above, and two real runs of
    the runbook ``probe`` (one in check mode); returns the time the backup results are relative to."""
    rb = write_runbook(tmp_path / "rb", "probe", f"""\
        name: probe
        targets: all
        params:
          token: {{type: str, secret: true}}
        steps:
          - name: say
            local: [sh, -c, 'echo {MARK}']
    """)
    out = json.loads(cli.run("run", str(rb), "-e", f"token={SECRET}", "--json", check_rc=0).stdout)
    assert out["status"] == "succeeded"
    out = json.loads(cli.run("run", str(rb), "-e", f"token={SECRET}", "--check", "--json", check_rc=0).stdout)
    assert out["status"] == "succeeded"
    now = time.time()
    store = SqlStore.connect(str(cli.db))
    fill(store, now)
    store.close()
    return now


def expected_runs(probe: bool) -> tuple[dict[frozenset[tuple[str, str]], float],
                                       dict[frozenset[tuple[str, str]], float]]:
    """opsflow_runs_total and opsflow_check_runs_total, counted by hand: every final status of every
    (runbook, trigger) with a finished run, 0 unless counted (``probe``: with the two real runs)."""
    pairs = [("patch", "cli"), ("patch", "schedule"), ("restart", "event"), ("backup-all", "schedule")]
    runs = {lbl(runbook=rb, status=s, trigger=t): 0.0 for rb, t in pairs + [("probe", "cli")] * probe
            for s in FINAL_STATUSES}
    runs[lbl(runbook="patch", status="succeeded", trigger="cli")] = 3
    runs[lbl(runbook="patch", status="failed", trigger="cli")] = 1
    runs[lbl(runbook="patch", status="succeeded", trigger="schedule")] = 1
    runs[lbl(runbook="patch", status="partial", trigger="schedule")] = 1
    runs[lbl(runbook="restart", status="succeeded", trigger="event")] = 2
    runs[lbl(runbook="restart", status="canceled", trigger="event")] = 1
    runs[lbl(runbook="backup-all", status="succeeded", trigger="schedule")] = 1
    checks = {lbl(runbook=rb, status=s): 0.0 for rb in ("patch", "restart", *["probe"] * probe)
              for s in FINAL_STATUSES}
    checks[lbl(runbook="patch", status="succeeded")] = 1
    checks[lbl(runbook="restart", status="failed")] = 1
    if probe:
        runs[lbl(runbook="probe", status="succeeded", trigger="cli")] = 1
        checks[lbl(runbook="probe", status="succeeded")] = 1
    return runs, checks


def check_store_metrics(found: Samples, now: float, before: float, after: float, probe: bool = True) -> None:
    runs, checks = expected_runs(probe)
    assert series(found, "opsflow_runs_total") == runs
    assert series(found, "opsflow_check_runs_total") == checks
    running = {lbl(runbook="patch"): 2.0, lbl(runbook="restart"): 0.0, lbl(runbook="backup-all"): 0.0}
    assert series(found, "opsflow_runs_running") == {**running, **({lbl(runbook="probe"): 0.0} if probe else {})}
    # succeeded runs only (check-mode runs apart): patch 0.5, 3, 45, 4000 (not the failed 200 s, nor the
    # partial 10 s) — restart 2, 60 (not the canceled 9000 s) — backup-all 4990
    bounds = [*(str(b) for b in DURATION_BUCKETS), "+Inf"]
    succeeded = {"patch": [0.5, 3.0, 45.0, 4000.0], "restart": [2.0, 60.0], "backup-all": [4990.0]}
    want = {rb: [sum(d <= b for d in ds) for b in DURATION_BUCKETS] + [len(ds)] for rb, ds in succeeded.items()}
    assert want["restart"][:8] == [0, 1, 1, 1, 1, 1, 2, 2]  # 60 s on the 60 s bound: counted in it (le is ≤)
    for runbook, counts in want.items():
        got = [found[("opsflow_run_duration_seconds_bucket", lbl(runbook=runbook, le=b))] for b in bounds]
        assert got == counts, runbook
        assert found[("opsflow_run_duration_seconds_count", lbl(runbook=runbook))] == counts[-1]
    assert found[("opsflow_run_duration_seconds_sum", lbl(runbook="patch"))] == 4048.5
    assert found[("opsflow_run_duration_seconds_sum", lbl(runbook="restart"))] == 62.0
    assert found[("opsflow_run_duration_seconds_sum", lbl(runbook="backup-all"))] == pytest.approx(4990.0)
    if probe:
        real = [found[("opsflow_run_duration_seconds_bucket", lbl(runbook="probe", le=b))] for b in bounds]
        assert real[-1] == 1 and real == sorted(real)  # one real run, of a duration not known in advance
    # backups: srv1 backed up 100 s before `now`, drilled (on srv3) 1000 s before; srv2 never backed up
    age = series(found, "opsflow_backup_age_seconds")
    assert set(age) == {lbl(name="srv1"), lbl(name="srv2")} and math.isinf(age[lbl(name="srv2")])
    assert 100 + (before - now) <= age[lbl(name="srv1")] <= 100 + (after - now)
    drill = series(found, "opsflow_backup_drill_age_seconds")
    assert 1000 + (before - now) <= drill[lbl(name="srv1")] <= 1000 + (after - now)
    assert math.isinf(drill[lbl(name="srv2")])
    assert series(found, "opsflow_backup_drill_rto_seconds") == {lbl(name="srv1"): 42.5}
    assert series(found, "opsflow_backup_drill_rpo_seconds") == {lbl(name="srv1"): 3600}
    slots = {lbl(entry=e, decision=d): 0.0 for e in ("nightly", "weekly") for d in FIRE_DECISIONS}
    slots.update({lbl(entry="nightly", decision="fired"): 2, lbl(entry="nightly", decision="skipped"): 1,
                  lbl(entry="weekly", decision="missed"): 1})
    assert series(found, "opsflow_schedule_slots_total") == slots
    assert series(found, "opsflow_remediations_total") == {  # queued and started: not final yet
        lbl(rule="disk-full", outcome="remediated"): 0, lbl(rule="disk-full", outcome="failed"): 1,
        lbl(rule="disk-full", outcome="suppressed"): 1, lbl(rule="disk-full", outcome="canceled"): 1}
    assert found[("opsflow_store_up", frozenset())] == 1


def test_opsflow_metrics_exports_the_store_exactly(cli: Cli, filled: float, tmp_path: Path) -> None:
    before = time.time()
    proc = cli.run("metrics", "--db", str(cli.db), check_rc=0)
    after = time.time()
    found = samples(proc.stdout)
    check_store_metrics(found, filled, before, after)
    assert not any(name.startswith("opsflow_objective_") for name, _ in found)  # no objectives given
    no_leak(found, proc.stdout)
    promtool(proc.stdout)
    types = [ln.split()[2:4] for ln in proc.stdout.splitlines() if ln.startswith("# TYPE")]
    assert ["opsflow_runs_total", "counter"] in types and ["opsflow_run_duration_seconds", "histogram"] in types
    assert len({t[0] for t in types}) == len(types)
    # the backup figures are those of `opsflow backup report`: one computation for both
    report = {e["name"]: e for e in json.loads(cli.run("backup", "report", "--json", check_rc=0).stdout)}
    assert sorted(report) == ["srv1", "srv2"] and report["srv1"]["rto"] == 42.5
    assert report["srv1"]["backup_at"] == pytest.approx(filled - 100)
    assert report["srv2"]["flags"] == ["backup overdue", "no recent drill"] and report["srv1"]["flags"] == []


def test_output_file_is_replaced_whole(cli: Cli, filled: float, tmp_path: Path) -> None:
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    target = textfiles / "opsflow.prom"
    target.write_text("# an older scrape\n")
    before = time.time()
    assert cli.run("metrics", "--db", str(cli.db), "-o", str(target), check_rc=0).stdout == ""
    after = time.time()
    assert sorted(p.name for p in textfiles.iterdir()) == ["opsflow.prom"]  # no temporary file left
    assert target.stat().st_mode & 0o777 == 0o644
    text = target.read_text()
    check_store_metrics(samples(text), filled, before, after)
    promtool(text)
    missing = cli.run("metrics", "--db", str(cli.db), "-o", str(tmp_path / "nowhere" / "x.prom"))
    assert missing.returncode == 2 and "no such directory" in missing.stderr


def test_a_store_that_cannot_be_read_exports_store_up_0(cli: Cli, filled: float, tmp_path: Path) -> None:
    broken = tmp_path / "broken.db"
    shutil.copy(cli.db, broken)
    with sqlite3.connect(broken) as db:
        db.execute("DROP TABLE event_actions")
    target = tmp_path / "out.prom"
    proc = cli.run("metrics", "--db", str(broken), "-o", str(target))
    assert proc.returncode == 2 and "opsflow_store_up 0" in proc.stderr, proc.stderr
    found = samples(target.read_text())
    assert found == {("opsflow_store_up", frozenset()): 0.0}
    promtool(target.read_text())


@pytest.fixture
def store(sql_store: SqlStore) -> SqlStore:
    """On SQLite and on PostgreSQL (conftest)."""
    return sql_store


def test_the_collector_counts_alike_on_sqlite_and_postgresql(store: SqlStore) -> None:
    now = time.time()
    fill(store, now)
    registry = CollectorRegistry()
    registry.register(StoreCollector(store))
    before = time.time()
    text = generate_latest(registry).decode()
    check_store_metrics(samples(text), now, before, time.time(), probe=False)
    no_leak(samples(text), text)
    promtool(text)


def test_objectives_and_rollups_plug_into_the_collector(tmp_path: Path) -> None:
    store = SqlStore.connect(str(tmp_path / "s.db"))
    try:
        fill(store, time.time())
        objectives = [
            {"service": "web", "objective": "availability", "runbook": "", "target": 0.99, "actual": 0.995,
             "met": True, "budget_remaining": 0.5},
            {"service": "web", "objective": "patch-success", "runbook": "patch", "target": 0.95, "actual": None,
             "met": False, "budget_remaining": None},
        ]
        rollup = [RunCount("patch", "succeeded", "cli", False, 1000, 1000, 12345.0,
                           tuple(1000 if b >= 15 else 0 for b in DURATION_BUCKETS)),
                  RunCount("patch", "running", "cli", False, 3, 0, 0.0, (0,) * len(DURATION_BUCKETS))]
        registry = CollectorRegistry()
        registry.register(StoreCollector(store, objectives=lambda: objectives, query_rollups=lambda s: rollup))
        text = generate_latest(registry).decode()
        found = samples(text)
        promtool(text)
        web = lbl(service="web", objective="availability", runbook="")
        patch = lbl(service="web", objective="patch-success", runbook="patch")
        assert series(found, "opsflow_objective_target") == {web: 0.99, patch: 0.95}
        assert series(found, "opsflow_objective_attainment") == {web: 0.995}  # no value: no sample
        assert series(found, "opsflow_objective_met") == {web: 1.0, patch: 0.0}
        assert series(found, "opsflow_objective_budget_remaining") == {web: 0.5}
        assert found[("opsflow_runs_total", lbl(runbook="patch", status="succeeded", trigger="cli"))] == 1000
        assert found[("opsflow_run_duration_seconds_bucket", lbl(runbook="patch", le="5.0"))] == 0
        assert found[("opsflow_run_duration_seconds_bucket", lbl(runbook="patch", le="15.0"))] == 1000
        assert series(found, "opsflow_runs_running") == {lbl(runbook="patch"): 3}

        def refused() -> list[dict[str, Any]]:
            raise StoreError("service levels: the store went away")

        registry = CollectorRegistry()
        registry.register(StoreCollector(store, objectives=refused))
        found = samples(generate_latest(registry).decode())
        assert found[("opsflow_store_up", frozenset())] == 1
        assert not any(name.startswith("opsflow_objective_") for name, _ in found)
        with pytest.raises(ValueError):
            StoreCollector(store, exclude=("opsflow_no_such_metric",))
    finally:
        store.close()


# ---- the daemon's /metrics ---------------------------------------------------------------------------------
TOKEN = "test-token-" + uuid.uuid4().hex


class _Daemon:
    """``python -m opsflow daemon`` on loopback with a token file, its log in a file."""

    def __init__(self, cli: Cli, runbooks: Path) -> None:
        cli.home.mkdir(parents=True, exist_ok=True)
        token_file = cli.home / "token"
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(0o600)
        self.log = cli.home / "daemon.log"
        argv = [sys.executable, "-m", "opsflow", "daemon", "--listen", "127.0.0.1:0", "--runbooks", str(runbooks),
                "--token-file", str(token_file)]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=cli.env(), cwd=ROOT)
        line = wait_for(self._ready, 60, "the daemon to listen")
        self.port = int(line.split("http://127.0.0.1:")[1].split(",")[0].split(" ")[0])

    def _ready(self) -> str | None:
        text = self.log.read_text()
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{text}")
        return next((ln for ln in text.splitlines() if "listening on http://" in ln), None)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/json",
                                                           "Authorization": f"Bearer {TOKEN}"})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type", ""), resp.read().decode()
        finally:
            conn.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Cli, _Daemon]]:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  children:\n    servers:\n      hosts:\n        h1: {ansible_host: 192.0.2.1}\n")
    write_runbook(tmp_path / "rb", "quick", """\
        name: quick
        targets: servers
        params:
          text: {type: str, default: none}
        triggers:
          events:
            - name: quick
              match:
                name: ~Quick.*
              host: labels.instance
              params:
                text: annotations.summary
              cooldown: 0
        steps:
          - name: remediate
            local: [sh, -c, 'echo "$0"', '{{ params.text }}']
    """)
    cli = Cli(tmp_path / "home", inventory)
    d = _Daemon(cli, tmp_path / "rb")
    try:
        yield cli, d
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)


def test_daemon_serves_its_metrics_and_the_stores_from_one_registry(daemon: tuple[Cli, _Daemon]) -> None:
    cli, d = daemon
    status, kind, text = d.request("GET", "/metrics")
    assert status == 200 and kind == "text/plain; version=0.0.4; charset=utf-8"
    found = samples(text)
    # known label values are there at 0 before anything happened
    assert found[("opsflow_runs_finished_total", lbl(rule="quick", status="failed"))] == 0
    assert found[("opsflow_events_suppressed_total", lbl(reason="cooldown"))] == 0
    assert found[("opsflow_requests_rejected_total", lbl(reason="unauthorized"))] == 0
    assert found[("opsflow_store_up", frozenset())] == 1
    event = {"name": f"Quick{MARK}", "labels": {"instance": "h1", "note": MARK}, "message": SECRET,
             "annotations": {"summary": f"{SECRET} {MARK}"}}
    status, _, body = d.request("POST", "/hooks/event", json.dumps(event).encode())
    assert status == 200, body
    wait_for(lambda: cli.query("SELECT 1 FROM event_actions WHERE outcome = 'finished'"), 60,
             "the remediation to finish")
    status, _, text = d.request("GET", "/metrics")
    assert status == 200
    promtool(text)
    found = samples(text)
    no_leak(found, text)
    types = [ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE")]
    assert len(types) == len(set(types)), "a metric family exported twice"
    assert found[("opsflow_runs_total", lbl(runbook="quick", status="succeeded", trigger="event"))] == 1
    assert found[("opsflow_runs_total", lbl(runbook="quick", status="failed", trigger="event"))] == 0
    assert found[("opsflow_remediations_total", lbl(rule="quick", outcome="remediated"))] == 1
    assert found[("opsflow_run_duration_seconds_count", lbl(runbook="quick"))] == 1
    assert found[("opsflow_runs_started_total", lbl(rule="quick"))] == 1
    assert found[("opsflow_runs_finished_total", lbl(rule="quick", status="succeeded"))] == 1
    assert found[("opsflow_event_to_start_seconds_count", frozenset())] == 1
    assert series(found, "opsflow_runs_running") == {frozenset(): 0}  # the daemon's own gauge, unlabelled
    assert not any(n.endswith("_created") for n, _ in found)
    assert d.stop() == 0


def test_counts_from_rollups_equal_counts_from_every_run(tmp_path: Path) -> None:
    """The roll-up path (days rolled, then the runs after them) against one aggregate over all runs."""
    from opsflow.reports.metrics import rollup_counts, run_counts

    store = SqlStore.connect(str(tmp_path / "r.db"))
    now = time.time()
    fill(store, now)
    store.create_run(RunRecord(id="today", runbook="patch", runbook_path="/rb/patch.yaml", runbook_hash="h2", params={},
                               trigger="cli", started_by="ops", started_at=now - 60))
    store.finish_run("today", RunStatus.SUCCEEDED, now - 30, {})

    def merged(rows: list[RunCount]) -> dict[tuple[str, str, str, bool], tuple[int, int, float, tuple[int, ...]]]:
        out: dict[tuple[str, str, str, bool], tuple[int, int, float, tuple[int, ...]]] = {}
        for r in rows:
            c, t, s, b = out.get((r.runbook, r.status, r.trigger, r.check_mode), (0, 0, 0.0, (0,) * len(r.buckets)))
            out[(r.runbook, r.status, r.trigger, r.check_mode)] = (
                c + r.count, t + r.timed, round(s + r.duration_sum, 6), tuple(x + y for x, y in zip(b, r.buckets, strict=True)))
        return out

    plain = merged(run_counts(store))
    rolled = merged(rollup_counts(store))
    assert store._exec("SELECT COUNT(*) FROM rollup_days")[0][0] > 0  # days were rolled up
    assert rolled == plain
    store.close()
