"""The scheduler in the real daemon (``opsflow daemon --schedules DIR``) against the lab, with short intervals.

Schedules are written relative to now: ``every: 2s`` entries, blackouts and windows that open or close
a few seconds from now (recurrences with second precision). Records are read from the store and with
``opsflow schedule log --json``; mail goes to a real SMTP server (aiosmtpd), silences to a real
Prometheus Alertmanager.
"""

from __future__ import annotations

import json
import signal
import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Cli, write_runbook
from tests.lab.test_daemon import Daemon, runs, wait_for
from tests.test_notify import PASSWORD, Mailbox, smtp  # noqa: F401 - the fixture
from tests.test_silences import Alertmanager, alertmanager  # noqa: F401 - the fixture

pytestmark = pytest.mark.lab


def local(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def schedules(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "schedules"
    d.mkdir(exist_ok=True)
    (d / "s.yaml").write_text(textwrap.dedent(text))
    return d


def runbooks(tmp_path: Path) -> Path:
    d = tmp_path / "rb"
    write_runbook(d, "quick", "name: quick\ntargets: servers\nsteps:\n  - {name: only, command: ['true']}\n")
    write_runbook(d, "broken", "name: broken\ntargets: servers\nsteps:\n  - {name: only, command: ['false']}\n")
    write_runbook(d, "long", "name: long\ntargets: servers\nsteps:\n  - {name: first, command: [sleep, '8']}\n"
                             "  - {name: second, command: ['true']}\n")
    return d


def log(cli: Cli, entry: str | None = None) -> list[dict[str, Any]]:
    proc = cli.run("schedule", "log", "--json", "--timezone", "UTC", *(["--entry", entry] if entry else []),
                   check_rc=0)
    return list(reversed(json.loads(proc.stdout)))  # oldest first


@pytest.fixture
def started() -> Iterator[list[Daemon]]:
    daemons: list[Daemon] = []
    yield daemons
    for d in daemons:
        if d.proc.poll() is None:
            d.stop(signal.SIGKILL, 10)


def test_schedule_fires_runs_skips_in_a_blackout_holds_a_dependency_and_mails_a_failure(
        cli: Cli, tmp_path: Path, lab: Any, smtp: tuple[Mailbox, int], started: list[Daemon]) -> None:  # noqa: F811
    box, port = smtp
    now = datetime.now(UTC)
    mail = f"mailto://ops:{PASSWORD}@127.0.0.1:{port}?mode=insecure&from=opsflow@example.org&to=oncall@example.org"
    first = now - timedelta(minutes=59, seconds=52)  # the anchor of hourly entries: their slot is 8 s from now
    sched = schedules(tmp_path, f"""
        calendars:
          - name: freeze-long
            mode: blackout
            recurrences: [{{rrule: 'FREQ=DAILY', start: '{local(now - timedelta(seconds=30))}', duration: 10m}}]
          - name: freeze-short
            mode: blackout
            recurrences: [{{rrule: 'FREQ=DAILY', start: '{local(now - timedelta(seconds=30))}', duration: 43s}}]
        schedules:
          - {{name: tick, runbook: quick, every: 2s, limit: srv1}}
          - {{name: frozen, runbook: quick, every: 2s, limit: srv2, calendars: [freeze-long]}}
          - {{name: moved, runbook: quick, every: 1h, start: '{local(first)}', limit: srv2, calendars: [freeze-short],
              on_blackout: next_window}}
          - name: follows
            runbook: quick
            every: 3s
            limit: srv3
            after: [{{entry: tick, within: 1m}}]
          - name: waits
            runbook: quick
            every: 1h
            start: '{local(first)}'
            limit: srv3
            after: [{{entry: never, on_missing: wait, wait: 4s}}]
          - {{name: never, runbook: quick, cron: '0 0 1 1 *', limit: srv3}}
          - name: failing
            runbook: broken
            every: 1h
            start: '{local(first)}'
            limit: srv4
            notify: [{{to: '{mail}', on: [failed]}}]
    """)
    d = Daemon(cli, runbooks(tmp_path), "--schedules", str(sched))
    started.append(d)
    assert "schedule: 7 entries from" in d.log.read_text()
    status, health, _ = d.request("GET", "/healthz")
    assert status == 200 and health["schedule"]["entries"] == 7
    wait_for(lambda: box.messages, 40, "the mail of the failed run")
    deadline = now + timedelta(seconds=14)
    wait_for(lambda: datetime.now(UTC) > deadline and [r for r in log(cli, "moved") if r["decision"] == "fired"
                                                       and r["outcome"]], 40, "the deferred slot to run")
    wait_for(lambda: [r for r in log(cli, "waits") if r["decision"] != "fired"], 20, "the held slot's decision")
    assert d.stop() == 0
    scheduled = [r for r in runs(cli) if r["trigger"] == "schedule"]
    by_entry = Counter(r["started_by"] for r in scheduled)
    assert by_entry["schedule:tick"] >= 3 and by_entry["schedule:frozen"] == 0
    ticks = log(cli, "tick")
    assert {r["decision"] for r in ticks} == {"fired"} and len(ticks) == by_entry["schedule:tick"]
    assert all(r["outcome"] == "succeeded" for r in ticks if r["run_id"])
    frozen = log(cli, "frozen")
    assert frozen and all(r["decision"] == "skipped" and "blackout freeze-long" in r["reason"] for r in frozen)
    moved = log(cli, "moved")
    assert [r["decision"] for r in moved][:2] == ["deferred", "fired"]
    assert moved[1]["reason"].startswith("deferred from ") and moved[1]["slot"] == moved[0]["deferred_to"]
    assert moved[0]["run_id"] == moved[1]["run_id"] and moved[0]["outcome"] == "succeeded"
    follows = [r for r in log(cli, "follows") if r["decision"] == "fired"]
    assert follows and all("dependencies succeeded" in r["reason"] for r in follows)
    [held] = log(cli, "waits")
    assert held["decision"] == "skipped" and held["reason"].startswith("dependency: never has not run since")
    assert "waited 4s" in held["reason"]
    [failed] = log(cli, "failing")
    assert failed["decision"] == "fired" and failed["outcome"] == "failed"
    msg = box.messages[0]
    assert msg["Subject"] == f"failing: run {failed['run_id']} failed"
    body = msg.get_body(("plain",))
    assert body is not None and "Failed hosts: srv4" in body.get_content()
    assert PASSWORD not in msg.as_string()


def test_a_closing_window_stops_the_run_after_its_step_in_a_maintenance_silence(
        cli: Cli, tmp_path: Path, lab: Any, alertmanager: Alertmanager, started: list[Daemon]) -> None:  # noqa: F811
    now = datetime.now(UTC)
    sched = schedules(tmp_path, f"""
        calendars:
          - name: closing
            mode: allowed
            recurrences: [{{rrule: 'FREQ=DAILY', start: '{local(now - timedelta(minutes=1))}', duration: 68s}}]
        schedules:
          - {{name: long, runbook: long, every: 2s, limit: srv2, calendars: [closing]}}
    """)
    d = Daemon(cli, runbooks(tmp_path), "--schedules", str(sched), "--alertmanager", alertmanager.url)
    started.append(d)

    def silences(state: str) -> list[dict[str, Any]]:
        return [s for s in alertmanager.call("GET", "/api/v2/silences")
                if s["createdBy"] == "opsflow-scheduler" and s["status"]["state"] == state]

    [active] = wait_for(lambda: silences("active"), 20, "the run's silence")
    assert active["matchers"][0]["value"] == "(srv2)(:[0-9]+)?" and "run " in active["comment"]
    fired = wait_for(lambda: [r for r in log(cli, "long") if r["decision"] == "fired" and r["outcome"]], 40,
                     "the run to end")
    assert d.stop() == 0
    [run] = fired
    assert run["outcome"] == "canceled" and "window closed at" in run["reason"]
    assert [s["id"] for s in silences("expired")] == [active["id"]] and not silences("active")
    show = json.loads(cli.run("show", run["run_id"], "--json").stdout)
    steps = {r["step"]: r for r in show["results"]}
    assert steps["first"]["status"] in ("ok", "changed")  # the step in flight finished, not killed
    assert steps["second"]["status"] == "skipped" and "window closed" in json.dumps(steps["second"])
    others = [r for r in log(cli, "long") if r["run_id"] != run["run_id"]]
    assert all(r["decision"] == "skipped" for r in others)  # forbid while it ran, then outside the window


def test_a_killed_daemon_neither_loses_nor_doubles_a_fire(cli: Cli, tmp_path: Path, lab: Any,
                                                           started: list[Daemon]) -> None:
    sched = schedules(tmp_path, """
        schedules:
          - {name: beat, runbook: quick, every: 2s, limit: srv3, concurrency: allow}
          - {name: strict, runbook: quick, every: 2s, limit: srv4, misfire: {catchup: none}}
    """)
    rb = runbooks(tmp_path)
    first = Daemon(cli, rb, "--schedules", str(sched))
    started.append(first)
    wait_for(lambda: len([r for r in log(cli, "beat") if r["outcome"]]) >= 2, 30, "two fires")
    first.stop(signal.SIGKILL)
    before = {(r["entry"], r["slot"]) for r in log(cli)}
    import time

    time.sleep(6)  # slots pass while no scheduler runs
    second = Daemon(cli, rb, "--schedules", str(sched))
    started.append(second)
    assert "missed while stopped: misfire policy applied" in second.log.read_text()
    wait_for(lambda: len(log(cli, "beat")) >= len([k for k in before if k[0] == "beat"]) + 6, 30, "more fires")
    assert second.stop() == 0
    for entry in ("beat", "strict"):
        rows = log(cli, entry)
        slots = [datetime.fromisoformat(r["slot"]) for r in rows]
        assert len(slots) == len(set(slots))  # one decision per slot (the store's key; nothing claimed twice)
        assert slots == [slots[0] + timedelta(seconds=2 * i) for i in range(len(slots))], "a slot has no record"
        fired = [r for r in rows if r["decision"] == "fired"]
        mine = {r["id"] for r in runs(cli) if r["started_by"] == f"schedule:{entry}"}
        linked = [r["run_id"] for r in fired if r["run_id"]]
        assert len(linked) == len(set(linked)) and set(linked) <= mine  # one run per fire
        assert len(mine) <= len(fired)  # a run only ever starts after its fire was recorded: none twice
        misfires = [r for r in rows if r["reason"] and "misfire" in r["reason"]]
        assert misfires, rows
    beat_misfires = [r["decision"] for r in log(cli, "beat") if "misfire" in (r["reason"] or "")]
    assert beat_misfires[-1] == "fired" and set(beat_misfires[:-1]) == {"coalesced"}  # catchup latest
    assert {r["decision"] for r in log(cli, "strict") if "misfire" in (r["reason"] or "")} == {"missed"}
