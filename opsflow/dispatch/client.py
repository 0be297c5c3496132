"""Dispatching a plan to Celery workers, and following it through the store as if it ran here.

:func:`dispatch_and_follow` is what :func:`opsflow.api.execute` does with ``dispatch = "celery"``: the run's
record and its units' leases are written, one message per unit goes to its queue, then the store is polled
and every new result is handed to the caller's observer (the CLI shows progress as for a local run). A
cancel of the caller (Ctrl-C, a window closing, the API) is written to the store as an audited ``cancel``,
which the workers holding the run's units act on. Killing the caller changes nothing for the run.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from opsflow.dispatch import placement
from opsflow.dispatch.lease import lease_ttl
from opsflow.dispatch.sweeper import close_run, live_queues
from opsflow.dispatch.unit import NODE, request_to_dict
from opsflow.errors import OpsflowError, StoreError, UsageError
from opsflow.executor import Executor, new_run_id
from opsflow.executor.core import record_start
from opsflow.planning import Plan, PlannedStep
from opsflow.results import TERMINAL_RUN, HostStatus, RunError, RunResult, RunStatus, StepResult

if TYPE_CHECKING:
    from opsflow.store.sql import SqlStore

log = logging.getLogger("opsflow.dispatch")
POLL = 0.1  # the store is read for new results (one indexed query) this often while a dispatched run is followed


class BrokerUnreachable(OpsflowError):
    exit_code = 1


def dispatch(plan: Plan, store: SqlStore, broker: str, run_id: str | None = None, ttl: float | None = None,
             app: Any = None) -> str:
    """Record the run and its units, publish one message per unit; the run id. Warns on stderr-bound log about
    queues that no live worker serves (the run waits for one)."""
    if app is None:
        from opsflow.dispatch.app import make_app

        app = make_app(broker)
    units = placement.units(plan)
    ttl = ttl or lease_ttl()  # until a worker claims with its own
    run_id = run_id or new_run_id()
    record_start(store, plan, run_id, node=f"{NODE}:{','.join(units)}")
    store.create_dispatch(run_id, request_to_dict(plan), plan.loaded.content_hash, units, ttl,
                          plan.request.started_by, placement.needs_step_sync(plan))
    served = live_queues(store.workers(), time.time())
    for queue in units:
        if queue not in served:
            log.warning("run %s: no live worker serves queue %s; its hosts wait for one (opsflow workers)", run_id, queue)
    try:
        with app.producer_or_acquire() as producer:
            for queue in units:
                app.send_task("opsflow.unit", args=[run_id, queue], queue=queue, producer=producer)
    except Exception as exc:  # noqa: BLE001 - kombu and the transports raise their own errors
        store.finish_run(run_id, RunStatus.FAILED, time.time(), {h: "skipped" for h in plan.targets},
                         f"broker {_safe(broker)} unreachable: {type(exc).__name__}: {exc}", str(RunError.INVALID))
        raise BrokerUnreachable(f"broker {_safe(broker)} unreachable ({type(exc).__name__}: {exc}); "
                                f"run {run_id} recorded failed") from exc
    return run_id


def _safe(url: str) -> str:
    from opsflow.settings import _redact_url

    return _redact_url(url)


def follow(store: SqlStore, plan: Plan, run_id: str, executor: Executor, broker: str, app: Any = None) -> RunResult:
    """Poll the store until the run ends: new results to the observer, a cancel of ``executor`` to the workers,
    stale units swept back to their queues (with the workers, this caller finds dead ones too)."""
    from opsflow.dispatch.app import make_app, sweep

    app = app or make_app(broker)
    observer, seen, current = executor.observer, 0, None
    steps = {(ps.index, ps.phase): ps for ps in plan.steps + plan.on_failure}
    observer.run_started(run_id, plan)
    canceled, last_sweep = False, time.monotonic()
    every = lease_ttl() / 2
    while True:
        status = store.run_status(run_id)
        rows = store.results_after(run_id, seen)
        for row in rows:
            key = (row["step_index"], "main" if row["phase"] == "rollback" else row["phase"])
            if key != current and key in steps:
                if current is not None:
                    observer.step_done(steps[current])
                current = key
                ps = steps[key]
                observer.step_started(PlannedStep(ps.index, ps.step, ps.hosts, ps.phase), ps.hosts)
            observer.host_done(_result(row))
        seen = rows[-1]["id"] if rows else seen
        if status is None or status in {str(s) for s in TERMINAL_RUN}:
            break
        if executor.cancel.is_set() and not canceled:
            canceled = True
            reason = executor.cancel_reason or "canceled"
            store.audit(plan.request.started_by, "cancel", run_id, reason)  # workers holding its units stop them
            if store.cancel_queued(run_id, reason):  # units no worker took yet end here
                close_run(store, run_id)
        if time.monotonic() - last_sweep > every:
            last_sweep = time.monotonic()
            try:
                sweep(store, app)
            except (StoreError, OSError) as exc:
                log.warning("sweep: %s", exc)
        time.sleep(POLL)
    if current is not None:
        observer.step_done(steps[current])
    result = result_of(store, run_id, plan.name)
    observer.run_done(result)
    return result


def _result(row: dict[str, Any]) -> StepResult:
    return StepResult(row["step"], row["host"], HostStatus(row["status"]), step_index=row["step_index"] or 0,
                      action=row["action"] or "", changed=row["changed"], rc=row["rc"], stdout=row["stdout"] or "",
                      stderr=row["stderr"] or "", data=row["data"], error_class=row["error_class"],
                      error=row["error"], started_at=row["started_at"] or 0.0, ended_at=row["ended_at"] or 0.0,
                      attempts=row["attempts"] or 1, phase=row["phase"] or "main")


def result_of(store: SqlStore, run_id: str, runbook: str) -> RunResult:
    """A dispatched run's result, as recorded."""
    record = store.get_run(run_id)
    if record is None:
        raise UsageError(f"no run {run_id!r}")
    hosts = {h: HostStatus(s) if s in HostStatus.__members__.values() else HostStatus.FAILED
             for h, s in record["hosts"].items()}
    kind = RunError(record["error_kind"]) if record["error_kind"] in RunError.__members__.values() else None
    return RunResult(run_id=run_id, runbook=runbook, status=RunStatus(record["status"]),
                     started_at=record["started_at"], ended_at=record["ended_at"] or time.time(), hosts=hosts,
                     steps=[_result(r) for r in store.results(run_id)], error=record["error"], error_kind=kind)


def dispatch_and_follow(plan: Plan, store: Any, executor: Executor, broker: str | None,
                        run_id: str | None = None) -> RunResult:
    """The ``celery`` way of :func:`opsflow.api.execute`."""
    if not broker:
        raise UsageError("dispatch celery needs a broker: --broker URL, OPSFLOW_BROKER or `broker` in the project "
                         "file (amqp://… for RabbitMQ, redis://… for Redis)")
    if not hasattr(store, "create_dispatch"):
        raise UsageError("dispatch celery needs the SQL store (OPSFLOW_DB)")
    from opsflow.dispatch.app import make_app

    app = make_app(broker)
    run_id = dispatch(plan, store, broker, run_id, app=app)
    return follow(store, plan, run_id, executor, broker, app)
