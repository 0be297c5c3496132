"""A worker runs one unit of work — the hosts of one run placed on its queue — through the one executor.

The unit is claimed under a lease (:meth:`~opsflow.store.leases.LeaseStoreMixin.claim_unit`); every result
it records is fenced by the lease's token. A unit taken over from a dead worker starts like a resume of
its own run: what the run completed is skipped, hosts that failed stay failed, and a step the dead worker
had in flight is run again only when it is ``idempotent: true`` — otherwise the host is recorded
``interrupted`` and the run ends ``interrupted``, waiting for a person (``opsflow resume`` or
``opsflow abandon``). Units of one run meet after every batch (and after every step when a step moves
hosts to another queue), so batches and ``max_fail_percentage`` count across the whole run.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsflow.dispatch.lease import claim_reason, reached
from opsflow.dispatch.placement import queue_of
from opsflow.dispatch.sweeper import close_run, interrupted_result
from opsflow.errors import OpsflowError, UsageError
from opsflow.executor import Executor, Observer
from opsflow.executor.steps import RunState
from opsflow.planning import Plan, PlannedStep, RunRequest, build_plan
from opsflow.results import (
    FAILING,
    RunError,
    RunResult,
    RunStatus,
    StepResult,
)
from opsflow.store.leases import Fenced

if TYPE_CHECKING:
    from opsflow.store.sql import SqlStore

log = logging.getLogger("opsflow.worker")
NODE = "celery"  # runs.node of a dispatched run: no process of one machine owns it (SqlStore.reap leaves it)
SYNC_POLL = 0.05


@dataclass
class Unit:
    run_id: str
    queue: str
    token: int
    why: str  # new | takeover
    left_inflight: list[dict[str, Any]] = field(default_factory=list)
    step_sync: bool = False
    units: int = 1
    fenced: bool = False


def request_to_dict(plan: Plan) -> dict[str, Any]:
    """The request as the workers get it: paths absolute, secret params left out (workers read them from their
    environment, OPSFLOW_PARAM_<NAME>: never on the broker, never in the store)."""
    req, spec = plan.request, plan.loaded.runbook.params
    return {"runbook": str(Path(req.runbook).resolve()), "inventory": _absolute(req.inventory),
            "params": {k: v for k, v in req.params.items() if not (k in spec and spec[k].secret)},
            "limit": req.limit, "trigger": req.trigger, "started_by": req.started_by, "check": req.check,
            "strict": req.strict, "parent_run": req.parent_run, "resume_of": req.resume_of,
            "lock_owners": sorted(req.lock_owners), "override_window": req.override_window}


def _absolute(path: str) -> str:
    return str(Path(path).resolve()) if Path(path).exists() else path


def request_from_dict(data: dict[str, Any]) -> RunRequest:
    """The request a worker plans: the dispatcher already decided maintenance windows."""
    return RunRequest(**{**data, "lock_owners": frozenset(data.get("lock_owners", ())), "windows_checked": True})


class _FencedStore:
    """The store as a unit writes to it: its run's results only while its lease token holds."""

    def __init__(self, store: SqlStore, unit: Unit, on_fenced: Any) -> None:
        self._store, self._unit, self._on_fenced = store, unit, on_fenced

    def add_result(self, run_id: str, result: StepResult) -> None:
        if run_id != self._unit.run_id:  # a sub-runbook's own run
            self._store.add_result(run_id, result)
            return
        try:
            self._store.fenced_result(run_id, self._unit.queue, self._unit.token, result)
        except Fenced as exc:
            self._on_fenced(str(exc))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class UnitExecutor(Executor):
    """The executor of one unit: the run's record exists; hosts of other queues are left to their units."""

    def __init__(self, store: SqlStore, unit: Unit, observer: Observer | None = None, grace: float = 10.0) -> None:
        self.leases, self.unit = store, unit
        super().__init__(_FencedStore(store, unit, self._fenced), observer, grace=grace)  # type: ignore[arg-type]
        self._point = 0
        self.inflight = self._mark_inflight

    def _mark_inflight(self, ps: PlannedStep, hosts: list[str]) -> None:
        idempotent = ps.step.idempotent or ps.step.action == "approve"  # a decision is kept in the store
        try:
            self.leases.mark_inflight(self.unit.run_id, self.unit.queue, self.unit.token, ps.index, ps.phase,
                                      ps.step.name, idempotent, hosts)
        except Fenced as exc:  # no step starts once the lease is lost
            self._fenced(str(exc))
            raise

    def _fenced(self, why: str) -> None:
        if not self.unit.fenced:
            self.unit.fenced = True
            log.warning("run %s queue %s: %s; stopping", self.unit.run_id, self.unit.queue, why)
        self.request_cancel("lease lost: another worker took this unit over", hard=True)

    def _record_start(self, state: RunState) -> float:
        record = self.leases.get_run(state.run_id)
        if record is None:
            raise UsageError(f"run {state.run_id} is not in store {self.leases.url}: the worker and the "
                             "dispatcher must share one store (OPSFLOW_DB)")
        self._take_over(state)
        return float(record["started_at"])

    def _take_over(self, state: RunState) -> None:
        """What this run recorded before (a takeover, or a resume): done steps, failed hosts, steps in flight."""
        plan = state.plan
        done, registered = self._resume_state(state.run_id, plan)
        for host, steps in done.items():
            state.done_before.setdefault(host, {}).update(steps)
        for host, values in registered.items():
            state.registered.setdefault(host, {}).update(values)
        by_index = {ps.index: ps for ps in plan.steps}
        for host, steps in done.items():
            state.completed[host] = [by_index[i] for i in sorted(steps) if i in by_index and steps[i] == state.run_id]
        state.failed |= _failed_hosts(self.leases.results(state.run_id))
        for row in self.unit.left_inflight:
            if row["idempotent"]:
                log.info("run %s: step %r was in flight on %s; idempotent: it runs again", state.run_id,
                         row["step"], row["host"])
                continue
            result = interrupted_result(row, state.run_id, "its worker died (it is not idempotent)")
            self.store.add_result(state.run_id, result)
            state.results.append(result)
            state.failed.add(row["host"])
            state.interrupted.add(row["host"])

    def _mine(self, ps: PlannedStep | None, hosts: list[str]) -> list[str]:
        plan = self._plan
        return [h for h in hosts if queue_of(plan, h, ps.step if ps is not None else None) == self.unit.queue]

    def _sync(self, state: RunState, after_step: bool) -> None:
        if self.unit.units < 2 or (after_step and not self.unit.step_sync):
            return
        self._point += 1
        try:
            self.leases.reach(state.run_id, self.unit.queue, self.unit.token, self._point)
        except Fenced as exc:
            self._fenced(str(exc))
            return
        delay = SYNC_POLL
        while not self.cancel.is_set() and not reached(self.leases.leases(state.run_id), self._point):
            self.cancel.wait(delay)
            delay = min(0.5, delay * 1.5)
        state.failed |= _failed_hosts(self.leases.results(state.run_id))
        if self.unit.step_sync:  # a host's registered results may come from another queue's steps
            for host, values in self._resume_state(state.run_id, state.plan)[1].items():
                state.registered.setdefault(host, {}).update(values)

    def _release_locks(self, state: RunState) -> None:
        """The run's locks are released when its last unit ends (:func:`close_run`)."""

    def execute(self, plan: Plan, run_id: str | None = None) -> RunResult:
        self._plan = plan
        return super().execute(plan, run_id)

    def _finish(self, state: RunState, started: float, error: str | None, kind: RunError | None) -> RunResult:
        result = self._outcome(state, started, error, kind)
        self.leases.clear_inflight(state.run_id, self.unit.queue, self.unit.token)
        last = self.leases.finish_unit(state.run_id, self.unit.queue, self.unit.token, str(result.status),
                                       result.error, str(result.error_kind) if result.error_kind else None)
        if last:
            close_run(self.leases, state.run_id)
        self.observer.run_done(result)
        return result


def _failed_hosts(rows: list[dict[str, Any]]) -> set[str]:
    return {r["host"] for r in rows if r["phase"] == "main" and r["status"] in FAILING
            and not r["data"].get("ignored")}


def run_unit(store: SqlStore, run_id: str, queue: str, worker: str, ttl: float,
             hold: Any = None, release: Any = None) -> str:
    """Claim and run one unit; what happened, for the worker's log. ``hold``/``release``: the worker's heartbeat
    renews the lease of a held unit — from its claim on, planning included — and brings it cancellation."""
    dispatched = store.dispatched(run_id)
    if dispatched is None:
        return f"run {run_id}: not in store {store.url}: dropped (the worker and the dispatcher must share OPSFLOW_DB)"
    claim = store.claim_unit(run_id, queue, worker, ttl, claim_reason)
    if claim is None:
        return f"run {run_id} queue {queue}: done, given up or held by a live worker: duplicate delivery dropped"
    token, why, left = claim
    leases = store.leases(run_id)
    unit = Unit(run_id, queue, token, why, left, dispatched["step_sync"], len(leases))
    if hold is not None:
        hold(unit, None)  # planning a large inventory on a loaded machine may outlast the lease ttl
    try:
        try:
            with _PLANNING:
                plan = build_plan(request_from_dict(dispatched["request"]))
            if plan.loaded.content_hash != dispatched["runbook_hash"]:
                raise UsageError(f"runbook {plan.loaded.path} on worker {worker} differs from the one dispatched: "
                                 "deploy the same project to every worker")
        except OpsflowError as exc:
            error = f"worker {worker}: {type(exc).__name__}: {exc}"
            if store.finish_unit(run_id, queue, token, str(RunStatus.FAILED), error, str(RunError.INVALID)):
                close_run(store, run_id)
            return f"run {run_id} queue {queue}: not run: {error}"
        executor = UnitExecutor(store, unit)
        if hold is not None:
            hold(unit, executor)
        try:
            result = executor.execute(plan, run_id)
        except Fenced as exc:
            return f"run {run_id} queue {queue}: stopped, {exc}"
    finally:
        if release is not None:
            release(unit)
    return f"run {run_id} queue {queue} ({why}, token {token}): {result.status} on {len(unit_hosts(leases, queue))} host(s)"


# one plan at a time in a worker: inventories resolve through Ansible's InventoryManager, whose plugin loading
# is not safe in two threads at once (a half-loaded plugin module); planning holds the GIL anyway
_PLANNING = threading.Lock()


def unit_hosts(leases: list[Any], queue: str) -> list[str]:
    return next((list(lease.hosts) for lease in leases if lease.queue == queue), [])

