"""Deciding on recorded events, off the request path: rules → guard → queue, then recorded.

An event is acknowledged (200) once its row is committed with outcome ``pending`` (``Daemon.record``,
group commit). The committer hands the committed events to one decider thread, in commit order:
it evaluates every rule on each, takes each matched rule's decision under the daemon's lock (the
guard: duplicate, cooldown, busy host, budget; the breaker and host locks read once per batch),
and records the decisions of a whole batch in one transaction: the actions, and the events'
``rules``/``outcome`` (no longer ``pending``). A queued remediation is handed to a worker only
once that transaction is committed.

When the store refuses a batch of decisions, they are undone (the guard's journal, the queue) and
the batch is tried again; its events stay ``pending`` in the store meanwhile. Events still
``pending`` when the daemon stopped (a SIGKILL between the two commits) are decided when it starts
again (``Daemon.start``): nothing acknowledged is left without a decision.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsflow.errors import StoreError, UsageError
from opsflow.events.commit import Background
from opsflow.events.models import Event
from opsflow.events.rules import Match, evaluate, occurrence
from opsflow.events.safety import Journal
from opsflow.planning import resolve_params
from opsflow.store.base import Statement

if TYPE_CHECKING:
    from opsflow.events.daemon import Daemon
    from opsflow.events.runner import Cancel
    from opsflow.executor import Executor

log = logging.getLogger("opsflow.daemon")
BATCH = 2000  # events decided (and their decisions recorded) together
RETRY = 1.0  # seconds before a batch of decisions the store refused is tried again


@dataclass
class Item:
    action: str
    event: Event
    match: Match
    queued_at: float
    started: bool = False
    ready: bool = False  # recorded (committed): a worker may take it
    run_id: str = ""
    executor: Executor | Cancel | None = None  # set by the worker that runs it (Cancel: in a child process)

    @property
    def host(self) -> str:
        return self.match.host or ""


@dataclass
class Pending:
    """What deciding on a batch of events will record and count, once the store has taken it all."""

    writes: list[Statement] = field(default_factory=list)
    decided: list[tuple[str, list[str]]] = field(default_factory=list)  # (event id, matched rules)
    counts: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    queued: list[Item] = field(default_factory=list)  # put on the queue, not yet recorded
    canceled: list[Item] = field(default_factory=list)  # taken off the queue (put back when not recorded)
    undo: Journal = field(default_factory=list)  # the guard's changes
    breakers: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # read once per batch
    holders: dict[str, str | None] = field(default_factory=dict)

    def count(self, name: str, labels: dict[str, str]) -> None:
        self.counts.append((name, labels))


class Decider(Background):
    """The decider thread of a :class:`~opsflow.events.daemon.Daemon`."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__("opsflow-decider")
        self.d = daemon
        self._events: deque[Event] = deque()
        self._thread.start()

    def put(self, events: Sequence[Event]) -> None:
        with self._cond:
            self._events.extend(events)
            self._cond.notify_all()

    def waiting(self) -> int:
        """Events recorded and not decided yet."""
        with self._cond:
            return len(self._events) + (1 if self._busy else 0)

    def _backlog(self) -> int:
        return len(self._events)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._events and not self._closed:
                    self._cond.wait()
                if not self._events:
                    return
                batch = [self._events.popleft() for _ in range(min(BATCH, len(self._events)))]
                self._busy = True
            try:
                while not self._decide(batch) and not self._closed:
                    time.sleep(RETRY)
            except Exception:  # noqa: BLE001 - the decider never dies of one batch; the events stay pending
                log.exception("deciding on %d event(s) failed; they stay pending until the next start", len(batch))
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _decide(self, events: list[Event]) -> bool:
        """Decide and record; False when the store refused (everything undone, to be tried again)."""
        d = self.d
        pending = Pending()
        with d._lock:
            d.guard.begin()
            try:
                for event in events:
                    self._consider(event, pending)
            except BaseException:
                pending.undo = d.guard.detach()
                self._not_recorded(pending)
                raise
            pending.undo = d.guard.detach()
        try:  # with the next requests' events: one transaction, one fsync
            d.commits.put(pending.writes + d.store.events_decided(pending.decided), pending).wait()
        except StoreError as exc:
            log.error("the decisions on %d event(s) were not recorded (tried again in %g s): %s", len(events),
                      RETRY, exc)
            with d._lock:
                self._not_recorded(pending)
            return False
        self._recorded(pending)
        return True

    def _recorded(self, p: Pending) -> None:
        """Committed: its remediations may start; its counts are counted."""
        d = self.d
        if p.queued:
            with d._lock:
                for item in p.queued:
                    item.ready = True
                d._lock.notify_all()
        counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter(
            (name, tuple(labels.items())) for name, labels in p.counts)
        for (name, labels), n in counts.items():
            d.metrics.inc(name, dict(labels), n)

    def _not_recorded(self, p: Pending) -> None:
        """The store refused (under the lock): undo the decisions; their queue changes too."""
        d = self.d
        d.guard.undo(p.undo)
        gone = {id(i) for i in p.queued}
        kept = [i for i in d._queue if id(i) not in gone]
        d._queue.clear()
        d._queue.extend(sorted(kept + p.canceled, key=lambda i: i.queued_at))

    # ---- one event, one rule -------------------------------------------------------------
    def _consider(self, event: Event, pending: Pending) -> None:
        d = self.d
        matches = [m for m in (evaluate(r, event, d.hosts) for r in d.rules) if m is not None]
        pending.decided.append((event.id, [m.rule.name for m in matches]))
        if not matches:
            pending.count("opsflow_events_suppressed_total", {"reason": "no_rule"})
            return
        for i, m in enumerate(matches):
            self._decide_one(event, m, f"{event.id}.{i}", pending)

    def _decide_one(self, event: Event, m: Match, action: str, pending: Pending) -> None:
        d, rule, now = self.d, m.rule, time.time()
        pending.count("opsflow_events_matched_total", {"rule": rule.name})
        record = {"id": action, "event_id": event.id, "rule": rule.name, "host": m.host, "dedup_key": m.key,
                  "occurrence": occurrence(event), "received_at": event.received_at, "daemon": d.identity}
        reason, detail = self._suppression(event, m, now, pending)
        if reason is None and len(d._queue) >= d.s.queue_size:
            reason, detail = "queue_full", f"{len(d._queue)} remediations already wait for a worker"
        if reason is None or reason == "resolved":
            d.guard.remember(rule.name, m.key, occurrence(event), rule.trigger.dedup.window, now)
        if reason is not None:
            pending.count("opsflow_events_suppressed_total", {"reason": reason})
            pending.writes.append(d.store.action_row({**record, "outcome": "suppressed", "reason": reason,
                                                      "detail": detail}))
            log.debug("event %s rule %s: suppressed (%s) %s", event.id, rule.name, reason, detail)
            return
        assert m.host is not None
        d.guard.admit(rule.name, m.host, action, now)
        pending.writes.append(d.store.action_row({**record, "outcome": "queued", "queued_at": now}))
        item = Item(action=action, event=event, match=m, queued_at=now)
        d._queue.append(item)
        pending.queued.append(item)

    def _suppression(self, event: Event, m: Match, now: float, pending: Pending) -> tuple[str | None, str]:
        d, rule, t = self.d, m.rule, m.rule.trigger
        if d.guard.duplicate(rule.name, m.key, occurrence(event), now):
            return "duplicate", f"same {event.status} event already received (key {m.key})"
        if not m.starts:
            canceled = d._cancel_queued(lambda i: i.match.rule.name == rule.name and i.host == m.host
                                        and i.match.key == m.key, "resolved", f"resolved by event {event.id}",
                                        pending)
            return "resolved", (f"canceled the queued run of {', '.join(canceled)}" if canceled
                                else "nothing queued to cancel")
        if d._stopping:
            return "shutdown", "the daemon is shutting down"
        if m.host is None:
            return "unknown_host", m.problem or "no host"
        if rule.name not in pending.breakers:
            pending.breakers[rule.name] = d.store.breaker(rule.name)
        breaker = pending.breakers[rule.name]
        if breaker and breaker["state"] == "open":
            return "breaker_open", (f"{breaker['failures']} failed run(s), the last {breaker['last_run']}; "
                                    f"`opsflow breaker reset {rule.name}` closes it")
        left = d.guard.cooling(rule.name, m.host, t.cooldown, now)
        if left > 0:
            return "cooldown", f"{left:.0f} s left of the {t.cooldown:g} s cooldown of {rule.name} on {m.host}"
        busy = d.guard.busy(m.host)
        if busy:
            return "locked", f"{m.host} already has remediation {busy} queued or running"
        if m.host not in pending.holders:
            pending.holders[m.host] = d.store.host_lock_holder(m.host)
        holder = pending.holders[m.host]
        if holder:
            return "locked", f"run {holder} holds the lock of {m.host}"
        if d.guard.budget_left(now) <= 0:
            return "budget", f"{d.s.budget_runs} automatic runs in the last {d.s.budget_window:g} s"
        try:
            resolve_params(d._loaded[rule.name], m.params)
        except UsageError as exc:
            return "invalid", str(exc)
        return None, ""
