"""What will run when: the schedule over the coming days, as text for a terminal and as iCalendar items.

Pure: the caller gives the schedule set, the start and the zone to show; nothing here reads a clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from opsflow.schedule.loader import ScheduleSet
from opsflow.schedule.slots import Slot, slots_between

_ISO = re.compile(r"\d{4}-\d\d-\d\dT[0-9:+\-Z]+")
DEFAULT_LENGTH = timedelta(minutes=15)  # a run without a recorded p95 is shown this long


@dataclass(frozen=True)
class Forecast:
    start: datetime
    end: datetime
    slots: list[tuple[str, Slot]]  # (entry, slot), by time
    windows: list[tuple[str, str, datetime, datetime]]  # (calendar, mode, from, to)


def forecast(schedules: ScheduleSet, start: datetime, days: int,
             p95: Mapping[str, float] | None = None) -> Forecast:
    """Every slot of every enabled entry, and every calendar window, in [start, start + days)."""
    end = start + timedelta(days=days)
    p95 = p95 or {}
    slots: list[tuple[str, Slot]] = []
    for name, entry in schedules.entries.items():
        if entry.spec.enabled:
            slots += [(name, s) for s in slots_between(entry, start, end, p95.get(entry.runbook))]
    slots.sort(key=lambda x: (x[1].at, -schedules.entries[x[0]].spec.priority, x[0]))
    windows: list[tuple[str, str, datetime, datetime]] = [(c.name, str(c.mode), a, b) for c in schedules.calendars.values() for a, b in c.windows(start, end)]
    windows.sort(key=lambda w: (w[2], w[0]))
    return Forecast(start, end, slots, windows)


def _hm(t: datetime, z: tzinfo) -> str:
    return t.astimezone(z).strftime("%H:%M")


def render_text(fc: Forecast, z: tzinfo) -> list[str]:
    """A day-by-day calendar: windows and blackouts of the day, then each slot."""
    lines: list[str] = []
    day: date = fc.start.astimezone(z).date()
    last: date = (fc.end - timedelta(microseconds=1)).astimezone(z).date()
    while day <= last:
        lo = datetime.combine(day, datetime.min.time(), z)
        hi = datetime.combine(day + timedelta(days=1), datetime.min.time(), z)
        lines.append(day.strftime("%a %Y-%m-%d"))
        for name, mode, a, b in fc.windows:
            if a < hi and b > lo:
                span = f"{_hm(max(a, lo), z)}–{'24:00' if b >= hi else _hm(b, z)}"
                lines.append(f"  {'window' if mode == 'allowed' else 'BLACKOUT':<9} {span:<12} {name}")
        lines += _day_slots([(n, s) for n, s in fc.slots if lo <= s.at < hi], z)
        day += timedelta(days=1)
    return lines


def _day_slots(slots: list[tuple[str, Slot]], z: tzinfo) -> list[str]:
    """One line per slot; consecutive alike slots of one entry (an every: 15m entry) as one line."""
    groups: list[tuple[str, list[Slot]]] = []
    open_group: dict[str, int] = {}
    for name, s in slots:
        i = open_group.get(name)
        if i is not None:
            last = groups[i][1][-1]
            if (last.action, _ISO.sub("", last.reason), last.to) == \
                    (s.action, _ISO.sub("", s.reason), s.to):
                groups[i][1].append(s)
                continue
        open_group[name] = len(groups)
        groups.append((name, [s]))
    out: list[str] = []
    for name, group in groups:
        first = group[0]
        when = _hm(first.at, z) if len(group) == 1 else f"{_hm(first.at, z)}–{_hm(group[-1].at, z)}"
        times = f" (×{len(group)})" if len(group) > 1 else ""
        extra = f" → {first.to.astimezone(z).strftime('%a %Y-%m-%d %H:%M')}" if first.to else ""
        out.append(f"  {when:<11} {first.action:<6} {name:<28} {first.reason}{extra}{times}")
    return out


def ics_items(fc: Forecast, schedules: ScheduleSet, p95: Mapping[str, float] | None = None
              ) -> list[tuple[str, datetime, datetime, str]]:
    """(summary, start, end, description) for each run or deferred run, and each window and blackout."""
    p95 = p95 or {}
    items: list[tuple[str, datetime, datetime, str]] = []
    for name, s in fc.slots:
        begin = s.start
        if begin is None:
            continue
        entry = schedules.entries[name]
        length = timedelta(seconds=p95[entry.runbook]) if entry.runbook in p95 else DEFAULT_LENGTH
        what = "run" if s.action == "run" else f"deferred run (was {s.at.isoformat()})"
        items.append((f"{name}: {entry.runbook}", begin, begin + length, f"{what}; {s.reason}"))
    for cal, mode, a, b in fc.windows:
        items.append((f"{'window' if mode == 'allowed' else 'blackout'} {cal}", a, b, f"calendar {cal} ({mode})"))
    return items


__all__ = ["Forecast", "forecast", "ics_items", "render_text"]
