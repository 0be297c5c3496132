"""The scheduler: fires schedule entries at their slots, every decision on record before anything runs.

For each entry the scheduler walks its trigger's fire instants. At each one the pure slot logic
(:func:`opsflow.schedule.slots.decide`: blackouts, windows, cutoff, p95 fit) says run, skip or defer;
then ``after:`` dependencies (:func:`~opsflow.schedule.policies.dependency_decision`, from the store's fire
records) and ``concurrency`` (the entry's previous run still going: forbid, queue, replace, allow) are
applied. Each (entry, slot) gets exactly one record in ``schedule_fires`` — ``fired``, ``skipped``,
``deferred``, ``missed`` or ``coalesced`` with its reason — claimed with an insert only one scheduler can
win, so neither a restart nor a second scheduler fires a slot twice. A deferred slot fires at its new
instant, recorded ``fired`` under that instant with the reason ``deferred from …``.

On start the scheduler settles what a previous one left: runs it fired get their outcome, slots that
passed while none ran (after the entry's last record, and holes within the misfire grace before it) get
the misfire policy (``misfire: {grace, catchup}``: ``latest`` fires the newest within the grace and
coalesces the others, ``all`` fires each, ``none`` fires none; older ones are ``missed``).

A report entry's fired slot sends a KPI report instead of running a runbook
(:func:`opsflow.service.reports.send_report`), recorded the same way.

Time comes from ``clock`` (``time.time`` by default): tests drive :meth:`Scheduler.tick` with their own.
"""

from __future__ import annotations

import heapq
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opsflow.errors import OpsflowError
from opsflow.schedule import tz as tzmod
from opsflow.schedule.history import p95_duration
from opsflow.schedule.loader import ScheduleSet
from opsflow.schedule.policies import dependency_decision, misfired_runs
from opsflow.schedule.slots import Entry, decide, open_time
from opsflow.service.notifications import Notices
from opsflow.service.reports import send_report
from opsflow.service.runs import Fire, RunConfig, close_window, run_fire
from opsflow.store.base import Store

log = logging.getLogger("opsflow.scheduler")

IDLE_WAKE = 1.0        # held slots and window ends are looked at least this often (seconds)
P95_TTL = 300.0        # a runbook's recorded p95 duration is read again after this
RECOVER_ROWS = 5000    # fire records read per entry on start
MAX_MISSED = 1000      # slots recorded per entry after a downtime; older ones are only counted in the log


def at(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def iso(ts: float, entry: Entry | None = None) -> str:
    return tzmod.iso(at(ts), entry.tz if entry is not None else None)


def _dur(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


@dataclass(eq=False)
class _Held:
    fire: Fire
    why: str = ""
    queued: bool = False


@dataclass
class Scheduler:
    schedules: ScheduleSet
    store: Store
    config: RunConfig
    notices: Notices = field(default_factory=Notices)
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.entries = {n: e for n, e in self.schedules.entries.items() if e.spec.enabled}
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._heap: list[tuple[float, int, str]] = []     # (next fire, -priority, entry)
        self._deferred: dict[tuple[str, float], list[float]] = {}  # (entry, to) → the slots deferred there
        self._retries: dict[tuple[str, float], tuple[int, str, float]] = {}  # (entry, at) → (attempt, why, slot)
        self._held: list[_Held] = []
        self._running: list[Fire] = []
        self._p95: dict[str, tuple[float, float | None]] = {}
        self._thread: threading.Thread | None = None
        self.started_at: float | None = None
        self._last = 0.0  # the last instant looked at

    # ---- records -----------------------------------------------------------------------------------------
    def _claim(self, entry: Entry, slot: float, decision: str, reason: str, deferred_to: float | None = None) -> bool:
        won = self.store.claim_fire(entry.name, slot, decision, reason, deferred_to, scheduler=self.identity)
        if won:
            log.info("%s %s: %s (%s)", entry.name, iso(slot, entry), decision, reason)
        else:
            log.debug("%s %s: already decided elsewhere", entry.name, iso(slot, entry))
        return won

    def _skip(self, entry: Entry, slot: float, reason: str, event: str = "skipped") -> None:
        if self._claim(entry, slot, "skipped", reason):
            self.notices.send(entry, event, f"{entry.name}: the run of {iso(slot, entry)} is skipped",
                              f"Schedule entry {entry.name} ({entry.what}) does not run at "
                              f"{iso(slot, entry)}.\nReason: {reason}\n{self._next_text(entry, slot)}", reason=reason)

    def _next_text(self, entry: Entry, slot: float) -> str:
        nxt = entry.trigger.next_fire(at(slot) + timedelta(microseconds=1))
        return f"Its next slot: {tzmod.iso(nxt, entry.tz)}." if nxt else "It has no later slot."

    # ---- start: settle what a previous scheduler left ----------------------------------------------------
    def recover(self, now: float | None = None) -> dict[str, int]:
        """Settle earlier fires and apply the misfire policy to slots that passed while no scheduler ran."""
        now = self.clock() if now is None else now
        counts = {"settled": 0, "misfired": 0}
        with self._lock:
            self.started_at = self._last = now
            self._heap.clear()
            for name, entry in self.entries.items():
                rows = self.store.fires(entry=name, limit=RECOVER_ROWS)
                counts["settled"] += self._settle(entry, rows)
                recorded = {float(r["slot"]) for r in rows}
                late: dict[float, list[float]] = {}
                for r in rows:
                    to = r["deferred_to"]
                    if r["decision"] == "deferred" and to is not None and float(to) not in recorded:
                        target = late if float(to) <= now else self._deferred
                        if target is late:
                            late.setdefault(float(to), []).append(float(r["slot"]))
                        else:
                            self._deferred.setdefault((name, float(to)), []).append(float(r["slot"]))
                if recorded:
                    last = max(recorded)
                    for t in self._fires_between(entry, last, now):
                        late.setdefault(t, [])
                    lo = max(now - entry.spec.misfire.grace, min(recorded))
                    targets = {float(r["deferred_to"]) for r in rows if r["deferred_to"] is not None}
                    for t in self._fires_between(entry, lo, last, inclusive_start=True):
                        if t not in recorded and t not in targets:  # a hole: a slot held when it stopped
                            late.setdefault(t, [])
                counts["misfired"] += len(late)
                self._misfires(entry, late, now)
                self._push(entry, now)
        return counts

    def _settle(self, entry: Entry, rows: list[dict[str, Any]]) -> int:
        n = 0
        for r in rows:
            if r["decision"] != "fired" or r["outcome"] is not None:
                continue
            run = self.store.get_run(r["run_id"]) if r["run_id"] else None
            if run is None:
                self.store.update_fire(entry.name, r["slot"], outcome="abandoned",
                                       reason=f"{r['reason'] or ''}; the scheduler stopped before its run started")
            elif run["status"] not in ("running", "waiting"):
                self.store.update_fire(entry.name, r["slot"], outcome=str(run["status"]))
            else:
                continue
            n += 1
        return n

    def _fires_between(self, entry: Entry, lo: float, hi: float, inclusive_start: bool = False) -> list[float]:
        """Fire instants in (lo, hi] (or [lo, hi])."""
        out = []
        start = at(lo) if inclusive_start else at(lo) + timedelta(microseconds=1)
        for t in entry.trigger.fires(start):
            ts = t.timestamp()
            if ts > hi:
                break
            out.append(ts)
        return out

    def _misfires(self, entry: Entry, late: dict[float, list[float]], now: float) -> None:
        if not late:
            return
        spec = entry.spec
        times = sorted(late)
        if len(times) > MAX_MISSED:
            log.warning("%s: %d slots passed while no scheduler ran; the oldest %d are not recorded", entry.name,
                        len(times), len(times) - MAX_MISSED)
            times = times[-MAX_MISSED:]
        chosen = {d.timestamp() for d in misfired_runs(spec, [at(t) for t in times], at(now))}
        policy = f"grace {_dur(spec.misfire.grace)}, catchup {spec.misfire.catchup}"
        latest = max(chosen) if chosen else None
        missed = []
        for t in times:
            if t in chosen:
                self._slot(entry, t, now, note=f"misfire: late by {_dur(now - t)} ({policy})", deferred_from=late[t])
                continue
            if latest is not None and now - t <= spec.misfire.grace:
                decision, reason = "coalesced", f"misfire: folded into the slot of {iso(latest, entry)} ({policy})"
            else:
                decision, reason = "missed", f"misfire: no scheduler ran at its time; late by {_dur(now - t)} ({policy})"
                missed.append(t)
            if self._claim(entry, t, decision, reason):
                for original in late[t]:
                    self.store.update_fire(entry.name, original, outcome=decision)
        if missed:
            self.notices.send(entry, "misfired", f"{entry.name}: {len(missed)} slot(s) missed",
                              f"Schedule entry {entry.name} ({entry.what}) did not run at "
                              f"{', '.join(iso(t, entry) for t in missed[-10:])}: no scheduler ran then; "
                              f"misfire policy: {policy}.", reason="missed")

    def _push(self, entry: Entry, after: float) -> None:
        nxt = entry.trigger.next_fire(at(after) + timedelta(microseconds=1))
        if nxt is not None:
            heapq.heappush(self._heap, (nxt.timestamp(), -entry.spec.priority, entry.name))

    # ---- one slot ----------------------------------------------------------------------------------------
    def p95(self, entry: Entry, now: float) -> float | None:
        if entry.spec.report is not None:
            return None  # a report takes seconds: no window is too short for it
        cached = self._p95.get(entry.runbook)
        if cached is None or now - cached[0] > P95_TTL:
            cached = self._p95[entry.runbook] = (now, p95_duration(self.store, entry.runbook))
        return cached[1]

    def _slot(self, entry: Entry, t: float, now: float, note: str = "", deferred_from: Iterable[float] = (),
              attempt: int = 0, origin: float | None = None) -> None:
        """Decide the slot of ``entry`` at ``t``: skip, defer, or run (when dependencies and concurrency allow)."""
        deferred_from = list(deferred_from)
        s = decide(entry, at(t), open_time(entry.calendars, at(t)), _td(self.p95(entry, now)))
        prefix = [f"deferred from {', '.join(iso(f, entry) for f in deferred_from)}"] if deferred_from else []
        reason = "; ".join([*prefix, s.reason, *([note] if note else [])])
        if s.action == "skip":
            self._skip(entry, t, reason)
            return
        if s.action == "defer":
            assert s.to is not None
            to = s.to.timestamp()
            if self._claim(entry, t, "deferred", reason, deferred_to=to):
                self._deferred.setdefault((entry.name, to), []).append(t)
                self.notices.send(entry, "deferred", f"{entry.name}: the run of {iso(t, entry)} moves to "
                                  f"{iso(to, entry)}", f"Schedule entry {entry.name} ({entry.what}) "
                                  f"is rescheduled from {iso(t, entry)} to {iso(to, entry)}.\nReason: {reason}",
                                  reason=reason)
            return
        window_end = s.window_end.timestamp() if s.window_end is not None else None
        if window_end is not None and now >= window_end:
            self._skip(entry, t, f"{reason}; its window closed at {iso(window_end, entry)} before it could start")
            return
        held = _Held(Fire(entry=entry, slot=t, reason=reason, window_end=window_end, deferred_from=deferred_from,
                          attempt=attempt, origin=origin))
        if not self._gate(held, now):
            self._held.append(held)

    def _outcomes(self, entry: Entry, t: float) -> dict[str, list[tuple[datetime, str]]]:
        out: dict[str, list[tuple[datetime, str]]] = {}
        for dep in entry.spec.after:
            since = t - (dep.within if dep.within is not None else 2 * 86400)
            rows = self.store.fires(since=since, entry=dep.entry, limit=500)
            out[dep.entry] = [(at(float(r["slot"])), str(r["outcome"])) for r in rows
                              if r["decision"] == "fired" and r["outcome"] not in (None, "abandoned")]
        return out

    def _gate(self, held: _Held, now: float) -> bool:
        """Fire ``held`` when dependencies and concurrency allow; True when it is settled (fired or recorded)."""
        fire, entry = held.fire, held.fire.entry
        spec = entry.spec
        if spec.after and not fire.claimed:
            decision, why = dependency_decision(spec, at(fire.slot), self._outcomes(entry, fire.slot))
            if decision == "skip":
                self._skip(entry, fire.slot, f"dependency: {why}")
                return True
            if decision == "wait":
                waited = max(d.wait for d in spec.after)
                if now - fire.slot >= waited:
                    self._skip(entry, fire.slot, f"dependency: {why}; waited {_dur(waited)}")
                    return True
                if held.why != why:
                    log.info("%s %s: held: %s", entry.name, iso(fire.slot, entry), why)
                held.why = why
                return False
            fire.reason += f"; held {_dur(now - fire.slot)}: {why}" if held.why else f"; {why}"
            held.why = ""
        going = [f for f in self._running if f.entry.name == entry.name and not f.done]
        policy = spec.concurrency
        if going and policy != "allow":
            ids = ", ".join(f.run_id for f in going)
            if policy == "forbid":
                self._skip(entry, fire.slot, f"concurrency: run {ids} of {entry.name} is still going (forbid)")
                return True
            if policy == "queue":
                if any(h.queued and h is not held and h.fire.entry.name == entry.name for h in self._held):
                    self._claim(entry, fire.slot, "coalesced", f"concurrency: a slot already waits for run {ids} "
                                "(queue)")
                    return True
                if not held.queued:
                    fire.reason += f"; queued behind run {ids} (concurrency: queue)"
                    held.queued = True
                return False
            if not fire.claimed:  # replace: recorded first, then the running one is canceled
                fire.reason += f"; replaces run {ids} (concurrency: replace)"
                if not self._claim(entry, fire.slot, "fired", fire.reason):
                    return True
                fire.claimed = True
                for f in going:
                    if f.executor is not None:
                        f.executor.request_cancel(f"replaced by the slot of {iso(fire.slot, entry)} "
                                                  "(concurrency: replace)")
            return False
        if not fire.claimed:
            if not self._claim(entry, fire.slot, "fired", fire.reason):
                return True
            fire.claimed = True
        self._launch(fire)
        return True

    def _launch(self, fire: Fire) -> None:
        self._running.append(fire)
        fire.thread = threading.Thread(target=self._run, args=(fire,), name=f"opsflow-schedule-{fire.entry.name}",
                                       daemon=True)
        fire.thread.start()

    def _run(self, fire: Fire) -> None:
        try:
            if fire.entry.spec.report is not None:
                send_report(fire, self.store, self.notices, str(self.schedules.directory), self.clock())
            else:
                run_fire(fire, self.store, self.config, self.notices)
        except Exception as exc:  # noqa: BLE001 - the loop and other runs go on; the record says what happened
            log.error("%s %s: the run could not be completed: %s: %s", fire.entry.name, iso(fire.slot, fire.entry),
                      type(exc).__name__, exc)
            try:
                self.store.update_fire(fire.entry.name, fire.slot, outcome="crashed")
            except OpsflowError:
                pass
        finally:
            with self._lock:
                fire.done = True
                self._running = [f for f in self._running if f is not fire]
                self._retry_later(fire)
            self._wake.set()

    def _retry_later(self, fire: Fire) -> None:
        """``retry_in``: a failed slot is tried again later, in an allowed slot, at most ``retries`` times."""
        spec = fire.entry.spec
        if spec.retry_in is None or fire.outcome not in ("failed", "partial") or fire.attempt >= spec.retries:
            return
        when = self.clock() + spec.retry_in
        run = f"run {fire.run_id}" if spec.report is None else "the report"
        why = (f"retry {fire.attempt + 1} of {spec.retries} after {run} of {iso(fire.slot, fire.entry)} "
               f"{fire.outcome} (retry_in {_dur(spec.retry_in)})")
        origin = fire.origin if fire.origin is not None else fire.slot
        self._retries[(fire.entry.name, when)] = (fire.attempt + 1, why, origin)
        log.info("%s: %s, at %s", fire.entry.name, why, iso(when, fire.entry))
        run_id = fire.run_id if spec.report is None else None
        self.notices.send(fire.entry, "deferred", f"{fire.entry.name}: {run} {fire.outcome}, retried at "
                          f"{iso(when, fire.entry)}", f"Schedule entry {fire.entry.name} ({fire.entry.what}): "
                          f"{run} {fire.outcome}; {why}.", run_id=run_id, reason=why)

    # ---- the loop ----------------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> float:
        """Do what is due at ``now``; return when something is next due."""
        now = self.clock() if now is None else now
        if self.started_at is None:
            self.recover(now)
        with self._lock:
            self._last = now
            for fire in list(self._running):
                if fire.window_end is not None and now >= fire.window_end and not fire.closed:
                    close_window(fire, self.store, self.notices, iso(fire.window_end, fire.entry))
            for held in sorted(self._held, key=lambda h: -h.fire.entry.spec.priority):
                if held in self._held and self._gate(held, now):
                    self._held.remove(held)
            due: list[tuple[float, int, str, list[float]]] = []
            for (name, to), origins in list(self._deferred.items()):
                if to <= now and name in self.entries:
                    del self._deferred[(name, to)]
                    due.append((to, -self.entries[name].spec.priority, name, origins))
            while self._heap and self._heap[0][0] <= now:
                t, prio, name = heapq.heappop(self._heap)
                entry = self.entries[name]
                times = [t, *self._fires_between(entry, t, now)]
                due += [(x, prio, name, []) for x in times]
                self._push(entry, times[-1])
            for t, _, name, origins in sorted(due, key=lambda d: (d[0], d[1])):
                self._slot(self.entries[name], t, now, deferred_from=origins)
            for (name, t), (attempt, why, origin) in sorted(self._retries.items(), key=lambda r: r[0][1]):
                if t <= now:
                    del self._retries[(name, t)]
                    if name in self.entries:
                        self._slot(self.entries[name], t, now, note=why, attempt=attempt, origin=origin)
            return self._next_due(now)

    def reload(self, schedules: ScheduleSet) -> None:
        """Take a new schedule (SIGHUP): entries added, changed or removed from the last instant looked at on."""
        with self._lock:
            self.schedules = schedules
            self.entries = {n: e for n, e in schedules.entries.items() if e.spec.enabled}
            self._held = [h for h in self._held if h.fire.entry.name in self.entries]
            self._heap.clear()
            for entry in self.entries.values():
                self._push(entry, self._last)
        self._wake.set()

    def _next_due(self, now: float) -> float:
        times = [self._heap[0][0]] if self._heap else []
        times += [to for (_, to) in self._deferred]
        times += [t for (_, t) in self._retries]
        times += [f.window_end for f in self._running if f.window_end is not None and not f.closed]
        if self._held:
            times.append(now + IDLE_WAKE)
        return min(times, default=now + 3600.0)

    def start(self) -> dict[str, int]:
        """Settle, then run the loop in a thread."""
        counts = self.recover()
        self._thread = threading.Thread(target=self._loop, name="opsflow-scheduler", daemon=True)
        self._thread.start()
        return counts

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                nxt = self.tick()
            except OpsflowError as exc:  # the store unreachable: say so, try again
                log.error("scheduler: %s; trying again in 5 s", exc)
                nxt = self.clock() + 5.0
            self._wake.wait(max(0.0, min(nxt - self.clock(), IDLE_WAKE)))
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def running(self) -> list[Fire]:
        with self._lock:
            return list(self._running)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait for the runs started so far to end (tests, drain)."""
        deadline = time.monotonic() + timeout
        for fire in self.running():
            if fire.thread is not None:
                fire.thread.join(max(0.0, deadline - time.monotonic()))
        return not self.running()

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {"entries": len(self.entries), "running": len(self._running), "held": len(self._held),
                    "deferred": len(self._deferred),
                    "next_fire": iso(self._heap[0][0]) if self._heap else None}

    def stop(self, timeout: float = 60.0, grace: float = 10.0) -> list[str]:
        """Fire nothing more; running runs get ``timeout`` s, then are canceled. Returns the canceled run ids."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        self.wait_idle(timeout)
        late = [f for f in self.running() if f.executor is not None]
        for f in late:
            assert f.executor is not None
            f.executor.request_cancel(f"canceled: the service stopped (drain deadline of {timeout:g} s)")
        self.wait_idle(grace + 15)
        self.notices.close()
        return [f.run_id for f in late]


def _td(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


__all__ = ["Scheduler", "iso"]
