"""The coming slots of a schedule entry: when it fires, and whether each fire runs, is skipped or deferred.

For each fire instant of the entry's trigger, in order:

1. a **blackout** in force (any of the entry's blackout calendars) → ``on_blackout``: ``skip``, or
   ``defer`` to the first instant where the run may start (``next_window``);
2. **outside every allowed window** (when the entry has ``allowed`` calendars; they add up: any of them
   open is open) → the same ``on_blackout`` policy;
3. inside an open period (allowed and no blackout) the start must leave the ``cutoff`` before the
   period's end, and the runbook's recorded **p95 duration** must fit before that end; when it does
   not, the run is rescheduled: ``defer`` to the first later open period where it fits.

The open time of a set of calendars is computed once per horizon and shared by every entry using the
same calendars, so the next slots of thousands of entries cost bisections, not recomputations.
Pure: no clock, no store; instants are aware datetimes, serialised as ISO 8601 with their offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from opsflow.schedule import tz as tzmod
from opsflow.schedule.calendars import Calendar, Periods, Window
from opsflow.schedule.models import EntrySpec
from opsflow.schedule.triggers import Trigger

Action = Literal["run", "skip", "defer"]
HORIZON = timedelta(days=400)  # open time is computed this far at a time
MAX_HORIZON = timedelta(days=366 * 5)  # no window within this: the slot is skipped


@dataclass(frozen=True)
class Slot:
    """One fire of an entry. ``to`` is where a ``defer`` moves it; ``window_end`` ends the run's window."""

    at: datetime
    action: Action
    reason: str
    to: datetime | None = None
    window_end: datetime | None = None

    @property
    def start(self) -> datetime | None:
        """When the run starts: ``at`` for a run, ``to`` for a defer, None for a skip."""
        return self.at if self.action == "run" else self.to

    def as_dict(self, tz: Any = None) -> dict[str, Any]:
        out: dict[str, Any] = {"at": tzmod.iso(self.at, tz), "action": self.action, "reason": self.reason}
        if self.action == "defer":
            out["to"] = tzmod.iso(self.to, tz) if self.to else None
        if self.window_end is not None:
            out["window_end"] = tzmod.iso(self.window_end, tz)
        return out


@dataclass
class Entry:
    """A schedule entry ready to compute with: its spec, trigger and the calendars that apply to it."""

    name: str
    spec: EntrySpec
    trigger: Trigger
    calendars: tuple[Calendar, ...] = ()
    runbook: str = ""  # the runbook's name; a report entry's label, "report (html, 7d)" (spec.report says more)
    runbook_path: str | None = None
    targets: frozenset[str] = frozenset()
    file: str = ""
    line: int = 0

    @property
    def tz(self) -> Any:
        return tzmod.zone(self.spec.timezone)

    @property
    def what(self) -> str:
        """What a slot does, for people: ``runbook NAME``, or a report entry's ``report (html, 7d)``."""
        return self.runbook if self.spec.report is not None else f"runbook {self.runbook}"


@dataclass
class OpenTime:
    """Open periods of a set of calendars (allowed ones unioned, minus every blackout) from ``start``."""

    calendars: tuple[Calendar, ...]
    start: datetime
    end: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.allowed = [c for c in self.calendars if c.mode == "allowed"]
        self.blackouts = [c for c in self.calendars if c.mode == "blackout"]
        self._compute(self.start + HORIZON)

    def _compute(self, end: datetime) -> None:
        self.end = end
        self.per_calendar = {c.name: Periods(c.windows(self.start, end)) for c in self.calendars}
        allowed: list[Window] = [(self.start, end)]
        if self.allowed:
            allowed = tzmod.merge([w for c in self.allowed for w in self.per_calendar[c.name].items])
        black = tzmod.merge([w for c in self.blackouts for w in self.per_calendar[c.name].items])
        self.open = Periods(tzmod.subtract(allowed, black))

    def ensure(self, t: datetime) -> bool:
        """Cover ``t`` (and a margin after it); False when t is past the longest horizon."""
        if t >= self.start + MAX_HORIZON:
            return False
        if t + timedelta(days=31) > self.end:
            self._compute(min(max(self.end + HORIZON, t + HORIZON), self.start + MAX_HORIZON))
        return True

    def period_end(self, b: datetime) -> datetime | None:
        """A period's real end: None when it runs past the horizon (no end known)."""
        while b >= self.end:
            if self.end >= self.start + MAX_HORIZON:
                return None
            self._compute(min(self.end + HORIZON, self.start + MAX_HORIZON))
            period = self.open.containing(b - timedelta(microseconds=1))
            b = period[1] if period else b
        return b

    def blocking(self, t: datetime) -> list[str]:
        return [c.name for c in self.blackouts if self.per_calendar[c.name].containing(t)]


_OPEN: dict[tuple[Any, ...], OpenTime] = {}


def open_time(calendars: Sequence[Calendar], start: datetime) -> OpenTime:
    """The shared OpenTime of these calendars from the day of ``start`` (cached)."""
    day = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    key = (tuple(id(c) for c in calendars), day)
    hit = _OPEN.get(key)
    if hit is None:
        if len(_OPEN) > 4096:
            _OPEN.clear()
        hit = _OPEN[key] = OpenTime(tuple(calendars), day)
    return hit


@lru_cache(maxsize=65536)
def _iso(t: datetime, tz: Any) -> str:
    return tzmod.iso(t, tz)


def _dur(td: timedelta) -> str:
    s = int(td.total_seconds())
    h, m = divmod(s // 60, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m" if m else f"{s}s"


def _seconds(value: float | timedelta | None) -> timedelta | None:
    if value is None:
        return None
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


def decide(entry: Entry, t: datetime, ot: OpenTime, p95: timedelta | None = None) -> Slot:
    """What happens to the fire of ``entry`` at instant ``t``."""
    spec = entry.spec
    cutoff = timedelta(seconds=spec.cutoff)
    if not ot.ensure(t):
        return Slot(t, "skip", "beyond the calendars' horizon")

    def fits(start: datetime, end: datetime | None) -> bool:
        if end is None:
            return True
        return start <= end - cutoff and (p95 is None or start + p95 <= end)

    def next_fit(after: datetime) -> tuple[datetime, datetime | None] | None:
        """The first instant >= after where a run may start, with its window's end."""
        cursor = after
        while ot.ensure(cursor):
            for a, b in ot.open.from_(cursor):
                if a >= ot.start + MAX_HORIZON:
                    return None
                real_end = ot.period_end(b)
                begin = max(a, after)
                if fits(begin, real_end):
                    return begin, real_end
                cursor = b
            if ot.end >= ot.start + MAX_HORIZON:
                return None
            cursor = max(cursor, ot.end)  # nothing more in the computed horizon: extend it
        return None

    def off_policy(reason: str) -> Slot:
        if spec.on_blackout == "skip":
            return Slot(t, "skip", reason + "; on_blackout: skip")
        found = next_fit(t)
        if found is None:
            return Slot(t, "skip", reason + "; no later window where it fits")
        return Slot(t, "defer", reason + "; next window", to=found[0], window_end=found[1])

    blocked = ot.blocking(t)
    if blocked:
        return off_policy(f"blackout {', '.join(blocked)}")
    period = ot.open.containing(t)
    if period is None:
        names = ", ".join(c.name for c in ot.allowed)
        return off_policy(f"outside window {names}")
    end = ot.period_end(period[1])
    if fits(t, end):
        if end is None:
            return Slot(t, "run", "no window applies" if not ot.calendars else "calendars open")
        return Slot(t, "run", f"window open until {_iso(end, entry.tz)}", window_end=end)
    assert end is not None
    why = (f"window closes at {tzmod.iso(end, entry.tz)}"
           + (f"; cutoff {_dur(cutoff)}" if cutoff else "")
           + (f"; p95 duration {_dur(p95)} does not fit" if p95 is not None and t + p95 > end else
              " (too late to start)"))
    found = next_fit(end)
    if found is None:
        return Slot(t, "skip", why + "; no later window where it fits")
    return Slot(t, "defer", why + "; rescheduled", to=found[0], window_end=found[1])


def next_slots(entry: Entry, calendars: Iterable[Calendar] | None = None, start: datetime | None = None,
               count: int = 10, p95: float | timedelta | None = None, inclusive: bool = True) -> list[Slot]:
    """The next ``count`` slots of ``entry`` from ``start`` (inclusive unless told), in order.

    ``calendars`` default to the entry's own (those it lists and those whose scope covers it);
    ``p95`` is the runbook's recorded 95th-percentile duration (seconds or a timedelta), when known.
    """
    if start is None:
        raise ValueError("next_slots needs a start instant")
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime")
    cals = tuple(entry.calendars if calendars is None else calendars)
    start = start.astimezone(UTC)
    ot = open_time(cals, start)
    p95_td = _seconds(p95)
    out: list[Slot] = []
    if count <= 0:
        return out
    for t in entry.trigger.fires(start):
        if t == start and not inclusive:
            continue
        out.append(decide(entry, t, ot, p95_td))
        if len(out) >= count:
            break
    return out


def slots_between(entry: Entry, start: datetime, end: datetime, p95: float | timedelta | None = None,
                  limit: int = 10_000) -> list[Slot]:
    """Every slot of ``entry`` whose fire instant is in [start, end) (at most ``limit``)."""
    start = start.astimezone(UTC)
    ot = open_time(entry.calendars, start)
    p95_td = _seconds(p95)
    out: list[Slot] = []
    for t in entry.trigger.fires(start):
        if t >= end or len(out) >= limit:
            break
        out.append(decide(entry, t, ot, p95_td))
    return out


__all__ = ["Entry", "OpenTime", "Slot", "decide", "next_slots", "open_time", "slots_between"]
