"""Running one step on its hosts: rendering, check mode, retries, conditions, approvals, sub-runbooks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsflow.actions import ACTIONS
from opsflow.connectors import HostTask, RunContext, connector_for
from opsflow.errors import OpsflowError, TemplateError
from opsflow.executor.observer import Observer
from opsflow.planning import Plan, PlannedStep, batches, check_support, project_file
from opsflow.redact import Redactor, redact
from opsflow.results import FAILING, NEVER_RETRIED, ErrorKind, HostStatus, RunResult, RunStatus, StepResult
from opsflow.runbook import render
from opsflow.store.base import Store

if TYPE_CHECKING:
    from opsflow.approvals_notify import ApprovalNotices

log = logging.getLogger(__name__)


@dataclass
class Services:
    """What a step runner needs from the executor that drives it (and nothing more)."""

    store: Store
    observer: Observer
    cancel: threading.Event
    cancel_reason: Callable[[], str]
    run_child: Callable[[Plan], RunResult]  # a sub-runbook's plan → its result, same store and cancellation
    # hosts about to start a step (a dispatched unit records them: a worker taking over finds them in flight)
    inflight: Callable[[PlannedStep, list[str]], None] | None = None


@dataclass
class RunState:
    run_id: str
    plan: Plan
    redactor: Redactor
    failed: set[str] = field(default_factory=set)
    interrupted: set[str] = field(default_factory=set)  # in a step when its worker died; a person decides (also failed)
    registered: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: list[StepResult] = field(default_factory=list)
    completed: dict[str, list[PlannedStep]] = field(default_factory=dict)  # host → main steps done, in order
    done_before: dict[str, dict[int, str]] = field(default_factory=dict)  # resume: host → step index → run id
    lock: threading.Lock = field(default_factory=threading.Lock)


def context(state: RunState, host: str) -> dict[str, Any]:
    plan = state.plan
    h = plan.inventory.hosts[host]
    return {
        **h.vars, **plan.params, **state.registered.get(host, {}),
        "params": plan.params, "inventory_hostname": host,
        "host": {"name": host, "address": h.address, "port": h.port, "user": h.user, "platform": h.platform,
                 "groups": list(h.groups), "vars": h.vars},
        "run": {"id": state.run_id, "runbook": plan.name, "check": plan.request.check,
                "trigger": plan.request.trigger},
    }


def _retryable(result: StepResult, retry_on: list[str | int]) -> bool:
    if not result.failed or result.error_class in NEVER_RETRIED:
        return False
    if str(result.status) in retry_on:
        return True
    return result.rc is not None and result.rc in retry_on and result.status == HostStatus.FAILED


class StepRunner:
    """Runs planned steps for an executor; every result goes through ``record``."""

    def __init__(self, services: Services, state: RunState, ctx: RunContext) -> None:
        self.ex = services
        self.state = state
        self.ctx = ctx

    # ---- recording -------------------------------------------------------------------
    def record(self, ps: PlannedStep, result: StepResult) -> None:
        """The one boundary where a result leaves a step: redacted here, then stored and shown."""
        step, state = ps.step, self.state
        redact(result, state.redactor)
        result.phase = ps.phase
        result.step_index = ps.index
        result.action = result.action or step.action
        if result.failed and step.ignore_errors:
            result.data["ignored"] = True
        with state.lock:
            state.results.append(result)
            if ps.phase == "main":
                if result.failed and not step.ignore_errors:
                    state.failed.add(result.host)
                elif result.status != HostStatus.SKIPPED:
                    state.completed.setdefault(result.host, []).append(ps)
            if step.register_as and "done_in" not in result.data:
                state.registered.setdefault(result.host, {})[step.register_as] = result.registered()
        self.ex.store.add_result(state.run_id, result)
        self.ex.observer.host_done(result)

    def _simple(self, ps: PlannedStep, host: str, status: HostStatus, error: str | None = None,
                error_class: str | None = None, **data: Any) -> None:
        now = time.time()
        self.record(ps, StepResult(ps.step.name, host, status, action=ps.step.action, error=error,
                                   error_class=error_class, data=dict(data), started_at=now, ended_at=now))

    # ---- one step --------------------------------------------------------------------
    def run(self, ps: PlannedStep) -> None:
        step, plan, state = ps.step, self.state.plan, self.state
        self.ex.observer.step_started(ps, ps.hosts)
        check = plan.request.check
        supported, how = check_support(step)
        plain = step.action != "verify" and not render.has_template(step.spec)  # renders to itself on every host
        tasks: list[HostTask] = []
        for host in ps.hosts:
            skip = None
            if ps.phase == "main" and host in state.interrupted:
                skip = "host interrupted: a step was in flight when its worker died (opsflow resume or abandon)"
            elif ps.phase == "main" and host in state.failed:
                skip = "host failed an earlier step"
            elif self.ex.cancel.is_set():
                skip = self.ex.cancel_reason() or "run canceled"
            elif ps.phase == "main" and ps.index in state.done_before.get(host, {}):
                done_in = state.done_before[host][ps.index]
                if done_in != state.run_id:  # else a worker taking this run over: the record is there already
                    self._simple(ps, host, HostStatus.SKIPPED, f"done in run {done_in}", done_in=done_in)
                continue
            if skip is None and step.when is not None:
                try:
                    if not render.evaluate(step.when, context(state, host)):
                        skip = f"when is false: {step.when}"
                except TemplateError as exc:
                    self._simple(ps, host, HostStatus.FAILED, str(exc), ErrorKind.TEMPLATE)
                    continue
            if skip is None and check and not supported:
                self._simple(ps, host, HostStatus.SKIPPED, how, not_checked=True)
                continue
            if skip is not None:
                self._simple(ps, host, HostStatus.SKIPPED, skip)
                continue
            try:
                spec = step.spec if plain else self._render_spec(ps, host)
            except TemplateError as exc:
                self._simple(ps, host, HostStatus.FAILED, str(exc), ErrorKind.TEMPLATE)
                continue
            tasks.append(HostTask(host=plan.inventory.hosts[host], spec=spec, step_name=step.name,
                                  step_index=ps.index, action=step.action, timeout=step.timeout, check=check))
        if tasks:
            for batch in batches([t.host.name for t in tasks], step.serial):
                if self.ex.cancel.is_set():
                    for t in tasks:
                        if t.host.name in batch:
                            self._simple(ps, t.host.name, HostStatus.SKIPPED, self.ex.cancel_reason())
                    continue
                self._with_retries(ps, [t for t in tasks if t.host.name in batch])
        self.ex.observer.step_done(ps)

    def _render_spec(self, ps: PlannedStep, host: str) -> Any:
        step = ps.step
        spec = step.spec
        ctx = context(self.state, host)
        if step.action == "verify":
            out = []
            for check in spec:
                data = render.render(check.model_dump(exclude_none=True), ctx)
                if "testinfra" in data:
                    data["testinfra"] = project_file(self.state.plan.loaded, data["testinfra"])
                out.append(type(check).model_validate(data))
            return out
        data = render.render(spec.model_dump(exclude_none=True), ctx)
        if step.action in ("command", "local"):
            data["argv"] = [str(a) for a in data["argv"]]
        return type(spec).model_validate(data)

    def _apply_conditions(self, ps: PlannedStep, result: StepResult) -> None:
        step = ps.step
        if step.changed_when is None and step.failed_when is None:
            return
        if result.status in (HostStatus.UNREACHABLE, HostStatus.TIMEOUT, HostStatus.SKIPPED):
            return
        ctx = {**context(self.state, result.host), "result": result.registered(), "rc": result.rc,
               "stdout": result.stdout, "stderr": result.stderr}
        try:
            if step.failed_when is not None:
                failed = render.evaluate(step.failed_when, ctx)
                result.status = HostStatus.FAILED if failed else (
                    HostStatus.CHANGED if result.changed else HostStatus.OK)
                result.error_class = ErrorKind.FAILED_WHEN if failed else None
                result.error = f"failed_when is true: {step.failed_when}" if failed else None
            if step.changed_when is not None and result.status not in FAILING:
                result.changed = render.evaluate(step.changed_when, ctx)
                result.status = HostStatus.CHANGED if result.changed else HostStatus.OK
        except TemplateError as exc:
            result.status, result.error_class, result.error = HostStatus.FAILED, ErrorKind.TEMPLATE, str(exc)

    def _with_retries(self, ps: PlannedStep, tasks: list[HostTask]) -> None:
        step = ps.step
        attempts = step.retries + 1
        pending, delay = tasks, step.delay
        for attempt in range(1, attempts + 1):
            retry: list[str] = []
            last = attempt == attempts

            def emit(result: StepResult, attempt: int = attempt, last: bool = last,
                     retry: list[str] = retry) -> None:
                result.attempts = attempt
                self._apply_conditions(ps, result)
                if not last and not self.ex.cancel.is_set() and _retryable(result, step.retry_on):
                    retry.append(result.host)
                    return
                self.record(ps, result)

            by_kind: dict[str, list[HostTask]] = {}
            for t in pending:
                by_kind.setdefault(t.host.kind, []).append(t)
            for kind, group in by_kind.items():
                if self.ex.inflight is not None:
                    self.ex.inflight(ps, [t.host.name for t in group])
                self._dispatch(ps, kind, group, emit)
            if not retry:
                return
            pending = [t for t in pending if t.host.name in retry]
            self.ex.cancel.wait(delay)
            delay *= step.backoff

    def _dispatch(self, ps: PlannedStep, kind: str, tasks: list[HostTask],
                  emit: Callable[[StepResult], None]) -> None:
        action = ps.step.action
        if action == "approve":
            self._approve(ps, tasks, emit)
            return
        if action == "runbook":
            self._sub_runbook(ps, tasks, emit)
            return
        if ACTIONS[action].wrong_target(kind):
            wrong = ("{a} runs on servers; {h} is a {p} device (use network.command / network.config)"
                     if kind == "device" else "{a} runs on network devices; {h} is a server")
            for t in tasks:
                emit(t.result(HostStatus.FAILED, error_class=ErrorKind.WRONG_TARGET,
                              error=wrong.format(a=action, h=t.host.name, p=t.host.platform),
                              started_at=time.time(), ended_at=time.time()))
            return
        connector_for(action, kind).run(tasks, self.ctx, emit)

    # ---- approvals -------------------------------------------------------------------
    def _approve(self, ps: PlannedStep, tasks: list[HostTask], emit: Callable[[StepResult], None]) -> None:
        """Pause the run until someone runs ``opsflow approve`` or ``deny``; no decision in time = deny."""
        spec, store, run_id = tasks[0].spec, self.ex.store, self.state.run_id
        started = time.time()
        deadline = started + spec.timeout
        message = self.state.redactor.text(spec.message)
        store.request_approval(run_id, ps.index, ps.step.name, message, deadline, four_eyes=spec.four_eyes)
        store.set_status(run_id, RunStatus.WAITING)
        self.ex.observer.waiting(run_id, ps, message, deadline)
        notices = self._approval_notices(ps, spec, message, started, deadline)
        decision: dict[str, Any] | None = None
        try:
            while True:
                decision = store.approval(run_id, ps.index)
                if decision and decision["state"] != "pending":
                    break
                if self.ex.cancel.is_set() or time.time() >= deadline:
                    reason = self.ex.cancel_reason() if self.ex.cancel.is_set() else (
                        f"no decision within {spec.timeout:g} s: denied")
                    store.expire_approval(run_id, ps.index, reason)
                    decision = store.approval(run_id, ps.index)
                    break
                self.ex.cancel.wait(0.2)
        finally:
            if notices is not None:
                notices.stop()
        store.set_status(run_id, RunStatus.RUNNING)
        assert decision is not None
        approved = decision["state"] == "approved"
        data = {k: decision[k] for k in ("state", "decided_by", "decided_at", "comment", "message")}
        for t in tasks:
            emit(t.result(HostStatus.OK if approved else HostStatus.FAILED, data=dict(data),
                          error_class=None if approved else ErrorKind.NOT_APPROVED,
                          error=None if approved else f"{decision['state']}"
                          + (f" by {decision['decided_by']}" if decision["decided_by"] else "")
                          + (f": {decision['comment']}" if decision["comment"] else ""),
                          started_at=started, ended_at=time.time()))

    def _approval_notices(self, ps: PlannedStep, spec: Any, message: str, started: float,
                          deadline: float) -> ApprovalNotices | None:
        """The runbook's owners told now, the escalation levels later (on a thread: never blocks the run)."""
        plan = self.state.plan
        owners = plan.loaded.runbook.owners
        if not owners and not spec.escalate:
            return None
        # the notifier (Apprise routing) only when someone is to be told
        from opsflow.approvals_notify import ApprovalNotices, Level, Waiting

        waiting = Waiting(self.state.run_id, ps.index, plan.name, ps.step.name, message, plan.request.started_by,
                          started, deadline)
        levels = [Level(e.after, tuple(e.to)) for e in spec.escalate]
        try:
            return ApprovalNotices(self.ex.store, waiting, owners, levels, self.state.redactor).start()
        except Exception as exc:  # noqa: BLE001 - telling people must never fail the run
            log.warning("run %s: approval notifications not sent: %s", self.state.run_id,
                        self.state.redactor.text(str(exc)))
            return None

    # ---- sub-runbooks ----------------------------------------------------------------
    def _sub_runbook(self, ps: PlannedStep, tasks: list[HostTask], emit: Callable[[StepResult], None]) -> None:
        from opsflow.planning import RunRequest, build_plan

        plan, started = self.state.plan, time.time()
        spec = tasks[0].spec
        from opsflow.runbook.validate import resolve_runbook

        path = resolve_runbook(plan.loaded.root, plan.loaded.path, spec.path) or Path(spec.path)
        req = plan.request
        try:
            child = build_plan(RunRequest(
                runbook=str(path), params=spec.params, inventory=req.inventory,
                limit=":".join(t.host.name for t in tasks), trigger=req.trigger, started_by=req.started_by,
                check=req.check, parent_run=self.state.run_id,
                lock_owners=req.lock_owners | {self.state.run_id}))
            child.secrets = child.secrets + plan.secrets  # the parent's secrets stay masked in the child's records
            result = self.ex.run_child(child)
        except OpsflowError as exc:
            for t in tasks:
                emit(t.result(HostStatus.FAILED, error_class=ErrorKind.INVALID, error=f"{type(exc).__name__}: {exc}",
                              started_at=started, ended_at=time.time()))
            return
        for t in tasks:
            status = result.hosts.get(t.host.name, HostStatus.SKIPPED)
            emit(t.result(status, changed=status == HostStatus.CHANGED, data={"run": result.run_id},
                          stdout=f"sub-runbook {child.name}: run {result.run_id} {result.status}",
                          error_class=ErrorKind.SUB_RUNBOOK_FAILED if status in FAILING else None,
                          error=f"sub-runbook run {result.run_id}: host {status}" if status in FAILING else None,
                          started_at=started, ended_at=time.time()))

    # ---- facts -----------------------------------------------------------------------
    FACTS_SCRIPT = ('echo "hostname=$(uname -n)"; echo "kernel=$(uname -r)"; echo "arch=$(uname -m)"; '
                    'if [ -r /etc/os-release ]; then . /etc/os-release; echo "os=$ID"; echo "os_version=$VERSION_ID"; fi; '
                    'echo "cpus=$(getconf _NPROCESSORS_ONLN)"; '
                    'awk \'/MemTotal/ {print "memory_mb=" int($2/1024)}\' /proc/meminfo')

    def gather_facts(self, hosts: list[str]) -> None:
        """A first step on servers whose parsed output templates see as ``facts``."""
        from opsflow.runbook.models import CommandAction, Step

        servers = [h for h in hosts if self.state.plan.inventory.hosts[h].kind == "server"]
        if not servers:
            return
        step = Step.model_validate({"name": "gather facts", "command": CommandAction(argv=["sh", "-c", self.FACTS_SCRIPT]),
                                    "changed_when": False, "register": "facts", "idempotent": True})
        self.run(PlannedStep(-1, step, servers, "main"))
        for host in servers:
            raw = self.state.registered.get(host, {}).get("facts")
            if raw is not None:
                facts: dict[str, Any] = {}
                for line in str(raw.get("stdout", "")).splitlines():
                    key, _, value = line.partition("=")
                    facts[key] = int(value) if value.isdigit() else value
                self.state.registered[host]["facts"] = facts

    # ---- rollback --------------------------------------------------------------------
    def rollback(self, hosts: list[str]) -> None:
        """Undo, in reverse order, the steps each newly failed host completed."""
        groups: dict[tuple[int, ...], list[str]] = {}
        for host in hosts:
            done = [ps.index for ps in self.state.completed.get(host, []) if ps.step.rollback]
            if done:
                groups.setdefault(tuple(done), []).append(host)
        for done_steps, group in groups.items():
            by_index = {ps.index: ps for ps in self.state.plan.steps}
            for index in reversed(done_steps):
                for rstep in by_index[index].step.rollback:
                    self.run(PlannedStep(index, rstep, group, "rollback"))
