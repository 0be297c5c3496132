"""Scale-out logic without a broker: leases and sweeps (pure), placement of hosts on queues, and the store's
fencing — a worker presumed dead can record nothing once another took its unit over."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from opsflow.dispatch import placement
from opsflow.dispatch.lease import Lease, claim_reason, reached, sweep
from opsflow.errors import UsageError
from opsflow.planning import RunRequest, build_plan
from opsflow.results import HostStatus, StepResult
from opsflow.store import open_store
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
    waiting = lease("queued", heartbeat=0, queue="c")
    assert sweep([fresh, stale, waiting], {"a", "b", "c"}, 105, orphan_after=50) == [(stale, "requeue")]
    assert sweep([waiting], {"a"}, 105, orphan_after=50) == [(waiting, "give_up")]
    assert sweep([waiting], {"a"}, 40, orphan_after=50) == []  # not waited long enough yet


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
