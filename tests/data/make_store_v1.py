"""How tests/data/store-v1.db was made: by opsflow's store as released before migrations (schema 1).

Run once at commit 775ff21 (`python tests/data/make_store_v1.py tests/data/store-v1.db`); the file is
committed so that every later opsflow proves it opens and upgrades a store of that release with nothing
lost (tests/unit/test_migrations.py). Do not regenerate it with a newer opsflow.
"""

from __future__ import annotations

import sys
import time

from opsflow.events.models import Event
from opsflow.results import HostStatus, RunStatus, StepResult
from opsflow.store import open_store
from opsflow.store.base import RunRecord


def main(path: str) -> None:
    store = open_store(path, reap=False)
    t0 = 1796000000.0
    for i, status in enumerate([RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.WAITING]):
        rid = f"20261201-00000{i}-v1run{i}"
        store.create_run(RunRecord(id=rid, runbook="server-health", runbook_path="/srv/runbooks/server-health.yaml",
                                   runbook_hash="a" * 64, params={"min_disk_mb": 100, "token": "********"},
                                   trigger=["cli", "ci", "event", "schedule"][i], started_by="ops@host",
                                   started_at=t0 + i * 60, inventory="/srv/inventory.yml",
                                   hosts={"srv1": "pending", "srv2": "pending"}, pid=1, pid_start="1"))
        for j, host in enumerate(("srv1", "srv2")):
            failed = status != RunStatus.SUCCEEDED and host == "srv2"
            store.add_result(rid, StepResult(step="disk", host=host, step_index=0, action="verify",
                                             status=HostStatus.FAILED if failed else HostStatus.OK, rc=0,
                                             stdout=f"disk ok on {host}", data={"checks": [j]},
                                             error_class="VerificationFailed" if failed else None,
                                             error="1 of 1 checks failed" if failed else None,
                                             started_at=t0 + i * 60 + 1, ended_at=t0 + i * 60 + 2.5))
        if status != RunStatus.WAITING:
            store.finish_run(rid, status, t0 + i * 60 + 3, {"srv1": "ok", "srv2": "failed" if status != RunStatus.SUCCEEDED else "ok"},
                             None if status == RunStatus.SUCCEEDED else "srv2 failed")
    waiting = "20261201-000003-v1run3"
    store.request_approval(waiting, 1, "go ahead?", "restart srv1?", t0 + 3600)
    store.request_approval("20261201-000001-v1run1", 1, "go ahead?", "restart?", t0 + 3600)
    store.decide("20261201-000001-v1run1", True, "alice@laptop", "looks fine")
    assert store.try_lock("host:srv1", waiting, "server-health") is None
    ev = Event(source="alertmanager", name="DiskFull", host="srv1", severity="critical", message="disk / at 97%",
               labels={"alertname": "DiskFull", "instance": "srv1"}, fingerprint="fp1", occurrence="o1",
               received_at=t0 + 10, peer="127.0.0.1", id="ev-v1-1")
    store.add_event(ev, ["remediate-disk-full:0"])
    store.add_action({"id": "act-v1-1", "event_id": "ev-v1-1", "rule": "remediate-disk-full:0", "host": "srv1",
                      "dedup_key": "fp1", "occurrence": "o1", "outcome": "finished", "reason": None, "detail": None,
                      "run_id": "20261201-000002-v1run2", "run_status": "partial", "daemon": "h:1:1",
                      "received_at": t0 + 10, "queued_at": t0 + 10.001, "started_at": t0 + 10.002,
                      "ended_at": t0 + 13, "start_latency": 0.002, "end_latency": 3.0})
    store.breaker_result("remediate-disk-full:0", "20261201-000002-v1run2", True, 3)
    store.close()


if __name__ == "__main__":
    main(sys.argv[1])
    print("written", sys.argv[1], time.strftime("%Y-%m-%d"))
