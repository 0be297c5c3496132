"""iCalendar (RFC 5545) in and out, through the ``icalendar`` package.

In: the events of an ``.ics`` text (e.g. a company holiday calendar) as :class:`~opsflow.schedule.calendars.Event`
— DTSTART with DTEND or DURATION (an all-day event lasts a day), RRULE and EXDATE. Out: the forecast
of a schedule as a calendar people can subscribe to. Pure: text in, text out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from opsflow.schedule.calendars import Event


class IcsError(ValueError):
    pass


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time())  # all-day: floating, the calendar's zone
    raise IcsError(f"unsupported date value {value!r}")


def parse_events(text: str) -> list[Event]:
    """The VEVENTs of an iCalendar text; IcsError when it cannot be read."""
    import icalendar

    try:
        cal = icalendar.Calendar.from_ical(text)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise IcsError(f"not an iCalendar file: {exc}") from exc
    out: list[Event] = []
    for component in cal.walk("VEVENT"):
        try:
            raw_start = component.decoded("DTSTART")
        except KeyError:
            continue
        start = _as_datetime(raw_start)
        if "DTEND" in component:
            end = _as_datetime(component.decoded("DTEND"))
        elif "DURATION" in component:
            end = start + component.decoded("DURATION")
        else:
            end = start + (timedelta(days=1) if not isinstance(raw_start, datetime) else timedelta(0))
        if end <= start:
            continue
        rule = None
        if "RRULE" in component:
            rrules = component.get("RRULE")
            first = rrules[0] if isinstance(rrules, list) else rrules
            rule = first.to_ical().decode()
        exdates: list[datetime] = []
        raw_ex = component.get("EXDATE")
        for group in raw_ex if isinstance(raw_ex, list) else ([raw_ex] if raw_ex is not None else []):
            for item in getattr(group, "dts", []):
                exdates.append(_as_datetime(item.dt))
        out.append(Event(summary=str(component.get("SUMMARY", "")), start=start, end=end, rule=rule,
                         exdates=tuple(exdates)))
    return out


def export(items: Iterable[tuple[str, datetime, datetime, str]], name: str = "opsflow schedule") -> bytes:
    """An iCalendar of (summary, start, end, description) items, instants in UTC."""
    import hashlib

    import icalendar

    cal = icalendar.Calendar()
    cal.add("prodid", "-//opsflow//schedule forecast//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", name)
    stamp = datetime.now(UTC).replace(microsecond=0)
    for summary, start, end, description in items:
        ev = icalendar.Event()
        uid = hashlib.sha256(f"{summary}|{start.isoformat()}".encode()).hexdigest()[:24]
        ev.add("uid", f"{uid}@opsflow")
        ev.add("dtstamp", stamp)
        ev.add("summary", summary)
        ev.add("dtstart", start.astimezone(UTC))
        ev.add("dtend", end.astimezone(UTC))
        if description:
            ev.add("description", description)
        cal.add_component(ev)
    return bytes(cal.to_ical())


__all__ = ["IcsError", "export", "parse_events"]
