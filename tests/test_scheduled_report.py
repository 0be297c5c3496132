"""A report entry of the schedule, end to end: a real scheduler (on the test's clock) fires it against a real
SQLite store holding a week of runs, and the report arrives by mail at a real SMTP server (aiosmtpd) that
requires a login: the summary in the body, the rendered report attached, the fire decision on record.

Slots are in January 2030; the runs are recorded in the store at instants of that week.
"""

from __future__ import annotations

import logging
import os
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from opsflow.results import RunStatus
from opsflow.schedule.loader import load_schedules
from opsflow.service.notifications import Notices
from opsflow.service.runs import RunConfig
from opsflow.service.scheduler import Scheduler
from opsflow.store import open_store
from opsflow.store.base import RunRecord, Store

pytest.importorskip("aiosmtpd.controller")
from tests.helpers import Mailbox, free_port, smtp_server  # noqa: E402

PASSWORD = "smtp-pw-" + uuid.uuid4().hex[:12]
T0 = datetime(2030, 1, 7, 0, 0, tzinfo=UTC).timestamp()      # Monday 7 January 2030, 00:00 UTC
SLOT = datetime(2030, 1, 7, 6, 0, tzinfo=UTC).timestamp()    # its 07:00 in Paris: the weekly slot
DAY = 86400.0

SERVICES = """
services:
  - name: app
    runbooks: [deploy]
    objectives:
      - {name: deploys-succeed, kind: success_rate, target: 90%}
  - name: data
    runbooks: [backup]
    objectives:
      - {name: backups-succeed, kind: success_rate, target: 50%}
"""

WEEKLY = """
schedules:
  - name: weekly-kpi-report
    report: {since: 7d, service: null, hours: null, format: html, title: "Weekly operations report"}
    cron: '0 7 * * 1'
    timezone: Europe/Paris
    notify:
      - {to: ops-managers, on: [succeeded]}
"""


@pytest.fixture
def mail() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server(PASSWORD) as server:
        yield server


def mailto(port: int) -> str:
    return (f"mailto://opsflow:{PASSWORD}@127.0.0.1:{port}?mode=insecure&from=opsflow@example.org"
            "&to=managers@example.org")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for sub in ("runbooks", "schedules", "services", "tmp"):
        (tmp_path / sub).mkdir()
    for name in ("deploy", "backup"):
        (tmp_path / "runbooks" / f"{name}.yaml").write_text(
            f"name: {name}\ntargets: all\nsteps:\n  - name: only\n    local: ['true']\n")
    (tmp_path / "services" / "levels.yaml").write_text(textwrap.dedent(SERVICES))
    monkeypatch.setenv("OPSFLOW_PROJECT", "none")
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("OPSFLOW_SERVICES", str(tmp_path / "services"))
    monkeypatch.setenv("OPSFLOW_RUNBOOKS", str(tmp_path / "runbooks"))
    monkeypatch.setenv("OPSFLOW_SCHEDULES", str(tmp_path / "schedules"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the report file is written
    store = open_store(str(tmp_path / "s.db"))
    yield {"dir": tmp_path, "store": store}
    store.close()


def week_of_runs(store: Store) -> None:
    """In the week before the slot: deploy 4 succeeded + 1 failed, backup 1 succeeded; a failed deploy before
    the week and one after the slot that the report must leave out; two fires of another entry."""
    runs = [("deploy", SLOT - d * DAY, "succeeded") for d in (1, 2, 3, 4)]
    runs += [("deploy", SLOT - 3600, "failed"), ("backup", SLOT - 7200, "succeeded"),
             ("deploy", SLOT - 8 * DAY, "failed"), ("deploy", SLOT + 60, "failed")]
    for i, (runbook, start, status) in enumerate(runs):
        store.create_run(RunRecord(id=f"run{i:03d}", runbook=runbook, runbook_path=f"{runbook}.yaml",
                                   runbook_hash="h1", params={}, trigger="schedule", started_by="test",
                                   started_at=start))
        store.finish_run(f"run{i:03d}", RunStatus(status), start + 30, {"a": status})
    store.claim_fire("nightly", SLOT - 2 * DAY, "fired", "in window")
    store.claim_fire("nightly", SLOT - DAY, "missed", "misfire: no scheduler ran")


def scheduler(world: dict[str, Any], text: str, contacts: dict[str, list[str]]) -> Scheduler:
    (world["dir"] / "schedules" / "ops.yaml").write_text(textwrap.dedent(text))
    sset = load_schedules(world["dir"] / "schedules", world["dir"] / "runbooks")
    return Scheduler(sset, world["store"], RunConfig(inventory=str(world["dir"] / "none.yml")),
                     Notices(contacts, timeout=20))


def html_of(msg: EmailMessage) -> tuple[str, str]:
    [att] = list(msg.iter_attachments())
    content = att.get_content()
    return str(att.get_filename()), content.decode() if isinstance(content, bytes) else content


def test_a_fired_report_entry_mails_the_summary_and_the_report_attached(
        world: dict[str, Any], mail: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture) -> None:
    box, port = mail
    store = world["store"]
    week_of_runs(store)
    s = scheduler(world, WEEKLY, {"ops-managers": [mailto(port)]})
    s.recover(T0)
    assert s.tick(T0 + 60) == SLOT and box.messages == []
    with caplog.at_level(logging.DEBUG):
        s.tick(SLOT + 600)  # ten minutes late (within the misfire grace): it still reports the week before 07:00
        assert s.wait_idle(60)
        s.notices.close()
    [rec] = store.fires(entry="weekly-kpi-report")
    assert (rec["slot"], rec["decision"], rec["outcome"]) == (SLOT, "fired", "succeeded"), rec
    assert "sent to 1 target(s)" in rec["reason"] and rec["run_id"] is None

    [msg] = box.messages
    assert msg["Subject"] == "Weekly operations report (2029-12-31 to 2030-01-07)"
    assert msg["To"] == "managers@example.org"
    body = msg.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Period: 2029-12-31 07:00 to 2030-01-07 07:00 (Europe/Paris)" in text
    assert "Runs: 6 (5 succeeded, 1 failed)" in text  # not the run before the week, nor the one after the slot
    assert "Success rate: 83.3%" in text
    assert "Objectives met: 1/2" in text
    assert "app/deploys-succeed (success_rate): 80.0% against 90.0%" in text and "backups-succeed" not in text
    assert "Schedule adherence: 50.0% (1 of 2 slots run in their slot)" in text
    assert "attached: report.html" in text

    name, html = html_of(msg)
    assert name == "report.html" and html.lstrip().lower().startswith("<!doctype html")
    assert "deploy" in html and "backup" in html and "83.3%" in html  # the runbooks and the success rate
    assert "deploys-succeed" in html and "breached" in html

    assert list((world["dir"] / "tmp").iterdir()) == []  # the private report directory is gone
    raw = msg.as_string() + repr(store.fires(limit=100)) + "\n".join(r.getMessage() for r in caplog.records)
    assert PASSWORD not in raw


def test_a_report_that_cannot_be_built_or_sent_is_a_failed_slot_and_the_scheduler_goes_on(
        world: dict[str, Any], mail: tuple[Mailbox, int]) -> None:
    box, port = mail
    week_of_runs(world["store"])
    dead = mailto(free_port())  # nobody listens there
    s = scheduler(world, """
    schedules:
      - name: no-such-service
        report: {since: 1d, service: billing, format: markdown}
        every: 1h
        notify: [{to: ops-managers, on: [succeeded]}, {to: ops-oncall, on: [failed]}]
      - name: unreachable
        report: {since: 1d, format: csv}
        every: 1h
        notify: [{to: nobody-listens, on: [succeeded]}]
      - name: daily-json
        report: {since: 1d, format: json}
        every: 1h
        notify: [{to: ops-managers, on: [succeeded]}]
    """, {"ops-managers": [mailto(port)], "ops-oncall": [mailto(port).replace("managers@", "oncall@")],
          "nobody-listens": [dead]})
    s.recover(T0)
    s.tick(T0 + 3600)
    assert s.wait_idle(60)
    s.notices.close()
    fires = {r["entry"]: r for r in world["store"].fires(limit=100) if r["slot"] == T0 + 3600}
    assert fires["no-such-service"]["outcome"] == "failed"
    assert "the report could not be built" in fires["no-such-service"]["reason"]
    assert "billing" in fires["no-such-service"]["reason"]
    assert fires["unreachable"]["outcome"] == "failed"
    assert "report not delivered to mailto://opsflow:****@127.0.0.1" in fires["unreachable"]["reason"]
    assert PASSWORD not in fires["unreachable"]["reason"]
    assert fires["daily-json"]["outcome"] == "succeeded"  # the others' failures stopped nothing
    by_to = {str(m["To"]): m for m in box.messages}
    assert set(by_to) == {"managers@example.org", "oncall@example.org"}
    assert by_to["oncall@example.org"]["Subject"] == "no-such-service: the report of 2030-01-07T01:00:00+00:00 failed"
    name, data = html_of(by_to["managers@example.org"])
    assert name == "report.json" and '"runs"' in data
    assert s.tick(T0 + 2 * 3600) == T0 + 3 * 3600  # the loop is alive: the next slots come
    assert s.wait_idle(60)
    assert {r["entry"] for r in world["store"].fires(limit=100) if r["slot"] == T0 + 7200} == set(fires)
    assert os.listdir(world["dir"] / "tmp") == []
