"""Triggers and slots: cron as croniter/cronie fire it (DST in four zones, property tests over zoneinfo
transitions), RRULE as dateutil, intervals in real time, and the run/skip/defer decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from dateutil import rrule as du
from hypothesis import given, settings
from hypothesis import strategies as st

from opsflow.schedule.calendars import Calendar, DateRange
from opsflow.schedule.intervals import parse_interval
from opsflow.schedule.models import EntrySpec
from opsflow.schedule.policies import dependency_decision, misfired_runs
from opsflow.schedule.slots import Entry, next_slots
from opsflow.schedule.triggers import CronTrigger, EveryTrigger, RRuleTrigger


def fires(trigger: Any, start: datetime, n: int) -> list[datetime]:
    it = trigger.fires(start)
    return [next(it) for _ in range(n)]


def local_iso(ts: list[datetime], zone: str) -> list[str]:
    return [t.astimezone(ZoneInfo(zone)).isoformat() for t in ts]


# ---- DST: fixed-time jobs once (at the change in a gap, the first occurrence in an overlap) ----------
DST_CASES = [
    # zone, cron, from (UTC day), the local fire times expected
    ("Europe/Berlin", "30 2 * * *", "2027-03-27",
     ["2027-03-27T02:30:00+01:00", "2027-03-28T03:00:00+02:00", "2027-03-29T02:30:00+02:00"]),
    ("Europe/Berlin", "30 2 * * *", "2027-10-30",
     ["2027-10-30T02:30:00+02:00", "2027-10-31T02:30:00+02:00", "2027-11-01T02:30:00+01:00"]),
    ("America/New_York", "30 2 * * *", "2027-03-13",
     ["2027-03-13T02:30:00-05:00", "2027-03-14T03:00:00-04:00", "2027-03-15T02:30:00-04:00"]),
    ("America/New_York", "30 1 * * *", "2027-11-06",
     ["2027-11-06T01:30:00-04:00", "2027-11-07T01:30:00-04:00", "2027-11-08T01:30:00-05:00"]),
    ("Australia/Lord_Howe", "15 2 * * *", "2027-10-02",  # 30-minute DST: 02:00 -> 02:30
     ["2027-10-02T02:15:00+10:30", "2027-10-03T02:30:00+11:00", "2027-10-04T02:15:00+11:00"]),
    ("Australia/Lord_Howe", "45 1 * * *", "2027-04-03",  # 02:00 -> 01:30 again
     ["2027-04-03T01:45:00+11:00", "2027-04-04T01:45:00+11:00", "2027-04-05T01:45:00+10:30"]),
    ("Pacific/Chatham", "0 3 * * *", "2027-09-25",  # 02:45 -> 03:45 (+12:45 -> +13:45)
     ["2027-09-25T03:00:00+12:45", "2027-09-26T03:45:00+13:45", "2027-09-27T03:00:00+13:45"]),
    ("Pacific/Chatham", "0 3 * * *", "2027-04-02",  # 03:45 -> 02:45
     ["2027-04-03T03:00:00+13:45", "2027-04-04T03:00:00+13:45", "2027-04-05T03:00:00+12:45"]),
    ("Europe/Berlin", "0,30 2 * * *", "2027-03-28",  # two jobs in the gap: one run, at the change
     ["2027-03-28T03:00:00+02:00", "2027-03-29T02:00:00+02:00", "2027-03-29T02:30:00+02:00"]),
]


@pytest.mark.parametrize(("zone", "cron", "day", "expected"), DST_CASES, ids=[f"{c[0]}-{c[2]}" for c in DST_CASES])
def test_fixed_time_cron_across_dst(zone: str, cron: str, day: str, expected: list[str]) -> None:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(hours=14)
    got = [t for t in fires(CronTrigger(cron, zone), start, 6)]
    got_local = local_iso(got, zone)
    first = got_local.index(expected[0])
    assert got_local[first:first + 3] == expected


def test_wildcard_cron_follows_the_wall_clock() -> None:
    """*/30: nothing in the skipped hour, again in the repeated one — always 30 real minutes apart."""
    spring = fires(CronTrigger("*/30 * * * *", "Europe/Berlin"), datetime(2027, 3, 28, 0, 0, tzinfo=UTC), 4)
    assert local_iso(spring, "Europe/Berlin") == ["2027-03-28T01:00:00+01:00", "2027-03-28T01:30:00+01:00",
                                                  "2027-03-28T03:00:00+02:00", "2027-03-28T03:30:00+02:00"]
    autumn = fires(CronTrigger("*/30 * * * *", "Europe/Berlin"), datetime(2027, 10, 31, 0, 0, tzinfo=UTC), 4)
    assert local_iso(autumn, "Europe/Berlin") == ["2027-10-31T02:00:00+02:00", "2027-10-31T02:30:00+02:00",
                                                  "2027-10-31T02:00:00+01:00", "2027-10-31T02:30:00+01:00"]


@pytest.mark.parametrize("expr", ["30 2 * * *", "*/7 * * * *", "0 9-17/2 * * 1-5", "15 4 1,15 * *", "0 0 L * *",
                                  "0 12 * * 5#2", "@weekly", "5 */3 * * *"])
@pytest.mark.parametrize("zone", ["UTC", "Asia/Tokyo", "Europe/Berlin"])
def test_cron_agrees_with_croniter_away_from_dst(expr: str, zone: str) -> None:
    """Where no clock change intervenes, the fires are croniter's own (its tz-aware iteration)."""
    start = datetime(2027, 5, 3, 10, 7, tzinfo=ZoneInfo(zone))
    it = croniter(expr, start)
    theirs = [it.get_next(datetime).astimezone(UTC) for _ in range(25)]
    ours = fires(CronTrigger(expr, zone), start.astimezone(UTC) + timedelta(seconds=1), 25)  # croniter: after
    assert ours == [t for t in theirs]


@pytest.mark.parametrize("rule", ["FREQ=WEEKLY;BYDAY=SU;BYHOUR=3", "FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=23;BYMINUTE=15",
                                  "FREQ=HOURLY;INTERVAL=5", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=1"])
def test_rrule_agrees_with_dateutil(rule: str) -> None:
    """In a zone without DST, an RRULE fires at dateutil's occurrences (DTSTART 2024-01-01 local)."""
    z = ZoneInfo("Asia/Tokyo")
    theirs = [w.replace(tzinfo=z).astimezone(UTC) for w in du.rrulestr(rule, dtstart=datetime(2024, 1, 1))
              .between(datetime(2027, 1, 1), datetime(2036, 1, 1), inc=True)][:6]
    ours = fires(RRuleTrigger(rule, "Asia/Tokyo"), datetime(2027, 1, 1, tzinfo=z).astimezone(UTC), len(theirs))
    assert len(theirs) >= 2 and ours == theirs


def test_rrule_in_the_gap_fires_at_the_change() -> None:
    got = fires(RRuleTrigger("FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=30", "Europe/Berlin"),
                datetime(2027, 3, 22, tzinfo=UTC), 2)
    assert local_iso(got, "Europe/Berlin") == ["2027-03-28T03:00:00+02:00", "2027-04-04T02:30:00+02:00"]


def test_every_counts_real_time_across_dst() -> None:
    got = fires(EveryTrigger(15 * 60), datetime(2027, 10, 31, 0, 7, tzinfo=UTC), 8)
    assert got[0] == datetime(2027, 10, 31, 0, 15, tzinfo=UTC)
    assert {b - a for a, b in zip(got, got[1:], strict=False)} == {timedelta(minutes=15)}


# ---- properties over zoneinfo transitions -----------------------------------------------------------------
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham", "America/Santiago",
         "America/Havana", "Asia/Beirut", "Europe/Dublin", "America/St_Johns", "Australia/Adelaide",
         "Africa/Casablanca", "Asia/Gaza", "Pacific/Norfolk", "Europe/Lisbon"]


def _transitions(zone: str, year: int) -> list[tuple[datetime, timedelta]]:
    """Offset changes of a year, found hourly then to the minute (independent of the code tested)."""
    z = ZoneInfo(zone)
    out: list[tuple[datetime, timedelta]] = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    prev = t.astimezone(z).utcoffset()
    while t.year == year:
        t += timedelta(hours=1)
        off = t.astimezone(z).utcoffset()
        if off != prev:
            assert off is not None and prev is not None
            exact = next(u for u in (t - timedelta(minutes=59 - i) for i in range(60)) if u.astimezone(z).utcoffset() == off)
            out.append((exact, off - prev))
            prev = off
    return out


_CACHE: dict[tuple[str, int], list[tuple[datetime, timedelta]]] = {}


def transition(data: st.DataObject) -> tuple[str, datetime]:
    zone = data.draw(st.sampled_from(ZONES))
    year = data.draw(st.integers(2005, 2030))
    key = (zone, year)
    if key not in _CACHE:
        _CACHE[key] = [x for x in _transitions(zone, year) if abs(x[1]) < timedelta(hours=3)]
    found = _CACHE[key]
    if not found:
        return zone, datetime(year, 6, 1, tzinfo=UTC)
    return zone, data.draw(st.sampled_from(found))[0]


@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data(), hour=st.integers(0, 23), minute=st.sampled_from([0, 1, 14, 15, 29, 30, 31, 44, 45, 59]))
def test_daily_fixed_job_fires_once_per_local_day(data: st.DataObject, hour: int, minute: int) -> None:
    zone, change = transition(data)
    z = ZoneInfo(zone)
    start = change - timedelta(days=3)
    got = [t for t in CronTrigger(f"{minute} {hour} * * *", zone).generate(start, change + timedelta(days=3))]
    days = [t.astimezone(z).date() for t in got]
    assert len(days) == len(set(days)), (zone, change, got)  # never twice on a local day
    first, last = (start + timedelta(days=1)).astimezone(z).date(), (change + timedelta(days=2)).astimezone(z).date()
    assert {d for d in days if first <= d <= last} == {first + timedelta(days=i) for i in range((last - first).days + 1)}
    for t in got:
        wall = t.astimezone(z)
        if (wall.hour, wall.minute) != (hour, minute):  # only where that time did not exist, right after it
            before = (t - timedelta(seconds=1)).astimezone(z)
            assert (before.hour, before.minute) < (hour, minute) < (wall.hour, wall.minute) or \
                before.date() != wall.date(), (zone, t)
        elif wall.fold == 0:
            continue
        else:  # a fold=1 occurrence is only fired when the first occurrence did not exist that day
            earlier = datetime(wall.year, wall.month, wall.day, hour, minute, tzinfo=z, fold=0)
            assert earlier.astimezone(UTC) == t


@settings(max_examples=100, deadline=None, database=None)
@given(data=st.data(), seconds=st.integers(60, 6 * 3600))
def test_interval_job_keeps_real_time(data: st.DataObject, seconds: int) -> None:
    _, change = transition(data)
    got = EveryTrigger(seconds).generate(change - timedelta(hours=12), change + timedelta(hours=12))
    assert all(b - a == timedelta(seconds=seconds) for a, b in zip(got, got[1:], strict=False))
    assert got and got[0] - (change - timedelta(hours=12)) < timedelta(seconds=seconds)


@settings(max_examples=80, deadline=None, database=None)
@given(data=st.data())
def test_wildcard_quarter_hours_stay_a_quarter_apart(data: st.DataObject) -> None:
    zone, change = transition(data)
    got = CronTrigger("*/15 * * * *", zone).generate(change - timedelta(hours=4), change + timedelta(hours=4))
    assert all(b - a == timedelta(minutes=15) for a, b in zip(got, got[1:], strict=False)), (zone, change)


# ---- slots --------------------------------------------------------------------------------------------------
BERLIN = ZoneInfo("Europe/Berlin")
WEEKNIGHTS = Calendar("weeknights", "allowed", intervals=(parse_interval(
    {"weekdays": ["monday:friday"], "times": [{"start_time": "01:00", "end_time": "05:00"}], "location": "Europe/Berlin"}),))
FREEZE = Calendar("year-end-freeze", "blackout", dates=(DateRange(datetime(2027, 12, 20).date(), datetime(2028, 1, 2).date()),))


def entry(calendars: tuple[Calendar, ...] = (WEEKNIGHTS, FREEZE), **spec: Any) -> Entry:
    base = {"name": "nightly-backup", "runbook": "nightly-config-backup", "cron": "30 2 * * *",
            "timezone": "Europe/Berlin", "calendars": [c.name for c in calendars], **spec}
    s = EntrySpec.model_validate(base)
    return Entry(s.name, s, CronTrigger(s.cron or "", s.timezone), calendars=calendars)


def test_window_and_blackout_skip() -> None:
    got = next_slots(entry(), start=datetime(2027, 12, 16, tzinfo=UTC), count=6)
    assert [(s.at.astimezone(BERLIN).day, s.action) for s in got] == [
        (16, "run"), (17, "run"), (18, "skip"), (19, "skip"), (20, "skip"), (21, "skip")]
    assert "outside window weeknights" in got[2].reason and "blackout year-end-freeze" in got[4].reason
    assert got[0].window_end == datetime(2027, 12, 16, 5, tzinfo=BERLIN)
    assert got[0].as_dict(BERLIN) == {"at": "2027-12-16T02:30:00+01:00", "action": "run",
                                      "reason": "window open until 2027-12-16T05:00:00+01:00",
                                      "window_end": "2027-12-16T05:00:00+01:00"}


def test_next_window_defers_past_the_blackout() -> None:
    got = next_slots(entry(on_blackout="next_window"), start=datetime(2027, 12, 18, tzinfo=UTC), count=3)
    assert [s.action for s in got] == ["defer", "defer", "defer"]
    assert {s.to for s in got} == {datetime(2028, 1, 3, 1, 0, tzinfo=BERLIN)}
    assert got[0].as_dict()["to"] == "2028-01-03T00:00:00+00:00"


def test_cutoff_and_p95_reschedule() -> None:
    e = entry(cutoff="3h", on_blackout="next_window")  # 02:30 > 05:00 - 3h
    got = next_slots(e, start=datetime(2027, 6, 2, tzinfo=UTC), count=1)[0]
    assert got.action == "defer" and got.to == datetime(2027, 6, 3, 1, 0, tzinfo=BERLIN)
    assert "cutoff 3h00m" in got.reason
    fits = next_slots(entry(), start=datetime(2027, 6, 2, tzinfo=UTC), count=1, p95=2 * 3600)[0]
    assert fits.action == "run"
    late = next_slots(entry(), start=datetime(2027, 6, 2, tzinfo=UTC), count=1, p95=timedelta(hours=3))[0]
    assert late.action == "defer" and late.to == datetime(2027, 6, 3, 1, 0, tzinfo=BERLIN)
    assert "p95 duration 3h00m does not fit" in late.reason
    never = next_slots(entry(), start=datetime(2027, 6, 2, tzinfo=UTC), count=1, p95=timedelta(hours=5))[0]
    assert never.action == "skip" and "no later window" in never.reason


def test_no_calendars_always_runs_and_from_is_inclusive() -> None:
    got = next_slots(entry(calendars=()), start=datetime(2027, 6, 2, 2, 30, tzinfo=BERLIN), count=2)
    assert [s.action for s in got] == ["run", "run"] and got[0].at == datetime(2027, 6, 2, 2, 30, tzinfo=BERLIN)
    later = next_slots(entry(calendars=()), start=datetime(2027, 6, 2, 2, 30, tzinfo=BERLIN), count=1, inclusive=False)
    assert later[0].at == datetime(2027, 6, 3, 2, 30, tzinfo=BERLIN)


def test_misfire_catchup() -> None:
    now = datetime(2027, 6, 2, 3, 0, tzinfo=UTC)
    missed = [now - timedelta(minutes=m) for m in (120, 45, 20, 5)]
    spec = entry().spec
    assert misfired_runs(spec, missed, now) == [now - timedelta(minutes=5)]  # default: latest within 30m
    all_ = EntrySpec.model_validate({**spec.model_dump(by_alias=True), "misfire": {"grace": "1h", "catchup": "all"}})
    assert misfired_runs(all_, missed, now) == [now - timedelta(minutes=m) for m in (45, 20, 5)]
    none = EntrySpec.model_validate({**spec.model_dump(by_alias=True), "misfire": {"catchup": "none"}})
    assert misfired_runs(none, missed, now) == []
    assert misfired_runs(spec, [now - timedelta(hours=3)], now) == []  # never a stale run hours late


def test_after_dependency() -> None:
    spec = entry(after=[{"entry": "backup", "on_failure": "skip"}]).spec
    at = datetime(2027, 6, 2, 4, 0, tzinfo=BERLIN)
    ok = {"backup": [(datetime(2027, 6, 2, 2, 50, tzinfo=BERLIN), "succeeded")]}
    assert dependency_decision(spec, at, ok)[0] == "run"
    failed = {"backup": [(datetime(2027, 6, 2, 2, 50, tzinfo=BERLIN), "failed")]}
    assert dependency_decision(spec, at, failed) == ("skip", "backup failed (on_failure: skip)")
    yesterday = {"backup": [(datetime(2027, 6, 1, 2, 50, tzinfo=BERLIN), "succeeded")]}
    decision, reason = dependency_decision(spec, at, yesterday)
    assert decision == "wait" and "has not run since 2027-06-02T00:00:00+02:00" in reason
