"""The scheduler's decisions with a fake clock: real schedules, a real SQLite store, real local runs.

Slots are in January 2030 (the scheduler's clock is the test's); the runs themselves are real
``local:`` steps on the controller, recorded in the store like any other.
"""

from __future__ import annotations

import json
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from opsflow.cli import main
from opsflow.schedule.loader import load_schedules
from opsflow.service.notifications import Notices, from_settings
from opsflow.service.runs import RunConfig
from opsflow.service.scheduler import Scheduler
from opsflow.store import open_store
from opsflow.store.base import Store

T0 = datetime(2030, 1, 7, 0, 0, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "schedules").mkdir()
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    a: {ansible_host: 127.0.0.1}\n")
    rb = {"quick": "steps:\n  - name: only\n    local: ['true']\n",
          "slow": "steps:\n  - name: first\n    local: [sleep, '1.5']\n  - name: second\n    local: ['true']\n",
          "fails": "steps:\n  - name: only\n    local: ['false']\n"}
    for name, steps in rb.items():
        (tmp_path / "runbooks" / f"{name}.yaml").write_text(f"name: {name}\ntargets: all\n{steps}")
    store = open_store(str(tmp_path / "s.db"))
    yield {"dir": tmp_path, "inv": str(inv), "store": store}
    store.close()


def scheduler(world: dict[str, Any], text: str, store: Store | None = None) -> Scheduler:
    (world["dir"] / "schedules" / "s.yaml").write_text(textwrap.dedent(text))
    sset = load_schedules(world["dir"] / "schedules", world["dir"] / "runbooks")
    return Scheduler(sset, store or world["store"], RunConfig(inventory=world["inv"]), Notices())


def records(store: Store, entry: str | None = None) -> list[dict[str, Any]]:
    return sorted(store.fires(entry=entry, limit=10_000), key=lambda r: (r["entry"], r["slot"]))


def decisions(store: Store, entry: str | None = None) -> list[tuple[float, str]]:
    return [(r["slot"] - T0, r["decision"]) for r in records(store, entry)]


EVERY_MINUTE = """
schedules:
  - name: e
    runbook: quick
    every: 60s
"""


def test_a_slot_fires_one_real_run_recorded_as_scheduled(world: dict[str, Any]) -> None:
    s = scheduler(world, EVERY_MINUTE)
    s.recover(T0)
    assert s.tick(T0 + 30) == T0 + 60  # nothing due yet: it sleeps until the slot
    assert records(world["store"]) == []
    s.tick(T0 + 60)
    assert s.wait_idle(30)
    [rec] = records(world["store"])
    assert rec["decision"] == "fired" and rec["outcome"] == "succeeded" and rec["slot"] == T0 + 60
    run = world["store"].get_run(rec["run_id"])
    assert run["trigger"] == "schedule" and run["started_by"] == "schedule:e"


def test_restart_never_fires_twice_and_applies_the_misfire_policy(world: dict[str, Any]) -> None:
    s = scheduler(world, EVERY_MINUTE)
    s.recover(T0)
    s.tick(T0 + 60)
    s.wait_idle(30)
    # "killed" after the slot of +60; a new scheduler starts at +330: +120 … +300 passed while none ran
    again = scheduler(world, EVERY_MINUTE)
    assert again.recover(T0 + 330)["misfired"] == 4
    again.wait_idle(30)
    assert decisions(world["store"]) == [(60, "fired"), (120, "coalesced"), (180, "coalesced"), (240, "coalesced"),
                                         (300, "fired")]  # catchup latest within the grace: the newest one runs
    late = records(world["store"])[-1]
    assert "misfire: late by 30s" in late["reason"] and late["outcome"] == "succeeded"
    # a third start at the same instant decides nothing again: each slot keeps its one decision
    third = scheduler(world, EVERY_MINUTE)
    assert third.recover(T0 + 330)["misfired"] == 0
    third.tick(T0 + 330)
    assert len(records(world["store"])) == 5


def test_misfires_beyond_the_grace_or_without_catchup_are_missed(world: dict[str, Any]) -> None:
    text = """
    schedules:
      - {name: none, runbook: quick, every: 60s, misfire: {catchup: none}}
      - {name: stale, runbook: quick, every: 60s, misfire: {grace: 90s}}
    """
    s = scheduler(world, text)
    s.recover(T0)
    s.tick(T0 + 60)
    s.wait_idle(30)
    again = scheduler(world, text)
    again.recover(T0 + 250)
    again.wait_idle(30)
    assert decisions(world["store"], "none") == [(60, "fired"), (120, "missed"), (180, "missed"), (240, "missed")]
    assert decisions(world["store"], "stale") == [(60, "fired"), (120, "missed"), (180, "coalesced"), (240, "fired")]


BLACKOUT = """
calendars:
  - {name: freeze, mode: blackout, location: UTC, dates: ['2030-01-07']}
schedules:
  - {name: skipper, runbook: quick, cron: '0 12 * * *', calendars: [freeze]}
  - {name: mover, runbook: quick, cron: '0 12 * * *', calendars: [freeze], on_blackout: next_window}
"""


def test_a_blackout_skips_or_defers_and_the_deferred_slot_fires_at_its_new_time(world: dict[str, Any]) -> None:
    s = scheduler(world, BLACKOUT)
    s.recover(T0)
    noon, midnight = T0 + 12 * 3600, T0 + 24 * 3600
    s.tick(noon)
    skipped, deferred = records(world["store"], "skipper")[0], records(world["store"], "mover")[0]
    assert skipped["decision"] == "skipped" and "blackout freeze" in skipped["reason"]
    assert deferred["decision"] == "deferred" and deferred["deferred_to"] == midnight
    assert s.tick(noon + 1) == midnight  # it wakes for the deferred slot
    s.tick(midnight)
    s.wait_idle(30)
    moved = [r for r in records(world["store"], "mover") if r["slot"] == midnight][0]
    assert moved["decision"] == "fired" and moved["reason"].startswith("deferred from 2030-01-07T12:00:00+00:00")
    assert moved["outcome"] == "succeeded"
    origin = [r for r in records(world["store"], "mover") if r["slot"] == noon][0]
    assert origin["run_id"] == moved["run_id"] and origin["outcome"] == "succeeded"  # what became of it


def test_a_deferred_slot_survives_a_restart(world: dict[str, Any]) -> None:
    s = scheduler(world, BLACKOUT)
    s.recover(T0)
    s.tick(T0 + 12 * 3600)
    again = scheduler(world, BLACKOUT)
    again.recover(T0 + 13 * 3600)
    assert again.tick(T0 + 13 * 3600) == T0 + 24 * 3600
    again.tick(T0 + 24 * 3600)
    again.wait_idle(30)
    assert [d for _, d in decisions(world["store"], "mover")] == ["deferred", "fired"]


DEPENDS = """
schedules:
  - {name: first, runbook: %s, cron: '0 1 * * *'}
  - name: second
    runbook: quick
    cron: '30 1 * * *'
    after: [{entry: first, on_missing: wait, wait: 10m, on_failure: skip}]
"""


def test_a_dependency_holds_a_slot_then_skips_it_when_the_wait_is_over(world: dict[str, Any]) -> None:
    s = scheduler(world, DEPENDS % "quick")
    s.recover(T0 + 3600 + 60)  # after first's slot: it never ran today
    slot = T0 + 5400
    s.tick(slot)
    assert records(world["store"], "second") == []  # held, not decided
    assert s.tick(slot + 300) == slot + 301
    s.tick(slot + 600)
    [rec] = records(world["store"], "second")
    assert rec["decision"] == "skipped" and rec["reason"].startswith("dependency: first has not run since")


def test_a_dependency_that_succeeded_lets_it_run_and_one_that_failed_skips_it(world: dict[str, Any]) -> None:
    for runbook, expected in (("quick", "fired"), ("fails", "skipped")):
        store = open_store(str(world["dir"] / f"{runbook}.db"))
        s = scheduler(world, DEPENDS % runbook, store)
        s.recover(T0)
        s.tick(T0 + 3600)
        s.wait_idle(30)
        s.tick(T0 + 5400)
        s.wait_idle(30)
        [rec] = records(store, "second")
        assert rec["decision"] == expected, rec
        assert ("dependencies succeeded" if expected == "fired" else "first failed (on_failure: skip)") in rec["reason"]
        store.close()


def test_concurrency_forbid_skips_and_queue_runs_after(world: dict[str, Any]) -> None:
    text = """
    schedules:
      - {name: forbid, runbook: slow, every: 1s}
      - {name: queue, runbook: slow, every: 1s, concurrency: queue}
    """
    s = scheduler(world, text)
    s.recover(T0)
    s.tick(T0 + 1)
    s.tick(T0 + 2)
    s.tick(T0 + 3)  # the runs of +1 still go (1.5 s of real time)
    assert decisions(world["store"], "forbid") == [(1, "fired"), (2, "skipped"), (3, "skipped")]
    assert "concurrency: run" in records(world["store"], "forbid")[1]["reason"]
    assert decisions(world["store"], "queue") == [(1, "fired"), (3, "coalesced")]  # +2 waits; +3 folds into it
    s.wait_idle(30)
    s.tick(T0 + 3.5)
    s.wait_idle(30)
    queued = records(world["store"], "queue")
    assert [r["decision"] for r in queued] == ["fired", "fired", "coalesced"]
    assert "queued behind run" in queued[1]["reason"] and queued[1]["outcome"] == "succeeded"


def test_a_closing_window_lets_the_step_in_flight_finish_and_starts_no_other(world: dict[str, Any]) -> None:
    text = """
    calendars:
      - name: night
        mode: allowed
        time_intervals: [{times: [{start_time: '00:00', end_time: '00:10'}], location: UTC}]
    schedules:
      - {name: closing, runbook: slow, every: 60s, calendars: [night]}
    """
    s = scheduler(world, text)
    s.recover(T0 + 500)
    assert s.tick(T0 + 540) == T0 + 600  # wakes at the window's end while the run goes
    time.sleep(0.5)  # the first step is under way
    s.tick(T0 + 600)
    assert s.wait_idle(30)
    rec, outside = records(world["store"])
    assert outside["decision"] == "skipped" and "outside window night" in outside["reason"]
    assert rec["outcome"] == "canceled" and "window closed at 2030-01-07T00:10:00+00:00" in rec["reason"]
    results = {r["step"]: r for r in world["store"].results(rec["run_id"])}
    assert results["first"]["status"] in ("ok", "changed")  # not killed: it finished
    assert results["second"]["status"] == "skipped" and "window closed" in json.dumps(results["second"])


def test_schedule_log_lists_every_decision_newest_first(world: dict[str, Any]) -> None:
    s = scheduler(world, BLACKOUT)
    s.recover(T0)
    s.tick(T0 + 12 * 3600)
    env = {"OPSFLOW_DB": str(world["dir"] / "s.db"), "OPSFLOW_PROJECT": "none"}
    r = CliRunner().invoke(main, ["schedule", "log", "--json", "--timezone", "Europe/Berlin"], env=env)
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert {(x["entry"], x["decision"]) for x in rows} == {("skipper", "skipped"), ("mover", "deferred")}
    mover = [x for x in rows if x["entry"] == "mover"][0]
    assert mover["slot"] == "2030-01-07T13:00:00+01:00" and mover["deferred_to"] == "2030-01-08T01:00:00+01:00"
    assert set(mover) >= {"entry", "slot", "decision", "reason", "deferred_to", "run_id", "outcome"}
    text = CliRunner().invoke(main, ["schedule", "log", "--since", "7d"], env={**env, "COLUMNS": "200"})
    assert text.exit_code == 0 and "blackout freeze" in text.output
    bad = CliRunner().invoke(main, ["schedule", "log", "--since", "lately"], env=env)
    assert bad.exit_code == 2 and "--since 'lately'" in bad.output


def test_notify_targets_follow_the_entry_and_unknown_contacts_are_said(world: dict[str, Any]) -> None:
    text = """
    schedules:
      - name: n
        runbook: quick
        every: 60s
        notify:
          - {to: 'json://127.0.0.1:9/x', on: [failed, skipped]}
          - {to: oncall, on: [any]}
          - {to: nobody, on: [failed]}
    """
    s = scheduler(world, text)
    project = SimpleNamespace(notify={"contacts": {"oncall": ["mailto://a@127.0.0.1"]},
                                      "routes": [{"to": "json://127.0.0.1:9/all", "on": ["missed"]}]})
    notices = from_settings(project)
    entry = s.entries["n"]
    failed = notices.router(entry, "failed")
    assert failed is not None and failed.targets("run_failed") == ["json://127.0.0.1:9/x", "mailto://a@127.0.0.1"]
    deferred = notices.router(entry, "deferred")
    assert deferred is not None and deferred.targets("rescheduled") == ["mailto://a@127.0.0.1"]
    missed = notices.router(entry, "misfired")  # the project's route hears of it; the entry's 'any' too
    assert missed is not None and missed.targets("missed") == ["mailto://a@127.0.0.1", "json://127.0.0.1:9/all"]
    [problem] = notices.problems(s.entries)
    assert "'nobody' is neither a URL nor a contact" in problem
    notices.close(0)


def test_a_failed_run_is_retried_later_at_most_retries_times(world: dict[str, Any]) -> None:
    (world["dir"] / "schedules" / "s.yaml").write_text(textwrap.dedent("""\
        schedules:
          - name: flaky
            runbook: fails
            cron: '0 3 * * *'
            retry_in: 10m
            retries: 2
        """))
    sset = load_schedules(world["dir"] / "schedules", world["dir"] / "runbooks")
    clock = {"now": T0}
    s = Scheduler(sset, world["store"], RunConfig(inventory=world["inv"]), Notices(), clock=lambda: clock["now"])
    s.recover(T0)
    for offset in (3 * 3600, 3 * 3600 + 600, 3 * 3600 + 1200, 3 * 3600 + 1800):
        clock["now"] = T0 + offset
        s.tick(T0 + offset)
        assert s.wait_idle(30)
    recs = records(world["store"], "flaky")
    assert [(r["slot"] - T0, r["decision"], r["outcome"]) for r in recs] == [
        (3 * 3600, "fired", "failed"), (3 * 3600 + 600, "fired", "failed"), (3 * 3600 + 1200, "fired", "failed")]
    assert "retry 1 of 2 after run" in recs[1]["reason"] and "retry 2 of 2" in recs[2]["reason"]


def test_a_scheduled_run_waiting_for_approval_is_announced(world: dict[str, Any]) -> None:
    from opsflow.notify import Kind, Route
    from tests.helpers import webhook_receiver

    with webhook_receiver() as server:
        (world["dir"] / "runbooks" / "gated.yaml").write_text(
            "name: gated\ntargets: all\nsteps:\n  - name: ok?\n    approve: {message: 'patch now?', timeout: 1}\n")
        (world["dir"] / "schedules" / "s.yaml").write_text("schedules:\n  - name: g\n    runbook: gated\n    every: 60s\n")
        sset = load_schedules(world["dir"] / "schedules", world["dir"] / "runbooks")
        url = f"json://127.0.0.1:{server.server_address[1]}/approvals"
        notices = Notices(routes=[Route(url, frozenset({Kind.APPROVAL_WAITING}))])
        s = Scheduler(sset, world["store"], RunConfig(inventory=world["inv"]), notices)
        s.recover(T0)
        s.tick(T0 + 60)
        assert s.wait_idle(30)
        notices.close()
        [req] = server.requests
        body = json.loads(req["body"])
        assert "waits for approval" in body["title"] and "patch now?" in body["message"]
