"""The one executor: execute(Plan) → RunResult, recording every outcome as it happens.

A run: take locks → for each rolling batch, run every step on the batch's hosts
(a host that fails skips its remaining steps, rolls back what it completed, then
runs ``on_failure``) → stop starting batches past ``max_fail_percentage`` →
record the outcome → release locks. Cancellation (signal, runbook timeout) lets
no new host or step start; a second request kills what is still in flight.
"""

from __future__ import annotations

import os
import secrets as _secrets
import threading
import time
from collections.abc import Callable

from opsflow.connectors import RunContext
from opsflow.errors import OpsflowError
from opsflow.executor.observer import NullObserver, Observer
from opsflow.executor.steps import RunState, Services, StepRunner
from opsflow.planning import Plan, PlannedStep, ssh_sessions
from opsflow.proc import process_start
from opsflow.redact import Redactor
from opsflow.results import (
    FAILING,
    HostStatus,
    RunError,
    RunResult,
    RunStatus,
    StepResult,
    host_outcome,
    run_outcome,
)
from opsflow.resume import ancestors
from opsflow.store.base import RunRecord, Store


class LockHeld(OpsflowError):
    exit_code = 1


CANCEL_POLL = 1.0  # seconds between two looks for a cancel asked through the store


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + _secrets.token_hex(3)


class Executor:
    def __init__(self, store: Store, observer: Observer | None = None,
                 cancel: threading.Event | None = None, grace: float = 10.0) -> None:
        self.store = store
        self.grace = grace
        self.observer: Observer = observer or NullObserver()
        self.cancel = cancel or threading.Event()
        self.cancel_reason = ""
        self.cancel_kind = RunError.CANCELED
        self.rollback_on_cancel = False
        self._contexts: list[RunContext] = []
        self.inflight: Callable[[PlannedStep, list[str]], None] | None = None  # see Services.inflight

    def child(self) -> Executor:
        """An executor for a sub-runbook: same store, observer and cancellation."""
        sub = Executor(self.store, self.observer, self.cancel)
        sub._contexts = self._contexts
        return sub

    def _run_child(self, plan: Plan) -> RunResult:
        """A sub-runbook's plan, run by a child executor: same store, observer and cancellation."""
        return self.child().execute(plan)

    def request_cancel(self, reason: str = "canceled by signal", hard: bool = False,
                       kind: RunError = RunError.CANCELED, rollback: bool = False) -> None:
        """Let no new host or step start; with ``hard``, also kill what is in flight. With ``rollback``,
        the hosts that completed steps then have them rolled back (a maintenance window closing)."""
        if not self.cancel.is_set():
            self.cancel_reason, self.cancel_kind, self.rollback_on_cancel = reason, kind, rollback
            if not hard:  # in-flight work gets a short deadline, then it is stopped
                timer = threading.Timer(self.grace, self.request_cancel, (reason, True, kind))
                timer.daemon = True
                timer.start()
        self.cancel.set()
        if hard:
            for ctx in list(self._contexts):
                ctx.kill_inflight()

    # ---- the run ---------------------------------------------------------------------
    def execute(self, plan: Plan, run_id: str | None = None) -> RunResult:
        rb, req = plan.loaded.runbook, plan.request
        state = RunState(run_id=run_id or new_run_id(), plan=plan, redactor=Redactor(plan.secrets))
        if req.resume_of:
            state.done_before, state.registered = self._resume_state(req.resume_of, plan)
        started = self._record_start(state)
        self.observer.run_started(state.run_id, plan)
        watched = threading.Event()
        threading.Thread(target=self._watch_cancel, args=(state.run_id, started, watched), daemon=True,
                         name=f"opsflow-cancel-watch-{state.run_id}").start()
        ctx = RunContext(inventory=plan.inventory, redactor=state.redactor, concurrency=rb.concurrency,
                         cancel=self.cancel, run_id=state.run_id, multiplex=ssh_sessions(plan) > 1)
        self._contexts.append(ctx)
        runner = StepRunner(Services(self.store, self.observer, self.cancel, lambda: self.cancel_reason,
                                     self._run_child, self.inflight), state, ctx)
        error: str | None = None
        kind: RunError | None = None
        timer = None
        if rb.timeout:
            timer = threading.Timer(rb.timeout, self.request_cancel,
                                    (f"runbook timeout of {rb.timeout:g} s reached", True, RunError.TIMEOUT))
            timer.daemon = True
            timer.start()
        try:
            self._take_locks(state)
            error = self._batches(runner, state)
            kind = RunError.MAX_FAIL if error else None
        except LockHeld as exc:
            error, kind = str(exc), RunError.LOCK_HELD
        except OpsflowError as exc:
            error, kind = f"{type(exc).__name__}: {exc}", RunError.INVALID
        except Exception as exc:  # noqa: BLE001 - the run is recorded whatever happens
            error, kind = f"internal error {type(exc).__name__}: {exc}", RunError.INTERNAL
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: stop at once, still record
            self.request_cancel(f"interrupted ({type(exc).__name__})", hard=True)
        finally:
            watched.set()
            if timer:
                timer.cancel()
            ctx.close()
            self._contexts.remove(ctx)
            self._release_locks(state)
        return self._finish(state, started, error, kind)

    def _record_start(self, state: RunState) -> float:
        return record_start(self.store, state.plan, state.run_id)

    def _release_locks(self, state: RunState) -> None:
        self.store.release_locks(state.run_id)

    # ---- what a dispatched unit of work (opsflow.dispatch.unit) changes ----------------
    def _mine(self, ps: PlannedStep | None, hosts: list[str]) -> list[str]:
        """The hosts of ``hosts`` this executor runs ``ps`` on (None: facts); a unit: those of its queue."""
        return hosts

    def _sync(self, state: RunState, after_step: bool) -> None:
        """After each step (``after_step``) and each batch: where units of one run meet. In process: nothing."""

    def _watch_cancel(self, run_id: str, since: float, done: threading.Event) -> None:
        """A cancel asked for through the store, maybe by another process: the audit log's ``cancel`` entry of
        this run (``opsflow serve``'s POST /api/v1/runs/{id}/cancel writes it)."""
        while not done.wait(CANCEL_POLL) and not self.cancel.is_set():
            try:
                asked = self.store.audit_entries("cancel", target=run_id, since=since - 1, limit=1)
            except Exception:  # noqa: BLE001 - the store busy, away or closing: the run goes on, look again
                continue
            if asked:
                self.request_cancel(f"canceled by {asked[0]['actor']}")
                return

    def _batches(self, runner: StepRunner, state: RunState) -> str | None:
        plan, rb = state.plan, state.plan.loaded.runbook
        batches = plan.batches
        targets = set(plan.targets)
        for number, batch in enumerate(batches, 1):
            members = set(batch)
            if rb.gather_facts:
                runner.gather_facts(self._mine(None, batch))
            for ps in plan.steps:  # after a cancel, the remaining steps are recorded as skipped
                # hosts outside the targets (a step's own `hosts:`) run with the first batch
                hosts = self._mine(ps, [h for h in ps.hosts if h in members or (number == 1 and h not in targets)])
                before = set(state.failed)
                runner.run(PlannedStep(ps.index, ps.step, hosts, ps.phase))
                newly = [h for h in hosts if h in state.failed and h not in before and h not in state.interrupted]
                if newly:
                    runner.rollback(newly)
                self._sync(state, True)
            failed_now = [h for h in batch if h in state.failed and h not in state.interrupted]
            if failed_now and plan.on_failure and not self.cancel.is_set():
                for ps in plan.on_failure:
                    runner.run(PlannedStep(ps.index, ps.step, self._mine(ps, [h for h in ps.hosts if h in failed_now]),
                                           "on_failure"))
            if number < len(batches):  # the next batch starts once every unit ended this one
                self._sync(state, False)
            failed_now = [h for h in batch if h in state.failed]
            if self.cancel.is_set():
                if self.rollback_on_cancel:
                    self._roll_back_completed(runner, state)
                return None
            limit = rb.max_fail_percentage
            if limit is not None and batch and 100.0 * len(failed_now) / len(batch) > limit and number < len(batches):
                rest = [h for b in batches[number:] for h in b]
                return (f"batch {number} of {len(batches)}: {len(failed_now)} of {len(batch)} host(s) failed "
                        f"({100.0 * len(failed_now) / len(batch):.0f}% > max_fail_percentage {limit:g}%); "
                        f"not started: {', '.join(rest)}")
        return None

    def _roll_back_completed(self, runner: StepRunner, state: RunState) -> None:
        """Undo, in reverse order, what every host that did not fail completed (its ``rollback:`` steps).

        No step is in flight here; cancellation is paused while the rollback steps run, then resumed, so
        the run still ends canceled with its reason."""
        hosts = [h for h in state.completed if h not in state.failed]
        self.cancel.clear()
        try:
            runner.rollback(hosts)
        finally:
            self.cancel.set()

    def _take_locks(self, state: RunState) -> None:
        plan = state.plan
        spec = plan.loaded.runbook.lock
        if spec is None:
            return
        resources = ([f"runbook:{plan.name}"] if spec.scope == "runbook"
                     else [f"host:{h}" for h in sorted(plan.targets)])
        deadline = time.time() + spec.wait
        for resource in resources:
            while True:
                holder = self.store.try_lock(resource, state.run_id, plan.name, plan.request.lock_owners)
                if holder is None:
                    break
                if time.time() >= deadline or self.cancel.is_set():
                    waited = f" after waiting {spec.wait:g} s" if spec.wait else ""
                    raise LockHeld(f"lock {resource} is held by run {holder}{waited}; "
                                   f"see `opsflow show {holder}`")
                self.cancel.wait(0.2)

    def _resume_state(self, original: str, plan: Plan) -> tuple[dict[str, dict[int, str]], dict[str, dict]]:
        """What any run of the resume chain up to ``original`` completed, per host, and registered results."""
        done: dict[str, dict[int, str]] = {}
        registered: dict[str, dict[str, object]] = {}
        names = {ps.index: ps.step for ps in plan.steps}
        record = self.store.get_run(original)
        for run in ancestors(self.store, record) if record else []:  # oldest first: later runs override
            for row in self.store.results(run["id"]):
                if row["phase"] != "main" or row["step_index"] not in names:
                    continue
                ok = row["status"] in ("ok", "changed") or (row["data"].get("ignored") and row["status"] in FAILING)
                inherited = row["data"].get("done_in")
                if not (ok or inherited):
                    continue
                done.setdefault(row["host"], {})[row["step_index"]] = inherited or run["id"]
                step = names[row["step_index"]]
                if step.register_as and ok:
                    r = StepResult(row["step"], row["host"], HostStatus(row["status"]), changed=row["changed"],
                                   rc=row["rc"], stdout=row["stdout"], stderr=row["stderr"], data=row["data"])
                    registered.setdefault(row["host"], {})[step.register_as] = r.registered()
        return done, registered

    def _finish(self, state: RunState, started: float, error: str | None, kind: RunError | None) -> RunResult:
        result = self._outcome(state, started, error, kind)
        self.store.finish_run(state.run_id, result.status, result.ended_at, {h: str(s) for h, s in result.hosts.items()},
                              result.error, str(result.error_kind) if result.error_kind else None)
        self.observer.run_done(result)
        return result

    def _outcome(self, state: RunState, started: float, error: str | None, kind: RunError | None) -> RunResult:
        plan = state.plan
        of_host: dict[str, list[StepResult]] = {h: [] for h in plan.targets}
        for r in state.results:  # one pass: not every result for every host (200 hosts: 40,000 comparisons)
            if r.host in of_host:
                of_host[r.host].append(r)
        hosts = {h: host_outcome(rs) for h, rs in of_host.items()}
        status = run_outcome(hosts, error)
        if kind == RunError.INTERNAL:
            status = RunStatus.CRASHED
        elif self.cancel.is_set() and error is None:
            kind, error = self.cancel_kind, self.cancel_reason
            status = RunStatus.FAILED if kind == RunError.TIMEOUT else RunStatus.CANCELED
        elif status != RunStatus.SUCCEEDED and kind is None:
            kind = RunError.HOSTS_FAILED
        ended = time.time()
        error = state.redactor.text(error) if error else None
        return RunResult(run_id=state.run_id, runbook=plan.name, status=status, started_at=started,
                         ended_at=ended, hosts=hosts, steps=state.results, error=error, error_kind=kind)


def record_start(store: Store, plan: Plan, run_id: str, node: str = "") -> float:
    """A run's record, created as it starts (and a window override audited); its start time. ``node``: where it
    runs (this machine by default; a dispatched run's is ``celery``: no process of this machine owns it)."""
    rb, req = plan.loaded.runbook, plan.request
    started = time.time()
    store.create_run(RunRecord(
        id=run_id, runbook=rb.name, runbook_path=str(plan.loaded.path),
        runbook_hash=plan.loaded.content_hash, params=plan.public_params(), trigger=req.trigger,
        started_by=req.started_by, started_at=started, check_mode=req.check, inventory=str(req.inventory),
        parent_run=req.parent_run, pid=os.getpid(), pid_start=process_start(os.getpid()), node=node,
        hosts={h: "pending" for h in plan.targets}))
    if plan.window_override:  # a person let this run past a closed window: who, when and why
        store.audit(req.started_by, "window_override", f"run {run_id} of {rb.name}",
                    f"{req.override_window} (overrode: {plan.window_override})")
    return started
