"""Calendars: maintenance windows (``allowed``) and blackouts, from several kinds of source.

A calendar's sources are Alertmanager time intervals, dates and date ranges (whole local days,
inclusive), RRULE recurrences with a duration and EXDATEs, and iCalendar events. Each source yields
windows — half-open UTC intervals — and the calendar is *active* inside their union: an ``allowed``
calendar is then open, a ``blackout`` in force. Pure: an ``.ics`` file is parsed from its text by the
loader, and this module only sees events.

Windows are computed per horizon and cached (:meth:`Calendar.windows`), so asking many instants, or
the next slots of many entries, costs one computation per calendar and year.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal, Protocol

from dateutil import rrule as du

from opsflow.schedule import tz as tzmod
from opsflow.schedule.intervals import TimeInterval

Window = tuple[datetime, datetime]
Mode = Literal["allowed", "blackout"]
CHUNK = timedelta(days=400)  # windows are computed this far at a time


class Source(Protocol):
    def windows(self, start: datetime, end: datetime, z: tzinfo) -> list[Window]: ...


@dataclass(frozen=True)
class DateRange:
    """Whole local days, ``first`` to ``last`` inclusive."""

    first: date
    last: date

    def windows(self, start: datetime, end: datetime, z: tzinfo) -> list[Window]:
        a = tzmod.to_utc(datetime.combine(self.first, datetime.min.time()), z)
        b = tzmod.to_utc(datetime.combine(self.last + timedelta(days=1), datetime.min.time()), z)
        return [(max(a, start), min(b, end))] if a < end and b > start else []


@dataclass(frozen=True)
class Recurrence:
    """Occurrences of an RRULE (from ``start``, local) each lasting ``duration``, minus EXDATEs."""

    rule: str
    start: datetime  # naive, local wall clock
    duration: timedelta
    exdates: tuple[datetime, ...] = ()  # naive local
    label: str = ""

    def occurrences(self) -> du.rrule | du.rruleset:
        rule = du.rrulestr(self.rule, dtstart=self.start, forceset=bool(self.exdates))
        if self.exdates:
            assert isinstance(rule, du.rruleset)
            for ex in self.exdates:
                rule.exdate(ex)
        return rule

    def windows(self, start: datetime, end: datetime, z: tzinfo) -> list[Window]:
        rule = self.occurrences()
        lo = tzmod.local(start - self.duration, z) - timedelta(days=1)
        hi = tzmod.local(end, z) + timedelta(days=1)
        out: list[Window] = []
        for wall in rule.between(lo, hi, inc=True):
            a = tzmod.to_utc(wall, z)
            b = a + self.duration
            if a < end and b > start:
                out.append((max(a, start), min(b, end)))
        return out


@dataclass(frozen=True)
class Event:
    """An iCalendar event: instants (``start``, ``end``) or whole days, with an optional recurrence."""

    summary: str
    start: datetime  # aware, or naive local wall clock (floating / all-day)
    end: datetime
    rule: str | None = None
    exdates: tuple[datetime, ...] = ()

    def windows(self, start: datetime, end: datetime, z: tzinfo) -> list[Window]:
        duration = self.end - self.start
        if self.rule is None:
            walls = [self.start]
        else:
            # expand in the event's own clock: its zone when it has one, else the calendar's
            ez = self.start.tzinfo or z
            first = self.start.replace(tzinfo=None)
            rule = du.rrulestr(self.rule, dtstart=first, forceset=True)
            assert isinstance(rule, du.rruleset)
            for ex in self.exdates:
                rule.exdate(ex.astimezone(ez).replace(tzinfo=None) if ex.tzinfo else ex)
            lo = tzmod.local(start - duration, ez) - timedelta(days=1)
            walls = [w.replace(tzinfo=self.start.tzinfo) if self.start.tzinfo else w
                     for w in rule.between(lo, tzmod.local(end, ez) + timedelta(days=1), inc=True)]
        out: list[Window] = []
        for w in walls:
            a = w.astimezone(UTC) if w.tzinfo else tzmod.to_utc(w, z)
            b = (w + duration).astimezone(UTC) if w.tzinfo else tzmod.to_utc(w + duration, z)
            if a < end and b > start:
                out.append((max(a, start), min(b, end)))
        return out


@dataclass(frozen=True)
class Scope:
    """Which entries a calendar applies to on its own (without being listed by them)."""

    all: bool = False
    runbooks: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()

    def covers(self, runbook: str, targets: frozenset[str]) -> bool:
        return self.all or runbook in self.runbooks or bool(targets & (self.groups | self.hosts))

    def describe(self) -> str:
        if self.all:
            return "all runbooks"
        parts = [f"{k} {', '.join(sorted(v))}" for k, v in (("runbooks", self.runbooks), ("groups", self.groups),
                                                              ("hosts", self.hosts)) if v]
        return "; ".join(parts) or "entries that list it"


@dataclass
class Calendar:
    name: str
    mode: Mode
    location: str | None = None
    scope: Scope | None = None  # None: applies only to the entries that list it
    intervals: tuple[TimeInterval, ...] = ()
    dates: tuple[DateRange, ...] = ()
    recurrences: tuple[Recurrence, ...] = ()
    events: tuple[Event, ...] = ()
    _chunks: dict[datetime, list[Window]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def tz(self) -> tzinfo:
        return tzmod.zone(self.location) if self.location else UTC

    def _compute(self, start: datetime, end: datetime) -> list[Window]:
        z = self.tz
        out: list[Window] = []
        for ti in self.intervals:
            out += ti.windows(start, end, z)
        sources: tuple[Source, ...] = (*self.dates, *self.recurrences, *self.events)
        for source in sources:
            out += source.windows(start, end, z)
        return tzmod.merge(out)

    def windows(self, start: datetime, end: datetime) -> list[Window]:
        """Where the calendar is active (allowed: open; blackout: in force) within [start, end), merged.

        Computed in aligned chunks that are cached, so overlapping questions cost nothing more.
        """
        epoch = datetime(2000, 1, 1, tzinfo=UTC)
        first = epoch + ((start - epoch) // CHUNK) * CHUNK
        pieces: list[Window] = []
        c = first
        while c < end:
            if c not in self._chunks:
                if len(self._chunks) > 64:
                    self._chunks.clear()
                self._chunks[c] = self._compute(c, c + CHUNK)
            pieces += self._chunks[c]
            c += CHUNK
        return tzmod.intersect(tzmod.merge(pieces), [(start, end)])

    def active_at(self, instant: datetime) -> tuple[bool, str]:
        """Whether a source holds the instant, and which (for the reason)."""
        z = self.tz
        for i, ti in enumerate(self.intervals):
            if ti.contains(instant, z):
                return True, f"time_intervals[{i}]"
        probe_end = instant + timedelta(seconds=1)
        kinds: tuple[tuple[str, tuple[Source, ...]], ...] = (
            ("dates", self.dates), ("recurrences", self.recurrences), ("ics", self.events))
        for what, sources in kinds:
            for i, s in enumerate(sources):
                if s.windows(instant, probe_end, z):
                    label = getattr(s, "summary", "") or getattr(s, "label", "")
                    return True, f"{what}[{i}]" + (f" ({label})" if label else "")
        return False, ""

    def open_at(self, instant: datetime) -> tuple[bool, str]:
        """``(open, reason)``: open when an ``allowed`` calendar is active, or a ``blackout`` is not."""
        active, source = self.active_at(instant)
        if self.mode == "allowed":
            return (True, f"inside window {self.name!r} ({source})") if active else \
                (False, f"outside window {self.name!r}")
        return (False, f"blackout {self.name!r} in force ({source})") if active else \
            (True, f"blackout {self.name!r} not in force")

    def next_change(self, after: datetime, horizon: timedelta = timedelta(days=3660)) -> datetime | None:
        """The first instant after ``after`` at which open_at changes, or None within the horizon."""
        hi = after
        while hi < after + horizon:
            hi = min(hi + CHUNK, after + horizon)
            for a, b in self.windows(after, hi):
                if a > after:
                    return a
                if b < hi:
                    return b
        return None

    def iter_windows(self, start: datetime, end: datetime) -> Iterator[Window]:
        yield from self.windows(start, end)


class Periods:
    """Sorted disjoint UTC intervals with fast lookups (the open time of an entry)."""

    def __init__(self, items: list[Window]):
        self.items = items
        self.starts = [a for a, _ in items]
        self.ends = [b for _, b in items]

    def containing(self, t: datetime) -> Window | None:
        i = bisect_right(self.starts, t) - 1
        return self.items[i] if i >= 0 and t < self.ends[i] else None

    def from_(self, t: datetime) -> Iterator[Window]:
        """Periods that end after t, in order (the one holding t first, cut at t)."""
        i = bisect_left(self.ends, t)
        if i < len(self.ends) and self.ends[i] == t:
            i += 1
        for a, b in self.items[i:]:
            yield (max(a, t), b)


__all__ = ["Calendar", "DateRange", "Event", "Periods", "Recurrence", "Scope", "Window"]
