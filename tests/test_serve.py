"""opsflow serve end to end: the real service in a subprocess on a real port, runs of `local` steps.

A run started by POST /api/v1/runs streams each host×step result (SSE) and its end; runs are filtered
server-side; an approval step waits for POST .../approve (never by who started the run: four-eyes);
a running run is canceled; the hooks take an Alertmanager payload with the token (401 without);
/metrics passes `promtool check metrics`; SIGTERM drains and stops.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ROOT, wait_for

HOOK_TOKEN = "hook-token-" + uuid.uuid4().hex
RUNBOOKS = {
    "hello": "name: hello\ntargets: all\nsteps:\n  - name: greet\n    local: [echo, 'hi {{ inventory_hostname }}']\n"
             "  - name: pause\n    local: [sleep, '0.3']\n",
    "gated": "name: gated\ntargets: a\nsteps:\n  - name: ask\n    approve: {message: 'go on?', timeout: 60}\n"
             "  - name: after\n    local: [echo, approved]\n",
    "slow": "name: slow\ntargets: a\nsteps:\n  - name: long\n    local: [sleep, '30']\n  - name: never\n"
            "    local: [echo, never]\n",
}


class Serve:
    """`python -m opsflow serve` in a subprocess; its log in a file; the port from its 'listening on' line."""

    def __init__(self, home: Path, *args: str, insecure: bool = True) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.runbooks = home / "runbooks"
        self.runbooks.mkdir(exist_ok=True)
        for name, text in RUNBOOKS.items():
            (self.runbooks / f"{name}.yaml").write_text(text)
        self.inventory = home / "hosts.yml"
        self.inventory.write_text("all:\n  hosts:\n    a: {ansible_host: 127.0.0.1}\n    b: {ansible_host: 127.0.0.1}\n")
        token = home / "hook-token"
        token.write_text(HOOK_TOKEN + "\n")
        token.chmod(0o600)
        self.db = home / "opsflow.db"
        self.log = home / f"serve-{uuid.uuid4().hex[:6]}.log"
        argv = [sys.executable, "-m", "opsflow", "serve", "--listen", "127.0.0.1:0", "--runbooks", str(self.runbooks),
                "-i", str(self.inventory), "--db", str(self.db), "--token-file", str(token), "--no-schedule",
                "--drain-timeout", "5", "--grace", "1", *(["--insecure"] if insecure else []), *args]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env(), cwd=ROOT)
        line = wait_for(self._ready, 60, "opsflow serve to listen")
        self.url = line.split("listening on ")[1].split(" ")[0]
        self.client = httpx.Client(base_url=self.url, timeout=30, verify=self._verify(args))

    @staticmethod
    def _verify(args: tuple[str, ...]) -> Any:
        import ssl

        return ssl.create_default_context(cafile=args[args.index("--tls-cert") + 1]) if "--tls-cert" in args else True

    def env(self) -> dict[str, str]:
        import os

        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_") and k != "CI"}  # a CI run is trigger "ci"
        env.update(OPSFLOW_HOME=str(self.home), OPSFLOW_PROJECT="none", PYTHONPATH=str(ROOT))
        return env

    def _ready(self) -> str | None:
        text = self.log.read_text()
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited with {self.proc.returncode}:\n{text}")
        return next((ln for ln in text.splitlines() if "listening on http" in ln), None)  # http or https

    def cli(self, *args: str, timeout: float = 120) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "opsflow", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env(), cwd=ROOT)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def stream(client: httpx.Client, run_id: str, headers: dict[str, str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every server-sent event of the run's stream until its end."""
    out: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    with client.stream("GET", f"/api/v1/runs/{run_id}/stream", headers=headers) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append((kind, json.loads(line[6:])))
                if kind == "end":
                    break
    return out


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    s = Serve(tmp_path_factory.mktemp("serve"))
    yield s
    s.stop()


def test_a_run_started_over_the_api_streams_every_host_and_step_then_its_end(serve: Serve) -> None:
    resp = serve.client.post("/api/v1/runs", json={"runbook": "hello"})
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]
    events = stream(serve.client, run_id)
    results = [d for k, d in events if k == "result"]
    assert sorted((r["step"], r["host"]) for r in results) == [("greet", "a"), ("greet", "b"), ("pause", "a"),
                                                                 ("pause", "b")]
    assert {r["stdout"] for r in results if r["step"] == "greet"} == {"hi a\n", "hi b\n"}
    assert events[-1] == ("end", {"run_id": run_id, "status": "succeeded", "error": None})
    detail = serve.client.get(f"/api/v1/runs/{run_id}").json()
    assert detail["run"]["trigger"] == "api" and detail["run"]["started_by"] == "local"
    assert len(detail["results"]) == 4
    # a finished run's stream is read from the store: the same results, the same end
    again = stream(serve.client, run_id)
    assert len([k for k, _ in again if k == "result"]) == 4 and again[-1][1]["status"] == "succeeded"
    audit = serve.client.get("/api/v1/audit").json()["audit"]
    assert any(a["action"] == "run_start" and a["target"] == run_id and a["actor"] == "local" for a in audit)


def test_runs_are_filtered_and_paged_on_the_server(serve: Serve) -> None:
    ids = [serve.client.post("/api/v1/runs", json={"runbook": "hello", "limit": "a"}).json()["id"] for _ in range(3)]
    for run_id in ids:
        stream(serve.client, run_id)
    page = serve.client.get("/api/v1/runs", params={"runbook": "hello", "host": "a", "limit": 2}).json()
    assert len(page["runs"]) == 2 and page["next_cursor"]
    rest = serve.client.get("/api/v1/runs", params={"runbook": "hello", "host": "a", "limit": 2,
                                                    "cursor": page["next_cursor"]}).json()
    seen = [r["id"] for r in page["runs"] + rest["runs"]]
    assert len(seen) == len(set(seen)) and set(ids) <= set(seen)
    starts = [r["started_at"] for r in page["runs"] + rest["runs"]]
    assert starts == sorted(starts, reverse=True)
    assert serve.client.get("/api/v1/runs", params={"runbook": "gated"}).json()["runs"] == []
    only_b = serve.client.get("/api/v1/runs", params={"host": "b", "limit": 1000}).json()["runs"]
    assert not set(ids) & {r["id"] for r in only_b}
    assert serve.client.get("/api/v1/runs", params={"cursor": "garbage!"}).status_code == 400


def test_runbooks_outside_the_runbooks_directory_are_never_started(serve: Serve) -> None:
    outside = serve.home / "outside.yaml"
    outside.write_text(RUNBOOKS["hello"].replace("name: hello", "name: outside"))
    (serve.runbooks / "escape.yaml").unlink(missing_ok=True)
    (serve.runbooks / "escape.yaml").symlink_to(outside)  # a link out of the directory is outside too
    for name in ("../hosts.yml", "/etc/passwd", "../../etc/passwd.yaml", "nosuch", "escape", "escape.yaml", "outside",
                 str(outside), "../outside.yaml"):
        resp = serve.client.post("/api/v1/runs", json={"runbook": name})
        assert resp.status_code in (400, 404) and set(resp.json()) == {"error", "message"}, (name, resp.text)
    assert serve.client.get("/api/v1/runs", params={"runbook": "outside"}).json()["runs"] == []
    (serve.runbooks / "escape.yaml").unlink()


def test_an_approval_step_waits_for_another_person(serve: Serve) -> None:
    mine = serve.client.post("/api/v1/runs", json={"runbook": "gated"}).json()["id"]
    wait_for(lambda: serve.client.get(f"/api/v1/runs/{mine}").json()["run"]["status"] == "waiting", 30, "waiting")
    refused = serve.client.post(f"/api/v1/runs/{mine}/approve", json={"comment": "me"})
    assert refused.status_code == 403 and refused.json()["error"] == "four_eyes"
    assert serve.client.get(f"/api/v1/runs/{mine}").json()["run"]["status"] == "waiting"
    denied = serve.client.post(f"/api/v1/runs/{mine}/deny", json={"comment": "not now"})
    assert denied.status_code == 200 and denied.json()["approval"]["state"] == "denied"
    assert stream(serve.client, mine)[-1][1]["status"] == "failed"
    # a run started by someone else (the CLI, as this user) is approved over the API by `local`
    proc = serve.cli("run", str(serve.runbooks / "gated.yaml"), "-i", str(serve.inventory), "--db", str(serve.db),
                     "--json")
    other = wait_for(lambda: next((r["id"] for r in serve.client.get(
        "/api/v1/runs", params={"runbook": "gated", "status": "waiting", "trigger": "cli"}).json()["runs"]), None),
        60, "the CLI's run to wait")
    ok = serve.client.post(f"/api/v1/runs/{other}/approve", json={"comment": "go"})
    assert ok.status_code == 200, ok.text
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out)["status"] == "succeeded"
    again = serve.client.post(f"/api/v1/runs/{other}/approve")
    assert again.status_code == 409
    audit = serve.client.get("/api/v1/audit").json()["audit"]
    assert any(a["action"] == "approve" and a["target"] == other and "go" in a["detail"] for a in audit)


def test_a_running_run_is_canceled(serve: Serve) -> None:
    run_id = serve.client.post("/api/v1/runs", json={"runbook": "slow"}).json()["id"]
    wait_for(lambda: serve.client.get(f"/api/v1/runs/{run_id}").json()["run"]["status"] == "running", 30, "running")
    started = time.monotonic()
    resp = serve.client.post(f"/api/v1/runs/{run_id}/cancel")
    assert resp.status_code == 200, resp.text
    events = stream(serve.client, run_id)
    assert events[-1][1]["status"] == "canceled" and time.monotonic() - started < 20
    assert not [d for k, d in events if k == "result" and d["step"] == "never" and d["status"] != "skipped"]
    assert serve.client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 409
    resumed = serve.client.post(f"/api/v1/runs/{run_id}/resume")
    assert resumed.status_code == 202, resumed.text
    serve.client.post(f"/api/v1/runs/{resumed.json()['id']}/cancel")
    assert stream(serve.client, resumed.json()["id"])[-1][1]["status"] == "canceled"
    assert serve.client.get(f"/api/v1/runs/{resumed.json()['id']}").json()["run"]["parent_run"] == run_id


def test_hooks_take_alertmanager_payloads_with_the_token(serve: Serve) -> None:
    payload = {"version": "4", "status": "firing", "receiver": "opsflow", "groupKey": "{}:{}", "alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFull", "instance": "a"}, "annotations": {},
         "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "f1"}]}
    body = json.dumps(payload).encode()
    resp = serve.client.post("/hooks/alertmanager", content=body, headers={
        "Authorization": f"Bearer {HOOK_TOKEN}", "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["received"] == 1
    refused = serve.client.post("/hooks/alertmanager", content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    wrong = serve.client.post("/hooks/alertmanager", content=body, headers={
        "Authorization": f"Bearer {HOOK_TOKEN}", "Content-Type": "text/plain"})
    assert wrong.status_code == 415
    assert serve.client.get("/hooks/alertmanager").status_code == 405
    events = serve.client.get("/api/v1/events", params={"source": "alertmanager"}).json()["events"]
    assert events and events[0]["name"] == "DiskFull" and "labels" not in events[0] and "payload" not in events[0]
    assert serve.client.get("/healthz").json()["status"] == "ok"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) is not installed")
def test_metrics_pass_promtool(serve: Serve) -> None:
    resp = serve.client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "opsflow_requests_rejected_total" in resp.text
    check = subprocess.run(["promtool", "check", "metrics"], input=resp.text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_openapi_is_served_without_docs_pages(serve: Serve) -> None:
    doc = serve.client.get("/api/openapi.json").json()
    assert {"/api/v1/runs", "/api/v1/runs/{run_id}/stream", "/api/v1/audit"} <= set(doc["paths"])
    assert serve.client.get("/docs").status_code == 404 and serve.client.get("/redoc").status_code == 404


def test_sigterm_drains_then_stops(tmp_path: Path) -> None:
    s = Serve(tmp_path)
    run_id = s.client.post("/api/v1/runs", json={"runbook": "slow"}).json()["id"]
    wait_for(lambda: s.client.get(f"/api/v1/runs/{run_id}").json()["run"]["status"] == "running", 30, "running")
    s.proc.send_signal(signal.SIGTERM)
    refused = wait_for(lambda: s.client.post("/api/v1/runs", json={"runbook": "hello"}).status_code == 503, 10,
                       "new work to be refused")
    assert refused
    assert s.stop() == 0
    log = s.log.read_text()
    assert "opsflow serve: stopped" in log and "Traceback" not in log
    import sqlite3

    with sqlite3.connect(s.db) as db:
        assert db.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0] == "canceled"
