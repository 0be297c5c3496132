"""Sweeping stale leases, and closing a dispatched run once its last unit ended — without Celery.

A dispatched run depends on its workers: when every worker of a queue is gone, no heartbeat renews its
units' leases and no worker takes them over. Every long-lived opsflow process sweeps — workers (with their
heartbeat), ``opsflow serve`` and ``opsflow daemon`` (:mod:`opsflow.dispatch.background`), the CLI following a run — and
``opsflow history``, ``show`` and ``workers`` sweep lazily (:func:`sweep_lazily`: one query when no lease
is open or none is stale), so a run never stays ``running`` after its workers are gone:

- a stale unit on a queue some live worker serves is put back in its queue (only by a process that can
  publish it again: a worker, or a dispatching one); the live worker takes it over;
- a stale unit on a queue no live worker serves is *interrupted*: its lease lost (a new token fences the
  presumed-dead holder out), each step it had in flight recorded ``interrupted`` — never run again by
  itself —, and the run, once its last unit ended, ``interrupted`` with the reason: it waits for a person
  (``opsflow resume [--dispatch celery]`` or ``opsflow abandon``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from opsflow.dispatch.lease import ORPHAN_AFTER, live, needs_sweep
from opsflow.dispatch.lease import sweep as decide
from opsflow.errors import StoreError
from opsflow.results import ErrorKind, HostStatus, RunError, RunStatus, StepResult, host_outcome, run_outcome

if TYPE_CHECKING:
    from opsflow.store.sql import SqlStore

log = logging.getLogger("opsflow.sweeper")
Publish = Callable[[str, str], None]


def live_queues(workers: list[dict[str, Any]], now: float) -> set[str]:
    return {q for w in workers if w["state"] == "running" and live(w["last_seen"], w["ttl"], now) for q in w["queues"]}


def interrupted_result(row: dict[str, Any], run_id: str, why: str) -> StepResult:
    """The record of a step that was in flight (an ``inflight`` row) when its worker died, not run again."""
    now = time.time()
    return StepResult(row["step"], row["host"], HostStatus.FAILED, step_index=row["step_index"], phase=row["phase"],
                      error_class=ErrorKind.INTERRUPTED, started_at=row["started_at"] or now, ended_at=now,
                      data={"interrupted": True},
                      error=f"in flight when {why}; not run again: `opsflow resume {run_id}` runs it again, "
                            f"`opsflow abandon {run_id}` gives it up")


def sweep(store: SqlStore, publish: Publish | None = None, orphan_after: float | None = None) -> list[str]:
    """One sweep of the store's open leases; what was done, for the log. Without ``publish`` (nothing to send a
    unit back to its queue with), stale units that a live worker could take over are left to that worker's own
    sweep."""
    now = time.time()
    open_leases = store.leases(open_only=True)
    if not open_leases or not needs_sweep(open_leases, now):
        return []
    queues = live_queues(store.workers(), now)
    done: list[str] = []
    for lease, action in decide(open_leases, queues, now, orphan_after or ORPHAN_AFTER):
        run, queue = lease.run_id, lease.queue
        if action == "requeue":
            if publish is not None and store.requeue(run, queue, lease.token):
                publish(run, queue)
                done.append(f"run {run} queue {queue}: worker {lease.worker} presumed dead "
                            f"(no heartbeat for {now - (lease.heartbeat or now):.1f} s): requeued")
            continue
        if action == "interrupt":
            silent = f"worker {lease.worker} went silent ({now - (lease.heartbeat or now):.1f} s without a heartbeat, " \
                     f"lease ttl {lease.ttl:g} s)"
            reason = f"{silent} and no live worker serves queue {queue}: interrupted"
            last = store.lose_unit(run, queue, lease.token, "running", reason,
                                   partial(interrupted_result, run_id=run, why=silent))
        else:
            reason = f"no live worker serves queue {queue}"
            last = store.lose_unit(run, queue, lease.token, "queued", reason)
        if last is None:  # another sweeper (or a worker's claim) came first
            continue
        if last:
            close_run(store, run)
        done.append(f"run {run} queue {queue}: {reason}")
    for line in done:
        log.warning("%s", line)
    return done


def sweep_lazily(store: Any) -> list[str]:
    """The sweep of a short command (history, show, workers): never requeues, never fails the command."""
    if not hasattr(store, "lose_unit"):
        return []
    try:
        return sweep(store)
    except StoreError as exc:
        log.warning("sweep of stale leases: %s", exc)
        return []


def close_run(store: SqlStore, run_id: str) -> RunStatus:
    """The run's outcome from every unit's results and ends, recorded once its last unit ended; its locks go."""
    rows = store.results(run_id)
    leases = store.leases(run_id)
    by_host: dict[str, list[StepResult]] = {}
    for r in rows:
        by_host.setdefault(r["host"], []).append(StepResult(
            r["step"], r["host"], HostStatus(r["status"]), changed=r["changed"], data=r["data"], phase=r["phase"]))
    record = store.get_run(run_id) or {}
    if record.get("status") == str(RunStatus.ABANDONED):  # a person gave it up (opsflow abandon): that stands
        store.release_locks(run_id)
        return RunStatus.ABANDONED
    hosts = {h: host_outcome(by_host.get(h, [])) for h in record.get("hosts", {})}
    interrupted = sorted({r["host"] for r in rows if r["error_class"] == ErrorKind.INTERRUPTED})
    kinds = {lease.error_kind for lease in leases}
    errors = [f"{lease.queue}: {lease.error}" for lease in leases if lease.error]
    status, kind = run_outcome(hosts), None
    if str(RunError.INTERNAL) in kinds:
        status, kind = RunStatus.CRASHED, RunError.INTERNAL
    elif interrupted or "lost" in kinds:
        status = RunStatus.INTERRUPTED
        if interrupted:
            errors.insert(0, f"interrupted on {', '.join(interrupted)}: a step in flight when its worker died was "
                             "not run again")
        errors.append(f"waiting for a person: `opsflow resume {run_id}` or `opsflow abandon {run_id}`")
    else:
        for candidate in (RunError.CANCELED, RunError.WINDOW_CLOSED, RunError.TIMEOUT, RunError.MAX_FAIL,
                          RunError.LOCK_HELD, RunError.INVALID):
            if str(candidate) in kinds:
                kind = candidate
                status = RunStatus.CANCELED if candidate in (RunError.CANCELED, RunError.WINDOW_CLOSED) else RunStatus.FAILED
                break
        if kind is None and status != RunStatus.SUCCEEDED:
            kind = RunError.HOSTS_FAILED
    shown = {h: ("interrupted" if h in interrupted else str(s)) for h, s in hosts.items()}
    store.finish_run(run_id, status, time.time(), shown, "; ".join(dict.fromkeys(errors)) or None,
                     str(kind) if kind else None)
    store.release_locks(run_id)
    return status
