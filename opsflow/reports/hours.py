"""Two clocks: wall time, and time within operational hours (a calendar).

A :class:`Clock` holds the open periods of a calendar over a report's span as sorted, disjoint
half-open ``[start, end)`` intervals in epoch seconds, with prefix sums, so ``inside(t)`` and
``elapsed(a, b)`` (the seconds of ``[a, b)`` that fall inside) cost a bisection each. DST, weekends
and midnight are the calendar's business: its windows are computed in its own time zone, and this
module only adds up UTC intervals. Pure.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

Span = tuple[float, float]


class Clock:
    """Time inside a set of periods."""

    def __init__(self, periods: Iterable[Span], name: str = ""):
        merged: list[list[float]] = []
        for a, b in sorted(p for p in periods if p[1] > p[0]):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.name = name
        self.starts = [a for a, _ in merged]
        self.ends = [b for _, b in merged]
        self.before = [0.0]  # seconds inside before period i
        for a, b in merged:
            self.before.append(self.before[-1] + (b - a))

    @property
    def periods(self) -> list[Span]:
        return list(zip(self.starts, self.ends, strict=True))

    def inside(self, t: float) -> bool:
        i = bisect.bisect_right(self.starts, t) - 1
        return i >= 0 and t < self.ends[i]

    def _upto(self, t: float) -> float:
        """Seconds inside from the beginning of time to t."""
        i = bisect.bisect_right(self.starts, t) - 1
        if i < 0:
            return 0.0
        return self.before[i] + min(t, self.ends[i]) - self.starts[i]

    def elapsed(self, a: float, b: float) -> float:
        """Seconds of [a, b) inside the periods (0 when b ≤ a)."""
        return max(0.0, self._upto(b) - self._upto(a)) if b > a else 0.0

    def total(self) -> float:
        return self.before[-1]


def calendar_clock(calendar: Any, since: float, until: float) -> Clock:
    """The open time of a schedules calendar within [since, until): ``allowed`` windows, or the time
    outside a ``blackout``."""
    start = datetime.fromtimestamp(since, UTC)
    end = datetime.fromtimestamp(until, UTC)
    windows = [(a.timestamp(), b.timestamp()) for a, b in calendar.windows(start - timedelta(days=1),
                                                                             end + timedelta(days=1))]
    if calendar.mode == "blackout":
        gaps, t = [], since - 86400.0
        for a, b in windows:
            if a > t:
                gaps.append((t, a))
            t = max(t, b)
        gaps.append((t, until + 86400.0))
        windows = gaps
    return Clock(windows, calendar.name)


def active_clock(calendar: Any, since: float, until: float) -> Clock:
    """Where a calendar is active (a maintenance window's own windows, whatever its mode): corrections."""
    start = datetime.fromtimestamp(since, UTC) - timedelta(days=1)
    end = datetime.fromtimestamp(until, UTC) + timedelta(days=1)
    return Clock([(a.timestamp(), b.timestamp()) for a, b in calendar.windows(start, end)], calendar.name)


__all__ = ["Clock", "Span", "active_clock", "calendar_clock"]
