"""opsflow serve's limits, against the real service: no more API runs admitted than --run-limit (429 with
Retry-After, nothing started or recorded), and a run of another process (a CLI run on the same store)
canceled over the API: the request goes through the store, the CLI's executor stops at the next step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.test_serve import Serve, stream

TICKS = "name: ticks\ntargets: a\nsteps:\n" + "".join(
    f"  - name: tick {n}\n    local: [sleep, '0.4']\n" for n in range(1, 51))


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    s = Serve(tmp_path_factory.mktemp("limited"), "--run-limit", "1", "--workers", "1")
    (s.runbooks / "ticks.yaml").write_text(TICKS)
    yield s
    s.stop()


def _status(s: Serve, run_id: str) -> str:
    status: str = s.client.get(f"/api/v1/runs/{run_id}").json()["run"]["status"]
    return status


def test_no_more_runs_than_the_limit_are_admitted(limited: Serve) -> None:
    s = limited
    first = s.client.post("/api/v1/runs", json={"runbook": "ticks"})
    assert first.status_code == 202, first.text
    run_id = first.json()["id"]
    wait_for(lambda: _status(s, run_id) == "running", 30, "the first run to run")
    before = s.client.get("/api/v1/runs", params={"limit": 1000}).json()["runs"]
    refused = s.client.post("/api/v1/runs", json={"runbook": "hello"})
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "10"
    assert refused.json()["error"] == "too_many_runs"
    assert "--run-limit 1" in refused.json()["message"] and "try again" in refused.json()["message"]
    assert s.client.get("/api/v1/runs", params={"limit": 1000}).json()["runs"] == before  # nothing recorded
    audit = s.client.get("/api/v1/audit").json()["audit"]
    assert [a["target"] for a in audit if a["action"] == "run_start"] == [run_id]

    assert s.client.post(f"/api/v1/runs/{run_id}/cancel").json()["status"] == "canceling"
    assert stream(s.client, run_id)[-1][1]["status"] == "canceled"
    again = s.client.post("/api/v1/runs", json={"runbook": "hello"})  # a place is free again
    assert again.status_code == 202, again.text
    assert stream(s.client, again.json()["id"])[-1][1]["status"] == "succeeded"


def test_a_run_of_another_process_is_canceled_through_the_store(limited: Serve) -> None:
    s = limited
    proc = s.cli("run", str(s.runbooks / "ticks.yaml"), "-i", str(s.inventory), "--db", str(s.db), "--json")
    try:
        run_id = wait_for(lambda: next((r["id"] for r in s.client.get("/api/v1/runs", params={
            "runbook": "ticks", "status": "running", "trigger": "cli"}).json()["runs"]), None), 60, "the CLI's run")
        resp = s.client.post(f"/api/v1/runs/{run_id}/cancel")
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "cancel_requested" and "another process" in resp.json()["message"]
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    record = json.loads(out)
    assert record["status"] == "canceled", err
    assert record["error"] == "canceled by local"
    ran = [r for r in s.client.get(f"/api/v1/runs/{run_id}").json()["results"] if r["status"] != "skipped"]
    assert len(ran) < 20, "the CLI's run went on after the cancel"
    audit = s.client.get("/api/v1/audit").json()["audit"]
    asked = next(a for a in audit if a["action"] == "cancel" and a["target"] == run_id)
    assert asked["actor"] == "local" and "asked through the store" in asked["detail"]
    assert s.client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 409  # it has ended: nothing to cancel


def test_the_run_limit_is_a_setting_of_the_project_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from opsflow.cli import main

    (tmp_path / "opsflow.toml").write_text("[daemon]\nrun_limit = 0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPSFLOW_PROJECT", raising=False)
    result = CliRunner().invoke(main, ["serve", "--listen", "127.0.0.1:0", "--insecure"])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--run-limit': 0 is not in the range 1<=x<=100000" in result.output
