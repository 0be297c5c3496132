"""The web console's pages through FastAPI's TestClient on a real SQLite store: sessions, CSRF, escaping,
four-eyes. The console router alone, on an app whose state is shaped like the service's (``ctx.store``)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from opsflow.results import HostStatus, RunStatus, StepResult
from opsflow.server.console.routes import router
from opsflow.store import open_store
from opsflow.store.base import RunRecord

PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-12", "vera": "vera-password-1"}
HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'
PAGES = ["/runs", "/runs/abc", "/hosts/srv1", "/schedule", "/slo", "/events", "/approvals"]


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPSFLOW_SCHEDULES", str(tmp_path / "no-schedules"))
    monkeypatch.setenv("OPSFLOW_SERVICES", str(tmp_path / "no-services"))
    monkeypatch.setenv("OPSFLOW_PROJECT", "none")
    s = open_store(str(tmp_path / "opsflow.db"), reap=False)
    s.add_user("alice", "operator", "test", password=PASSWORDS["alice"])
    s.add_user("bob", "approver", "test", password=PASSWORDS["bob"])
    s.add_user("vera", "viewer", "test", password=PASSWORDS["vera"])
    yield s
    s.close()


def _client(store: Any, base_url: str = "http://testserver") -> TestClient:
    app = FastAPI()
    app.state.ctx = SimpleNamespace(store=store, scheduler=None)
    app.include_router(router)
    return TestClient(app, base_url=base_url, follow_redirects=False)


def _login(client: TestClient, user: str) -> str:
    r = client.post("/login", data={"username": user, "password": PASSWORDS[user], "next": "/runs"})
    assert r.status_code == 303, r.text
    page = client.get("/runs")
    assert page.status_code == 200
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found
    return found[1]


def _run(store: Any, runbook: str = "patch", started_by: str = "alice", hosts: tuple[str, ...] = ("srv1", "srv2"),
         status: RunStatus = RunStatus.WAITING) -> str:
    run_id = f"r{time.time_ns():x}"
    store.create_run(RunRecord(id=run_id, runbook=runbook, runbook_path="/nowhere/patch.yaml", runbook_hash="h",
                               params={"note": HOSTILE}, trigger="api", started_by=started_by,
                               started_at=time.time(), status=status, hosts={h: "pending" for h in hosts}))
    now = time.time()
    for host in hosts:
        store.add_result(run_id, StepResult(step_index=0, step="check disk", action="local", host=host,
                                            status=HostStatus.OK, started_at=now, ended_at=now + 0.25,
                                            stdout=f"out of {host}: {HOSTILE}", stderr=""))
    return run_id


def test_every_page_redirects_to_login_without_a_session(store: Any) -> None:
    client = _client(store)
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next="), path
    client.cookies.set("opsflow_session", "not-a-session")
    assert client.get("/runs").status_code == 303
    assert client.get("/login").status_code == 200


def test_a_failed_login_does_not_tell_which_was_wrong(store: Any) -> None:
    client = _client(store)
    wrong_password = client.post("/login", data={"username": "alice", "password": "not-her-password"})
    no_such_user = client.post("/login", data={"username": "mallory", "password": "whatever-it-is"})
    assert wrong_password.status_code == no_such_user.status_code == 401
    texts = [re.search(r'role="alert"[^>]*>(.*?)</p>', r.text, re.S) for r in (wrong_password, no_such_user)]
    assert texts[0] and texts[1] and texts[0][1] == texts[1][1]
    assert "user name or the password" in texts[0][1]
    assert "opsflow_session" not in wrong_password.headers.get("set-cookie", "")


def test_login_is_rate_limited_by_the_store(store: Any) -> None:
    client = _client(store)
    codes = [client.post("/login", data={"username": "bob", "password": f"wrong-{i}-password"}).status_code
             for i in range(7)]
    assert codes[:5] == [401] * 5 and codes[-1] == 429
    refused = client.post("/login", data={"username": "bob", "password": PASSWORDS["bob"]})
    assert refused.status_code == 429 and "Too many failed logins" in refused.text


def test_the_session_cookie_is_httponly_strict_and_secure_over_tls(store: Any) -> None:
    plain = _client(store).post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
    cookie = plain.headers["set-cookie"].lower()
    assert "opsflow_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie
    tls = _client(store, "https://testserver").post("/login", data={"username": "alice",
                                                                     "password": PASSWORDS["alice"]})
    assert "; secure" in tls.headers["set-cookie"].lower()


def test_login_goes_back_to_the_page_but_never_elsewhere(store: Any) -> None:
    client = _client(store)
    r = client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"], "next": "/events?since=1h"})
    assert r.headers["location"] == "/events?since=1h"
    client = _client(store)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"], "next": target})
        assert r.headers["location"] == "/runs", target


def test_logout_without_the_csrf_token_is_refused(store: Any) -> None:
    client = _client(store)
    csrf = _login(client, "alice")
    refused = client.post("/logout", data={})
    assert refused.status_code == 403
    assert client.post("/logout", data={"csrf": "0" * len(csrf)}).status_code == 403
    assert client.get("/runs").status_code == 200  # still signed in
    done = client.post("/logout", data={"csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/login"
    assert client.get("/runs").status_code == 303


def test_a_hostile_runbook_name_and_output_are_escaped(store: Any) -> None:
    run_id = _run(store, runbook=HOSTILE, hosts=("srv1", HOSTILE))
    client = _client(store)
    _login(client, "vera")
    for path in ("/runs", f"/runs/{run_id}", f"/runs/{run_id}?host=srv1&step=0&phase=main",
                 f"/runs/{run_id}/live", "/hosts/srv1"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
        assert "&lt;script&gt;alert(" in page.text, path
    output = client.get(f"/runs/{run_id}/output", params={"host": "srv1", "step": "0", "phase": "main"})
    assert "out of srv1: &lt;script&gt;" in output.text and "<script>" not in output.text
    assert "default-src 'self'" in output.headers["content-security-policy"]


def test_the_runs_list_filters_and_pages_on_the_store(store: Any) -> None:
    for i in range(55):
        _run(store, runbook="nightly" if i % 2 else "patch", started_by="alice" if i < 50 else "bob",
             status=RunStatus.SUCCEEDED if i % 3 else RunStatus.FAILED)
    client = _client(store)
    _login(client, "vera")
    first = client.get("/runs")
    assert first.text.count('class="mono" href="/runs/') == 50
    more = re.search(r'href="(/runs\?cursor=[^"]+)" rel="next"', first.text)
    assert more
    second = client.get(more[1].replace("&amp;", "&"))
    assert second.text.count('class="mono" href="/runs/') == 5 and 'rel="next"' not in second.text
    bob = client.get("/runs", params={"started_by": "bob"})
    assert bob.text.count('class="mono" href="/runs/') == 5
    failed_nightly = client.get("/runs", params={"runbook": "nightly", "status": "failed"})
    expected = sum(1 for i in range(55) if i % 2 and not i % 3)
    assert failed_nightly.text.count('class="mono" href="/runs/') == expected


def _pending(store: Any, started_by: str) -> str:
    run_id = _run(store, started_by=started_by)
    store.request_approval(run_id, 1, "go ahead", "Patch the database servers?", time.time() + 600)
    return run_id


def test_four_eyes_the_starter_sees_why_and_an_approver_may_decide(store: Any) -> None:
    run_id = _pending(store, started_by="bob")  # bob, an approver, started it: he may not approve it
    bob = _client(store)
    _login(bob, "bob")
    page = bob.get(f"/runs/{run_id}").text
    approve = re.search(r'<button[^>]*id="approve"[^>]*>', page)
    assert approve and "disabled" in approve[0]
    assert "bob started this run and cannot approve it too (four-eyes)" in page
    mine = bob.get("/approvals").text
    assert "Nothing is waiting for you" in mine and "cannot approve it too" in mine

    other = _pending(store, started_by="alice")
    page = bob.get(f"/runs/{other}").text
    approve = re.search(r'<button[^>]*id="approve"[^>]*>', page)
    assert approve and "disabled" not in approve[0]
    assert f'data-post="/api/v1/runs/{other}/approve"' in approve[0]
    assert f"/api/v1/runs/{other}/approve" in bob.get("/approvals").text

    alice = _client(store)
    _login(alice, "alice")  # an operator: no approve button enabled, with the reason
    page = alice.get(f"/runs/{run_id}").text
    approve = re.search(r'<button[^>]*id="approve"[^>]*>', page)
    assert approve and "disabled" in approve[0] and "needs the approver role" in page
    cancel = re.search(r'<button[^>]*id="cancel"[^>]*>', page)
    assert cancel and "disabled" not in cancel[0]


def test_the_static_files_are_served(store: Any) -> None:
    client = _client(store)
    css = client.get("/console/static/console.css")
    js = client.get("/console/static/console.js")
    assert css.status_code == js.status_code == 200
    assert css.headers["content-type"].startswith("text/css") and "text/javascript" in js.headers["content-type"]
    assert "X-CSRF-Token" in js.text
    assert client.get("/console/static/../web.py").status_code == 404
