"""The store interface against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsflow.results import HostStatus, RunStatus, StepResult
from opsflow.store import open_store
from opsflow.store.base import RunRecord, Store
from tests.helpers import pg_store_url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    with pg_store_url() as url:
        yield url


def record(run_id: str, **kw: object) -> RunRecord:
    base = dict(id=run_id, runbook="rb", runbook_path="/x/rb.yaml", runbook_hash="h" * 64, params={"a": 1},
                trigger="cli", started_by="me@here", started_at=time.time(), hosts={"s1": "pending"})
    base.update(kw)
    return RunRecord(**base)  # type: ignore[arg-type]


def test_run_lifecycle(store_url: str) -> None:
    store: Store = open_store(store_url)
    store.create_run(record("r1"))
    t = time.time()
    store.add_result("r1", StepResult("step a", "s1", HostStatus.CHANGED, changed=True, rc=0, stdout="out",
                                      data={"k": [1, 2]}, started_at=t, ended_at=t + 0.5))
    store.finish_run("r1", RunStatus.SUCCEEDED, t + 1, {"s1": "changed"})
    run = store.get_run("r1")
    assert run is not None
    assert run["status"] == "succeeded" and run["params"] == {"a": 1} and run["hosts"] == {"s1": "changed"}
    assert run["duration"] == pytest.approx(t + 1 - run["started_at"])
    (res,) = store.results("r1")
    assert (res["status"], res["changed"], res["data"], res["duration"]) == ("changed", True, {"k": [1, 2]}, 0.5)
    assert store.get_run("r") is not None  # unique prefix
    assert store.get_run("nope") is None
    store.close()


def test_history_filters(store_url: str) -> None:
    store = open_store(store_url)
    now = time.time()
    for i, (rb, status) in enumerate([("a", "succeeded"), ("b", "failed"), ("a", "failed")]):
        store.create_run(record(f"h{i}", runbook=rb, started_at=now - 100 * (3 - i)))
        store.finish_run(f"h{i}", RunStatus(status), now, {})
    assert [r["id"] for r in store.history()] == ["h2", "h1", "h0"]
    assert [r["id"] for r in store.history(runbook="a")] == ["h2", "h0"]
    assert [r["id"] for r in store.history(status="failed", since=now - 250)] == ["h2", "h1"]
    store.close()


def test_dead_run_is_marked_abandoned(store_url: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    store = open_store(store_url)
    store.create_run(record("dead", pid=proc.pid, pid_start="1"))
    store.create_run(record("alive"))  # this process: still running
    store.close()
    store = open_store(store_url)  # the next start reaps
    dead, alive = store.get_run("dead"), store.get_run("alive")
    assert dead and dead["status"] == "abandoned" and "died" in dead["error"]
    assert alive and alive["status"] == "running"
    store.close()


def test_bad_store_is_a_clear_error(tmp_path: Path) -> None:
    from opsflow.errors import StoreError

    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot open store"):
        open_store(str(tmp_path / "file" / "x.db"))  # a path below a regular file
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        open_store("postgresql://nobody:pw@127.0.0.1:1/none")


def test_a_slot_is_claimed_once_and_the_audit_log_keeps_who(store_url: str) -> None:
    store: Store = open_store(store_url)
    slot = 1_800_000_000.0
    assert store.claim_fire("nightly", slot, "fired", scheduler="a")
    assert not store.claim_fire("nightly", slot, "fired", scheduler="b")  # a second scheduler loses the slot
    assert store.claim_fire("nightly", slot + 86400, "skipped", reason="blackout year-end-freeze")
    store.update_fire("nightly", slot, run_id="r1", outcome="succeeded")
    fires = store.fires(entry="nightly")
    assert [(f["decision"], f["run_id"], f["outcome"], f["scheduler"]) for f in fires] == [
        ("skipped", None, None, ""), ("fired", "r1", "succeeded", "a")]
    assert store.last_fires()["nightly"]["reason"] == "blackout year-end-freeze"
    store.audit("alice@laptop", "window_override", "run r9", "disk full, cannot wait")
    (row,) = store.audit_log()
    assert (row["actor"], row["action"], row["target"], row["detail"]) == (
        "alice@laptop", "window_override", "run r9", "disk full, cannot wait")
    store.close()
