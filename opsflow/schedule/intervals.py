"""Prometheus Alertmanager's ``time_intervals``, verbatim: parse and test an instant, and list windows.

The rules are Alertmanager's (its ``timeinterval`` package): ``times`` are ``HH:MM`` from 00:00 to
24:00, start inclusive and end exclusive; ``weekdays`` are names (``monday:friday``), never numbers;
``days_of_month`` may count back from the month's end (``-1`` is the last day, ``-3:-1`` the last three)
and are clamped to the month; ``months`` are names or numbers (``january:march``, ``1:3``); ``years``
are ranges (``2020:2025``); ``location`` is an IANA zone, UTC when not given. Fields AND together, the
items of one field OR together, and an interval without fields holds every instant.
The error messages are Alertmanager's own.

One addition: a calendar's own ``location`` is the default of its intervals that name none.
"""

from __future__ import annotations

import calendar as _cal
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from opsflow.schedule import tz as tzmod

WEEKDAYS = {"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6}
MONTHS = {name.lower(): i for i, name in enumerate(_cal.month_name) if name}
_MONTHS_INV = {v: k for k, v in MONTHS.items()}
TIME_TEXT = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]|24:00"
_ATOI = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi takes
FIELDS = ("times", "weekdays", "days_of_month", "months", "years", "location")

Range = tuple[int, int]


@dataclass(frozen=True)
class TimeInterval:
    """One Alertmanager time interval, parsed. ``None`` for a field that was not given."""

    times: tuple[Range, ...] | None = None  # minutes of the day [start, end)
    weekdays: tuple[Range, ...] | None = None  # 0 = Sunday
    days_of_month: tuple[Range, ...] | None = None  # negative = from the month's end
    months: tuple[Range, ...] | None = None
    years: tuple[Range, ...] | None = None
    location: str | None = None

    def tz(self, default: tzinfo = UTC) -> tzinfo:
        return tzmod.zone(self.location) if self.location else default

    # ---- Alertmanager's ContainsTime ----------------------------------------------------------
    def contains(self, instant: datetime, default_tz: tzinfo = UTC) -> bool:
        """Whether the instant lies in this interval (Alertmanager's ``ContainsTime``)."""
        t = instant.astimezone(self.tz(default_tz))
        if self.times is not None:
            minute = t.hour * 60 + t.minute
            if not any(s <= minute < e for s, e in self.times):
                return False
        return self.matches_day(t.date())

    def matches_day(self, day: date) -> bool:
        """The day-level fields (days of month, months, weekdays, years) for a local date."""
        if self.days_of_month is not None and not any(_in_month(day, r) for r in self.days_of_month):
            return False
        if self.months is not None and not any(b <= day.month <= e for b, e in self.months):
            return False
        if self.weekdays is not None:
            wd = (day.weekday() + 1) % 7  # Go: Sunday = 0
            if not any(b <= wd <= e for b, e in self.weekdays):
                return False
        return not (self.years is not None and not any(b <= day.year <= e for b, e in self.years))

    # ---- the instants it holds, as windows -----------------------------------------------------
    def windows(self, start: datetime, end: datetime, default_tz: tzinfo = UTC) -> list[tuple[datetime, datetime]]:
        """The instants of [start, end) this interval contains, as merged half-open UTC windows.

        Exact across DST: within each stretch of one UTC offset the wall clock is the instant shifted,
        so the windows are computed on the wall clock and shifted back.
        """
        z = self.tz(default_tz)
        times = self.times if self.times is not None else ((0, 1440),)
        out: list[tuple[datetime, datetime]] = []
        for a, b, off in tzmod.segments(z, start, end):
            wall_a, wall_b = (a + off).replace(tzinfo=None), (b + off).replace(tzinfo=None)
            day = wall_a.date()
            while datetime.combine(day, datetime.min.time()) < wall_b:
                if self.matches_day(day):
                    midnight = datetime.combine(day, datetime.min.time())
                    for s, e in times:
                        ws, we = max(midnight + timedelta(minutes=s), wall_a), min(midnight + timedelta(minutes=e), wall_b)
                        if ws < we:
                            out.append(((ws - off).replace(tzinfo=UTC), (we - off).replace(tzinfo=UTC)))
                day += timedelta(days=1)
        return tzmod.merge(out)


def _in_month(day: date, r: Range) -> bool:
    days = _cal.monthrange(day.year, day.month)[1]
    begin = days + r[0] + 1 if r[0] < 0 else r[0]
    end = days + r[1] + 1 if r[1] < 0 else r[1]
    if begin > days:  # Alertmanager: skip clamping when the start is after the month's end
        return False
    begin, end = max(min(begin, days), -days), max(min(end, days), -days)
    return begin <= day.day <= end


# ---- parsing (Alertmanager's UnmarshalYAML rules and messages) -----------------------------------
def parse_time(text: str) -> int:
    """Minutes of the day from ``HH:MM`` (00:00 … 24:00)."""
    if not isinstance(text, str) or not re.fullmatch(TIME_TEXT, text):
        raise ValueError(f"couldn't parse timestamp {text}, invalid format")
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def parse_time_range(value: Any) -> Range:
    if not isinstance(value, dict):
        raise ValueError("a time range is a mapping with start_time and end_time")
    unknown = sorted(set(value) - {"start_time", "end_time"})
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} in a time range (start_time, end_time)")
    if not value.get("start_time") or not value.get("end_time"):
        raise ValueError("both start and end times must be provided")
    start, end = parse_time(value["start_time"]), parse_time(value["end_time"])
    if start >= end:
        raise ValueError("start time cannot be equal or greater than end time")
    return start, end


def _atoi(text: str) -> int:
    if not _ATOI.fullmatch(text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _split(text: Any, member: Any) -> Range:
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"expected a string such as '1:5', got {type(text).__name__}")
    text = str(text).lower()
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2:
            raise ValueError(f"couldn't parse range {text}, invalid format")
        return member(parts[0]), member(parts[1])
    value = member(text)
    return value, value


def _weekday(text: str) -> int:
    if text not in WEEKDAYS:
        raise ValueError(f"{text} is not a valid weekday")
    return WEEKDAYS[text]


def _month(text: str) -> int:
    if text in MONTHS:
        return MONTHS[text]
    if not _ATOI.fullmatch(text):
        raise ValueError(f"{text} is not a valid month")
    return int(text)


def parse_weekdays(text: Any) -> Range:
    b, e = _split(text, _weekday)
    if b > e:
        raise ValueError("start day cannot be before end day")
    return b, e


def parse_days_of_month(text: Any) -> Range:
    b, e = _split(text, _atoi)
    for n in (b, e):
        if n == 0 or n < -31 or n > 31:
            raise ValueError(f"{n} is not a valid day of the month: out of range")
    if b < 0 < e:
        raise ValueError("end day must be negative if start day is negative")
    if (28 + b if b < 0 else b) > (28 + e if e < 0 else e):
        raise ValueError(f"end day {e} is always before start day {b}")
    return b, e


def parse_months(text: Any) -> Range:
    b, e = _split(text, _month)
    if b > e:
        raise ValueError(f"end month {_MONTHS_INV.get(e, e)} is before start month {_MONTHS_INV.get(b, b)}")
    for n in (b, e):  # stricter than Alertmanager, which accepts a month 13 that never matches
        if not 1 <= n <= 12:
            raise ValueError(f"{n} is not a valid month: out of range (1-12)")
    return b, e


def parse_years(text: Any) -> Range:
    b, e = _split(text, _atoi)
    if b > e:
        raise ValueError(f"end year {e} is before start year {b}")
    return b, e


def _items(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} is a list, e.g. {what}: ['1:5']")
    return value


def parse_interval(value: Any) -> TimeInterval:
    """One interval from its YAML mapping; ValueError (Alertmanager's message) when invalid.

    For file positions, :func:`interval_problems` gives each problem with the key path it is at.
    """
    problems = interval_problems(value)
    if problems:
        raise ValueError(problems[0][1])
    return _build(value)


def interval_problems(value: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Every problem of one interval mapping, each with the path of keys inside it."""
    if not isinstance(value, dict):
        return [((), "a time interval is a mapping of times, weekdays, days_of_month, months, years, location")]
    out: list[tuple[tuple[str | int, ...], str]] = []
    for key in value:
        if key not in FIELDS:
            out.append(((key,), f"unknown key {key!r} in a time interval (Alertmanager's keys: {', '.join(FIELDS)})"))
    parsers = {"times": parse_time_range, "weekdays": parse_weekdays, "days_of_month": parse_days_of_month,
               "months": parse_months, "years": parse_years}
    for key, parse in parsers.items():
        if key not in value or value[key] is None:
            continue
        try:
            items = _items(value[key], key)
        except ValueError as exc:
            out.append(((key,), str(exc)))
            continue
        for i, item in enumerate(items):
            try:
                parse(item)
            except ValueError as exc:
                out.append(((key, i), str(exc)))
    loc = value.get("location")
    if loc is not None:
        try:
            if not isinstance(loc, str):
                raise tzmod.UnknownZone(f"location must be an IANA zone name, got {type(loc).__name__}")
            tzmod.zone(loc)
        except tzmod.UnknownZone as exc:
            out.append((("location",), str(exc)))
    return out


def _build(value: dict[str, Any]) -> TimeInterval:
    def field(key: str, parse: Any) -> tuple[Range, ...] | None:
        raw = value.get(key)
        return None if raw is None else tuple(parse(x) for x in raw)

    return TimeInterval(times=field("times", parse_time_range), weekdays=field("weekdays", parse_weekdays),
                        days_of_month=field("days_of_month", parse_days_of_month),
                        months=field("months", parse_months), years=field("years", parse_years),
                        location=value.get("location"))


__all__ = ["TimeInterval", "interval_problems", "parse_interval", "parse_time"]
