"""The CLI on a local store honours the roles of the store's users: when $OPSFLOW_USER names one, a viewer may
not run, an operator may not approve, a runbook- or group-scoped user stays in its scope, and nothing is
recorded when refused. A name the store does not know (or no $OPSFLOW_USER) works as before."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from opsflow.cli import main
from opsflow.results import RunStatus
from opsflow.store import open_store
from opsflow.store.base import RunRecord

HELLO = "name: hello\ntargets: all\nsteps:\n  - name: greet\n    local: [echo, 'hi {{ inventory_hostname }}']\n"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("OPSFLOW_PROJECT", "none")
    monkeypatch.delenv("OPSFLOW_USER", raising=False)
    monkeypatch.delenv("OPSFLOW_SERVER", raising=False)
    monkeypatch.delenv("CI", raising=False)
    (tmp_path / "hello.yaml").write_text(HELLO)
    (tmp_path / "hosts.yml").write_text("all:\n  children:\n    web:\n      hosts:\n        web1: {ansible_host: "
                                        "127.0.0.1}\n    db:\n      hosts:\n        db1: {ansible_host: 127.0.0.1}\n")
    store = open_store(str(tmp_path / "opsflow.db"), reap=False)
    store.add_user("vera", "viewer", "test")
    store.add_user("olga", "operator", "test")
    store.add_user("wes", "operator", "test", groups=["web"])
    store.add_user("pat", "operator", "test", runbooks=["patch-*"])
    store.close()
    return tmp_path


def _cli(home: Path, user: str | None, *args: str) -> Result:
    env = {"OPSFLOW_USER": user} if user else {}
    return CliRunner().invoke(main, [*args, "--db", str(home / "opsflow.db")], env=env)


def _run(home: Path, user: str | None, *extra: str) -> Result:
    return _cli(home, user, "run", str(home / "hello.yaml"), "-i", str(home / "hosts.yml"), "-q", *extra)


def _runs(home: Path) -> list[dict[str, Any]]:
    store = open_store(str(home / "opsflow.db"), reap=False)
    try:
        rows: list[dict[str, Any]] = store.query_runs(limit=100)[0]
        return rows
    finally:
        store.close()


def test_the_cli_honours_the_role_of_opsflow_user(home: Path) -> None:
    refused = _run(home, "vera")
    assert refused.exit_code == 2, refused.output
    assert ("$OPSFLOW_USER vera has the role viewer in the store: it may not run runbook hello (an admin changes roles "
            "with opsflow user)") in refused.output
    scoped = _run(home, "pat")
    assert scoped.exit_code == 2 and "has the role operator (runbooks patch-*) in the store: it may not run" in scoped.output
    outside = _run(home, "wes")  # targets all: db1 is outside its group
    assert outside.exit_code == 2
    assert "$OPSFLOW_USER wes (operator) may not run runs on hosts outside its inventory groups (web): db1" in \
        outside.output
    assert _runs(home) == []  # nothing recorded

    assert _run(home, "wes", "--limit", "web").exit_code == 0  # its group's hosts only
    assert _run(home, "olga").exit_code == 0
    assert _run(home, "someone-else").exit_code == 0  # not a user of the store: as before
    assert _run(home, None).exit_code == 0
    assert [r["started_by"] for r in _runs(home)][::-1][:2] == ["wes", "olga"]


def test_an_operator_of_the_store_may_not_approve_from_the_cli(home: Path) -> None:
    store = open_store(str(home / "opsflow.db"), reap=False)
    store.create_run(RunRecord(id="r1", runbook="hello", runbook_path=str(home / "hello.yaml"), runbook_hash="h",
                               params={}, trigger="cli", started_by="someone", started_at=time.time(),
                               status=RunStatus.WAITING, hosts={"web1": "pending"}))
    store.request_approval("r1", 0, "go?", "Go on?", time.time() + 600)
    store.close()
    refused = _cli(home, "olga", "approve", "r1")
    assert refused.exit_code == 2 and "$OPSFLOW_USER olga has the role operator in the store: it may not approve" in \
        refused.output
    assert _cli(home, "olga", "deny", "r1").exit_code == 2
    ok = _cli(home, "another-approver", "approve", "r1")
    assert ok.exit_code == 0, ok.output
