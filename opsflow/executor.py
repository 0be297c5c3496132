"""The one executor: execute(Plan) → RunResult, recording every outcome as it happens."""

from __future__ import annotations

import os
import secrets as _secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from opsflow.connectors import HostTask, RunContext, connector_for
from opsflow.errors import OpsflowError, TemplateError
from opsflow.plan import Plan, PlannedStep, project_file
from opsflow.redact import Redactor
from opsflow.results import (
    FAILING,
    HostStatus,
    RunResult,
    RunStatus,
    StepResult,
    host_outcome,
    run_outcome,
)
from opsflow.runbook import render
from opsflow.store.base import RunRecord, Store
from opsflow.store.sql import process_start


class Observer(Protocol):
    """Watches a run without changing it (progress bars, logs, metrics)."""

    def run_started(self, run_id: str, plan: Plan) -> None: ...
    def step_started(self, step: PlannedStep, hosts: list[str]) -> None: ...
    def host_done(self, result: StepResult) -> None: ...
    def step_done(self, step: PlannedStep) -> None: ...
    def run_done(self, result: RunResult) -> None: ...


class NullObserver:
    def run_started(self, run_id: str, plan: Plan) -> None: ...
    def step_started(self, step: PlannedStep, hosts: list[str]) -> None: ...
    def host_done(self, result: StepResult) -> None: ...
    def step_done(self, step: PlannedStep) -> None: ...
    def run_done(self, result: RunResult) -> None: ...


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + _secrets.token_hex(3)


@dataclass
class _RunState:
    run_id: str
    plan: Plan
    redactor: Redactor
    failed: set[str] = field(default_factory=set)
    registered: dict[str, dict[str, Any]] = field(default_factory=dict)
    results: list[StepResult] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Executor:
    def __init__(self, store: Store, observer: Observer | None = None) -> None:
        self.store = store
        self.observer: Observer = observer or NullObserver()
        self.cancel = threading.Event()
        self.cancel_reason = ""

    def request_cancel(self, reason: str = "canceled by signal") -> None:
        self.cancel_reason = reason
        self.cancel.set()

    # ---- the run ---------------------------------------------------------------------
    def execute(self, plan: Plan, run_id: str | None = None) -> RunResult:
        rb = plan.loaded.runbook
        state = _RunState(run_id=run_id or new_run_id(), plan=plan, redactor=Redactor(plan.secrets))
        started = time.time()
        req = plan.request
        self.store.create_run(RunRecord(
            id=state.run_id, runbook=rb.name, runbook_path=str(plan.loaded.path), runbook_hash=plan.loaded.content_hash,
            params=plan.public_params(), trigger=req.trigger, started_by=req.started_by, started_at=started,
            check_mode=req.check, inventory=str(req.inventory), parent_run=req.parent_run, pid=os.getpid(),
            pid_start=process_start(os.getpid()), hosts={h: "pending" for h in plan.targets}))
        self.observer.run_started(state.run_id, plan)
        ctx = RunContext(inventory=plan.inventory, redactor=state.redactor, concurrency=rb.concurrency,
                         cancel=self.cancel)
        deadline = started + rb.timeout if rb.timeout else None
        error: str | None = None
        try:
            for ps in plan.steps:
                if deadline and time.time() > deadline:
                    self.request_cancel(f"runbook timeout of {rb.timeout:g} s reached")
                if self.cancel.is_set():
                    break
                self._step(ps, state, ctx)
            failed_hosts = [h for h in plan.targets if h in state.failed]
            if failed_hosts and plan.on_failure and not self.cancel.is_set():
                for ps in plan.on_failure:
                    hosts = [h for h in ps.hosts if h in failed_hosts]
                    self._step(PlannedStep(ps.index, ps.step, hosts, "on_failure"), state, ctx)
        except OpsflowError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except BaseException as exc:  # noqa: BLE001 - the run is recorded whatever happens
            error = f"internal error {type(exc).__name__}: {exc}"
            if not isinstance(exc, Exception):
                self.request_cancel(f"interrupted ({type(exc).__name__})")
        finally:
            ctx.close()
        return self._finish(state, started, error)

    def _finish(self, state: _RunState, started: float, error: str | None) -> RunResult:
        plan = state.plan
        hosts = {h: host_outcome([r for r in state.results if r.host == h]) for h in plan.targets}
        status = run_outcome(hosts, error)
        if self.cancel.is_set() and error is None:
            status = RunStatus.FAILED if "timeout" in self.cancel_reason else RunStatus.CANCELED
            error = self.cancel_reason
        ended = time.time()
        error = state.redactor.text(error) if error else None
        self.store.finish_run(state.run_id, status, ended, {h: str(s) for h, s in hosts.items()}, error)
        result = RunResult(run_id=state.run_id, runbook=plan.name, status=status, started_at=started,
                           ended_at=ended, hosts=hosts, steps=state.results, error=error)
        self.observer.run_done(result)
        return result

    # ---- one step --------------------------------------------------------------------
    def _context(self, state: _RunState, host: str) -> dict[str, Any]:
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

    def _record(self, state: _RunState, ps: PlannedStep, result: StepResult) -> None:
        step = ps.step
        result.phase = ps.phase
        result.step_index = ps.index
        if result.failed and step.ignore_errors:
            result.data["ignored"] = True
        with state.lock:
            state.results.append(result)
            if result.failed and not step.ignore_errors and ps.phase == "main":
                state.failed.add(result.host)
            if step.register_as:
                state.registered.setdefault(result.host, {})[step.register_as] = result.registered()
        self.store.add_result(state.run_id, result)
        self.observer.host_done(result)

    def _apply_conditions(self, state: _RunState, ps: PlannedStep, result: StepResult) -> None:
        step = ps.step
        if step.changed_when is None and step.failed_when is None:
            return
        if result.status in (HostStatus.UNREACHABLE, HostStatus.TIMEOUT, HostStatus.SKIPPED):
            return
        ctx = {**self._context(state, result.host), "result": result.registered(), "rc": result.rc,
               "stdout": result.stdout, "stderr": result.stderr}
        try:
            if step.failed_when is not None:
                failed = render.evaluate(step.failed_when, ctx)
                result.status = HostStatus.FAILED if failed else (
                    HostStatus.CHANGED if result.changed else HostStatus.OK)
                result.error_class = "FailedWhen" if failed else None
                result.error = f"failed_when is true: {step.failed_when}" if failed else None
            if step.changed_when is not None and result.status not in FAILING:
                result.changed = render.evaluate(step.changed_when, ctx)
                result.status = HostStatus.CHANGED if result.changed else HostStatus.OK
        except TemplateError as exc:
            result.status, result.error_class, result.error = HostStatus.FAILED, "TemplateError", str(exc)

    def _step(self, ps: PlannedStep, state: _RunState, ctx: RunContext) -> None:
        step, plan = ps.step, state.plan
        self.observer.step_started(ps, ps.hosts)
        tasks: list[HostTask] = []
        for host in ps.hosts:
            now = time.time()
            skip = None
            if ps.phase == "main" and host in state.failed:
                skip = "host failed an earlier step"
            elif self.cancel.is_set():
                skip = self.cancel_reason or "run canceled"
            if skip is None and step.when is not None:
                try:
                    if not render.evaluate(step.when, self._context(state, host)):
                        skip = f"when is false: {step.when}"
                except TemplateError as exc:
                    self._record(state, ps, StepResult(step.name, host, HostStatus.FAILED, action=step.action,
                                                       error_class="TemplateError", error=str(exc),
                                                       started_at=now, ended_at=time.time()))
                    continue
            if skip is not None:
                self._record(state, ps, StepResult(step.name, host, HostStatus.SKIPPED, action=step.action,
                                                   error=skip, started_at=now, ended_at=now))
                continue
            try:
                spec = self._render_spec(step, state, host)
            except TemplateError as exc:
                self._record(state, ps, StepResult(step.name, host, HostStatus.FAILED, action=step.action,
                                                   error_class="TemplateError", error=state.redactor.text(str(exc)),
                                                   started_at=now, ended_at=time.time()))
                continue
            tasks.append(HostTask(host=plan.inventory.hosts[host], spec=spec, step_name=step.name,
                                  step_index=ps.index, action=step.action, timeout=step.timeout,
                                  check=plan.request.check))
        if tasks:
            self._run_with_retries(ps, tasks, state, ctx)
        self.observer.step_done(ps)

    def _render_spec(self, step: Any, state: _RunState, host: str) -> Any:
        spec = step.spec
        ctx = self._context(state, host)
        if step.action == "verify":
            out = []
            for check in spec:
                data = render.render(check.model_dump(exclude_none=True), ctx)
                if "testinfra" in data:
                    data["testinfra"] = project_file(state.plan.loaded, data["testinfra"])
                out.append(type(check).model_validate(data))
            return out
        data = render.render(spec.model_dump(exclude_none=True), ctx)
        if step.action in ("command", "local"):
            data["argv"] = [str(a) for a in data["argv"]]
        return type(spec).model_validate(data)

    def _run_with_retries(self, ps: PlannedStep, tasks: list[HostTask], state: _RunState, ctx: RunContext) -> None:
        step = ps.step
        attempts = step.retries + 1
        pending = tasks
        for attempt in range(1, attempts + 1):
            retry: list[str] = []
            last = attempt == attempts

            def emit(result: StepResult, attempt: int = attempt, last: bool = last,
                     retry: list[str] = retry) -> None:
                result.attempts = attempt
                self._apply_conditions(state, ps, result)
                if result.failed and not last and not self.cancel.is_set():
                    retry.append(result.host)
                    return
                self._record(state, ps, result)

            by_kind: dict[str, list[HostTask]] = {}
            for t in pending:
                by_kind.setdefault(t.host.kind, []).append(t)
            for kind, group in by_kind.items():
                self._dispatch(step.action, kind, group, ctx, emit)
            if not retry:
                return
            pending = [t for t in pending if t.host.name in retry]
            self._sleep(step.delay)

    def _dispatch(self, action: str, kind: str, tasks: list[HostTask], ctx: RunContext,
                  emit: Callable[[StepResult], None]) -> None:
        if action in ("command", "ansible") and kind == "device":
            for t in tasks:
                emit(t.result(HostStatus.FAILED, error_class="WrongTarget",
                              error=f"{action} runs on servers; {t.host.name} is a {t.host.platform} device "
                                    "(use network.command / network.config)", started_at=time.time(),
                              ended_at=time.time()))
            return
        if action.startswith("network.") and kind == "server":
            for t in tasks:
                emit(t.result(HostStatus.FAILED, error_class="WrongTarget",
                              error=f"{action} runs on network devices; {t.host.name} is a server",
                              started_at=time.time(), ended_at=time.time()))
            return
        connector_for(action, kind).run(tasks, ctx, emit)

    def _sleep(self, seconds: float) -> None:
        self.cancel.wait(seconds)
