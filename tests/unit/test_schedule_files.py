"""Schedules files: the issue's minimal shape verbatim, the shipped schedules/, file:line:col problems all
at once, references, and the JSON Schema agreeing with the loader."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest

from opsflow.errors import RunbookError
from opsflow.schedule.loader import load_schedules, validate_schedules
from opsflow.schedule.schema import schedule_schema
from opsflow.yamlpos import load_text
from tests.helpers import ROOT

MINIMAL = """\
calendars:
  - name: weeknights
    mode: allowed                       # or: blackout
    time_intervals:                     # Alertmanager's grammar, verbatim
      - weekdays: ['monday:friday']
        times: [{start_time: '01:00', end_time: '05:00'}]
        location: Europe/Berlin
  - name: year-end-freeze
    mode: blackout
    dates: [{from: '2027-12-20', to: '2028-01-02'}]   # inclusive, in the calendar's location (UTC if none)
schedules:
  - name: nightly-backup
    runbook: nightly-config-backup      # a runbook name or path
    cron: '30 2 * * *'                  # or: rrule: 'FREQ=WEEKLY;BYDAY=SU;BYHOUR=3', or: every: 15m
    timezone: Europe/Berlin
    calendars: [weeknights, year-end-freeze]
    params: {}
"""


def project(tmp_path: Path, text: str, name: str = "ops.yaml") -> Path:
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    for rb in ("nightly-config-backup", "rotate-app-logs", "restore-drill"):
        (tmp_path / "runbooks" / f"{rb}.yaml").write_text((ROOT / "runbooks" / f"{rb}.yaml").read_text())
    (tmp_path / "schedules").mkdir(exist_ok=True)
    (tmp_path / "schedules" / name).write_text(textwrap.dedent(text))
    return tmp_path / "schedules"


def problems(tmp_path: Path, text: str) -> list[str]:
    return [f"{d.line}:{d.col}: {d.message}" for d in validate_schedules(project(tmp_path, text))]


def test_minimal_shape_is_accepted_verbatim(tmp_path: Path) -> None:
    sset = load_schedules(project(tmp_path, MINIMAL))
    entry = sset.entries["nightly-backup"]
    assert entry.runbook == "nightly-config-backup" and entry.runbook_path
    assert [c.name for c in entry.calendars] == ["weeknights", "year-end-freeze"]
    assert entry.spec.misfire.catchup == "latest" and entry.spec.concurrency == "forbid"
    assert sset.calendars["year-end-freeze"].mode == "blackout"


@pytest.mark.parametrize("variant", ["rrule: 'FREQ=WEEKLY;BYDAY=SU;BYHOUR=3'", "every: 15m"])
def test_other_triggers_of_the_minimal_shape(tmp_path: Path, variant: str) -> None:
    load_schedules(project(tmp_path, MINIMAL.replace("cron: '30 2 * * *'", variant)))


def test_shipped_schedules_are_valid() -> None:
    assert validate_schedules(ROOT / "schedules", ROOT / "runbooks") == []
    sset = load_schedules(ROOT / "schedules")
    assert set(sset.entries) >= {"nightly-backup", "weekly-log-rotation"}
    assert sset.calendars["company-holidays"].events  # the .ics beside it was read


def test_unquoted_times_and_ranges_read_as_alertmanager_does(tmp_path: Path) -> None:
    """YAML 1.1 makes 17:00 and 1:5 base-60 numbers; Alertmanager's YAML reads them as text."""
    text = MINIMAL.replace("times: [{start_time: '01:00', end_time: '05:00'}]",
                           "times: [{start_time: 17:00, end_time: 23:30}]\n        days_of_month: [1:5]")
    cal = load_schedules(project(tmp_path, text)).calendars["weeknights"]
    assert cal.intervals[0].times == ((17 * 60, 23 * 60 + 30),) and cal.intervals[0].days_of_month == ((1, 5),)


def test_every_problem_at_its_place(tmp_path: Path) -> None:
    got = problems(tmp_path, """\
        calendars:
          - name: nights
            mode: allowed
            time_intervals:
              - weekdays: ['friday:monday']
                times: [{start_time: '01:99', end_time: '05:00'}]
                location: Mars/Olympus
          - name: nights
            mode: blackout
            dates: ['2027-02-30']
        schedules:
          - name: a
            runbook: no-such-runbook
            cron: '61 2 * * *'
            calendars: [nigths]
          - name: b
            runbook: rotate-app-logs
            every: 15m
            timezone: Europe/Berln
            params: {app: x, kep: 3}
            after: [{entry: c}]
            notify: [{to: ops, on: [failed]}]
          - name: c
            runbook: rotate-app-logs
            every: 1h
            after: [{entry: b}]
            ratry: 1
        """)
    assert got == [
        "5:9: calendars.0.time_intervals.0: times.0: couldn't parse timestamp 01:99, invalid format; weekdays.0: "
        "start day cannot be before end day; location: unknown time zone 'Mars/Olympus' (an IANA name such as "
        "Europe/Berlin)",
        "10:13: calendars.1.dates.0: expected a date YYYY-MM-DD, got '2027-02-30'",
        "12:5: schedules.0: cron '61 2 * * *': [61 2 * * *] is not acceptable, out of range",
        "19:5: schedules.1.timezone: unknown time zone 'Europe/Berln' (an IANA name such as Europe/Berlin)",
        "27:5: unknown key 'ratry'; did you mean 'retry_in'?",
    ]


def test_references_are_checked(tmp_path: Path) -> None:
    got = problems(tmp_path, """\
        calendars:
          - name: nights
            mode: allowed
            time_intervals: [{times: [{start_time: '01:00', end_time: '05:00'}]}]
          - name: nights
            mode: blackout
            dates: ['2027-12-24']
          - name: holidays
            mode: blackout
            ics: missing.ics
        schedules:
          - name: a
            runbook: no-such-runbook
            cron: '30 2 * * *'
            calendars: [nigths]
          - name: b
            runbook: rotate-app-logs
            every: 15m
            params: {app: x, kep: 3}
            after: [{entry: c}]
          - name: c
            runbook: restore-drill
            every: 1h
            after: [{entry: b}, {entry: zz}]
        """)
    assert "5:11: calendar 'nights' is defined twice" in got
    assert any(g.startswith("10:10: cannot read 'missing.ics'") for g in got)
    assert any(g.startswith("13:14: runbook 'no-such-runbook' not found") for g in got)
    assert "15:17: no calendar 'nigths'; did you mean 'nights'?" in got
    assert "19:22: 'kep' is not a param of runbook 'rotate-app-logs'; did you mean 'keep'?" in got
    assert "21:5: runbook 'restore-drill' requires param 'source'; give it under params:" in got
    assert "24:33: no schedule entry 'zz' (known: a, b, c)" in got
    assert "24:21: dependency cycle: b -> c -> b" in got
    assert got == sorted(got, key=lambda g: tuple(int(x) for x in g.split(":")[:2]))


def test_shape_errors_all_at_once(tmp_path: Path) -> None:
    got = problems(tmp_path, """\
        calendars:
          - name: nights
            mode: sometimes
            time_intervals:
              - weekdays: ['friday:monday']
                days_of_month: ['0']
        schedules:
          - name: a
            runbook: rotate-app-logs
            cron: '30 2 * * *'
            every: 15m
            concurrency: never
            misfire: {grace: soon}
            ratry: 1
        """)
    joined = "\n".join(got)
    assert "3:5: calendars.0.mode: Input should be 'allowed' or 'blackout'" in joined
    assert "start day cannot be before end day" in joined
    assert "12:5: schedules.0.concurrency: Input should be 'forbid', 'queue', 'replace' or 'allow'" in joined
    assert "13:15: schedules.0.misfire.grace: expected a duration like 600, '10m' or '1h', got 'soon'" in joined
    assert "days_of_month.0: 0 is not a valid day of the month: out of range" in joined
    assert "14:5: unknown key 'ratry'" in joined


def test_bad_yaml_is_a_diagnostic(tmp_path: Path) -> None:
    got = problems(tmp_path, "schedules: [\n")
    assert len(got) == 1 and "YAML syntax error" in got[0]
    with pytest.raises(RunbookError):
        load_schedules(project(tmp_path, "- just a list\n", "b.yaml"))


# ---- the schema agrees with the loader -------------------------------------------------------------------------
ACCEPTED = [MINIMAL, (ROOT / "schedules" / "operations.yaml").read_text(),
            (ROOT / "schedules" / "calendars.yaml").read_text()]
REFUSED = [
    "schedules: [{name: a, runbook: r}]",  # no trigger
    "schedules: [{name: a, runbook: r, cron: '* * * * *', every: 15m}]",
    "schedules: [{name: a, runbook: r, cron: '* * * * *', concurrency: never}]",
    "schedules: [{name: a, runbook: r, cron: '* * * * *', ratry: 1}]",
    "calendars: [{name: x, mode: allowed}]",
    "calendars: [{name: x, mode: sometimes, dates: ['2027-01-01']}]",
    "calendars: [{name: x, mode: allowed, time_intervals: [{weekday: [monday]}]}]",
    "calendars: [{name: x, mode: allowed, time_intervals: [{times: [{start_time: '01:00'}]}]}]",
    "other: 1",
]


def test_schema_is_draft_2020_12() -> None:
    schema = schedule_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")
    json.dumps(schema)


@pytest.mark.parametrize("text", ACCEPTED)
def test_schema_accepts_what_the_loader_accepts(text: str) -> None:
    from opsflow.schedule.loader import _restore_on_keys

    tree = load_text(text, "x.yaml")
    _restore_on_keys(tree, text.splitlines())  # YAML 1.1's `on: true`; editors read YAML 1.2
    data = json.loads(json.dumps(tree, default=str))
    jsonschema.validate(data, schedule_schema(), cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("text", REFUSED)
def test_schema_refuses_what_the_loader_refuses(text: str, tmp_path: Path) -> None:
    assert problems(tmp_path, text)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(load_text(text, "x.yaml"), schedule_schema(), cls=jsonschema.Draft202012Validator)
