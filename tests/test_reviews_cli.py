"""opsflow review, end to end: real runs of `local` steps, the real CLI in a subprocess, a real store.

A failed automatic remediation is due for a review until one links it; the review gets a timeline from
the records, is edited, exported as Markdown, closed; its open action items show on `opsflow plan` and
`opsflow run` until then; every change is audited with who made it. Also: approve/deny and breaker
reset are audited. One test runs on PostgreSQL (skipped without OPSFLOW_TEST_PG).
"""

from __future__ import annotations

import getpass
import json
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from opsflow.events.models import Event
from opsflow.store import open_store
from tests.helpers import Cli, pg_store_url, wait_for, write_runbook

INVENTORY = "all:\n  hosts:\n    h1: {ansible_host: 127.0.0.1}\n    h2: {ansible_host: 127.0.0.1}\n"
FIX = """\
    name: fix-disk
    targets: all
    steps:
      - name: clean up
        local: [test, '{{ inventory_hostname }}', '=', h1]
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    return Cli(home=tmp_path / "home", inventory=inventory)


def audit(cli: Cli, action: str) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(cli.db) as db:
        return db.execute("SELECT actor, target, detail FROM audit WHERE action = ? ORDER BY id", (action,)).fetchall()


def failed_remediation(cli: Cli, runbook: Path, *db: str) -> str:
    """A run started as the daemon starts one (trigger event) that fails on h2: its id."""
    run = cli.run_json(str(runbook), "--trigger", "event", *db, rc=1)
    assert run["status"] == "partial"
    return str(run["id"])


def test_review_of_a_failed_remediation_from_due_to_closed(cli: Cli, tmp_path: Path) -> None:
    rb = write_runbook(tmp_path / "runbooks", "fix", FIX)
    run_id = failed_remediation(cli, rb)
    cli.run_json(str(rb), rc=1)  # a failed run started by a person is not an automatic remediation

    due = json.loads(cli.run("review", "list", "--due", "--json", check_rc=0).stdout)
    assert [(d["kind"], d["run_id"], d["runbook"]) for d in due] == [("failed_remediation", run_id, "fix-disk")]

    review_id = cli.run("review", "new", run_id, "--by", "alice", check_rc=0).stdout.strip()
    assert review_id.startswith("R-")
    assert "nothing due for a review" in cli.run("review", "list", "--due", check_rc=0).stdout

    cli.run("review", "edit", review_id[:5], "--summary", "h2's disk stayed full", "--impact", "web down 20 min",
            "--factor", "cleanup assumed GNU find", "--went-well", "alert fired in 1 min",
            "--takeaway", "test cleanups on every distro", "--action", "port the cleanup", "--owner", "bob",
            "--due", "2027-01-10", "--ticket", "CHG-123", "--link", "postmortem=https://wiki.example/pm",
            "--by", "alice", check_rc=0)
    (tmp_path / "more.yaml").write_text("action_items:\n  - {text: add an inode alert, owner: carol, due: 2027-02-01}\n"
                                        "contributing_factors: [no inode alert]\n")
    cli.run("review", "edit", review_id, "--from-file", str(tmp_path / "more.yaml"), "--by", "carol", check_rc=0)
    cli.run("review", "edit", review_id, "--done", "2", "--by", "carol", check_rc=0)

    shown = json.loads(cli.run("review", "show", review_id, "--json", check_rc=0).stdout)
    assert shown["runs"] == [run_id] and shown["runbooks"] == ["fix-disk"] and shown["events"] == []
    items = shown["doc"]["action_items"]
    assert [(a["id"], a["owner"], a["done"], a["done_by"]) for a in items] == [(1, "bob", False, None),
                                                                                (2, "carol", True, "carol")]
    assert shown["doc"]["contributing_factors"] == ["cleanup assumed GNU find", "no inode alert"]
    timeline = [(e["kind"], e["host"], e["status"]) for e in shown["timeline"]]
    assert timeline[0] == ("run_start", None, "running") and timeline[-1] == ("run_end", None, "partial")
    assert sorted(timeline[1:-1]) == [("step", "h1", "changed"), ("step", "h2", "failed")]  # hosts in parallel
    run = cli.history()[-1]
    assert {"title": "runbook fix-disk version", "url": f"sha256:{run['runbook_hash']}", "kind": "runbook"} \
        in shown["doc"]["links"]

    md = cli.run("review", "show", review_id, "--markdown", check_rc=0).stdout
    assert md.startswith(f"# fix-disk: run {run_id} partial ({review_id})")
    assert "- [ ] 1. port the cleanup — owner bob, due 2027-01-10" in md
    assert "| clean up on h2: failed [CommandFailed] | h2 | failed |" in md
    assert "- change ticket: `CHG-123`" in md and "web down 20 min" in md
    cli.run("review", "export", review_id, "-o", str(tmp_path / "review.md"), check_rc=0)
    assert (tmp_path / "review.md").read_text() == md

    lesson = f"lesson {review_id} (open): fix-disk: run {run_id} partial; action 1: port the cleanup — owner bob, " \
             "due 2027-01-10"
    plan = cli.run("plan", str(rb), "--json", check_rc=0)
    assert json.loads(plan.stdout)["runbook"] == "fix-disk"  # stdout stays JSON
    assert plan.stderr.strip().splitlines() == [lesson]  # action 2 is done: not shown
    assert lesson in cli.run("run", str(rb), "-q", check_rc=1).stderr

    closed = cli.run("review", "close", review_id, "--by", "dave", check_rc=0).stdout
    assert f"{review_id} closed by dave; 1 action item(s) not done yet" in closed
    assert "lesson" not in cli.run("plan", str(rb), check_rc=0).stderr
    assert "already closed (by dave)" in cli.run("review", "close", review_id, check_rc=2).stderr
    listed = json.loads(cli.run("review", "list", "--state", "all", "--runbook", "fix-disk", "--json",
                                check_rc=0).stdout)
    assert [(r["id"], r["state"], r["closed_by"], r["open_actions"]) for r in listed] == [(review_id, "closed",
                                                                                          "dave", 1)]
    assert cli.run("review", "list", "--runbook", "other", check_rc=0).stdout.strip() == "no open reviews"

    assert [(a, t) for a, t, _ in audit(cli, "review_create")] == [("alice", review_id)]
    assert [(a, d) for a, _, d in audit(cli, "review_edit")] == [
        ("alice", "summary; impact; contributing_factors +1; went_well +1; takeaways +1; action 1 added; "
                  "link postmortem; link change ticket"),
        ("carol", "contributing_factors +1; action 2 added"), ("carol", "action 2 done")]
    assert audit(cli, "review_close") == [("dave", review_id, "1 action item(s) not done")]


def test_review_of_an_event_links_the_runs_it_started(cli: Cli, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    rb = write_runbook(tmp_path / "runbooks", "fix", FIX)
    run_id = failed_remediation(cli, rb)
    store = open_store(str(cli.db))  # the records the daemon writes for an event and what a rule did with it
    now = time.time()
    event = Event(source="alertmanager", name="DiskFull", host="h2", received_at=now - 60,
                  id="ev-20270101-000000-0badcafe")
    store.add_event(event, ["fix-disk"])
    store.add_action({"id": "act-1", "event_id": event.id, "rule": "fix-disk", "host": "h2", "outcome": "finished",
                      "run_id": run_id, "run_status": "partial", "received_at": now - 60, "queued_at": now - 59})
    store.add_action({"id": "act-2", "event_id": event.id, "rule": "page", "host": "h2", "outcome": "suppressed",
                      "reason": "cooldown", "received_at": now - 60, "queued_at": now - 59})
    store.close()

    monkeypatch.setenv("OPSFLOW_USER", "ops-oncall")  # no --by: $OPSFLOW_USER is who did it
    review_id = cli.run("review", "new", "ev-20270101-000000-0bad", check_rc=0).stdout.strip()
    shown = json.loads(cli.run("review", "show", review_id, "--json", check_rc=0).stdout)
    assert shown["title"] == "event DiskFull on h2" and shown["created_by"] == "ops-oncall"
    assert shown["runs"] == [run_id] and shown["events"] == [event.id] and shown["runbooks"] == ["fix-disk"]
    assert [e["kind"] for e in shown["timeline"][:3]] == ["event", "rule", "rule"]
    assert "rule page: suppressed (cooldown)" in [e["what"] for e in shown["timeline"]]
    from_run = cli.run("review", "new", run_id, "--title", "second look", check_rc=0).stdout.strip()
    again = json.loads(cli.run("review", "show", from_run, "--json", check_rc=0).stdout)
    assert again["events"] == [event.id] and again["title"] == "second look"  # a run brings its event along


def test_clear_errors(cli: Cli, tmp_path: Path) -> None:
    rb = write_runbook(tmp_path / "runbooks", "fix", FIX)
    review_id = cli.run("review", "new", failed_remediation(cli, rb), check_rc=0).stdout.strip()
    for args, message in [
        (("review", "show", "R-nope"), "no review R-nope (see `opsflow review list`)"),
        (("review", "edit", "R-nope", "--summary", "x"), "no review R-nope (see `opsflow review list`)"),
        (("review", "new", "no-such-run"), "no run or event 'no-such-run'"),
        (("review", "edit", review_id, "--action", "x", "--owner", "bob", "--due", "10/01/2027"),
         "--due '10/01/2027': expected a date as YYYY-MM-DD, e.g. 2027-01-10"),
        (("review", "edit", review_id, "--action", "x", "--due", "2027-01-10"), "--owner NAME"),
        (("review", "edit", review_id, "--owner", "bob"), "give --action TEXT with them"),
        (("review", "edit", review_id, "--done", "3"), "no action item 3 in this review"),
        (("review", "edit", review_id), "nothing to change"),
    ]:
        proc = cli.run(*args, check_rc=2)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert audit(cli, "review_edit") == []  # nothing of a refused edit recorded


def test_approve_deny_and_breaker_reset_are_audited(cli: Cli, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rb = write_runbook(tmp_path / "runbooks", "gate", """\
        name: gate
        targets: h1
        steps:
          - name: ask
            approve: {message: "go on?", timeout: 60}
          - name: after
            local: ["true"]
    """)
    me = f"{getpass.getuser()}@{socket.gethostname()}"
    for verb in ("approve", "deny"):
        proc = cli.popen("run", str(rb), "-q")
        try:
            rows = wait_for(lambda: cli.query("SELECT run_id FROM approvals WHERE state = 'pending'"), 60,
                            "a pending approval")
            decider = "approver-bob" if verb == "approve" else me  # four-eyes: not who started the run
            monkeypatch.setenv("OPSFLOW_USER", decider)
            cli.run(verb, rows[0][0], "-m", "checked the graphs", check_rc=0)
            monkeypatch.delenv("OPSFLOW_USER")
            assert proc.wait(60) == (0 if verb == "approve" else 1)
        finally:
            proc.kill()
            proc.communicate()
        assert audit(cli, verb) == [(decider, rows[0][0], "step 'ask': checked the graphs")]
    store = open_store(str(cli.db))
    store.breaker_result("disk-rule", "run-x", failed=True, threshold=1)
    store.close()
    cli.run("breaker", "reset", "disk-rule", check_rc=0)
    assert audit(cli, "breaker_reset") == [(me, "disk-rule", None)]
    assert cli.run("breaker", "reset", "no-rule", check_rc=2).stderr
    assert len(audit(cli, "breaker_reset")) == 1  # a refused reset is not recorded


def test_reviews_on_postgresql(cli: Cli, tmp_path: Path) -> None:
    rb = write_runbook(tmp_path / "runbooks", "fix", FIX)
    with pg_store_url() as url:
        run_id = failed_remediation(cli, rb, "--db", url)
        due = json.loads(cli.run("review", "list", "--due", "--json", "--db", url, check_rc=0).stdout)
        assert [d["run_id"] for d in due] == [run_id]
        review_id = cli.run("review", "new", run_id, "--by", "alice", "--db", url, check_rc=0).stdout.strip()
        cli.run("review", "edit", review_id[:5], "--action", "port 100% of it_now", "--owner", "bob", "--due",
                "2027-01-10", "--by", "alice", "--db", url, check_rc=0)
        assert json.loads(cli.run("review", "list", "--due", "--json", "--db", url, check_rc=0).stdout) == []
        assert "action 1: port 100% of it_now — owner bob" in cli.run("plan", str(rb), "--db", url,
                                                                      check_rc=0).stderr
        listed = json.loads(cli.run("review", "list", "--runbook", "fix-disk", "--json", "--db", url,
                                    check_rc=0).stdout)
        assert [r["id"] for r in listed] == [review_id]
        assert "| clean up on h2: failed" in cli.run("review", "export", review_id, "--db", url, check_rc=0).stdout
        cli.run("review", "close", review_id, "--by", "dave", "--db", url, check_rc=0)
        store = open_store(url)
        try:
            assert [(e["actor"], e["target"]) for e in store.audit_entries("review_close")] == [("dave", review_id)]
            assert store.open_lessons("fix-disk") == []
        finally:
            store.close()
