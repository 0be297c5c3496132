"""The guard (pure, in memory): deduplication, cooldown per (rule, host), one remediation per host, budget.

The daemon asks it, under one lock, whether a matched event may start a run, and tells it what
started and ended. Its state is restored from the store's recent actions when the daemon starts,
so a restart neither forgets a cooldown nor re-runs a remediation for an alert already handled.
The circuit breaker lives in the store (``opsflow breaker reset`` is another process).

The decisions on one request's events are taken together and recorded with the store's next group
commit (``opsflow.events.commit``): between ``begin`` and ``detach`` every change is journaled, and
``undo`` of that journal (the store refused the batch) takes them back, so an event that was not
recorded is neither remembered nor holds a host or budget. Undo puts a value back only while it is
still the one the journaled change set: what the workers changed meanwhile (a run ended) stays.
"""

from __future__ import annotations

import contextlib
import functools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEDUP_LIMIT = 100_000  # remembered (rule, key) pairs; expired ones are dropped first
_ABSENT = object()
Journal = list[Callable[[], object]]


@dataclass
class Guard:
    budget_runs: int = 20
    budget_window: float = 3600.0
    _seen: dict[tuple[str, str], tuple[str, float, float]] = field(default_factory=dict)  # → occurrence, at, window
    _cooldown: dict[tuple[str, str], float] = field(default_factory=dict)  # (rule, host) → start of the cooldown
    _busy: dict[str, str] = field(default_factory=dict)  # host → action id queued or running for it
    _starts: deque[tuple[float, str]] = field(default_factory=deque)  # budget: (time, action id)
    _undo: list[Callable[[], object]] | None = field(default=None, repr=False)  # between begin and commit

    # ---- journal -----------------------------------------------------------------------
    def begin(self) -> None:
        """Journal the changes from now on, until ``detach``, ``commit`` or ``rollback``."""
        self._undo = []

    def detach(self) -> Journal:
        """Stop journaling; the journal of the changes since ``begin``, for ``undo``."""
        undo, self._undo = self._undo or [], None
        return undo

    def commit(self) -> None:
        self._undo = None

    def rollback(self) -> None:
        """Undo every change since ``begin``, newest first."""
        self.undo(self.detach())

    @staticmethod
    def undo(journal: Journal) -> None:
        for step in reversed(journal):
            step()

    def _keep(self, name: str, key: Any, new: Any) -> None:
        """Journal the current value (or absence) of ``self.<name>[key]``, about to become ``new``."""
        if self._undo is None:
            return
        table: dict[Any, Any] = getattr(self, name)
        old = table.get(key, _ABSENT)

        def back() -> None:
            now = getattr(self, name)
            if now.get(key, _ABSENT) == new:
                if old is _ABSENT:
                    now.pop(key, None)
                else:
                    now[key] = old

        self._undo.append(back)

    def _put_back(self, start: tuple[float, str]) -> None:
        self._starts.appendleft(start)

    def _unstart(self, start: tuple[float, str]) -> None:
        with contextlib.suppress(ValueError):
            self._starts.remove(start)

    def _restart(self, gone: list[tuple[float, str]]) -> None:
        self._starts = deque(sorted([*self._starts, *gone]))

    def _keep_whole(self, name: str) -> None:
        """Journal the object ``self.<name>`` itself (before it is replaced)."""
        if self._undo is not None:
            old = getattr(self, name)
            self._undo.append(lambda: setattr(self, name, old))

    # ---- questions -------------------------------------------------------------------
    def duplicate(self, rule: str, key: str, occurrence: str, now: float) -> bool:
        """Was this (rule, key) handled in the same state (status, startsAt) within its window?"""
        last = self._seen.get((rule, key))
        return last is not None and last[0] == occurrence and now - last[1] < last[2]

    def remember(self, rule: str, key: str, occurrence: str, window: float, now: float) -> None:
        """An event was acted on (a run queued, a resolution handled): repeats of it are duplicates.

        Events suppressed for a passing reason (cooldown, locked, budget, …) are not remembered:
        the same alert sent again later is weighed again."""
        seen = (occurrence, now, window)
        self._keep("_seen", (rule, key), seen)
        self._seen[(rule, key)] = seen
        if len(self._seen) > DEDUP_LIMIT:
            self._prune(now)

    def cooling(self, rule: str, host: str, cooldown: float, now: float) -> float:
        """Seconds left of the (rule, host) cooldown; 0 when none."""
        since = self._cooldown.get((rule, host))
        return max(0.0, since + cooldown - now) if since is not None else 0.0

    def busy(self, host: str) -> str | None:
        """The action queued or running for this host, if any."""
        return self._busy.get(host)

    def budget_left(self, now: float) -> int:
        while self._starts and self._starts[0][0] <= now - self.budget_window:
            gone = self._starts.popleft()
            if self._undo is not None:
                self._undo.append(functools.partial(self._put_back, gone))
        return self.budget_runs - len(self._starts)

    # ---- what happened ---------------------------------------------------------------
    def admit(self, rule: str, host: str, action: str, now: float) -> None:
        """A run is queued for (rule, host): cooldown starts, host is busy, budget is spent."""
        self._keep("_cooldown", (rule, host), now)
        self._keep("_busy", host, action)
        self._cooldown[(rule, host)] = now
        self._busy[host] = action
        self._starts.append((now, action))
        if self._undo is not None:
            self._undo.append(functools.partial(self._unstart, (now, action)))

    def release(self, host: str, action: str, *, started: bool, rule: str = "", at: float = 0.0) -> None:
        """The action ended. One that never started gives back its budget and cooldown."""
        if self._busy.get(host) == action:
            self._keep("_busy", host, _ABSENT)
            del self._busy[host]
        if not started:
            gone = [s for s in self._starts if s[1] == action]
            if gone:
                self._starts = deque(s for s in self._starts if s[1] != action)
                if self._undo is not None:
                    self._undo.append(functools.partial(self._restart, gone))
            if rule and self._cooldown.get((rule, host)) == at:
                self._keep("_cooldown", (rule, host), _ABSENT)
                del self._cooldown[(rule, host)]

    def _prune(self, now: float) -> None:
        self._keep_whole("_seen")
        self._seen = {k: v for k, v in self._seen.items() if now - v[1] < v[2]}
        if len(self._seen) > DEDUP_LIMIT:  # still too many live keys: forget the oldest half
            keep = sorted(self._seen.items(), key=lambda kv: kv[1][1])[len(self._seen) // 2:]
            self._seen = dict(keep)

    # ---- restart ---------------------------------------------------------------------
    def restore(self, actions: list[dict[str, Any]], windows: dict[str, float]) -> None:
        """Rebuild from recorded actions (oldest first); ``windows``: rule → dedup window."""
        for a in actions:
            rule, at = a["rule"], a["received_at"] or 0.0
            acted = a["outcome"] in ("queued", "started", "finished", "canceled") or a["reason"] == "resolved"
            if acted and a["dedup_key"] is not None and rule in windows:
                last = self._seen.get((rule, a["dedup_key"]))
                if last is None or last[0] != a["occurrence"]:
                    self._seen[(rule, a["dedup_key"])] = (a["occurrence"], at, windows[rule])
            if a["outcome"] in ("started", "finished") and a["host"]:
                queued = a["queued_at"] or at
                self._cooldown[(rule, a["host"])] = queued
                self._starts.append((queued, a["id"]))
        self._starts = deque(sorted(self._starts))
