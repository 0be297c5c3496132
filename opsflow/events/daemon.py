"""The daemon's core: record each event, decide (rules → guard), queue, run through the one funnel, drain.

``record`` / ``submit`` record a request's events before the sender gets its 200: concurrent
requests share one durable transaction (``opsflow.events.commit``, group commit), so an event
acknowledged to its sender is on record exactly once, even if the process is killed the next
instant. Rules are evaluated and decisions taken after that commit, off the request path, by one
decider thread in commit order (``opsflow.events.decide``); a queued remediation is handed to a
worker only once its decision is recorded. Runs go through ``build_plan`` and ``Executor`` like
``opsflow run``, in a bounded pool fed by a bounded queue: threads of this process (``opsflow daemon``),
or threads that each hand their runs to a worker process of their own (``opsflow serve``,
``Settings.processes``: ``opsflow.events.runner``), so runs never take the interpreter from intake.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsflow.api import execute
from opsflow.errors import Diagnostic, OpsflowError, RunbookError, UsageError, WindowClosed
from opsflow.events.commit import GroupCommit, Ticket, durable
from opsflow.events.decide import Decider, Item, Pending
from opsflow.events.metrics import Metrics
from opsflow.events.models import Event
from opsflow.events.rules import HostIndex, Rule, evaluate, rules_of
from opsflow.events.runner import Cancel, Child
from opsflow.events.safety import Guard
from opsflow.executor import Executor, NullObserver, new_run_id
from opsflow.inventory import load_inventory
from opsflow.notify import Kind
from opsflow.planning import Plan, PlannedStep, RunRequest, build_plan
from opsflow.proc import process_alive, process_start
from opsflow.redact import Redactor
from opsflow.reports.metrics import StoreCollector, service_levels
from opsflow.results import RunError, RunResult, RunStatus
from opsflow.runbook.validate import LoadedRunbook, find_runbooks, load_runbook
from opsflow.service.notifications import Notices
from opsflow.store.base import Store
from opsflow.store.sql import SqlStore

log = logging.getLogger("opsflow.daemon")
REQUEUE = 600.0  # seconds: a run queued by a daemon that died is queued again by the next one, when this recent


@dataclass(frozen=True)
class Settings:
    inventory: str
    runbooks: str = "runbooks"
    workers: int = 4
    queue_size: int = 100
    budget_runs: int = 20
    budget_window: float = 3600.0
    drain_timeout: float = 60.0
    grace: float = 10.0  # a canceled run's in-flight step is killed after this
    check: bool = False
    processes: bool = False  # runs in worker processes (opsflow.events.runner), not in this interpreter
    store_url: str | None = None  # the store the worker processes open (None: the ``db`` setting)


def _event_of(row: dict[str, Any]) -> Event:
    """An event as the store gives it back (``Store.events``, ``pending_events``)."""
    text = {k: str(row.get(k) or "") for k in ("id", "source", "name", "host", "severity", "message", "fingerprint",
                                                "occurrence", "peer")}
    return Event(**text, status=str(row.get("status") or "firing"), labels=dict(row.get("labels") or {}),
                 annotations=dict(row.get("annotations") or {}), data=dict(row.get("data") or {}),
                 received_at=float(row.get("received_at") or 0.0))


def new_event_id() -> str:
    return "ev-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(8)


def _identity_alive(identity: str) -> bool:
    """``node:pid:start`` of a daemon → whether it still runs (another node's: assumed alive)."""
    node, _, rest = identity.partition(":")
    pid, _, start = rest.partition(":")
    if node != socket.gethostname():
        return True
    return pid.isdigit() and process_alive(int(pid), start)


class _Watch(NullObserver):
    """Marks the action started when the executor has created the run record."""

    def __init__(self, daemon: Daemon, item: Item) -> None:
        self.daemon, self.item = daemon, item

    def run_started(self, run_id: str, plan: Plan) -> None:
        self.redactor = Redactor(plan.secrets)
        self.started(run_id)

    def started(self, run_id: str) -> None:
        try:
            self.daemon._started(self.item, run_id)
        except OpsflowError as exc:  # the run goes on (and is recorded by the executor) whatever happens here
            log.error("run %s: its start was not recorded on action %s: %s", run_id, self.item.action, exc)

    def waiting(self, run_id: str, step: PlannedStep, message: str, deadline: float) -> None:
        self.ask(run_id, step.step.name, message, deadline)

    def ask(self, run_id: str, step: str, message: str, deadline: float) -> None:
        """Announce that the run waits for approval (``message`` already redacted when no redactor is set)."""
        rule = self.item.match.rule.name
        self.daemon.notices.announce(Kind.APPROVAL_WAITING, f"run {run_id} ({rule} on {self.item.host}) waits for "
                                     "approval", f"{message}\nApprove: opsflow approve {run_id}   Deny: opsflow deny "
                                     f"{run_id}\nNo decision by {time.strftime('%Y-%m-%d %H:%M:%S %z', time.localtime(deadline))} means deny.",
                                     run_id=run_id, reason=step, redactor=getattr(self, "redactor", None))


class Daemon:
    def __init__(self, settings: Settings, store: Store, metrics: Metrics | None = None,
                 notices: Notices | None = None) -> None:
        self.s = settings
        self.store = store
        self.notices = notices or Notices()  # breakers opened, failed remediations, runs waiting for approval
        self.metrics = metrics or Metrics()
        self.identity = f"{socket.gethostname()}:{os.getpid()}:{process_start(os.getpid())}"
        self.rules: list[Rule] = []
        self.hosts = HostIndex(frozenset())
        self._loaded: dict[str, LoadedRunbook] = {}
        self.guard = Guard(settings.budget_runs, settings.budget_window)
        self._lock = threading.Condition(threading.RLock())
        self._queue: deque[Item] = deque()
        self._running: dict[str, Item] = {}
        self._workers: list[threading.Thread] = []
        self._children: list[Child] = []
        self._stopping = False
        self.scheduler: Any = None  # the schedule's scheduler beside intake (opsflow.service), shown in health
        self.write = durable(store)  # a batch's rows, committed and on disk
        self.commits = GroupCommit(self.write, on_commit=self._committed)
        self.decider = Decider(self)
        self.metrics.set("opsflow_event_queue_capacity", settings.queue_size)
        self.metrics.gauge("opsflow_event_queue_depth", lambda: {(): float(len(self._queue))})
        self.metrics.gauge("opsflow_runs_running", lambda: {(): float(len(self._running))})
        self.metrics.gauge("opsflow_breaker_open", self._breaker_gauge)
        # the store's run metrics on the same /metrics; opsflow_runs_running stays the daemon's own
        self.store_metrics: StoreCollector | None = None
        if isinstance(store, SqlStore):
            self.store_metrics = StoreCollector(store, exclude=("opsflow_runs_running",),
                                                objectives=lambda: service_levels(store))
            self.metrics.register(self.store_metrics)

    # ---- rules -----------------------------------------------------------------------
    def load(self) -> list[Rule]:
        """(Re)load every runbook of the directory; any invalid one refuses the whole set."""
        inventory = load_inventory(self.s.inventory)
        if not Path(self.s.runbooks).exists():
            raise UsageError(f"--runbooks {self.s.runbooks}: no such file or directory")
        problems: list[Diagnostic] = []
        rules: list[Rule] = []
        loaded: dict[str, LoadedRunbook] = {}
        for path in find_runbooks([self.s.runbooks]):
            try:
                lrb = load_runbook(path, inventory)
            except RunbookError as exc:
                problems += exc.diagnostics
                continue
            for i, rule in enumerate(rules_of(str(path.resolve()), lrb.runbook, inventory)):
                if rule.name in loaded:
                    line, col = lrb.where("triggers", "events", i)
                    problems.append(Diagnostic(str(path), line, col, f"rule name {rule.name!r} is also used by "
                                               f"{loaded[rule.name].path}; give the trigger a unique name:"))
                rules.append(rule)
                loaded[rule.name] = lrb
        if problems:
            raise RunbookError(problems)
        with self._lock:
            self.rules, self._loaded, self.hosts = rules, loaded, HostIndex.of(inventory)
        self.metrics.known_rules(r.name for r in rules)
        return rules

    def _breaker_gauge(self) -> dict[tuple[tuple[str, str], ...], float]:
        try:
            open_ = {b["rule"] for b in self.store.breakers() if b["state"] == "open"}
        except OpsflowError:
            open_ = set()
        return {(("rule", r.name),): float(r.name in open_) for r in self.rules}

    # ---- start -----------------------------------------------------------------------
    def start(self) -> None:
        """Settle what a previous daemon left, restore the guard, start the workers."""
        requeued = self._requeue()
        recovered = self.store.recover_actions(_identity_alive)
        if recovered:
            log.info("settled %d action(s) left by a previous daemon", recovered)
        horizon = max([self.s.budget_window] + [max(r.trigger.cooldown, r.trigger.dedup.window) for r in self.rules])
        self.guard.restore(self.store.recent_actions(time.time() - horizon),
                           {r.name: r.trigger.dedup.window for r in self.rules})
        with self._lock:
            for item in requeued:
                self.guard.admit(item.match.rule.name, item.host, item.action, item.queued_at)
                self._queue.append(item)
        if self.s.processes:
            self._children = [Child(f"opsflow-worker-{i}", self.s.store_url, self.s.grace)
                              for i in range(self.s.workers)]
            for child in self._children:
                child.start()
        for i in range(self.s.workers):
            t = threading.Thread(target=self._work, args=(i,), name=f"opsflow-worker-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        self._recover()

    def _requeue(self) -> list[Item]:
        """Runs a stopped daemon queued and did not start, decided less than ``REQUEUE`` s ago: queued here
        again (taken over: the action's ``daemon`` becomes this one), so a crash does not drop them. Older
        ones, and those whose rule or host no longer matches, are settled ``daemon_stopped``."""
        left = [a for a in self.store.recent_actions(time.time() - REQUEUE)
                if a["outcome"] == "queued" and not _identity_alive(a["daemon"] or "")]
        events = {e["id"]: _event_of(e) for e in self.store.events_by_id(sorted({a["event_id"] for a in left}))}
        rules = {r.name: r for r in self.rules}
        items = []
        for a in left:
            event, rule = events.get(a["event_id"]), rules.get(a["rule"])
            if event is None or rule is None:
                continue
            m = evaluate(rule, event, self.hosts)
            if m is None or m.host != a["host"] or not m.starts:
                continue
            self.store.update_action(a["id"], daemon=self.identity)
            items.append(Item(action=a["id"], event=event, match=m, queued_at=a["queued_at"] or time.time(),
                              ready=True))
        if items:
            log.info("queued again %d run(s) a stopped daemon had queued", len(items))
        return items

    # ---- intake ----------------------------------------------------------------------
    def record(self, events: list[Event]) -> Ticket:
        """Queue a request's events for the next group commit; the ticket is done once they are on disk.

        Nothing is decided here (see ``opsflow.events.decide``): the receipt of each event is its id."""
        now = time.time()
        prefix = "ev-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-"
        rows = []
        random = os.urandom(8 * len(events)).hex()  # one call for the request, not one per event
        for k, event in enumerate(events):
            event.id = event.id or prefix + random[16 * k:16 * k + 16]
            event.received_at = event.received_at or now
            rows.append(self.store.event_row(event, None, self.s.check))
        return self.commits.put(rows, events)

    @staticmethod
    def receipts(events: list[Event]) -> list[dict[str, Any]]:
        return [{"id": e.id, "outcome": "recorded"} for e in events]

    def submit(self, events: list[Event]) -> list[dict[str, Any]]:
        """Record the events (blocking until they are committed); a receipt per event.

        When the store refuses (StoreError), nothing of the request is recorded, decided or counted."""
        self.record(events).wait()
        return self.receipts(events)

    def _committed(self, batch: Sequence[list[Event] | Pending]) -> None:
        """A batch is on record: count its requests' events and hand them to the decider (its decisions, the
        decider's own tickets, go back to the decider by their ticket)."""
        events = [e for request in batch if not isinstance(request, Pending) for e in request]  # not decisions
        counts: Counter[str] = Counter(e.source for e in events)
        for source, n in counts.items():
            self.metrics.inc("opsflow_events_received_total", {"source": source}, n)
        if events:
            self.decider.put(events)

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until every event recorded so far is decided (tests, benchmarks, drain)."""
        deadline = time.monotonic() + timeout
        return self.commits.flush(timeout) and self.decider.flush(max(0.0, deadline - time.monotonic()))

    def _recover(self) -> int:
        """Events a previous daemon recorded but did not decide: decided now, before new ones."""
        rows = self.store.pending_events()
        events = [_event_of(r) for r in rows]
        if events:
            log.info("deciding %d event(s) recorded but not decided before the last stop", len(events))
            self.decider.put(events)
        return len(events)

    def _cancel_queued(self, which: Any, reason: str, detail: str, pending: Pending | None = None) -> list[str]:
        """Take matching items off the queue (under the lock) and record them canceled (with ``pending``'s)."""
        gone = [i for i in self._queue if which(i)]
        for item in gone:
            self._queue.remove(item)
            if pending is not None:
                pending.canceled.append(item)
            self.guard.release(item.host, item.action, started=False, rule=item.match.rule.name, at=item.queued_at)
            update = self.store.action_update(item.action, outcome="canceled", reason=reason, detail=detail)
            if pending is None:
                self.store.write_all([update])
                self.metrics.inc("opsflow_runs_canceled_total", {"reason": reason})
            else:
                pending.writes.append(update)
                pending.count("opsflow_runs_canceled_total", {"reason": reason})
        return [i.action for i in gone]

    # ---- workers ---------------------------------------------------------------------
    def _work(self, index: int) -> None:
        child = self._children[index] if self._children else None
        while True:
            with self._lock:
                while not (self._queue and self._queue[0].ready) and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                item = self._queue.popleft()
                self._running[item.action] = item
            try:
                self._run(item, child)
            except Exception as exc:  # noqa: BLE001 - a worker never dies of one run
                log.exception("action %s: %s", item.action, exc)
                try:
                    self.store.update_action(item.action, outcome="finished" if item.started else "suppressed",
                                             reason=None if item.started else "invalid",
                                             detail=f"internal error {type(exc).__name__}: {exc}")
                except OpsflowError as again:
                    log.error("action %s not recorded: %s", item.action, again)
            finally:
                with self._lock:
                    self._running.pop(item.action, None)
                    self.guard.release(item.host, item.action, started=item.started, rule=item.match.rule.name,
                                       at=item.queued_at)

    def _not_started(self, item: Item, reason: str, detail: str) -> None:
        self.metrics.inc("opsflow_events_suppressed_total", {"reason": reason})
        self.store.update_action(item.action, outcome="suppressed", reason=reason, detail=detail)

    def _run(self, item: Item, child: Child | None = None) -> None:
        host = item.host
        holder = self.store.host_lock_holder(host)
        if holder:
            return self._not_started(item, "locked", f"run {holder} holds the lock of {host}")
        if child is not None:
            return self._run_in(child, item)
        try:
            plan = build_plan(self._request(item))
        except WindowClosed as exc:  # a maintenance window holds automatic remediation back too
            return self._not_started(item, "blackout", str(exc))
        except OpsflowError as exc:
            return self._not_started(item, "invalid", str(exc))
        executor = Executor(self.store, _Watch(self, item), grace=self.s.grace)
        item.executor = executor
        if self._stopping:
            return self._shutdown(item)
        result = execute(plan, executor=executor, run_id=new_run_id())
        self._finished(item, result)

    def _run_in(self, child: Child, item: Item) -> None:
        """``_run`` in the worker's child process: the plan is built and executed there."""
        if self._stopping:
            return self._shutdown(item)
        item.executor = Cancel(child)
        run_id, watch = new_run_id(), _Watch(self, item)
        out = child.run(self._request(item), run_id, watch.started, watch.ask)
        if out.result is not None:
            return self._finished(item, out.result)
        if not out.died and not item.started:
            return self._not_started(item, out.reason, out.detail)
        self.store.reap()  # the crash path of a run whose process is gone: abandoned, its locks released
        record = self.store.get_run(run_id) if item.started else None
        status = str(record["status"]) if record else "abandoned"
        log.error("action %s (run %s): %s", item.action, run_id if item.started else "not started", out.detail)
        if record is None:
            return self._not_started(item, "invalid", f"not started: {out.detail}")
        self.store.update_action(item.action, outcome="finished", run_status=status, ended_at=time.time(),
                                 detail=out.detail)
        self.metrics.inc("opsflow_runs_finished_total", {"rule": item.match.rule.name, "status": status})
        self.notices.announce(Kind.RUN_FAILED, f"automatic remediation {item.match.rule.name} on {item.host}: "
                              f"{status}", f"Run {run_id} started by event {item.event.id} ({item.event.name}): "
                              f"{out.detail}", run_id=run_id, reason="worker_died")
        return None

    def _shutdown(self, item: Item) -> None:
        self.metrics.inc("opsflow_runs_canceled_total", {"reason": "shutdown"})
        self.store.update_action(item.action, outcome="canceled", reason="shutdown",
                                 detail="the daemon stopped before this run started")

    def _request(self, item: Item) -> RunRequest:
        rule = item.match.rule
        return RunRequest(runbook=rule.path, params=dict(item.match.params), inventory=self.s.inventory,
                          limit=item.host, trigger="event", started_by=f"{item.event.source}:{rule.name}",
                          check=self.s.check,
                          override_window=f"emergency rule {rule.name}" if rule.trigger.emergency else None)

    def _action(self, action: str, **fields: Any) -> None:
        """Record a run's start or end on its action in the next group commit (with intake's events: one
        transaction and one fsync for many, instead of one each beside it), once it is on disk."""
        self.commits.put([self.store.action_update(action, **fields)], []).wait()

    def _started(self, item: Item, run_id: str) -> None:
        now = time.time()
        item.started, item.run_id = True, run_id
        latency = now - item.event.received_at
        self._action(item.action, outcome="started", run_id=run_id, started_at=now, start_latency=latency)
        self.metrics.inc("opsflow_runs_started_total", {"rule": item.match.rule.name})
        self.metrics.observe("opsflow_event_to_start_seconds", latency)
        log.info("event %s → rule %s → run %s on %s (%.3f s after receipt)", item.event.id,
                 item.match.rule.name, run_id, item.host, latency)

    def _finished(self, item: Item, result: RunResult) -> None:
        rule = item.match.rule
        latency = result.ended_at - item.event.received_at
        self._action(item.action, outcome="finished", run_status=str(result.status), ended_at=result.ended_at,
                     end_latency=latency)
        self.metrics.inc("opsflow_runs_finished_total", {"rule": rule.name, "status": str(result.status)})
        self.metrics.observe("opsflow_event_to_end_seconds", latency)
        log.info("run %s (%s on %s): %s", result.run_id, rule.name, item.host, result.status)
        if self.s.check or result.status == RunStatus.CANCELED:
            return  # dry runs and runs stopped by a drain say nothing about the remediation
        lock_refused = result.error_kind == RunError.LOCK_HELD
        failed = result.status in (RunStatus.FAILED, RunStatus.PARTIAL) and not lock_refused
        if failed:
            self.notices.announce(Kind.RUN_FAILED, f"automatic remediation {rule.name} on {item.host}: {result.status}",
                                  f"Run {result.run_id} started by event {item.event.id} ({item.event.name}) "
                                  f"{result.status}: {result.error or ', '.join(result.failed_hosts)}",
                                  run_id=result.run_id, reason=str(result.error_kind or ""))
        if self.store.breaker_result(rule.name, result.run_id, failed, rule.trigger.breaker):
            log.warning("circuit breaker of %s opened after %d failed run(s); `opsflow breaker reset %s`",
                        rule.name, rule.trigger.breaker, rule.name)
            self.notices.announce(Kind.BREAKER_OPENED, f"circuit breaker of {rule.name} opened",
                                  f"After {rule.trigger.breaker} failed run(s) (last: {result.run_id}) rule "
                                  f"{rule.name} stops remediating until `opsflow breaker reset {rule.name}`.",
                                  run_id=result.run_id)

    # ---- health and drain ------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        c = self.commits
        info: dict[str, Any] = {"rules": len(self.rules), "undecided": self.decider.waiting(), "queued": len(self._queue),
                                "commits": {"transactions": c.batches, "requests": c.tickets, "seconds": round(c.seconds, 3)},
                                "running": len(self._running), "workers": self.s.workers,
                                **({"worker_pids": [c.pid for c in self._children]} if self._children else {}),
                                "check_mode": self.s.check, "stopping": self._stopping}
        if self.scheduler is not None:
            info["schedule"] = self.scheduler.health()
        try:
            self.store.history(limit=1)
        except OpsflowError as exc:
            return False, {**info, "status": "store unreachable", "error": str(exc)}
        if self._stopping:
            return False, {**info, "status": "draining"}
        return True, {**info, "status": "ok"}

    def drain(self, timeout: float | None = None, hard: bool = False) -> list[str]:
        """Stop: queued runs are recorded canceled; running ones get ``timeout`` s to finish, then are canceled.

        Returns the ids of runs that were still running at the deadline."""
        timeout = self.s.drain_timeout if timeout is None else timeout
        with self._lock:
            self._stopping = True  # what is decided from now on starts nothing (reason: shutdown)
        if not self.settle(30):  # what was acknowledged is recorded and decided before queued runs are canceled
            log.warning("events still undecided at the drain: the next start decides them")
        with self._lock:
            self._cancel_queued(lambda i: True, "shutdown", "the daemon stopped before this run started")
            self._lock.notify_all()
        deadline = time.time() + (0 if hard else timeout)
        for t in self._workers:
            t.join(max(0.0, deadline - time.time()))
        late = [i for i in list(self._running.values()) if i.executor is not None]
        for item in late:
            assert item.executor is not None
            item.executor.request_cancel(f"canceled: the daemon stopped (drain deadline of {timeout:g} s)", hard=hard)
        end = time.time() + self.s.grace + 15
        for t in self._workers:
            t.join(max(0.0, end - time.time()))
        for item in list(self._running.values()):  # an executor that did not return: never leave it `running`
            if item.run_id:
                self.store.finish_run(item.run_id, RunStatus.CANCELED, time.time(), {item.host: "skipped"},
                                      "the daemon exited before the run ended")
                self.store.release_locks(item.run_id)
                self.store.update_action(item.action, outcome="finished", run_status="canceled",
                                         ended_at=time.time())
        for child in self._children:  # idle by now, or killed: no worker process outlives the daemon
            child.stop(1.0)
        return [i.run_id for i in late if i.run_id]
