"""When an entry fires: a 5-field cron in a time zone, an RRULE, or an interval of real time.

DST, as cronie and Debian cron do it (changes of the clock under 3 hours):

- a **fixed-time** job (cron whose minute and hour fields do not start with ``*``; every RRULE) whose
  wall-clock time falls in a skipped stretch fires **once, right at the change**; one whose time
  occurs twice fires **once**, at the first occurrence;
- a **wildcard** job (``*`` or ``*/n`` in the minute or hour field, ``@hourly``) follows the wall
  clock: nothing in the skipped stretch, again in the repeated one;
- ``every: 15m`` counts real elapsed time in UTC from its anchor (the Unix epoch unless ``start``).

Croniter reads the expression and walks the wall clock; this module maps wall clock to instants,
one stretch of constant UTC offset at a time, and memoises the fire times of each trigger.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from croniter import croniter
from dateutil import rrule as du

from opsflow.schedule import tz as tzmod

BIG_JUMP = timedelta(hours=3)  # cronie: clock changes this large are jumps, not DST
FIRST_CHUNK = timedelta(hours=6)  # fire times are computed this far ahead at first, doubling up to
MAX_CHUNK = timedelta(days=64)
HORIZON = timedelta(days=366 * 20)  # a trigger silent this long has no next fire
ALIASES = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
           "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def check_cron(expr: str) -> str:
    """A 5-field cron expression (or an @alias), as croniter reads it; ValueError otherwise."""
    if not isinstance(expr, str):
        raise ValueError("cron is a string such as '30 2 * * *'")
    text = ALIASES.get(expr.strip().lower(), expr.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"cron {expr!r}: expected 5 fields (minute hour day-of-month month day-of-week), "
                         f"got {len(fields)}")
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except (ValueError, KeyError, TypeError) as exc:  # croniter's errors are ValueErrors
        raise ValueError(f"cron {expr!r}: {exc}") from exc
    return expr


_RULE_PARTS = re.compile(r"([A-Z]+)=([^;]*)")


def check_rrule(text: str) -> str:
    """An RRULE (``FREQ=…;…``, an optional ``RRULE:`` prefix) as dateutil reads it; ValueError otherwise."""
    if not isinstance(text, str) or "DTSTART" in text.upper():
        raise ValueError("rrule is 'FREQ=…;…' without DTSTART (give the first occurrence as start:)")
    try:
        du.rrulestr(_rule_text(text), dtstart=datetime(2024, 1, 1))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"rrule {text!r}: {exc}") from exc
    return text


def _rule_text(text: str) -> str:
    text = text.strip()
    return text[len("RRULE:"):] if text.upper().startswith("RRULE:") else text


class _Memo:
    """Fire instants of one trigger over a covered stretch [lo, hi), extended on demand."""

    def __init__(self) -> None:
        self.lo: datetime | None = None
        self.hi: datetime | None = None
        self.items: list[datetime] = []


_MEMO: dict[tuple[Any, ...], _Memo] = {}


class Trigger:
    """Base: ``fires(start)`` yields the fire instants >= start, in order, memoised per trigger."""

    key: tuple[Any, ...] = ()

    def generate(self, start: datetime, end: datetime) -> list[datetime]:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def fires(self, start: datetime) -> Iterator[datetime]:
        memo = _MEMO.get(self.key)
        if memo is None or memo.lo is None or memo.hi is None or start < memo.lo or start > memo.hi + MAX_CHUNK:
            if len(_MEMO) > 20_000:
                _MEMO.clear()
            memo = _MEMO[self.key] = _Memo()  # a generator keeps its own memo: never reset under it
            memo.lo = memo.hi = start
        assert memo.hi is not None
        i = bisect_left(memo.items, start)
        chunk = FIRST_CHUNK
        while memo.hi < start + HORIZON:
            while i < len(memo.items):
                yield memo.items[i]
                i += 1
            if memo.hi is None:  # pragma: no cover - never: set above
                return
            new = self.generate(memo.hi, memo.hi + chunk)
            memo.items += new
            memo.hi += chunk
            chunk = min(chunk * 2, MAX_CHUNK)
        while i < len(memo.items):
            yield memo.items[i]
            i += 1

    def next_fire(self, start: datetime) -> datetime | None:
        return next(self.fires(start), None)


_Fields = tuple[list[int], list[int], set[int] | None, set[int] | None, set[int] | None]


@lru_cache(maxsize=8192)
def _expand(text: str) -> _Fields | None:
    """croniter's expansion as sets, when no extension (L, #) needs croniter's own walk."""
    fields, nth = croniter.expand(text)
    if nth or not all(isinstance(v, int) or v == "*" for f in fields for v in f):
        return None

    def values(f: list[Any], full: range) -> list[int]:
        return list(full) if f == ["*"] else sorted({int(v) for v in f})

    def maybe(f: list[Any], modulo: int = 0) -> set[int] | None:
        return None if f == ["*"] else {int(v) % modulo if modulo else int(v) for v in f}

    return values(fields[0], range(60)), values(fields[1], range(24)), maybe(fields[2]), maybe(fields[3]), \
        maybe(fields[4], 7)


@dataclass(eq=False)
class CronTrigger(Trigger):
    expr: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        self.text = ALIASES.get(self.expr.strip().lower(), self.expr.strip())
        minute, hour = self.text.split()[:2]
        self.fixed = not (minute.startswith("*") or hour.startswith("*"))
        self.tz = tzmod.zone(self.timezone)
        self.key = ("cron", self.text, self.timezone)

    def describe(self) -> str:
        return f"cron '{self.expr}' {self.timezone}"

    def _fields(self) -> _Fields | None:
        return _expand(self.text)

    def _day_matches(self, day: Any, doms: set[int] | None, months: set[int] | None, dows: set[int] | None) -> bool:
        if months is not None and day.month not in months:
            return False
        dom_ok = doms is None or day.day in doms
        dow_ok = dows is None or (day.weekday() + 1) % 7 in dows
        if doms is not None and dows is not None:  # croniter (day_or): either day field
            return dom_ok or dow_ok
        return dom_ok and dow_ok

    def _walls(self, a: datetime, b: datetime) -> Iterator[datetime]:
        """Wall-clock matches in [a, b) (naive): croniter's set of times, walked day by day."""
        fields = self._fields()
        if fields is None:
            yield from self._croniter_walls(a, b)
            return
        minutes, hours, doms, months, dows = fields
        day = a.date()
        while datetime.combine(day, datetime.min.time()) < b:
            if self._day_matches(day, doms, months, dows):
                base = datetime.combine(day, datetime.min.time())
                for h in hours:
                    for m in minutes:
                        wall = base.replace(hour=h, minute=m)
                        if wall >= b:
                            return
                        if wall >= a:
                            yield wall
            day += timedelta(days=1)

    def _croniter_walls(self, a: datetime, b: datetime) -> Iterator[datetime]:
        it = croniter(self.text, a - timedelta(seconds=1))
        while True:
            try:
                wall = it.get_next(datetime)
            except ValueError:  # croniter found no date at all (e.g. 30 February)
                return
            if wall >= b:
                return
            if wall >= a:
                yield wall

    def generate(self, start: datetime, end: datetime) -> list[datetime]:
        out: list[datetime] = []
        back = start - timedelta(days=1)  # a change just before start still decides what follows it
        for a, b, off in tzmod.segments(self.tz, back, end):
            wall_a, wall_b = (a + off).replace(tzinfo=None), (b + off).replace(tzinfo=None)
            skip_until = wall_a
            prev = tzmod.offset(self.tz, a - timedelta(seconds=1))
            jump = off - prev
            if self.fixed and a != back and timedelta(0) < jump < BIG_JUMP:
                # forward: the walls [a+prev, a+off) never happen; a job there runs once, at the change
                gap_a = (a + prev).replace(tzinfo=None)
                if next(self._walls(gap_a, wall_a), None) is not None:
                    out.append(a)
            elif self.fixed and a != back and -BIG_JUMP < jump < timedelta(0):
                # backward: the walls [a+off, a+prev) come again; a fixed job ran in the first of them
                skip_until = (a + prev).replace(tzinfo=None)
            for wall in self._walls(wall_a, wall_b):
                if wall >= skip_until:
                    out.append((wall - off).replace(tzinfo=UTC))
        result: list[datetime] = []
        for t in out:
            if start <= t < end and (not result or t > result[-1]):
                result.append(t)
        return result


def _shifted_start(rule: str, dtstart: datetime, target: datetime) -> datetime:
    """A later DTSTART giving the same occurrences from ``target`` on (fixed-length FREQs without COUNT)."""
    parts = dict(_RULE_PARTS.findall(rule.upper()))
    unit = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": 86400, "WEEKLY": 604800}.get(parts.get("FREQ", ""))
    if unit is None or "COUNT" in parts or "BYSETPOS" in parts or target <= dtstart:
        return dtstart
    period = timedelta(seconds=unit * int(parts.get("INTERVAL", "1") or 1))
    if parts.get("FREQ") in ("DAILY", "WEEKLY"):  # whole days of wall clock: keep a margin of a period
        steps = (target - dtstart) // period - 1
    else:
        steps = (target - dtstart) // period - math.ceil(timedelta(days=2) / period)
    return dtstart + period * steps if steps > 0 else dtstart


@dataclass(eq=False)
class RRuleTrigger(Trigger):
    rule: str
    timezone: str = "UTC"
    start: datetime = datetime(2024, 1, 1)  # naive local DTSTART (2024-01-01 was a Monday)

    def __post_init__(self) -> None:
        self.tz = tzmod.zone(self.timezone)
        self.text = _rule_text(self.rule)
        self.key = ("rrule", self.text, self.timezone, self.start)

    def describe(self) -> str:
        return f"rrule '{self.text}' {self.timezone}"

    def generate(self, start: datetime, end: datetime) -> list[datetime]:
        lo = tzmod.local(start, self.tz) - timedelta(days=1)
        hi = tzmod.local(end, self.tz) + timedelta(days=1)
        dtstart = _shifted_start(self.text, self.start, lo)
        rule = du.rrulestr(self.text, dtstart=dtstart)
        out: list[datetime] = []
        for wall in rule.between(lo, hi, inc=True):
            t = tzmod.fire_instant(wall, self.tz)
            if start <= t < end and (not out or t > out[-1]):
                out.append(t)
        return out


@dataclass(eq=False)
class EveryTrigger(Trigger):
    seconds: float
    anchor: datetime = EPOCH

    def __post_init__(self) -> None:
        if self.seconds <= 0:
            raise ValueError("every: the interval must be more than 0")
        self.key = ("every", self.seconds, self.anchor)

    def describe(self) -> str:
        return f"every {_human(self.seconds)}"

    def generate(self, start: datetime, end: datetime) -> list[datetime]:
        step = timedelta(seconds=self.seconds)
        k = max(0, math.ceil((start - self.anchor) / step))
        out: list[datetime] = []
        t = self.anchor + step * k
        while t < end:
            if t >= start:
                out.append(t)
            k += 1
            t = self.anchor + step * k
        return out


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


__all__ = ["CronTrigger", "EveryTrigger", "RRuleTrigger", "Trigger", "check_cron", "check_rrule"]
