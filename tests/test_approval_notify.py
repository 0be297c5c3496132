"""Approvals go to the runbook's owners and escalate: a real `opsflow run` waits for approval, its owner's mail
reaches a real SMTP server (aiosmtpd) through the project file's [notify] contact, the escalation follows after
its time, approving (as someone else) lets the run finish and stops any further escalation; the run's secret
never appears in a mail. (Local steps: no lab host is needed.)"""

from __future__ import annotations

import json
import re
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.helpers import Cli, smtp_server, wait_for, write_runbook

PASSWORD = "smtp-pass-" + "5e1f0a"
CANARY = "approval-canary-93b1"


def _text(msg: EmailMessage) -> str:
    body = msg.get_body(preferencelist=("plain", "html"))
    return f"{msg['Subject']}\n{body.get_content() if body is not None else ''}"


def _to(box_messages: list[EmailMessage], address: str) -> list[EmailMessage]:
    return [m for m in box_messages if address in str(m["To"])]


def test_owners_are_told_and_the_approval_escalates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with smtp_server(PASSWORD) as (box, port):
        def contact(to: str) -> str:
            return (f'["mailto://ops:{PASSWORD}@127.0.0.1:{port}?mode=insecure&from=opsflow@example.org'
                    f'&to={to}@example.org"]')

        project = tmp_path / "opsflow.toml"
        project.write_text("[notify]\n"
                           f"contacts = {{ops-oncall = {contact('oncall')}, ops-lead = {contact('lead')}, "
                           f"ops-boss = {contact('boss')}}}\n")
        monkeypatch.setenv("OPSFLOW_PROJECT", str(project))
        monkeypatch.setenv("OPSFLOW_PARAM_TOKEN", CANARY)
        monkeypatch.setenv("OPSFLOW_USER", "alice")
        inventory = tmp_path / "hosts.yml"
        inventory.write_text("all:\n  hosts:\n    a: {ansible_host: 127.0.0.1}\n")
        rb = write_runbook(tmp_path / "runbooks", "gated-notify", """\
            name: gated-notify
            owners: [ops-oncall]
            targets: a
            params:
              token: {type: str, secret: true}
            steps:
              - name: go ahead?
                approve:
                  message: "restart the app (token {{ token }})?"
                  timeout: 300
                  escalate:
                    - {after: 2s, to: [ops-lead]}
                    - {after: 120s, to: [ops-boss]}  # far enough that a slow approve (a loaded machine) comes first
              - name: after
                local: [echo, "done {{ token }}"]
        """)
        cli = Cli(tmp_path / "home", inventory)
        proc = cli.popen("run", str(rb), "--json")
        try:
            owner_mail = wait_for(lambda: _to(box.messages, "oncall@example.org"), 30, "the owner's mail")[0]
            told_at = time.monotonic()
            text = _text(owner_mail)
            found = re.search(r"Run: (\S+)", text)
            assert found, text
            run_id = found[1]
            assert f"opsflow approve {run_id}" in text and "gated-notify" in text and "go ahead?" in text
            assert "Started by: alice" in text and "Deadline: " in text
            assert not _to(box.messages, "lead@example.org"), "escalated before its time"
            lead_mail = wait_for(lambda: _to(box.messages, "lead@example.org"), 20, "the escalation mail")[0]
            assert time.monotonic() - told_at >= 1.0
            escalated = _text(lead_mail)
            assert "escalated: not answered in 2 s" in escalated and f"opsflow approve {run_id}" in escalated
            monkeypatch.setenv("OPSFLOW_USER", "bob")
            cli.run("approve", run_id, "-m", "go", check_rc=0)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert json.loads(out)["status"] == "succeeded"
        audit = cli.query("SELECT at, actor, action, target, detail FROM audit WHERE action LIKE 'approval_%' ORDER BY at")
        assert [(a[1], a[2], a[3], a[4]) for a in audit] == [
            ("opsflow", "approval_notified", run_id, "to ops-oncall"),
            ("opsflow", "approval_escalated", run_id, "to ops-lead")]
        assert audit[1][0] - audit[0][0] >= 1.0  # 2 s after the request; the first record may lag its mail
        assert not _to(box.messages, "boss@example.org"), "escalated after the approval"
        assert len(box.messages) == 2
        for msg in box.messages:
            assert CANARY not in msg.as_string() and PASSWORD not in msg.as_string()
            assert CANARY not in _text(msg)
