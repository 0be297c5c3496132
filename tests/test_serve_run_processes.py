"""opsflow serve runs event remediations in worker processes, never in the intake's interpreter (issue 14).

A run started by an event is recorded with the pid of a child of the service (not the service's own);
SIGKILL that child in the middle of a run: the run ends ``abandoned`` with the reason (not left
``running``), its host lock is released, the event's action says so, and the next event's run gets a
new worker process.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.test_serve import HOOK_TOKEN, Serve

RULES = {
    "quick": ("Quick", "  - name: fix\n    local: ['true']\n"),
    "stuck": ("Stuck", "  - name: fix\n    local: [sleep, '60']\n"),
}


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    s = Serve(tmp_path_factory.mktemp("procs"), "--workers", "1")
    for name, (alert, steps) in RULES.items():
        (s.runbooks / f"ev-{name}.yaml").write_text(
            f"name: ev-{name}\ntargets: all\ntriggers:\n  events:\n    - name: ev-{name}\n      match: {{name: {alert}}}\n"
            "      host: labels.instance\n      dedup: {key: [fingerprint]}\n      cooldown: 0\n      breaker: 0\n"
            f"steps:\n{steps}")
    s.proc.send_signal(signal.SIGHUP)  # load the rules
    wait_for(lambda: s.client.get("/healthz").json()["rules"] == len(RULES), 30, "the rules to load")
    yield s
    s.stop()


def _post(s: Serve, alert: str, host: str) -> str:
    body = {"version": "4", "status": "firing", "receiver": "opsflow", "alerts": [
        {"status": "firing", "labels": {"alertname": alert, "instance": host}, "annotations": {},
         "startsAt": "2026-01-01T00:00:00Z", "fingerprint": uuid.uuid4().hex}]}
    resp = s.client.post("/hooks/alertmanager", content=json.dumps(body), headers={
        "Authorization": f"Bearer {HOOK_TOKEN}", "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["events"][0]["id"])


def _action(s: Serve, event_id: str, outcome: str) -> dict[str, Any] | None:
    with sqlite3.connect(s.db, timeout=10) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT a.outcome, a.reason, a.detail, a.run_status, a.run_id, r.status, r.pid, r.error "
                         "FROM event_actions a LEFT JOIN runs r ON r.id = a.run_id WHERE a.event_id = ?",
                         (event_id,)).fetchone()
    return dict(row) if row is not None and row["outcome"] == outcome else None


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_event_runs_execute_in_a_child_and_a_killed_child_abandons_its_run(serve: Serve) -> None:
    first = _post(serve, "Quick", "a")
    done = wait_for(lambda: _action(serve, first, "finished"), 30, "the quick run to finish")
    assert done["status"] == "succeeded" and done["run_status"] == "succeeded"
    worker = int(done["pid"])
    assert worker != serve.proc.pid and _parent(worker) == serve.proc.pid  # a child of the service ran it

    stuck = _post(serve, "Stuck", "b")
    running = wait_for(lambda: _action(serve, stuck, "started"), 30, "the stuck run to start")
    assert running["status"] == "running" and int(running["pid"]) == worker  # the same worker, taken again
    os.kill(worker, signal.SIGKILL)  # in the middle of its step
    ended = wait_for(lambda: _action(serve, stuck, "finished"), 30, "the killed worker's run to end")
    assert ended["status"] == ended["run_status"] == "abandoned"
    assert "died" in ended["error"] and "SIGKILL" in ended["detail"], ended
    with sqlite3.connect(serve.db, timeout=10) as db:
        assert not db.execute("SELECT * FROM locks WHERE run_id = ?", (ended["run_id"],)).fetchall()

    after = _post(serve, "Quick", "b")  # the host is free again, a new worker runs the next one
    again = wait_for(lambda: _action(serve, after, "finished"), 30, "a run after the worker died")
    assert again["status"] == "succeeded" and int(again["pid"]) not in (worker, serve.proc.pid)
    assert serve.client.get("/healthz").json()["status"] == "ok"
