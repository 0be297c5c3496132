"""opsflow user / token / audit and four-eyes approvals, end to end: the real CLI in a subprocess, a real store.

A token is printed once (alone on stdout), never listed, stored only hashed, and stops working when
revoked or its user is disabled; a run with an approval step started by alice cannot be approved by
alice (exit 2, the reason) but can by bob, or by alice when the step says ``four_eyes: false``; the
audit log lists every change with who made it. Bad input is a clear message and exit 2, no traceback.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from opsflow.store import open_store
from tests.helpers import ROOT, Cli, wait_for, write_runbook

PASSWORD = "correct horse battery staple"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    h1: {ansible_host: 127.0.0.1}\n")
    return Cli(home=tmp_path / "home", inventory=inventory)


def with_stdin(cli: Cli, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "opsflow", *args], input=text, capture_output=True, text=True,
                          env=cli.env(), cwd=ROOT, timeout=120)


def test_users_and_tokens(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSFLOW_USER", "root-admin")
    added = with_stdin(cli, PASSWORD + "\n", "user", "add", "Alice", "--role", "approver", "--runbooks", "web-*,db-*",
                       "--contact", "mailto://alice@example.com", "--password-stdin")
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "user alice added: approver on runbooks web-*,db-*"
    cli.run("user", "add", "ci", "--role", "operator", "--groups", "web", check_rc=0)
    users = json.loads(cli.run("user", "list", "--json", check_rc=0).stdout)
    assert [(u["name"], u["role"], u["runbooks"], u["groups"], u["password"]) for u in users] == [
        ("alice", "approver", ["web-*", "db-*"], [], True), ("ci", "operator", [], ["web"], False)]
    assert "argon2" not in cli.run("user", "list", check_rc=0).stdout

    made = cli.run("token", "create", "ci", "--name", "pipeline", "--expires", "30d", check_rc=0)
    token = made.stdout.strip()
    assert token.startswith("ofp_") and "\n" not in token  # alone on stdout: `… > token-file`
    assert "shown this once" in made.stderr and token not in made.stderr
    token_id = token.split("_")[1]
    listed = cli.run("token", "list", check_rc=0).stdout
    assert token_id in listed and "pipeline" in listed and "active" in listed and token.split("_", 2)[2] not in listed
    [row] = json.loads(cli.run("token", "list", "--json", check_rc=0).stdout)
    assert (row["id"], row["username"], row["role"], row["state"]) == (token_id, "ci", "operator", "active")
    secret = token.split("_", 2)[2].encode()
    stored = b"".join(p.read_bytes() for p in cli.home.glob("opsflow.db*"))
    assert token_id.encode() in stored and secret not in stored and PASSWORD.encode() not in stored

    store = open_store(str(cli.db), reap=False)
    try:
        who = store.authenticate_token(token)
        assert who is not None and (who.name, who.role, who.groups) == ("ci", "operator", ("web",))
        cli.run("token", "revoke", token_id, check_rc=0)
        assert store.authenticate_token(token) is None
        second = cli.run("token", "create", "ci", check_rc=0).stdout.strip()
        assert store.authenticate_token(second) is not None
        cli.run("user", "disable", "ci", check_rc=0)
        assert store.authenticate_token(second) is None
        assert store.check_password("alice", PASSWORD, "cli-test") is not None
        changed = with_stdin(cli, "a brand new password\n", "user", "passwd", "alice", "--password-stdin")
        assert changed.returncode == 0, changed.stderr
        assert store.check_password("alice", PASSWORD, "cli-test") is None
        assert store.check_password("alice", "a brand new password", "cli-test") is not None
    finally:
        store.close()

    for args, message in [
        (("user", "add", "alice", "--role", "viewer"), "user alice exists"),
        (("user", "add", "bad@name", "--role", "viewer"), "user name 'bad@name'"),
        (("user", "add", "eve", "--role", "god"), "'god' is not one of"),
        (("user", "disable", "nobody"), "no user 'nobody'"),
        (("token", "create", "alice", "--role", "admin"), "a token of alice (approver) cannot have the role admin"),
        (("token", "create", "ci"), "user ci is disabled"),
        (("token", "create", "alice", "--expires", "soon"), "--expires 'soon': expected a duration"),
        (("token", "revoke", "nope"), "no token 'nope'"),
        (("user", "passwd", "alice"), "give it with --password-stdin"),
        (("audit", "--since", "yesterday"), "--since 'yesterday'"),
    ]:
        proc = cli.run(*args, check_rc=2)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    short = with_stdin(cli, "hunter2\n", "user", "add", "eve", "--role", "viewer", "--password-stdin")
    assert short.returncode == 2 and "at least 12 characters" in short.stderr

    log = json.loads(cli.run("audit", "--json", check_rc=0).stdout)
    assert [(e["actor"], e["action"], e["target"]) for e in reversed(log)] == [
        ("root-admin", "user_add", "alice"), ("root-admin", "user_add", "ci"),
        ("root-admin", "token_create", token_id), ("root-admin", "token_revoke", token_id),
        ("root-admin", "token_create", second.split("_")[1]), ("root-admin", "user_disable", "ci"),
        ("root-admin", "user_passwd", "alice")]
    assert all(secret.decode() not in (e["detail"] or "") for e in log)
    text = cli.run("audit", "--action", "token_revoke", check_rc=0).stdout
    assert text.count("\n") == 1 and f"token_revoke     {token_id}  user=ci" in text
    assert cli.run("audit", "--actor", "nobody", check_rc=0).stdout.strip() == "nothing on the audit log that matches"


GATE = """\
    name: gate
    targets: h1
    steps:
      - name: ask
        approve: {{message: "restart h1?", timeout: 60, four_eyes: {four_eyes}}}
      - name: after
        local: ["true"]
"""


def _waiting(cli: Cli, rb: Path) -> tuple[subprocess.Popen[str], str]:
    proc = cli.popen("run", str(rb), "-q")
    rows = wait_for(lambda: cli.query("SELECT run_id FROM approvals WHERE state = 'pending'"), 60, "a pending approval")
    return proc, str(rows[0][0])


def test_four_eyes_on_approvals(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rb = write_runbook(tmp_path / "runbooks", "gate", GATE.format(four_eyes="true"))
    monkeypatch.setenv("OPSFLOW_USER", "alice")
    proc, run_id = _waiting(cli, rb)
    try:
        assert cli.query(f"SELECT started_by FROM runs WHERE id = '{run_id}'") == [("alice",)]
        for me in ("alice", "alice@laptop", "Alice@other-host"):  # the same person, wherever she is
            monkeypatch.setenv("OPSFLOW_USER", me)
            refused = cli.run("approve", run_id, "-m", "lgtm", check_rc=2)
            assert f"run {run_id}: {me} started this run and cannot approve it too (four-eyes): another approver " \
                   "must decide" in refused.stderr and "Traceback" not in refused.stderr
        assert cli.query(f"SELECT state, decided_by FROM approvals WHERE run_id = '{run_id}'") == [("pending", None)]
        monkeypatch.setenv("OPSFLOW_USER", "bob")
        assert "step 'ask' approved by bob" in cli.run("approve", run_id, "-m", "checked", check_rc=0).stdout
        assert proc.wait(60) == 0
    finally:
        proc.kill()
        proc.communicate()
    assert cli.query(f"SELECT state, decided_by, comment FROM approvals WHERE run_id = '{run_id}'") == [
        ("approved", "bob", "checked")]

    relaxed = write_runbook(tmp_path / "runbooks", "gate", GATE.format(four_eyes="false"))
    monkeypatch.setenv("OPSFLOW_USER", "alice")
    proc, second = _waiting(cli, relaxed)
    try:
        assert "approved by alice" in cli.run("approve", second, check_rc=0).stdout
        assert proc.wait(60) == 0
    finally:
        proc.kill()
        proc.communicate()

    log = json.loads(cli.run("audit", "--actor", "alice", "--json", check_rc=0).stdout)
    assert [(e["actor"], e["action"], e["target"]) for e in reversed(log)] == [
        ("alice", "approve_refused", run_id), ("alice@laptop", "approve_refused", run_id),
        ("Alice@other-host", "approve_refused", run_id), ("alice", "approve", second)]
    everything = cli.run("audit", "--since", "1h", check_rc=0).stdout
    assert "bob" in everything and "approve " in everything and run_id in everything
