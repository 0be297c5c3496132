"""The CLI through `opsflow serve` (--server URL): a real service with authentication, users and tokens made
with the CLI, the token in a file of mode 0600.

alice (operator) runs a gated runbook through the server and the CLI follows it; she may not approve it
(her role, and four-eyes for an approver's own run); bob (approver) approves and her run finishes with
exit 0; history and show read the server; a failing run exits 1 and `resume --server` finishes it; a
wrong token, a readable token file, a closed port and an untrusted certificate each get one clear line
and exit 2 — and no token is ever printed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, wait_for
from tests.test_serve import Serve

FLAKY = "name: flaky\ntargets: a\nsteps:\n  - name: first\n    local: [echo, one]\n" \
        "  - name: needs-marker\n    local: [test, -f, '{marker}']\n"


class Remote:
    """The CLI of a person who has no store: only a server URL and a token."""

    serve: Serve

    def __init__(self, home: Path, db: Path) -> None:
        self.home, self.db = home, db
        self.tokens: dict[str, str] = {}
        self.files: dict[str, Path] = {}

    def add(self, name: str, role: str) -> None:
        db = str(self.db)
        done = self.cli_local("user", "add", name, "--role", role, "--db", db)
        assert done.returncode == 0, done.stderr
        made = self.cli_local("token", "create", name, "--expires", "1d", "--db", db)
        assert made.returncode == 0, made.stderr
        self.tokens[name] = made.stdout.strip()
        path = self.home / f"{name}.token"
        path.write_text(self.tokens[name] + "\n")
        path.chmod(0o600)
        self.files[name] = path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_")}
        env.update({"OPSFLOW_HOME": str(self.home / "nostore"), "OPSFLOW_PROJECT": "none", "PYTHONPATH": str(ROOT),
                    "COLUMNS": "200", **extra})
        return env

    def cli_local(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsflow", *args], capture_output=True, text=True,
                              env=self.env(), cwd=ROOT, timeout=120)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "opsflow", *args, "--server", self.serve.url]

    def as_(self, who: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, cwd=ROOT, timeout=120,
                              env=self.env(**({"OPSFLOW_TOKEN_FILE": str(self.files[who])} | env)))
        for token in self.tokens.values():
            assert token not in proc.stdout + proc.stderr
        return proc

    def start(self, who: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT, env=self.env(OPSFLOW_TOKEN_FILE=str(self.files[who])))

    def runs(self, who: str, *filters: str) -> list[dict[str, Any]]:
        proc = self.as_(who, "history", "--json", *filters)
        assert proc.returncode == 0, proc.stderr
        rows: list[dict[str, Any]] = json.loads(proc.stdout)
        return rows

    def waiting(self, who: str, started_by: str) -> str:
        return str(wait_for(lambda: next((r["id"] for r in self.runs(who, "--status", "waiting", "--runbook", "gated")
                                          if r["started_by"] == started_by), None), 60, "a gated run to wait"))


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    home = tmp_path_factory.mktemp("remote")
    serve_home = home / "serve"
    serve_home.mkdir()
    r = Remote(home, serve_home / "opsflow.db")  # users first, in the store the service opens
    r.add("alice", "operator")
    r.add("bob", "approver")
    r.serve = Serve(serve_home, insecure=False)
    yield r
    r.serve.stop()


def test_a_run_through_the_server_waits_for_another_person_and_finishes(remote: Remote) -> None:
    proc = remote.start("alice", "run", "gated", "--json")
    try:
        run_id = remote.waiting("bob", "alice")
        mine = remote.as_("alice", "approve", run_id)
        assert mine.returncode == 2, mine.stderr
        assert "alice (operator) may not approve" in mine.stderr and "Traceback" not in mine.stderr
        ok = remote.as_("bob", "approve", run_id, "--comment", "go")
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == f"run {run_id}: step 'ask' approved by bob"
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    record = json.loads(out)
    assert (record["id"], record["status"], record["started_by"], record["trigger"]) == \
        (run_id, "succeeded", "alice", "api")
    assert [(r["step"], r["host"], r["status"]) for r in record["results"]] == \
        [("ask", "a", "ok"), ("after", "a", "changed")]
    assert "waiting for approval: go on?" in err and f"opsflow approve {run_id}" in err
    assert "▶ after (local)" in err and f"run {run_id} succeeded" in err
    row = next(r for r in remote.runs("alice") if r["id"] == run_id)
    assert (row["started_by"], row["status"]) == ("alice", "succeeded")
    shown = remote.as_("bob", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "after" in shown.stdout and "approved" in shown.stdout


def test_four_eyes_refuses_an_approver_their_own_run_and_deny_fails_it(remote: Remote) -> None:
    proc = remote.start("bob", "run", "gated", "-q")
    try:
        run_id = remote.waiting("alice", "bob")
        own = remote.as_("bob", "approve", run_id)
        assert own.returncode == 2
        assert "bob started this run and cannot approve it too (four-eyes)" in own.stderr
        assert len(own.stderr.strip().splitlines()) == 1
        denied = remote.as_("bob", "deny", run_id, "-m", "not now")
        assert denied.returncode == 0 and "denied by bob" in denied.stdout
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, err  # as a local run: failed → 1
    assert err == ""  # -q: no progress


def test_a_failed_run_is_resumed_on_the_server(remote: Remote) -> None:
    marker = remote.home / "marker"
    (remote.serve.runbooks / "flaky.yaml").write_text(FLAKY.format(marker=marker))
    failed = remote.as_("alice", "run", "flaky", "--json")
    assert failed.returncode == 1, failed.stderr
    run_id = json.loads(failed.stdout)["id"]
    assert json.loads(failed.stdout)["status"] == "failed" and "failed" in failed.stderr
    marker.write_text("")
    resumed = remote.as_("alice", "resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads(resumed.stdout)
    assert record["status"] == "succeeded" and record["parent_run"] == run_id
    # what the failed run completed is skipped, the step that failed runs again
    assert [(r["step"], r["status"]) for r in record["results"]] == [("first", "skipped"), ("needs-marker", "changed")]


def test_local_only_options_are_refused_with_a_server(remote: Remote) -> None:
    proc = remote.as_("alice", "run", "gated", "--db", str(remote.home / "x.db"))
    assert proc.returncode == 2 and "--db: not with --server" in proc.stderr


def test_a_wrong_token_gets_one_clear_line_and_exit_2(remote: Remote) -> None:
    wrong = remote.tokens["alice"][:-4] + "AAAA"
    before = len(remote.runs("bob"))
    for args in (("history",), ("run", "hello")):
        proc = remote.as_("alice", *args, OPSFLOW_TOKEN=wrong)  # the variable wins over the file
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (f"opsflow: error: {remote.serve.url}: the server refused the token (expired, "
                                       "revoked or wrong): see `opsflow token list`")
        assert wrong not in proc.stderr and proc.stdout == ""
    assert len(remote.runs("bob")) == before


def test_a_token_file_others_may_read_is_refused(remote: Remote) -> None:
    loose = remote.home / "loose.token"
    loose.write_text(remote.tokens["alice"] + "\n")
    loose.chmod(0o644)
    before = len(remote.runs("bob"))
    proc = remote.as_("alice", "run", "hello", OPSFLOW_TOKEN_FILE=str(loose))
    assert proc.returncode == 2
    assert f"token file {loose} is accessible by group or others (mode 0644): refused" in proc.stderr
    assert f"chmod 600 {loose}" in proc.stderr
    assert len(remote.runs("bob")) == before
    none = subprocess.run(remote.argv("history"), capture_output=True, text=True, cwd=ROOT, env=remote.env(),
                          timeout=60)
    assert none.returncode == 2 and "no token" in none.stderr


def test_a_closed_port_and_an_untrusted_certificate_are_named(remote: Remote, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = remote.env(OPSFLOW_TOKEN_FILE=str(remote.files["alice"]))
    closed = subprocess.run([sys.executable, "-m", "opsflow", "history", "--server", f"http://127.0.0.1:{port}"],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert closed.returncode == 2
    assert closed.stderr.strip() == (f"opsflow: error: http://127.0.0.1:{port}: GET /api/v1/runs: connection refused "
                                     "(is opsflow serve running there?)")
    clear = subprocess.run([sys.executable, "-m", "opsflow", "history", "--server", "http://ops.example.org"],
                           capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert clear.returncode == 2 and "plain http would send the token in clear text" in clear.stderr
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    db = tmp_path / "home" / "opsflow.db"
    db.parent.mkdir()
    assert remote.cli_local("user", "add", "carol", "--role", "viewer", "--db", str(db)).returncode == 0
    token = remote.cli_local("token", "create", "carol", "--db", str(db)).stdout.strip()
    (tmp_path / "carol.token").write_text(token)
    (tmp_path / "carol.token").chmod(0o600)
    env["OPSFLOW_TOKEN_FILE"] = str(tmp_path / "carol.token")
    tls = Serve(tmp_path / "home", "--tls-cert", str(cert), "--tls-key", str(key), insecure=False)
    try:
        argv = [sys.executable, "-m", "opsflow", "history", "--json", "--server", tls.url]
        untrusted = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
        assert untrusted.returncode == 2
        assert "TLS: the server's certificate is not trusted" in untrusted.stderr and "--ca-file" in untrusted.stderr
        assert len(untrusted.stderr.strip().splitlines()) == 1
        trusted = subprocess.run([*argv, "--ca-file", str(cert)], capture_output=True, text=True, cwd=ROOT, env=env,
                                 timeout=60)
        assert trusted.returncode == 0, trusted.stderr
        assert json.loads(trusted.stdout) == [] and token not in trusted.stdout + trusted.stderr + untrusted.stderr
    finally:
        tls.stop()


def test_the_project_file_names_the_server_and_the_token_file(remote: Remote, tmp_path: Path) -> None:
    (tmp_path / "ops.token").write_text(remote.tokens["bob"] + "\n")
    (tmp_path / "ops.token").chmod(0o600)
    project = tmp_path / "opsflow.toml"
    project.write_text(f'server = "{remote.serve.url}"\ntoken_file = "ops.token"\n')  # relative to the file
    env = remote.env(OPSFLOW_PROJECT=str(project))
    proc = subprocess.run([sys.executable, "-m", "opsflow", "history", "--json", "--runbook", "gated"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert {r["started_by"] for r in json.loads(proc.stdout)} == {"alice", "bob"}
    local = subprocess.run([sys.executable, "-m", "opsflow", "history", "--json"], capture_output=True, text=True,
                           cwd=ROOT, env=remote.env(), timeout=60)
    assert local.returncode == 0 and json.loads(local.stdout) == []  # no server: this machine's (empty) store
