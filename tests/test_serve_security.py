"""opsflow serve refuses what it must: every API route without a token, with a wrong one, and with a role
too low answers 401/403 and does nothing; error bodies carry no stack trace and no secret; TLS with a
self-signed certificate made here; no start without authentication off loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsflow.store.sql import SqlStore
from tests.helpers import ROOT, wait_for
from tests.test_serve import HOOK_TOKEN, Serve, stream

ROLES = ("viewer", "operator", "approver", "admin")
# (method, path, the least role that may): {run} is a run of the operator's, made before
ROUTES: list[tuple[str, str, str]] = [
    ("GET", "/api/v1/runs", "viewer"), ("GET", "/api/v1/runs/{run}", "viewer"),
    ("GET", "/api/v1/runs/{run}/stream", "viewer"), ("GET", "/api/v1/events", "viewer"),
    ("GET", "/api/v1/schedules", "viewer"), ("GET", "/api/v1/schedules/log", "viewer"),
    ("GET", "/api/v1/reports", "viewer"), ("GET", "/api/v1/slo", "viewer"), ("GET", "/api/v1/reviews", "viewer"),
    ("GET", "/api/v1/reviews/R-nosuch", "viewer"), ("GET", "/api/v1/audit", "admin"),
    ("POST", "/api/v1/runs", "operator"), ("POST", "/api/v1/runs/{run}/approve", "approver"),
    ("POST", "/api/v1/runs/{run}/deny", "approver"), ("POST", "/api/v1/runs/{run}/cancel", "operator"),
    ("POST", "/api/v1/runs/{run}/resume", "operator"),
]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, dict[str, str], str]]:
    home = tmp_path_factory.mktemp("secured")
    store = SqlStore.connect(str(home / "opsflow.db"))
    tokens = {}
    for role in ROLES:
        store.add_user(f"{role}1", role, "test")
        tokens[role] = store.create_token(f"{role}1", "test")[1]
    for role in ("operator", "approver"):  # scoped to the inventory group web (host a; b is in db)
        store.add_user(f"web-{role}", role, "test", groups=["web"])
        tokens[f"web-{role}"] = store.create_token(f"web-{role}", "test")[1]
    store.close()
    s = Serve(home, insecure=False)
    s.inventory.write_text("all:\n  children:\n    web:\n      hosts:\n        a: {ansible_host: 127.0.0.1}\n"
                           "    db:\n      hosts:\n        b: {ansible_host: 127.0.0.1}\n")
    (s.runbooks / "flaky.yaml").write_text("name: flaky\ntargets: all\nsteps:\n  - name: fails on b\n"
                                           "    local: [sh, -c, 'test {{ inventory_hostname }} != b']\n")
    run = s.client.post("/api/v1/runs", json={"runbook": "gated"}, headers=auth(tokens["operator"]))
    assert run.status_code == 202, run.text
    run_id = run.json()["id"]
    wait_for(lambda: s.client.get(f"/api/v1/runs/{run_id}", headers=auth(tokens["viewer"])).json()["run"]["status"]
             == "waiting", 30, "the gated run to wait")
    yield s, tokens, run_id
    s.stop()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _call(s: Serve, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body: dict[str, Any] | None = {"runbook": "hello"} if path == "/api/v1/runs" and method == "POST" else None
    return s.client.request(method, path, json=body, headers=headers)


def _clean(resp: httpx.Response, *secrets: str) -> None:
    assert set(resp.json()) == {"error", "message"}, resp.text
    for needle in ("Traceback", "File \"", *secrets):
        assert needle not in resp.text


def _state(s: Serve, admin: str) -> tuple[int, int, str]:
    runs = s.client.get("/api/v1/runs", params={"limit": 1000}, headers=auth(admin)).json()["runs"]
    audit = s.client.get("/api/v1/audit", headers=auth(admin)).json()["audit"]
    gated = next(r for r in runs if r["runbook"] == "gated")
    return len(runs), len(audit), gated["status"]


@pytest.mark.parametrize(("method", "path", "need"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_every_route_refuses_missing_wrong_and_too_low_credentials(secured: tuple[Serve, dict[str, str], str],
                                                                   method: str, path: str, need: str) -> None:
    s, tokens, run_id = secured
    path = path.format(run=run_id)
    before = _state(s, tokens["admin"])
    wrong = tokens["admin"][:-4] + "AAAA"
    for headers in ({}, auth("nonsense"), auth(wrong), {"Authorization": "Basic YWRtaW46YWRtaW4="},
                    {"Cookie": "opsflow_session=forged"}):
        resp = _call(s, method, path, headers)
        assert resp.status_code == 401, (headers, resp.text)
        assert resp.headers["www-authenticate"].startswith("Bearer")
        _clean(resp, wrong, "YWRtaW46YWRtaW4=", "forged")
    for role in ROLES[:ROLES.index(need)]:
        resp = _call(s, method, path, auth(tokens[role]))
        assert resp.status_code == 403, (role, resp.text)
        _clean(resp, tokens[role])
    assert _state(s, tokens["admin"]) == before  # nothing started, decided, canceled or audited


def test_roles_that_may_do_it_do_it_and_four_eyes_holds(secured: tuple[Serve, dict[str, str], str]) -> None:
    s, tokens, run_id = secured
    assert s.client.get("/api/v1/runs", headers=auth(tokens["viewer"])).status_code == 200
    own = s.client.post(f"/api/v1/runs/{run_id}/approve", headers=auth(tokens["admin"]))
    assert own.status_code == 200  # admin1 did not start it: operator1 did
    assert stream(s.client, run_id, auth(tokens["viewer"]))[-1][1]["status"] == "succeeded"
    mine = s.client.post("/api/v1/runs", json={"runbook": "gated"}, headers=auth(tokens["approver"])).json()["id"]
    wait_for(lambda: s.client.get(f"/api/v1/runs/{mine}", headers=auth(tokens["viewer"])).json()["run"]["status"]
             == "waiting", 30, "waiting")
    refused = s.client.post(f"/api/v1/runs/{mine}/approve", headers=auth(tokens["approver"]))
    assert refused.status_code == 403 and refused.json()["error"] == "four_eyes"
    assert s.client.post(f"/api/v1/runs/{mine}/deny", headers=auth(tokens["approver"])).status_code == 200
    audit = s.client.get("/api/v1/audit", headers=auth(tokens["admin"])).json()["audit"]
    approve = next(a for a in audit if a["action"] == "approve" and a["target"] == run_id)
    assert approve["actor"] == "admin1" and "via token " in approve["detail"]
    assert next(a for a in audit if a["action"] == "run_start" and a["target"] == mine)["actor"] == "approver1"
    for token in tokens.values():
        assert token not in str(audit)


def test_a_principal_scoped_to_groups_acts_only_on_their_hosts(secured: tuple[Serve, dict[str, str], str]) -> None:
    s, tokens, _ = secured
    op, approver, admin = auth(tokens["web-operator"]), auth(tokens["web-approver"]), auth(tokens["admin"])
    partial = s.client.post("/api/v1/runs", json={"runbook": "flaky"}, headers=admin).json()["id"]
    assert stream(s.client, partial, admin)[-1][1]["status"] == "partial"  # a ok, b failed
    before = _state(s, tokens["admin"])
    for path, body, headers in (("/api/v1/runs", {"runbook": "hello"}, op),  # targets all: a and b
                                ("/api/v1/runs", {"runbook": "hello", "limit": "db"}, op),
                                (f"/api/v1/runs/{partial}/resume", {}, op), (f"/api/v1/runs/{partial}/cancel", {}, op),
                                (f"/api/v1/runs/{partial}/approve", {}, approver),
                                (f"/api/v1/runs/{partial}/deny", {}, approver)):
        resp = s.client.post(path, json=body, headers=headers)
        assert resp.status_code == 403, (path, resp.text)
        assert resp.json()["error"] == "forbidden"
        assert resp.json()["message"].endswith("runs on hosts outside its inventory groups (web): b")
    assert _state(s, tokens["admin"]) == before  # nothing started, resumed, canceled, decided or audited
    mine = s.client.post("/api/v1/runs", json={"runbook": "hello", "limit": "web"}, headers=op)
    assert mine.status_code == 202, mine.text  # only hosts of its groups: allowed
    assert stream(s.client, mine.json()["id"], op)[-1][1]["status"] == "succeeded"
    assert s.client.get(f"/api/v1/runs/{partial}", headers=op).status_code == 200  # it still reads everything


def test_errors_are_json_without_traces_or_values_sent(secured: tuple[Serve, dict[str, str], str]) -> None:
    s, tokens, _ = secured
    secret = "s3cr3t-" + "x" * 20
    bad = s.client.post("/api/v1/runs", json={"runbook": ["not", "a", "name", secret]}, headers=auth(tokens["admin"]))
    assert bad.status_code == 422
    _clean(bad, secret)
    for path, code in (("/api/v1/runs/nosuch", 404), ("/api/v1/nosuch", 404), ("/api/v1/runs?limit=0", 422)):
        resp = s.client.get(path, headers=auth(tokens["viewer"]))
        assert resp.status_code == code
        _clean(resp)
    log = s.log.read_text()
    assert secret not in log and all(t not in log for t in tokens.values()) and HOOK_TOKEN not in log


def test_tls_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    s = Serve(tmp_path / "home", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert s.url.startswith("https://127.0.0.1:")
        assert s.client.get("/healthz").json()["status"] == "ok"
        assert s.client.get("/api/v1/runs").status_code == 200  # --insecure: the local admin
        with pytest.raises(httpx.ConnectError):  # not trusted without the certificate
            httpx.get(s.url + "/healthz", timeout=10)
        with pytest.raises(httpx.HTTPError):
            httpx.get(s.url.replace("https://", "http://") + "/healthz", timeout=10)
    finally:
        s.stop()


def test_no_start_without_authentication_off_loopback(tmp_path: Path) -> None:
    for args in (["--listen", "0.0.0.0:0", "--insecure"], ["--listen", "127.0.0.1:0"]):
        proc = subprocess.run([sys.executable, "-m", "opsflow", "serve", *args, "--db", str(tmp_path / "s.db")],
                              capture_output=True, text=True, cwd=ROOT, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "OPSFLOW_HOME": str(tmp_path),
                                   "OPSFLOW_PROJECT": "none"})
        assert proc.returncode == 2 and "refusing to start without authentication" in proc.stderr, proc.stderr
    assert not (tmp_path / "s.db").exists()  # refused before anything was opened
