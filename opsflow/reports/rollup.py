"""Runs aggregated per runbook, version, week and host — from weekly and daily roll-ups where days
are rolled, from the runs themselves elsewhere — and the roll-ups made as days and weeks end.

:func:`aggregate` reads a span [since, until): whole ISO weeks (Monday to Sunday, UTC) that are rolled
up come from ``week_rollups``/``host_week_rollups``, the other whole UTC days that are rolled up from
``run_rollups``/``host_rollups`` (a few rows per runbook and day or week), the rest (the partial days
at the edges, today, days with a run still going) from ``runs``. With ``keep`` (a test on a run's start,
for operational hours or corrections) or ``clock`` (the operational-hours clock) every run is read
itself: a roll-up cannot tell when inside a day a run started.
"""

from __future__ import annotations

import json
import time
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any

from opsflow.reports.hours import Clock
from opsflow.reports.stats import Sketch
from opsflow.store.kpi import person_key

HOST_FAILED = frozenset({"failed", "unreachable", "timeout"})
FINISHED = ("succeeded", "partial", "failed", "canceled", "abandoned", "crashed")
FAILED = ("partial", "failed", "abandoned", "crashed")
DAY = 86400.0
SETTLE = 600.0  # a day is rolled up this long after it ended at the earliest


def day_of(ts: float) -> str:
    return _day_number(int(ts // DAY))  # a UTC day is exactly 86,400 s of epoch time


@lru_cache(maxsize=8192)
def _day_number(n: int) -> str:
    return datetime.fromtimestamp(n * DAY, UTC).strftime("%Y-%m-%d")


@lru_cache(maxsize=8192)
def day_start(day: str) -> float:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()


@lru_cache(maxsize=8192)
def week_of(day: str) -> str:
    d = date.fromisoformat(day)
    return (d - timedelta(days=d.weekday())).isoformat()


@dataclass
class Version:
    first: float
    runs: int = 0
    succeeded: int = 0
    finished: int = 0
    sketch: Sketch = field(default_factory=Sketch)


@dataclass
class RunbookAgg:
    name: str
    statuses: Counter[str] = field(default_factory=Counter)
    check_runs: int = 0
    sketch: Sketch = field(default_factory=Sketch)  # durations of succeeded runs (on the report's clock)
    wall: Sketch = field(default_factory=Sketch)  # the same runs on the wall clock
    versions: dict[str, Version] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(self.statuses[s] for s in FINISHED)

    @property
    def failed(self) -> int:
        return sum(self.statuses[s] for s in FAILED)


@dataclass
class Week:
    statuses: Counter[str] = field(default_factory=Counter)
    sketch: Sketch = field(default_factory=Sketch)


@dataclass
class Agg:
    runbooks: dict[str, RunbookAgg] = field(default_factory=dict)
    weeks: dict[str, Week] = field(default_factory=dict)
    heat: Counter[tuple[str, str]] = field(default_factory=Counter)  # (host, runbook) → failures
    host_runs: Counter[tuple[str, str]] = field(default_factory=Counter)
    raw_runs: int = 0
    rolled_days: int = 0

    def runbook(self, name: str) -> RunbookAgg:
        if name not in self.runbooks:
            self.runbooks[name] = RunbookAgg(name)
        return self.runbooks[name]

    def add(self, day: str, runbook: str, rb_hash: str, status: str, check: bool, n: int, sketch: Sketch | None,
            wall: Sketch | None = None, first: float = 0.0) -> None:
        rb = self.runbook(runbook)
        if check:
            rb.check_runs += n
            return
        rb.statuses[status] += n
        week = self.weeks.setdefault(week_of(day), Week())
        week.statuses[status] += n
        v = rb.versions.get(rb_hash)
        if v is None:
            v = rb.versions[rb_hash] = Version(first=first)
        v.first = min(v.first, first)
        v.runs += n
        v.finished += n if status in FINISHED else 0
        if status == "succeeded":
            v.succeeded += n
            if sketch is not None:
                rb.sketch.merge(sketch)
                rb.wall.merge(wall or sketch)
                week.sketch.merge(sketch)
                v.sketch.merge(sketch)


_HOSTS_SEEN: dict[str | None, dict[str, str]] = {}


def _host_statuses(text: str | None) -> dict[str, str]:
    """The ``hosts`` column parsed (read only: the same texts recur, run after run, and are parsed once)."""
    found = _HOSTS_SEEN.get(text)
    if found is None:
        if len(_HOSTS_SEEN) >= 4096:
            _HOSTS_SEEN.clear()
        found = _HOSTS_SEEN[text] = _parse_hosts(text)
    return found


def _parse_hosts(text: str | None) -> dict[str, str]:
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _add_raw(agg: Agg, row: tuple[Any, ...], clock: Clock | None) -> None:
    """One run, as Agg.add would add it with its one-value sketches (added to, not merged: cheaper)."""
    _id, runbook, rb_hash, _trigger, status, check, started, ended, duration, hosts, _by = row
    agg.raw_runs += 1
    rb = agg.runbook(runbook)
    if check:
        rb.check_runs += 1
        return
    rb.statuses[status] += 1
    week_key = week_of(day_of(started))
    week = agg.weeks.get(week_key)
    if week is None:
        week = agg.weeks[week_key] = Week()
    week.statuses[status] += 1
    rb_hash = rb_hash or ""
    v = rb.versions.get(rb_hash)
    if v is None:
        v = rb.versions[rb_hash] = Version(first=started)
    v.first = min(v.first, started)
    v.runs += 1
    v.finished += 1 if status in FINISHED else 0
    if status == "succeeded":
        v.succeeded += 1
        if duration is not None:
            value = clock.elapsed(started, ended if ended is not None else started + duration) \
                if clock is not None else duration
            rb.sketch.add(value)
            rb.wall.add(duration)
            week.sketch.add(value)
            v.sketch.add(value)
    for host, hstatus in _host_statuses(hosts).items():
        agg.host_runs[(host, runbook)] += 1
        if hstatus in HOST_FAILED:
            agg.heat[(host, runbook)] += 1


def aggregate(store: Any, since: float, until: float, runbooks: tuple[str, ...] | None = None,
              keep: Callable[[float], bool] | None = None, clock: Clock | None = None) -> Agg:
    """Runs started in [since, until), per runbook (``runbooks``: only these), week and host."""
    agg = Agg()
    if keep is not None or clock is not None:
        for row in store.run_rows(since, until, runbooks):
            if keep is None or keep(row[6]):
                _add_raw(agg, row, clock)
        return agg
    weeks, days, raw = store.rollup_plan(since, until)
    for a, b in raw:  # everything in [since, until) not inside a rolled day
        for row in store.run_rows(a, b, runbooks):
            _add_raw(agg, row, None)
    if weeks or days:
        allowed = set(runbooks) if runbooks is not None else None
        pieces, host_rows = _rolled(store, tuple(weeks), tuple(days))
        for name, piece in pieces.items():
            if allowed is None or name in allowed:
                _add_piece(agg, name, piece)
        for runbook, host, n, failed in host_rows:
            if allowed is None or runbook in allowed:
                agg.host_runs[(host, runbook)] += n
                agg.heat[(host, runbook)] += failed
        agg.rolled_days = 7 * len(weeks) + len(days)
    return agg


@dataclass
class _Piece:
    """One runbook's rolled runs of a set of weeks and days, merged once (per store, see _rolled)."""
    statuses: Counter[str] = field(default_factory=Counter)
    check_runs: int = 0
    sketch: Sketch = field(default_factory=Sketch)
    versions: dict[str, Version] = field(default_factory=dict)
    weeks: dict[str, Week] = field(default_factory=dict)


def _add_piece(agg: Agg, name: str, piece: _Piece) -> None:
    rb = agg.runbook(name)
    rb.check_runs += piece.check_runs
    rb.statuses.update(piece.statuses)
    rb.sketch.merge(piece.sketch)
    rb.wall.merge(piece.sketch)
    for rb_hash, pv in piece.versions.items():
        v = rb.versions.get(rb_hash)
        if v is None:
            v = rb.versions[rb_hash] = Version(first=pv.first)
        v.first = min(v.first, pv.first)
        v.runs += pv.runs
        v.finished += pv.finished
        v.succeeded += pv.succeeded
        v.sketch.merge(pv.sketch)
    for week, pw in piece.weeks.items():
        w = agg.weeks.setdefault(week, Week())
        w.statuses.update(pw.statuses)
        w.sketch.merge(pw.sketch)


# The roll-ups of a set of rolled weeks and days, read once per store: a report aggregates the same days for
# every objective and for its runbooks. A rolled day never changes, and the key is the set of weeks and days.
_ROLLED: weakref.WeakKeyDictionary[Any, dict[Any, Any]] = weakref.WeakKeyDictionary()


def _rolled(store: Any, weeks: tuple[str, ...], days: tuple[str, ...]) -> tuple[dict[str, _Piece], list[tuple[Any, ...]]]:
    """The roll-ups of these weeks and days, all runbooks, merged per runbook (with its versions and weeks); and
    (runbook, host, runs, failed)."""
    try:
        memo = _ROLLED.setdefault(store, {})
    except TypeError:  # a store that takes no weak reference: no memo
        memo = {}
    key = (weeks, days)
    if key in memo:
        found: tuple[dict[str, _Piece], list[tuple[Any, ...]]] = memo[key]
        return found
    pieces: dict[str, _Piece] = {}
    for day, runbook, rb_hash, status, check, n, sketch_text in store.rollup_rows(list(weeks), list(days)):
        piece = pieces.get(runbook)
        if piece is None:
            piece = pieces[runbook] = _Piece()
        if check:
            piece.check_runs += n
            continue
        piece.statuses[status] += n
        week_key = week_of(day)
        week = piece.weeks.get(week_key)
        if week is None:
            week = piece.weeks[week_key] = Week()
        week.statuses[status] += n
        first = day_start(day)
        v = piece.versions.get(rb_hash)
        if v is None:
            v = piece.versions[rb_hash] = Version(first=first)
        v.first = min(v.first, first)
        v.runs += n
        v.finished += n if status in FINISHED else 0
        if status == "succeeded":
            v.succeeded += n
            if sketch_text:
                sketch = Sketch.loads(sketch_text)
                v.sketch.merge(sketch)
                week.sketch.merge(sketch)
    for piece in pieces.values():
        for v in piece.versions.values():
            piece.sketch.merge(v.sketch)
    out = (pieces, store.host_rollup_rows(list(weeks), list(days)))
    if len(memo) >= 4:
        memo.clear()
    memo[key] = out
    return out


def roll_up(store: Any, now: float | None = None, max_days: int = 4000) -> int:
    """Roll up every ended day not rolled yet (oldest first), then every week whose 7 days are; the number of
    days rolled."""
    now = time.time() if now is None else now
    first = store.first_run_at()
    if first is None:
        return 0
    last_done = day_of(now - DAY - SETTLE)  # the last day that has ended (and settled)
    unfinished = store.unfinished_since(first)
    if unfinished is not None:
        last_done = min(last_done, day_of(unfinished - DAY))
    first_day = day_of(first)
    if first_day > last_done:
        return 0
    done = store.rolled_days(first_day, last_done)
    count = 0
    day = first_day
    while day <= last_done and count < max_days:
        if day not in done:
            if _roll_day(store, day):
                done.add(day)
            count += 1
        day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    weeks_done = store.rolled_weeks(week_of(first_day), last_done)
    for monday in sorted({week_of(d) for d in done}):
        if monday not in weeks_done and all(d in done for d in _week_days(monday)):
            _roll_week(store, monday)
    return count


@lru_cache(maxsize=1024)
def _week_days(monday: str) -> tuple[str, ...]:
    d = date.fromisoformat(monday)
    return tuple((d + timedelta(days=i)).isoformat() for i in range(7))


def _roll_day(store: Any, day: str) -> bool:
    a = day_start(day)
    groups: dict[tuple[str, str, str, str, str, int], tuple[list[int], Sketch]] = {}
    hosts: dict[tuple[str, str], list[int]] = {}
    n = 0
    for row in store.run_rows(a, a + DAY):
        _id, runbook, rb_hash, trigger, status, check, _started, _ended, duration, host_text, by = row
        n += 1
        key = (runbook, rb_hash or "", trigger or "", person_key(trigger, by), status, int(bool(check)))
        counter, sketch = groups.setdefault(key, ([0], Sketch()))
        counter[0] += 1
        sketch.add(duration)
        if check:
            continue
        for host, hstatus in _host_statuses(host_text).items():
            cell = hosts.setdefault((runbook, host), [0, 0])
            cell[0] += 1
            cell[1] += hstatus in HOST_FAILED
    rows = [(*key, c[0], s.total, s.dumps(), json.dumps(s.buckets)) for key, (c, s) in groups.items()]
    return bool(store.save_rollup(day, n, rows, [(rb, host, c[0], c[1]) for (rb, host), c in hosts.items()]))


def _roll_week(store: Any, monday: str) -> bool:
    """The week's roll-up from its 7 rolled days: per (runbook, version, status, check mode) the runs, the first
    day with any, and (succeeded runs not in check mode) the merged sketch."""
    merged: dict[tuple[str, str, str, int], list[Any]] = {}
    runs = 0
    for day, runbook, rb_hash, status, check, n, sketch_text in store.week_source_rows(monday):
        runs += n
        key = (runbook, rb_hash, status, int(bool(check)))
        cell = merged.get(key)
        if cell is None:
            cell = merged[key] = [day, 0, None]
        cell[0] = min(cell[0], day)
        cell[1] += n
        if sketch_text:
            sketch = Sketch.loads(sketch_text)
            if cell[2] is None:
                cell[2] = sketch
            else:
                cell[2].merge(sketch)
    rows = [(*key, day, n, sketch.dumps() if sketch is not None else "") for key, (day, n, sketch) in merged.items()]
    return bool(store.save_week(monday, runs, rows))


__all__ = ["FAILED", "FINISHED", "Agg", "RunbookAgg", "aggregate", "day_of", "roll_up"]
