"""A fired slot's run: the same RunRequest as the CLI (trigger ``schedule``), through :func:`opsflow.api.execute`.

The plan is built in the run's own thread (the scheduler's loop never waits for an inventory or a
runbook): a plan a maintenance window refuses (``WindowClosed``) turns the record into ``skipped``
(blackout), a host whose lock another run holds into ``skipped`` (host locked), an invalid one into
outcome ``failed``. With an Alertmanager URL the run is wrapped in a maintenance silence of its hosts.
When its window ends while it runs, ``on_window_close`` applies (:func:`close_window`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from opsflow.api import execute
from opsflow.errors import OpsflowError, WindowClosed
from opsflow.executor import Executor, NullObserver, new_run_id
from opsflow.notify import Kind
from opsflow.planning import Plan, PlannedStep, RunRequest, build_plan
from opsflow.redact import Redactor
from opsflow.results import RunError, RunStatus
from opsflow.schedule import tz as tzmod
from opsflow.schedule.slots import Entry
from opsflow.service.notifications import Notices
from opsflow.silences import MaintenanceSilence, SilenceClient, maintenance_silence
from opsflow.store.base import Store

log = logging.getLogger("opsflow.scheduler")

# plans are built one at a time: a burst of fires at one instant loads a changed inventory once (Ansible's
# inventory plugins do not import safely from many threads at once), then the cached one
_PLANNING = threading.Lock()
FINISH_STEP_GRACE = 7 * 86400.0  # a window's close never kills the step in flight (the runbook timeout still does)
FAILED = {RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.CRASHED, RunStatus.ABANDONED}


@dataclass(frozen=True)
class RunConfig:
    inventory: str
    check: bool = False
    grace: float = 10.0              # a canceled run's in-flight step is killed after this (drain, replace)
    alertmanager: str | None = None  # maintenance silences around scheduled runs
    silence_default: float = 3600.0  # a silence's bound without a window or a runbook timeout


@dataclass(eq=False)
class Fire:
    """A slot being run (recorded ``fired``) or held until dependencies or concurrency allow it."""

    entry: Entry
    slot: float                       # the key of its record: the fire instant, or the deferred-to instant
    reason: str
    window_end: float | None = None
    deferred_from: list[float] = field(default_factory=list)
    claimed: bool = False
    run_id: str = field(default_factory=new_run_id)
    executor: Executor | None = None
    thread: threading.Thread | None = None
    closed: bool = False
    done: bool = False
    outcome: str | None = None
    started_at: float | None = None
    attempt: int = 0  # retries of a failed slot (retry_in) so far
    origin: float | None = None  # a retry's: the slot it tries again


def _iso(ts: float, entry: Entry) -> str:
    from datetime import UTC, datetime

    return tzmod.iso(datetime.fromtimestamp(ts, UTC), entry.tz)


class _Watch(NullObserver):
    def __init__(self, fire: Fire, store: Store, notices: Notices) -> None:
        self.fire, self.store, self.notices = fire, store, notices

    def run_started(self, run_id: str, plan: Plan) -> None:
        self.fire.started_at = time.time()
        try:
            self.store.update_fire(self.fire.entry.name, self.fire.slot, run_id=run_id)
        except OpsflowError as exc:  # the run goes on; its record is the executor's
            log.error("run %s: not recorded on its fire: %s", run_id, exc)
        log.info("%s %s: run %s started on %s (%.3f s after its slot)", self.fire.entry.name,
                 _iso(self.fire.slot, self.fire.entry), run_id, ", ".join(plan.targets),
                 self.fire.started_at - self.fire.slot)
        self.redactor = Redactor(plan.secrets)
        self.notices.send(self.fire.entry, "started", f"{self.fire.entry.name}: run {run_id} started",
                          f"Run {run_id} of {plan.name} started on {', '.join(plan.targets)}.", run_id=run_id,
                          redactor=self.redactor)

    def waiting(self, run_id: str, step: PlannedStep, message: str, deadline: float) -> None:
        self.notices.announce(Kind.APPROVAL_WAITING, f"scheduled run {run_id} ({self.fire.entry.name}) waits for "
                              "approval", f"{message}\nApprove: opsflow approve {run_id}   Deny: opsflow deny {run_id}\n"
                              f"No decision by {time.strftime('%Y-%m-%d %H:%M:%S %z', time.localtime(deadline))} "
                              "means deny.", run_id=run_id, reason=step.step.name,
                              redactor=getattr(self, "redactor", None))


def close_window(fire: Fire, store: Store, notices: Notices, end: str) -> None:
    """The run's window ended while it runs: ``on_window_close`` (continue, finish_step, rollback)."""
    fire.closed = True
    policy = fire.entry.spec.on_window_close
    if policy == "continue":
        fire.reason += f"; window closed at {end}: the run continues (on_window_close: continue)"
        store.update_fire(fire.entry.name, fire.slot, reason=fire.reason)
        return
    how = ("finish_step" if policy == "finish_step" else
           "rollback: then the completed hosts' rollback steps run, in reverse")
    fire.reason += f"; window closed at {end}: the step in flight finishes, no new step starts ({how})"
    store.update_fire(fire.entry.name, fire.slot, reason=fire.reason)
    if fire.executor is not None:
        fire.executor.grace = FINISH_STEP_GRACE  # request_cancel without a hard kill after the grace
        fire.executor.request_cancel(f"window closed at {end} (on_window_close: {policy})",
                                     kind=RunError.WINDOW_CLOSED, rollback=policy == "rollback")
    log.info("%s: window closed at %s; run %s stops after its step in flight", fire.entry.name, end, fire.run_id)
    notices.send(fire.entry, "window_closed", f"{fire.entry.name}: run {fire.run_id} stopped, its window closed",
                 f"The window of schedule entry {fire.entry.name} closed at {end}; run {fire.run_id} finishes the "
                 "step in flight and starts no other.", run_id=fire.run_id, reason="window closed")


@contextlib.contextmanager
def _silence(config: RunConfig, plan: Plan, fire: Fire) -> Iterator[MaintenanceSilence | None]:
    if not config.alertmanager:
        yield None
        return
    remaining = fire.window_end - time.time() if fire.window_end is not None else 0.0
    duration = remaining if remaining > 0 else (plan.loaded.runbook.timeout or config.silence_default)
    with maintenance_silence(SilenceClient(config.alertmanager), plan.targets, duration=duration,
                             created_by="opsflow-scheduler",
                             comment=f"opsflow schedule {fire.entry.name}: run {fire.run_id} of {plan.name}") as s:
        yield s


def _refuse(fire: Fire, store: Store, notices: Notices, reason: str, redactor: Redactor | None = None) -> None:
    """The slot was recorded fired but its run cannot start: the record becomes ``skipped``."""
    entry = fire.entry
    fire.outcome = "skipped"
    store.update_fire(entry.name, fire.slot, decision="skipped", reason=reason)
    for original in fire.deferred_from:
        store.update_fire(entry.name, original, outcome="skipped")
    log.info("%s %s: skipped (%s)", entry.name, _iso(fire.slot, entry), reason)
    notices.send(entry, "skipped", f"{entry.name}: the run of {_iso(fire.slot, entry)} is skipped",
                 f"Schedule entry {entry.name} ({entry.what}) does not run.\nReason: {reason}",
                 reason=reason, redactor=redactor)


def run_fire(fire: Fire, store: Store, config: RunConfig, notices: Notices) -> None:
    """Plan and run a fired slot; record its outcome (and on the slots deferred to it); notify."""
    entry, spec = fire.entry, fire.entry.spec
    request = RunRequest(runbook=entry.runbook_path or spec.runbook or entry.runbook, params=dict(spec.params),
                         inventory=config.inventory, limit=spec.limit, trigger="schedule",
                         started_by=f"schedule:{entry.name}", check=config.check,
                         windows_checked=True)  # the slot logic decided it against the entry's calendars
    try:
        with _PLANNING:
            plan = build_plan(request)
    except WindowClosed as exc:
        return _refuse(fire, store, notices, f"blackout: {exc}")
    except OpsflowError as exc:
        fire.outcome = "failed"
        fire.reason += f"; not started: {exc}"
        store.update_fire(entry.name, fire.slot, outcome="failed", reason=fire.reason)
        notices.send(entry, "failed", f"{entry.name}: the run of {_iso(fire.slot, entry)} could not start",
                     f"Schedule entry {entry.name}: {exc}", reason="invalid")
        return None
    redactor = Redactor(plan.secrets)
    for host in plan.targets:
        holder = store.host_lock_holder(host)
        if holder:
            return _refuse(fire, store, notices, f"{fire.reason}; host locked: run {holder} holds the lock of "
                           f"{host}; the entry runs again at its next slot", redactor)
    if fire.closed:
        return _refuse(fire, store, notices, f"{fire.reason}; its window closed before the run started", redactor)
    executor = fire.executor = Executor(store, _Watch(fire, store, notices), grace=config.grace)
    with _silence(config, plan, fire) as silence:
        result = execute(plan, executor=executor, run_id=fire.run_id)
    if silence is not None and silence.error:
        fire.reason += f"; {silence.error}"
    fire.outcome = str(result.status)
    store.update_fire(entry.name, fire.slot, run_id=result.run_id, outcome=fire.outcome,
                      reason=fire.reason if silence is not None and silence.error else None)
    for original in fire.deferred_from:
        store.update_fire(entry.name, original, run_id=result.run_id, outcome=fire.outcome)
    log.info("%s %s: run %s %s", entry.name, _iso(fire.slot, entry), result.run_id, result.status)
    if result.status in FAILED:
        failed = ", ".join(result.failed_hosts) or "-"
        notices.send(entry, "failed", f"{entry.name}: run {result.run_id} {result.status}",
                     f"Run {result.run_id} of {plan.name} (schedule entry {entry.name}, slot "
                     f"{_iso(fire.slot, entry)}) ended {result.status}.\nFailed hosts: {failed}\n"
                     f"{result.error or ''}\nSee: opsflow show {result.run_id}", run_id=result.run_id,
                     reason=str(result.error_kind or result.status), redactor=redactor)
    elif result.status == RunStatus.SUCCEEDED:
        notices.send(entry, "succeeded", f"{entry.name}: run {result.run_id} succeeded",
                     f"Run {result.run_id} of {plan.name} succeeded.", run_id=result.run_id, redactor=redactor)
    return None


__all__ = ["FINISH_STEP_GRACE", "Fire", "RunConfig", "close_window", "run_fire"]
