"""Scale-out logic without a broker: leases and sweeps (pure), placement of hosts on queues, and the store's
fencing — a worker presumed dead can record nothing once another took its unit over."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from opsflow.dispatch import placement
from opsflow.dispatch.lease import Lease, claim_reason, needs_sweep, reached, sweep
from opsflow.dispatch.sweeper import sweep as sweep_store
from opsflow.dispatch.sweeper import sweep_lazily
from opsflow.errors import UsageError
from opsflow.planning import RunRequest, build_plan
from opsflow.results import ErrorKind, HostStatus, StepResult
from opsflow.store import open_store
from opsflow.store.base import RunRecord
from opsflow.store.leases import Fenced


def lease(state: str = "running", heartbeat: float | None = 100.0, ttl: float = 10.0, queue: str = "a",
          sync: int = 0, deliveries: int = 1, token: int = 1) -> Lease:
    return Lease("r1", queue, state, token, "w1", heartbeat, ttl, sync=sync, deliveries=deliveries)


def test_a_delivery_claims_a_queued_or_stale_unit_and_drops_a_duplicate() -> None:
    assert claim_reason(lease("queued", deliveries=0), 105) == "new"
    assert claim_reason(lease("queued", deliveries=1), 105) == "takeover"  # requeued by a sweep
    assert claim_reason(lease("running"), 105) is None  # held by a live worker: a duplicate (visibility timeout)
    assert claim_reason(lease("running"), 111) == "takeover"  # its holder silent longer than the ttl
    assert claim_reason(lease("done"), 1e9) is None and claim_reason(lease("lost"), 1e9) is None
    assert claim_reason(None, 0) is None


def test_a_sweep_requeues_stale_units_and_gives_up_units_no_live_worker_serves() -> None:
    fresh, stale = lease(heartbeat=100), lease(heartbeat=80, queue="b")
    waiting = lease("queued", heartbeat=0, queue="c", deliveries=0)  # never claimed: workers may be starting
    assert sweep([fresh, stale, waiting], {"a", "b", "c"}, 105, orphan_after=50) == [(stale, "requeue")]
    assert sweep([waiting], {"a"}, 105, orphan_after=50) == [(waiting, "give_up")]
    assert sweep([waiting], {"a"}, 40, orphan_after=50) == []  # not waited long enough yet


def test_a_stale_unit_no_live_worker_can_take_is_interrupted_and_its_run_s_waiting_units_given_up() -> None:
    stale, waiting = lease(heartbeat=80), lease("queued", heartbeat=100, queue="b", deliveries=0)
    assert sweep([stale, waiting], {"b"}, 105) == [(stale, "interrupt")]  # b is served: its unit waits for it
    assert sweep([stale, waiting], set(), 105) == [(stale, "interrupt"), (waiting, "give_up")]  # nobody left at all
    requeued = lease("queued", heartbeat=100, deliveries=1)  # put back after its holder died; nobody serves it
    assert sweep([requeued], set(), 105) == [] and sweep([requeued], set(), 111) == [(requeued, "give_up")]
    assert not needs_sweep([lease(heartbeat=100), lease("queued", heartbeat=100, deliveries=0)], 105)
    assert needs_sweep([stale], 105)


def test_units_meet_when_every_open_unit_reached_the_point() -> None:
    assert reached([lease(sync=2), lease(sync=3, queue="b")], 2)
    assert not reached([lease(sync=1), lease(sync=3, queue="b")], 2)
    assert reached([lease("done", sync=0), lease("lost", sync=0), lease(sync=2)], 2)


@pytest.fixture
def plan_of(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "inv.yml").write_text(textwrap.dedent("""\
        all:
          children:
            site_a:
              vars: {opsflow_queue: site-a}
              hosts: {h1: {}, h2: {opsflow_queue: site-a2}}
            other:
              hosts: {h3: {}}
    """))

    def build(runbook: str):  # type: ignore[no-untyped-def]
        path = tmp_path / "rb.yaml"
        path.write_text(textwrap.dedent(runbook))
        return build_plan(RunRequest(runbook=str(path), inventory=str(tmp_path / "inv.yml")))
    return build


def test_placement_host_variable_then_runbook_queue_then_default(plan_of) -> None:  # type: ignore[no-untyped-def]
    plan = plan_of("""\
        name: p
        targets: all
        steps: [{name: s, local: ["true"]}]
    """)
    assert placement.units(plan) == {"site-a": ["h1"], "site-a2": ["h2"], "default": ["h3"]}
    assert not placement.needs_step_sync(plan)
    plan = plan_of("""\
        name: p
        targets: all
        queue: central
        steps: [{name: s, local: ["true"]}, {name: t, local: ["true"], queue: site-a}]
    """)
    assert placement.units(plan) == {"site-a": ["h1", "h2", "h3"], "site-a2": ["h2"], "central": ["h3"]}
    assert placement.needs_step_sync(plan)  # a step moves hosts to another queue: units meet after each step


def test_a_bad_queue_name_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match=r"host h9: opsflow_queue 'site a' is not a queue name"):
        placement.host_queue({"opsflow_queue": "site a"}, None, "h9")


def test_a_worker_presumed_dead_cannot_record_after_a_takeover(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"))
    store.create_dispatch("r1", {}, "hash", {"a": ["h1"]}, 10.0, "me", False)  # type: ignore[attr-defined]
    first = store.claim_unit("r1", "a", "w1", 10.0, claim_reason)  # type: ignore[attr-defined]
    assert first is not None and first[:2] == (1, "new")
    assert store.claim_unit("r1", "a", "w2", 10.0, claim_reason) is None  # type: ignore[attr-defined]
    store.mark_inflight("r1", "a", 1, 0, "main", "change", False, ["h1"])  # type: ignore[attr-defined]
    assert store.requeue("r1", "a", 1)  # type: ignore[attr-defined]  # a sweep found w1 silent
    assert not store.renew("r1", "a", 1)  # type: ignore[attr-defined]
    token, why, left = store.claim_unit("r1", "a", "w2", 10.0, claim_reason)  # type: ignore[attr-defined]
    assert (token, why) == (3, "takeover") and [(r["host"], r["step"], r["idempotent"]) for r in left] == \
        [("h1", "change", 0)]
    late = StepResult("change", "h1", HostStatus.CHANGED, step_index=0)
    with pytest.raises(Fenced, match="another worker took over"):
        store.fenced_result("r1", "a", 1, late)  # type: ignore[attr-defined]
    store.fenced_result("r1", "a", 3, late)  # type: ignore[attr-defined]
    assert [r["host"] for r in store.results("r1")] == ["h1"]
    assert store.finish_unit("r1", "a", 3, "succeeded", None, None)  # type: ignore[attr-defined]  # the last unit
    store.close()


def test_a_run_whose_workers_are_all_gone_ends_interrupted_at_the_next_look_at_the_store(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"))
    store.create_run(RunRecord("r1", "rb", "rb.yaml", "hash", {}, "cli", "me", time.time(), node="celery:a,b",
                               hosts={"h1": "pending", "h2": "pending", "h3": "pending"}))
    store.create_dispatch("r1", {}, "hash", {"a": ["h1", "h2"], "b": ["h3"]}, 0.2, "me", False)  # type: ignore[attr-defined]
    store.worker_beat("w1", "n", 1, ["a"], 1, 0.2, time.time(), [])  # type: ignore[attr-defined]
    token = store.claim_unit("r1", "a", "w1", 0.2, claim_reason)[0]  # type: ignore[attr-defined]
    store.fenced_result("r1", "a", token, StepResult("first", "h1", HostStatus.OK, step_index=0))  # type: ignore[attr-defined]
    store.mark_inflight("r1", "a", token, 1, "main", "change", False, ["h1", "h2"])  # type: ignore[attr-defined]
    assert sweep_lazily(store) == []  # the worker is live: nothing to do (one query)
    time.sleep(0.3)  # w1 and the dispatcher die: no heartbeat, nobody follows the run
    done = sweep_lazily(store)
    assert len(done) == 2 and "went silent" in done[0] and "no live worker serves queue b" in done[1], done
    record = store.get_run("r1")
    assert record is not None and record["status"] == "interrupted", record
    assert record["hosts"] == {"h1": "interrupted", "h2": "interrupted", "h3": "skipped"}, record["hosts"]
    assert "no live worker serves queue a" in record["error"] and "opsflow resume r1" in record["error"]
    rows = {(r["host"], r["step"]): r for r in store.results("r1")}
    assert rows[("h2", "change")]["error_class"] == ErrorKind.INTERRUPTED  # recorded, never run again by itself
    assert [(lease.queue, lease.state) for lease in store.leases("r1")] == [("a", "lost"), ("b", "lost")]  # type: ignore[attr-defined]
    with pytest.raises(Fenced):  # the presumed-dead holder, back after all, records nothing
        store.fenced_result("r1", "a", token, StepResult("change", "h1", HostStatus.CHANGED, step_index=1))  # type: ignore[attr-defined]
    assert claim_reason(store.leases("r1")[0], time.time()) is None  # type: ignore[attr-defined]  # a redelivery
    assert sweep_store(store) == []  # type: ignore[arg-type]
    store.close()


def test_a_canceled_run_s_units_no_worker_took_end_at_once_and_a_late_delivery_is_dropped(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"))
    store.create_dispatch("r1", {}, "hash", {"a": ["h1"], "b": ["h2"]}, 10.0, "me", False)  # type: ignore[attr-defined]
    token = store.claim_unit("r1", "a", "w1", 10.0, claim_reason)[0]  # type: ignore[attr-defined]
    assert store.cancel_queued("r1", "canceled by SIGINT") is False  # type: ignore[attr-defined]  # a is still held
    assert store.claim_unit("r1", "b", "w2", 10.0, claim_reason) is None  # type: ignore[attr-defined]
    assert store.cancel_queued("r1", "again") is None  # type: ignore[attr-defined]  # nothing left waiting
    assert store.finish_unit("r1", "a", token, "canceled", None, "canceled")  # type: ignore[attr-defined]  # the last
    store.close()
