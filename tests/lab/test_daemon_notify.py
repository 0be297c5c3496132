"""The event daemon tells people: a failed automatic remediation, a breaker that opened and a run waiting for
approval reach the project file's [notify] routes (a real Apprise json:// webhook to a local receiver); the
run's secrets never do. (Local steps: no lab host is needed.)"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Cli, Hooks, webhook_receiver, write_runbook
from tests.lab.test_daemon import Daemon, actions, am_alert, wait_for

CANARY = "notify-canary-7d2f"


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    with webhook_receiver() as server:
        yield server


def test_failures_breakers_and_approvals_are_announced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       hooks: Hooks) -> None:
    port = hooks.server_address[1]
    project = tmp_path / "opsflow.toml"
    project.write_text(f'[notify]\ncontacts = {{oncall = ["json://127.0.0.1:{port}/oncall"]}}\n'
                       'routes = [{to = "oncall", on = ["run_failed", "breaker_opened", "approval_waiting"]}]\n')
    monkeypatch.setenv("OPSFLOW_PROJECT", str(project))
    monkeypatch.setenv("OPSFLOW_PARAM_TOKEN", CANARY)  # the secret param of the failing remediation
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  children:\n    servers:\n      hosts:\n        h1: {ansible_host: 192.0.2.1}\n"
                         "        h2: {ansible_host: 192.0.2.2}\n")
    rb = tmp_path / "rb"
    write_runbook(rb, "broken", """\
        name: broken
        targets: servers
        params:
          token: {type: str, secret: true}
        triggers:
          events:
            - match: {name: BrokenAlert}
              host: labels.instance
              cooldown: 0
              breaker: 1
        steps:
          - name: fix
            local: [sh, -c, 'echo "token $0"; exit 3', "{{ token }}"]
    """)
    write_runbook(rb, "careful", """\
        name: careful
        targets: servers
        triggers:
          events:
            - match: {name: CarefulAlert}
              host: labels.instance
              cooldown: 0
        steps:
          - name: go ahead?
            approve: {message: "restart the app on this host?", timeout: 2}
    """)
    cli = Cli(tmp_path / "home", inventory)
    d = Daemon(cli, rb)
    try:
        d.alerts(am_alert("BrokenAlert", instance="h1"))
        d.alerts(am_alert("CarefulAlert", instance="h2"))
        wait_for(lambda: len([a for a in actions(cli) if a["run_status"]]) == 2, 30, "both runs to end")
        wait_for(lambda: len(hooks.requests) >= 3, 20, "three notifications")
    finally:
        if d.proc.poll() is None and d.stop() != 0:
            d.stop(signal.SIGKILL, 10)
    bodies = [json.loads(r["body"]) for r in hooks.requests]
    titles = sorted(b["title"] for b in bodies)
    assert any(t.startswith("automatic remediation broken on h1: failed") for t in titles), titles
    assert any(t == "circuit breaker of broken opened" for t in titles), titles
    assert any("waits for approval" in t and "careful on h2" in t for t in titles), titles
    waiting = next(b for b in bodies if "waits for approval" in b["title"])
    assert "restart the app on this host?" in waiting["message"] and "opsflow approve" in waiting["message"]
    assert all(r["path"] == "/oncall" for r in hooks.requests)
    assert CANARY not in json.dumps(bodies)
