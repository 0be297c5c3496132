"""The store's inbox of approvals waiting for a decision (the console's /approvals page reads it)."""

from __future__ import annotations

import time
from pathlib import Path

from opsflow.results import RunStatus
from opsflow.store import open_store
from opsflow.store.base import RunRecord


def test_pending_approvals_across_runs_oldest_first_with_their_run(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "opsflow.db"), reap=False)
    try:
        for n, by in enumerate(("alice", "bob", "carol")):
            store.create_run(RunRecord(id=f"run{n}", runbook="patch", runbook_path="/x/patch.yaml", runbook_hash="h",
                                       params={}, trigger="api", started_by=by, started_at=time.time(),
                                       status=RunStatus.WAITING, hosts={"web1": "pending"}))
        store.request_approval("run1", 2, "go?", "Patch web1?", time.time() + 600, four_eyes=False)
        time.sleep(0.01)
        store.request_approval("run0", 1, "go?", "Patch?", time.time() + 600)
        store.request_approval("run2", 1, "go?", "Patch?", time.time() + 600)
        assert store.decide("run2", False, "dave", "not now") is not None  # decided: out of the inbox

        got = store.pending_approvals()
        assert [(a["run_id"], a["step_index"]) for a in got] == [("run1", 2), ("run0", 1)]
        assert got[0]["four_eyes"] == 0 and got[1]["four_eyes"] == 1
        assert got[0]["run"] == {"id": "run1", "runbook": "patch", "trigger": "api", "started_by": "bob",
                                 "status": "waiting", "started_at": got[0]["run"]["started_at"],
                                 "hosts": {"web1": "pending"}}
        assert [a["run_id"] for a in store.pending_approvals(limit=1)] == ["run1"]
    finally:
        store.close()
