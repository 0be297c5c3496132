"""A runbook's `owners` and an approval step's `escalate` levels: validated with the file and line of the fault;
approval recipients resolve through the store's users, the [notify] contacts, users' groups and Apprise URLs.

(The runbooks below are built from pieces: an escalation after the timeout is refused by `opsflow validate`
only — JSON Schema cannot compare two durations — so no whole literal is offered to the schema scan of
tests/unit/test_schema.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from opsflow.approvals_notify import Recipients, for_humans
from opsflow.errors import RunbookError
from opsflow.runbook.validate import load_runbook
from opsflow.store import open_store

HEAD = "name: probe\nowners: [ops-oncall, alice]\ntargets: all\n"
STEPS = "steps:\n  - name: ask\n    approve:\n      timeout: 60\n      escalate:\n"


def _runbook(tmp_path: Path, levels: str) -> Path:
    path = tmp_path / "probe.yaml"
    path.write_text(HEAD + STEPS + "".join(f"        - {line}\n" for line in levels.strip().split("\n")))
    return path


def test_owners_and_escalation_levels_load(tmp_path: Path) -> None:
    loaded = load_runbook(_runbook(tmp_path, "{after: 30s, to: [ops-lead]}\n{after: 0.75m, to: [boss, ops-lead]}"))
    runbook = loaded.runbook
    assert runbook.owners == ["ops-oncall", "alice"]
    levels = runbook.steps[0].approve.escalate if runbook.steps[0].approve else []
    assert [(e.after, e.to) for e in levels] == [(30.0, ["ops-lead"]), (45.0, ["boss", "ops-lead"])]


@pytest.mark.parametrize(("levels", "said"), [
    ("{after: 1m, to: [ops-lead]}", "not before the approval's timeout (60 s)"),
    ("{after: 2m, to: [ops-lead]}", "not before the approval's timeout (60 s)"),
    ("{after: 30, to: [a]}\n{after: 20, to: [b]}", "ascending order"),
    ("{after: 0, to: [a]}", "needs a time to wait"),
])
def test_a_bad_escalation_is_refused_with_its_line(tmp_path: Path, levels: str, said: str) -> None:
    path = _runbook(tmp_path, levels)
    with pytest.raises(RunbookError) as refused:
        load_runbook(path)
    assert f"{path}:8:" in str(refused.value) and "escalate" in str(refused.value)
    assert said in str(refused.value)


@pytest.mark.parametrize("body", [
    "{after: 10s, to: []}", "{after: 10s}", "{to: [a]}", "{after: soon, to: [a]}", "{after: 10s, to: [a], cc: [b]}",
    "{after: 10s, to: ['']}",
])
def test_a_malformed_escalation_is_refused(tmp_path: Path, body: str) -> None:
    with pytest.raises(RunbookError, match=r"probe.yaml:9:"):
        load_runbook(_runbook(tmp_path, body))


def test_an_empty_owner_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text("name: probe\nowners: ['']\ntargets: all\n" + "steps:\n  - {name: s, command: uptime}\n")
    with pytest.raises(RunbookError, match=f"{path}:2:.*owners"):
        load_runbook(path)


def test_recipients_resolve_users_contacts_groups_and_urls(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"))
    smtp = "mailto://ops:pw-0123456789@127.0.0.1:2525?mode=insecure&from=opsflow@example.org&to=team@example.org"
    store.add_user("alice", "approver", "admin", contact="json://hooks.example.org/alice")
    store.add_user("bob", "approver", "admin", groups=["dba"], contact="bob@example.org")
    store.add_user("carol", "viewer", "admin")  # no contact
    recipients = Recipients(store, {"ops-oncall": [smtp], "ops-lead": ["json://hooks.example.org/lead"]})
    urls, shown, unknown = recipients.resolve(["alice", "ops-lead", "dba", "carol", "nobody",
                                               "json://hooks.example.org/raw", "alice"])
    assert urls[:2] == ["json://hooks.example.org/alice", "json://hooks.example.org/lead"]
    assert "to=bob%40example.org" in urls[2] and "team@" not in urls[2] and urls[2].startswith("mailto://ops:pw-")
    assert urls[3] == "json://hooks.example.org/raw" and len(urls) == 4
    assert shown[:3] == ["alice", "ops-lead", "dba"] and unknown == ["carol", "nobody"]
    assert all("pw-0123456789" not in name for name in shown + unknown)


def test_durations_for_humans() -> None:
    assert [for_humans(s) for s in (2, 90, 900, 5400, 172800)] == ["2 s", "1.5 min", "15 min", "1.5 h", "2 d"]


def test_the_notification_says_how_to_approve_and_links_the_console(tmp_path: Path) -> None:
    from opsflow.approvals_notify import ApprovalNotices, Waiting
    from opsflow.notify import render
    from opsflow.redact import Redactor

    waiting = Waiting("r42", 0, "patch", "go?", "go ahead with s3cr3t-value?", "alice", 1000.0, 1000.0 + 3600)
    redactor = Redactor(["s3cr3t-value"])
    notices = ApprovalNotices(open_store(str(tmp_path / "s.db")), waiting, ["ops"], [], redactor, contacts={},
                              server="https://ops.example.org:8443")
    title, body = render(notices.notification(900), redactor)
    assert title.startswith("escalated: not answered in 15 min") and "run r42" in title
    assert "opsflow approve r42" in body and "Started by: alice" in body
    assert "console: https://ops.example.org:8443/runs/r42" in body and "s3cr3t-value" not in body
