"""The console's start form (/runs/new): operators only, the runbooks of the service's directory in their scope,
each with its params as hints. The console router on a real SQLite store."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from opsflow.server.console.routes import router
from opsflow.store import open_store

PASSWORD = "a-long-enough-password"
CANARY = """name: canary
description: Probe the app.
params:
  fail_on: {default: none}
  token: {secret: true, required: false}
  mode: {choices: [fast, slow]}
targets: all
steps:
  - name: probe
    local: [echo, '{{ mode }}']
"""


def _client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, Any]:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPSFLOW_PROJECT", "none")
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "canary.yaml").write_text(CANARY)
    (runbooks / "restart.yaml").write_text("name: restart\ntargets: all\nsteps:\n  - name: go\n    local: [echo, ok]\n")
    (runbooks / "broken.yaml").write_text("name: [broken\n")
    store = open_store(str(tmp_path / "opsflow.db"), reap=False)
    for name, role, scope in (("vera", "viewer", ()), ("alice", "operator", ()), ("rob", "operator", ("can*",))):
        store.add_user(name, role, "test", password=PASSWORD, runbooks=list(scope))
    app = FastAPI()
    app.state.ctx = SimpleNamespace(store=store, scheduler=None, runbooks=str(runbooks))
    app.include_router(router)
    return TestClient(app, follow_redirects=False), store


def _as(client: TestClient, user: str) -> TestClient:
    client.cookies.clear()
    assert client.post("/login", data={"username": user, "password": PASSWORD, "next": "/runs"}).status_code == 303
    return client


def test_the_start_form_is_for_operators_with_the_runbooks_of_their_scope(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    client, store = _client(tmp_path, monkeypatch)
    try:
        assert client.get("/runs/new").headers["location"].startswith("/login?next=%2Fruns%2Fnew")
        _as(client, "vera")
        refused = client.get("/runs/new")
        assert refused.status_code == 403 and "Starting a run needs the operator role (you are viewer)" in refused.text
        assert 'href="/runs/new"' not in client.get("/runs").text

        _as(client, "alice")
        assert 'href="/runs/new"' in client.get("/runs").text
        page = client.get("/runs/new", params={"runbook": "restart", "limit": "web1"})
        assert page.status_code == 200
        options = re.findall(r'<option value="([^"]+)"', page.text)
        assert options == ["canary", "restart"]  # the broken file is left out
        assert '<option value="restart" data-params="" data-targets="all" data-description="" selected>' in page.text
        assert 'value="web1"' in page.text
        hints = re.search(r'<option value="canary" data-params="([^"]*)"', page.text)
        assert hints and hints[1] == "fail_on=none\ntoken=  # secret\nmode=  # required; one of fast, slow"
        assert 'data-start="/api/v1/runs"' in page.text  # the form posts to the API, like the rerun button

        _as(client, "rob")
        assert re.findall(r'<option value="([^"]+)"', client.get("/runs/new").text) == ["canary"]
    finally:
        store.close()


def test_a_run_outside_the_viewers_groups_shows_its_buttons_disabled_with_why(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from opsflow.results import RunStatus
    from opsflow.store.base import RunRecord

    client, store = _client(tmp_path, monkeypatch)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    web:\n      hosts:\n        web1: {}\n    db:\n      hosts:\n"
                         "        db1: {}\n")
    client.app.state.ctx.inventory = str(inventory)  # type: ignore[attr-defined]
    store.add_user("wes", "operator", "test", password=PASSWORD, groups=["web"])
    try:
        for run_id, hosts in (("r-both", ("web1", "db1")), ("r-web", ("web1",))):
            store.create_run(RunRecord(id=run_id, runbook="restart", runbook_path="/x/restart.yaml", runbook_hash="h",
                                       params={}, trigger="api", started_by="alice", started_at=time.time(),
                                       status=RunStatus.RUNNING, hosts=dict.fromkeys(hosts, "pending")))
        _as(client, "wes")
        page = client.get("/runs/r-both").text
        assert re.search(r'<button type="button" disabled aria-describedby="why-cancel">Cancel run</button> '
                         r'<span class="why" id="why-cancel">needs the run&#39;s hosts in your inventory groups: db1<',
                         page)
        cancel = re.search(r'<button[^>]*id="cancel"[^>]*>', client.get("/runs/r-web").text)
        assert cancel and "disabled" not in cancel[0] and 'data-post="/api/v1/runs/r-web/cancel"' in cancel[0]

        store.add_user("wanda", "approver", "test", password=PASSWORD, groups=["web"])
        for run_id in ("r-both", "r-web"):
            store.request_approval(run_id, 0, "go?", "Go on?", time.time() + 600)
        _as(client, "wanda")
        inbox = client.get("/approvals").text
        assert "approving needs the run&#39;s hosts in your inventory groups: db1" in inbox
        assert 'data-post="/api/v1/runs/r-web/approve"' in inbox and "/api/v1/runs/r-both/approve" not in inbox
    finally:
        store.close()
