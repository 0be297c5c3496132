"""Time zones: IANA zones by name, their transitions, and wall-clock ↔ instant conversions.

Everything here is pure. Instants are aware ``datetime`` objects in UTC; wall-clock times are naive.

Two conventions for a wall-clock time that does not exist (a DST gap) or exists twice (a DST overlap):

- **windows** (calendar dates, recurrences, iCalendar events) follow RFC 5545: a time in a gap is read
  with the offset before the gap, an ambiguous time is its first occurrence (Python's ``fold=0``);
- **fire times** of fixed-time jobs follow cronie/Debian cron: a time in a gap fires once, at the
  instant of the change; an ambiguous time fires once, at its first occurrence.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_SAMPLE = timedelta(hours=6)  # transitions are found between samples this far apart (none is closer)


class UnknownZone(ValueError):
    pass


@lru_cache(maxsize=512)
def zone(name: str) -> tzinfo:
    """The IANA zone ``name`` (``UTC`` too); UnknownZone when there is none."""
    if name in ("UTC", "Etc/UTC", "Z"):
        return UTC
    if not name or name.startswith(("/", ".")) or ".." in name or "\\" in name:
        raise UnknownZone(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise UnknownZone(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)") from exc


def check_zone(name: str) -> str:
    zone(name)
    return name


def offset(tz: tzinfo, instant: datetime) -> timedelta:
    off = instant.astimezone(tz).utcoffset()
    return off if off is not None else timedelta(0)


def _bisect_change(tz: tzinfo, lo: datetime, hi: datetime) -> datetime:
    """The first instant in (lo, hi] whose offset differs from lo's (to the second)."""
    before = offset(tz, lo)
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            mid = lo + timedelta(seconds=1)
        if offset(tz, mid) == before:
            lo = mid
        else:
            hi = mid
    return hi


@lru_cache(maxsize=4096)
def _year_transitions(tz: tzinfo, year: int) -> tuple[datetime, ...]:
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    out: list[datetime] = []
    t, prev = start - _SAMPLE, offset(tz, start - _SAMPLE)
    while t < end:
        nxt = t + _SAMPLE
        off = offset(tz, nxt)
        if off != prev:
            change = _bisect_change(tz, t, nxt)
            if start <= change < end:
                out.append(change)
            prev = off
        t = nxt
    return tuple(out)


def transitions(tz: tzinfo, start: datetime, end: datetime) -> list[datetime]:
    """Instants in [start, end) at which the zone's UTC offset changes."""
    if tz is UTC:
        return []
    out: list[datetime] = []
    for year in range(start.year, end.year + 1):
        out += [t for t in _year_transitions(tz, year) if start <= t < end]
    return out


def segments(tz: tzinfo, start: datetime, end: datetime) -> list[tuple[datetime, datetime, timedelta]]:
    """[start, end) cut where the offset changes: (from, to, offset) with one offset each."""
    cuts = [start, *transitions(tz, start, end), end]
    return [(a, b, offset(tz, a)) for a, b in zip(cuts, cuts[1:], strict=False) if a < b]


def to_utc(wall: datetime, tz: tzinfo) -> datetime:
    """RFC 5545: a wall-clock time in a gap with the offset before it; an ambiguous one's first occurrence."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def fire_instant(wall: datetime, tz: tzinfo) -> datetime:
    """cronie: a wall-clock time in a gap fires at the change itself; an ambiguous one at its first occurrence."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    later = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo, hi = min(first, later), max(first, later)
    return _bisect_change(tz, lo - timedelta(seconds=1), hi)


def local(instant: datetime, tz: tzinfo) -> datetime:
    """The naive wall-clock time of an instant in a zone."""
    return instant.astimezone(tz).replace(tzinfo=None)


def parse_instant(text: str, default_tz: tzinfo = UTC) -> datetime:
    """An ISO 8601 instant; without an offset it is read in ``default_tz`` (RFC 5545 convention)."""
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 date-time: {text!r} (e.g. 2027-03-28T02:30:00+01:00)") from exc
    if value.tzinfo is None:
        return to_utc(value, default_tz)
    return value.astimezone(UTC)


def iso(instant: datetime, tz: tzinfo | None = None) -> str:
    """ISO 8601 with its UTC offset (in ``tz`` when given), to the second."""
    value = instant.astimezone(tz or UTC).replace(microsecond=0)
    return value.isoformat()


def merge(intervals: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Sorted, non-overlapping union of half-open intervals (touching ones joined)."""
    out: list[tuple[datetime, datetime]] = []
    for a, b in sorted(i for i in intervals if i[0] < i[1]):
        if out and a <= out[-1][1]:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def subtract(base: list[tuple[datetime, datetime]],
             minus: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """``base`` without ``minus`` (both merged, sorted)."""
    out: list[tuple[datetime, datetime]] = []
    j = 0
    for a, b in base:
        while j < len(minus) and minus[j][1] <= a:
            j += 1
        k, cur = j, a
        while k < len(minus) and minus[k][0] < b:
            if minus[k][0] > cur:
                out.append((cur, minus[k][0]))
            cur = max(cur, minus[k][1])
            k += 1
        if cur < b:
            out.append((cur, b))
    return out


def intersect(x: list[tuple[datetime, datetime]], y: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    i = j = 0
    while i < len(x) and j < len(y):
        a, b = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        if a < b:
            out.append((a, b))
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return out


def find(intervals: list[tuple[datetime, datetime]], instant: datetime) -> int | None:
    """Index of the interval holding ``instant`` (half-open), or None."""
    i = bisect_right(intervals, (instant, datetime.max.replace(tzinfo=UTC))) - 1
    if i >= 0 and intervals[i][0] <= instant < intervals[i][1]:
        return i
    return None


__all__ = ["UnknownZone", "check_zone", "find", "fire_instant", "intersect", "iso", "local", "merge",
           "parse_instant", "segments", "subtract", "to_utc", "transitions", "zone"]
