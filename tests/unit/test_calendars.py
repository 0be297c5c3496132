"""Calendars against their specs: Alertmanager's own timeinterval test table, dates, RRULE, iCalendar."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml
from dateutil import rrule as du

from opsflow.schedule.calendars import Calendar, DateRange, Recurrence
from opsflow.schedule.ics import export, parse_events
from opsflow.schedule.intervals import TimeInterval, parse_interval, parse_time_range
from opsflow.schedule.tz import zone


def _t(text: str) -> datetime:
    """Go's time.RFC822Z ("02 Jan 06 15:04 +0000")."""
    return datetime.strptime(text, "%d %b %y %H:%M %z")


# ---- Alertmanager timeinterval_test.go: timeIntervalTestCases (TestContainsTime) -----------------------
CONTAINS = [
    ({}, ["02 Jan 06 15:04 +0000", "03 Jan 07 10:04 +0000", "04 Jan 06 09:04 +0000"], []),
    ({"times": [{"start_time": "09:00", "end_time": "17:00"}], "weekdays": ["monday:friday"]},
     ["04 May 20 15:04 +0000", "05 May 20 10:04 +0000", "09 Jun 20 09:04 +0000"],
     ["03 May 20 15:04 +0000", "04 May 20 08:59 +0000", "05 May 20 05:00 +0000"]),
    ({"days_of_month": ["4:6"], "months": ["4"], "years": ["2020"]},  # Easter 2020
     ["04 Apr 20 15:04 +0000", "05 Apr 20 00:00 +0000", "06 Apr 20 23:05 +0000"],
     ["03 May 18 15:04 +0000", "03 Apr 20 23:59 +0000", "04 Jun 20 23:59 +0000", "06 Apr 19 23:59 +0000",
      "07 Apr 20 00:00 +0000"]),
    ({"days_of_month": ["-3:-1"]},  # the last 3 days of each month
     ["31 Jan 20 15:04 +0000", "30 Jan 20 15:04 +0000", "29 Jan 20 15:04 +0000", "30 Jun 20 00:00 +0000",
      "29 Feb 20 23:05 +0000"],
     ["03 May 18 15:04 +0000", "27 Jan 20 15:04 +0000", "03 Apr 20 23:59 +0000", "04 Jun 20 23:59 +0000",
      "06 Apr 19 23:59 +0000", "07 Apr 20 00:00 +0000", "01 Mar 20 00:00 +0000"]),
    # out-of-bound days clamped to the month (built as a struct in Go, past the parser's checks)
    (TimeInterval(months=((6, 6),), days_of_month=((-31, 31),)),
     ["30 Jun 20 00:00 +0000", "01 Jun 20 00:00 +0000"], ["31 May 20 00:00 +0000", "1 Jul 20 00:00 +0000"]),
    ({"times": [{"start_time": "09:00", "end_time": "17:00"}], "weekdays": ["monday:friday"],
      "location": "Australia/Sydney"},
     ["06 Apr 21 13:00 +1000"], ["06 Apr 21 13:00 +0000"]),
    ({"times": [{"start_time": "09:00", "end_time": "17:00"}], "weekdays": ["monday:friday"], "months": ["11"],
      "location": "Australia/Sydney"},  # during daylight saving time
     ["01 Nov 21 09:00 +1100", "31 Oct 21 22:00 +0000"], ["31 Oct 21 21:00 +0000"]),
]

# ---- yamlUnmarshalTestCases (TestYamlUnmarshal) -------------------------------------------------------
UNMARSHAL_OK = [
    ("- weekdays: ['monday:friday']\n  times:\n    - start_time: '09:00'\n      end_time: '17:00'\n",
     ["08 Jul 20 09:00 +0000", "08 Jul 20 16:59 +0000"], ["08 Jul 20 05:00 +0000", "08 Jul 20 08:59 +0000"]),
    ("- weekdays: ['monday:friday', 'sunday']\n  months: ['january:march']\n  days_of_month: ['-7:-1']\n"
     "  years: ['2020:2025', '2030:2035']\n  times:\n    - start_time: '09:00'\n      end_time: '17:00'\n",
     ["27 Jan 21 09:00 +0000", "28 Jan 21 16:59 +0000", "29 Jan 21 13:00 +0000", "31 Mar 25 13:00 +0000",
      "31 Mar 25 13:00 +0000", "31 Jan 35 13:00 +0000"],
     ["30 Jan 21 13:00 +0000", "01 Apr 21 13:00 +0000", "30 Jan 26 13:00 +0000", "31 Jan 35 17:01 +0000"]),
    ("- weekdays: ['monday:friday']\n  times:\n    - start_time: '09:00'\n      end_time: '17:00'",
     ["01 Apr 21 13:00 +0000"], []),
    ("- days_of_month: ['1:-1']\n", [], []),
    ("- months: ['January:december']\n", [], []),
    ("- years: ['2020:2022']\n  location: 'Australia/Sydney'\n", [], []),
]
UNMARSHAL_ERRORS = [
    ("- times:\n    - start_time: '01:99'\n      end_time: '23:59'", "couldn't parse timestamp 01:99, invalid format"),
    ("- times:\n    - start_time: '00:00'\n      end_time: '99:99'", "couldn't parse timestamp 99:99, invalid format"),
    ("- weekdays: ['friday:monday']", "start day cannot be before end day"),
    ("- weekdays: ['blurgsday:flurgsday']\n", "blurgsday is not a valid weekday"),
    ("- weekdays: ['1:3']\n", "1 is not a valid weekday"),
    ("- weekdays: ['-2:-1']\n", "-2 is not a valid weekday"),
    ("- days_of_month: ['0']\n", "0 is not a valid day of the month: out of range"),
    ("- days_of_month: ['-50:-20']\n", "-50 is not a valid day of the month: out of range"),
    ("- days_of_month: ['1:50']\n", "50 is not a valid day of the month: out of range"),
    ("- days_of_month: ['-15:5']\n", "end day must be negative if start day is negative"),
    ("- days_of_month: ['10:-25']\n", "end day -25 is always before start day 10"),
    ("- months: ['martius:june']\n", "martius is not a valid month"),
    ("- months: ['march:junius']\n", "junius is not a valid month"),
    ("- months: ['december:january']\n", "end month january is before start month december"),
    ("- years: ['2022:2020']\n", "end year 2020 is before start year 2022"),
]

# ---- timeStringTestCases (TestParseTimeString) ---------------------------------------------------------
TIME_STRINGS = [
    ({"start_time": "00:00", "end_time": "24:00"}, (0, 1440)),
    ({"start_time": "01:35", "end_time": "17:39"}, (95, 1059)),
    ({"start_time": "09:35", "end_time": "09:39"}, (575, 579)),
    ({"start_time": "17:31", "end_time": "17:31"}, None),
    ({"start_time": "12:30", "end_time": "24:01"}, None),
    ({"start_time": "09:30", "end_time": "07:41"}, None),
    ({"start_time": "24:00", "end_time": "17:41"}, None),
    ({"start_time": "14:03"}, None),
]

# ---- completeTestCases (TestTimeIntervalComplete) -------------------------------------------------------
COMPLETE = [
    ("weekdays: ['monday:wednesday', 'saturday', 'sunday']\ntimes:\n  - start_time: '13:00'\n    end_time: '15:00'\n"
     "days_of_month: ['1', '10', '20:-1']\nyears: ['2020:2023']\nmonths: ['january:march']\n",
     ["10 Jan 21 13:00 +0000", "30 Jan 21 14:24 +0000"],
     ["09 Jan 21 13:00 +0000", "20 Jan 21 12:59 +0000", "02 Feb 21 13:00 +0000"]),
    ("days_of_month: ['30:31']\nyears: ['2020:2023']\nmonths: ['february']\n", [], ["28 Feb 21 13:00 +0000"]),
]

# ---- TestIntervener_Mutes: evenings and weekends in Sydney ------------------------------------------------
SYDNEY = zone("Australia/Sydney")
EVENINGS = parse_interval({"times": [{"start_time": "00:00", "end_time": "09:00"},
                                     {"start_time": "17:00", "end_time": "24:00"}], "location": "Australia/Sydney"})
WEEKENDS = parse_interval({"weekdays": ["saturday", "sunday"], "location": "Australia/Sydney"})
MUTES = [
    (datetime(2024, 1, 1, 0, 0, tzinfo=SYDNEY), ["evenings"]),
    (datetime(2024, 1, 1, 9, 0, tzinfo=SYDNEY), []),
    (datetime(2024, 1, 6, 10, 0, tzinfo=SYDNEY), ["weekends"]),
    (datetime(2024, 1, 6, 17, 0, tzinfo=SYDNEY), ["evenings", "weekends"]),
    (datetime(2024, 1, 1, 10, 0, tzinfo=UTC), ["evenings"]),
    (datetime(2024, 1, 6, 10, 0, tzinfo=UTC), ["evenings", "weekends"]),
]


def alertmanager_cases() -> list[tuple[str, bool]]:
    """Every Alertmanager test case as (id, passed): the figure of the report."""
    out: list[tuple[str, bool]] = []
    for n, (spec, valid, invalid) in enumerate(CONTAINS):
        ti = spec if isinstance(spec, TimeInterval) else parse_interval(spec)
        out += [(f"contains{n}+{s}", ti.contains(_t(s))) for s in valid]
        out += [(f"contains{n}-{s}", not ti.contains(_t(s))) for s in invalid]
    for n, (text, inside, outside) in enumerate(UNMARSHAL_OK):
        tis = [parse_interval(x) for x in yaml.safe_load(text)]
        out += [(f"yaml{n}+{s}", any(ti.contains(_t(s)) for ti in tis)) for s in inside]
        out += [(f"yaml{n}-{s}", not any(ti.contains(_t(s)) for ti in tis)) for s in outside]
    for text, message in UNMARSHAL_ERRORS:
        try:
            parse_interval(yaml.safe_load(text)[0])
            out.append((f"error {message}", False))
        except ValueError as exc:
            out.append((f"error {message}", str(exc) == message))
    for raw, expected in TIME_STRINGS:
        try:
            out.append((f"time {raw}", parse_time_range(raw) == expected))
        except ValueError:
            out.append((f"time {raw}", expected is None))
    for n, (text, inside, outside) in enumerate(COMPLETE):
        ti = parse_interval(yaml.safe_load(text))
        out += [(f"complete{n}+{s}", ti.contains(_t(s))) for s in inside]
        out += [(f"complete{n}-{s}", not ti.contains(_t(s))) for s in outside]
    for now, muted in MUTES:
        got = [name for name, ti in (("evenings", EVENINGS), ("weekends", WEEKENDS)) if ti.contains(now)]
        out.append((f"mutes {now.isoformat()}", got == muted))
    return out


@pytest.mark.parametrize("case", alertmanager_cases(), ids=lambda c: c[0])
def test_alertmanager_case(case: tuple[str, bool]) -> None:
    assert case[1], case[0]


def test_alertmanager_table_is_complete() -> None:
    cases = alertmanager_cases()
    assert len(cases) == 88 and all(ok for _, ok in cases)


@pytest.mark.parametrize("spec", [s for s, _, _ in CONTAINS if isinstance(s, dict)]
                         + [yaml.safe_load(t) for t, _, _ in COMPLETE] + [{"days_of_month": ["-3:-1", "1"]}])
def test_windows_agree_with_contains(spec: dict) -> None:
    """The windows of an interval hold exactly the instants contains() says, also across DST."""
    rng = random.Random(7)
    for location in (None, "Europe/Berlin", "Australia/Lord_Howe", "America/New_York"):
        ti = parse_interval({**spec, **({"location": location} if location else {})})
        start = datetime(2019, 12, 25, tzinfo=UTC)
        end = datetime(2022, 1, 10, tzinfo=UTC)
        wins = ti.windows(start, end)
        for _ in range(3000):
            t = start + timedelta(minutes=rng.randrange(int((end - start).total_seconds() // 60)))
            inside = any(a <= t < b for a, b in wins)
            assert inside == ti.contains(t), (spec, location, t)


def test_window_of_a_dst_night() -> None:
    """01:00–05:00 Berlin on the night clocks go forward is 3 real hours; going back, 5."""
    ti = parse_interval({"times": [{"start_time": "01:00", "end_time": "05:00"}], "location": "Europe/Berlin"})
    spring = ti.windows(datetime(2027, 3, 28, tzinfo=UTC) - timedelta(hours=2), datetime(2027, 3, 28, 12, tzinfo=UTC))
    autumn = ti.windows(datetime(2027, 10, 31, tzinfo=UTC) - timedelta(hours=2), datetime(2027, 10, 31, 12, tzinfo=UTC))
    assert [b - a for a, b in spring] == [timedelta(hours=3)]
    assert [b - a for a, b in autumn] == [timedelta(hours=5)]


def test_negative_days_in_a_leap_february() -> None:
    ti = parse_interval({"days_of_month": ["-1"]})
    assert ti.contains(datetime(2028, 2, 29, 12, tzinfo=UTC))
    assert not ti.contains(datetime(2028, 2, 28, 12, tzinfo=UTC))
    assert ti.contains(datetime(2027, 2, 28, 12, tzinfo=UTC))


def test_numbers_and_names_of_months_are_the_same() -> None:
    assert parse_interval({"months": ["1:3"]}) == parse_interval({"months": ["January:march"]})
    assert TimeInterval(months=((1, 3),)) == parse_interval({"months": ["1:3"]})


def test_a_month_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="13 is not a valid month"):
        parse_interval({"months": ["13"]})


# ---- calendars -----------------------------------------------------------------------------------------------
def test_date_range_is_inclusive_in_the_calendar_location() -> None:
    cal = Calendar("freeze", "blackout", location="Europe/Berlin",
                   dates=(DateRange(date(2027, 12, 20), date(2028, 1, 2)),))
    berlin = zone("Europe/Berlin")
    assert cal.open_at(datetime(2027, 12, 19, 23, 59, tzinfo=berlin))[0] is True
    assert cal.open_at(datetime(2027, 12, 20, 0, 0, tzinfo=berlin)) == (
        False, "blackout 'freeze' in force (dates[0])")
    assert cal.open_at(datetime(2028, 1, 2, 23, 59, tzinfo=berlin))[0] is False
    assert cal.open_at(datetime(2028, 1, 3, 0, 0, tzinfo=berlin))[0] is True
    assert cal.next_change(datetime(2027, 12, 1, tzinfo=UTC)) == datetime(2027, 12, 19, 23, tzinfo=UTC)
    assert cal.next_change(datetime(2027, 12, 25, tzinfo=UTC)) == datetime(2028, 1, 2, 23, tzinfo=UTC)


def test_allowed_calendar_open_and_closed() -> None:
    cal = Calendar("weeknights", "allowed", intervals=(parse_interval(
        {"weekdays": ["monday:friday"], "times": [{"start_time": "01:00", "end_time": "05:00"}],
         "location": "Europe/Berlin"}),))
    assert cal.open_at(datetime(2027, 6, 2, 1, 30, tzinfo=zone("Europe/Berlin")))[0] is True
    assert cal.open_at(datetime(2027, 6, 5, 1, 30, tzinfo=zone("Europe/Berlin")))[0] is False  # Saturday
    assert cal.open_at(datetime(2027, 6, 2, 5, 0, tzinfo=zone("Europe/Berlin")))[0] is False  # end exclusive


def test_recurrence_agrees_with_dateutil() -> None:
    """Occurrences are dateutil's, EXDATEs removed, each lasting its duration in the calendar's zone."""
    rule = "FREQ=MONTHLY;BYDAY=1SA;BYHOUR=22"
    start = datetime(2027, 1, 1, 22, 0)
    ex = datetime(2027, 5, 1, 22, 0)
    rec = Recurrence(rule, start, timedelta(hours=4), exdates=(ex,))
    cal = Calendar("patch-saturday", "allowed", location="America/New_York", recurrences=(rec,))
    ny = zone("America/New_York")
    expected = [w for w in du.rrulestr(rule, dtstart=start).between(datetime(2027, 1, 1), datetime(2028, 1, 1),
                                                                      inc=True) if w != ex]
    wins = cal.windows(datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, 12, tzinfo=UTC))
    assert [a.astimezone(ny).replace(tzinfo=None) for a, _ in wins] == expected
    assert all(b - a == timedelta(hours=4) for a, b in wins)
    assert len(expected) == 11


ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//holidays//EN
BEGIN:VEVENT
UID:1@test
DTSTAMP:20270101T000000Z
SUMMARY:New Year
DTSTART;VALUE=DATE:20280101
DTEND;VALUE=DATE:20280102
END:VEVENT
BEGIN:VEVENT
UID:2@test
DTSTAMP:20270101T000000Z
SUMMARY:Weekly change freeze
DTSTART;TZID=Europe/Berlin:20270104T090000
DURATION:PT2H
RRULE:FREQ=WEEKLY;COUNT=4
EXDATE;TZID=Europe/Berlin:20270111T090000
END:VEVENT
END:VCALENDAR
"""


def test_ics_events_agree_with_icalendar() -> None:
    import icalendar

    events = parse_events(ICS)
    assert [e.summary for e in events] == [str(c["SUMMARY"]) for c in icalendar.Calendar.from_ical(ICS).walk("VEVENT")]
    cal = Calendar("holidays", "blackout", location="Europe/Berlin", events=tuple(events))
    berlin = zone("Europe/Berlin")
    assert cal.open_at(datetime(2028, 1, 1, 12, tzinfo=berlin)) == (False, "blackout 'holidays' in force (ics[0] (New Year))")
    assert cal.open_at(datetime(2028, 1, 2, 0, 0, tzinfo=berlin))[0] is True
    wins = cal.windows(datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC))
    assert [a.astimezone(berlin).day for a, _ in wins] == [4, 18, 25]  # COUNT=4 minus the EXDATE
    assert all(b - a == timedelta(hours=2) for a, b in wins)


def test_ics_export_reads_back() -> None:
    import icalendar

    start = datetime(2027, 3, 1, 2, 30, tzinfo=UTC)
    data = export([("run nightly-backup", start, start + timedelta(minutes=15), "window weeknights")])
    events = list(icalendar.Calendar.from_ical(data).walk("VEVENT"))
    assert len(events) == 1 and events[0].decoded("DTSTART") == start
    assert str(events[0]["SUMMARY"]) == "run nightly-backup"
