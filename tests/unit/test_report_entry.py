"""Report entries of a schedules file (``report:`` instead of ``runbook:``): the model's rules at their place in
the file, the JSON Schema agreeing, how ``opsflow schedule`` shows them, and the pure pieces of sending one."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from click.testing import CliRunner, Result

from opsflow.cli import main
from opsflow.schedule.loader import _restore_on_keys, load_schedules, span_text, validate_schedules
from opsflow.schedule.schema import schedule_schema
from opsflow.service.reports import period, summary
from opsflow.service.runs import Fire
from opsflow.yamlpos import load_text

CALENDARS = """\
calendars:
  - name: freeze
    mode: blackout
    scope: all
    dates: ['2030-01-14']
  - name: office
    mode: allowed
    time_intervals: [{weekdays: ['monday:friday'], times: [{start_time: '08:00', end_time: '18:00'}]}]
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "quick.yaml").write_text("name: quick\ntargets: all\nparams:\n  n: {default: 1}\n"
                                                       "steps:\n  - name: only\n    local: ['true']\n")
    (tmp_path / "schedules").mkdir(exist_ok=True)
    (tmp_path / "schedules" / "s.yaml").write_text(CALENDARS + textwrap.dedent(text))
    return tmp_path / "schedules"


def problems(tmp_path: Path, text: str) -> list[str]:
    return [f"{d.line}:{d.col}: {d.message}" for d in validate_schedules(write(tmp_path, text), tmp_path / "runbooks")]


# lines 1-8 are CALENDARS: schedules: is line 9, the first entry line 10
def test_runbook_and_report_both_or_neither_is_an_error_at_the_entry(tmp_path: Path) -> None:
    got = problems(tmp_path, """\
        schedules:
          - name: both
            runbook: quick
            report: {since: 7d}
            cron: '0 7 * * 1'
            notify: [{to: 'mailto://a@example.org', on: [succeeded]}]
          - name: neither
            cron: '0 7 * * 1'
        """)
    assert got == ["10:5: schedules.0: give exactly one of runbook, report (got both)",
                   "15:5: schedules.1: give exactly one of runbook, report"]


def test_runbook_only_keys_are_refused_and_the_report_is_checked(tmp_path: Path) -> None:
    got = problems(tmp_path, """\
        schedules:
          - name: with-params
            report: {since: 7d}
            params: {n: 2}
            limit: all
            cron: '0 7 * * 1'
            notify: [{to: 'mailto://a@example.org', on: [succeeded]}]
          - name: bad-report
            report: {since: 0, format: pdf, titel: x}
            every: 1h
        """)
    assert "10:5: schedules.0: a report entry takes no params, limit (runbook entries only)" in got
    assert any(g.startswith("17:24: schedules.1.report.format: Input should be 'html'") for g in got)
    assert "17:37: unknown key 'titel'; did you mean 'title'?" in got
    got = problems(tmp_path, """\
        schedules:
          - name: zero
            report: {since: 0}
            every: 1h
        """)
    assert got == ["11:5: schedules.0.report: since must be more than 0"]


def test_a_report_needs_a_target_that_hears_of_succeeded_and_known_hours(tmp_path: Path) -> None:
    got = problems(tmp_path, """\
        schedules:
          - name: nowhere
            report: {hours: ofice}
            every: 1h
            notify: [{to: 'mailto://a@example.org', on: [failed]}]
          - name: silent
            report: {}
            every: 1h
        """)
    assert got == ["11:21: report hours: no calendar 'ofice'; did you mean 'office'?",
                   "13:5: a report entry sends its report to the notify targets that hear of succeeded: "
                   "add notify: [{to: …, on: [succeeded]}]",
                   "15:5: a report entry sends its report to the notify targets that hear of succeeded: "
                   "add notify: [{to: …, on: [succeeded]}]"]


REPORTS = """\
schedules:
  - name: weekly
    report: {since: 7d, service: null, hours: office, format: html, title: "Weekly operations report"}
    cron: '0 7 * * 1'
    timezone: Europe/Paris
    notify: [{to: ops-managers, on: [succeeded]}]
  - name: daily
    report: {since: 36h, format: csv}
    every: 1d
    calendars: [freeze]
    notify: [{to: 'mailto://a@example.org', on: [any]}]
  - name: run
    runbook: quick
    every: 1d
"""


def test_a_report_entry_loads_with_its_label_and_only_the_calendars_it_lists(tmp_path: Path) -> None:
    sset = load_schedules(write(tmp_path, REPORTS), tmp_path / "runbooks")
    weekly, daily, run = sset.entries["weekly"], sset.entries["daily"], sset.entries["run"]
    assert weekly.runbook == "report (html, 7d, hours office)" and weekly.runbook_path is None
    assert weekly.what == "report (html, 7d, hours office)" and run.what == "runbook quick"
    assert daily.runbook == "report (csv, 36h)" and daily.spec.report is not None
    assert daily.spec.report.since == 36 * 3600 and daily.spec.report.title == ""
    assert weekly.spec.runbook is None and weekly.spec.params == {} and weekly.spec.limit is None
    # a calendar's scope governs runs of runbooks: the report follows only what it lists
    assert [c.name for c in weekly.calendars] == []
    assert [c.name for c in daily.calendars] == ["freeze"]
    assert [c.name for c in run.calendars] == ["freeze"]
    assert (span_text(7 * 86400), span_text(90 * 60), span_text(45)) == ("7d", "90m", "45s")


def test_the_schema_agrees_with_the_loader_on_report_entries(tmp_path: Path) -> None:
    schema = schedule_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    ok = load_text(CALENDARS + REPORTS, "x.yaml")
    _restore_on_keys(ok, (CALENDARS + REPORTS).splitlines())  # YAML 1.1's `on: true`; editors read YAML 1.2
    jsonschema.validate(json.loads(json.dumps(ok)), schema, cls=jsonschema.Draft202012Validator)
    refused = ["schedules: [{name: a, runbook: quick, report: {}, every: 1h}]",
               "schedules: [{name: a, every: 1h}]",
               "schedules: [{name: a, report: {}, params: {}, every: 1h}]",
               "schedules: [{name: a, report: {}, on_window_close: continue, every: 1h}]",
               "schedules: [{name: a, report: {format: pdf}, every: 1h}]",
               "schedules: [{name: a, report: {titel: x}, every: 1h}]"]
    for text in refused:
        assert problems(tmp_path, text.replace("schedules: [", "schedules:\n  - ").removesuffix("]")), text
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(load_text(text, "x.yaml"), schema, cls=jsonschema.Draft202012Validator)


def cli(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={
        "OPSFLOW_HOME": str(tmp_path), "OPSFLOW_DB": None, "OPSFLOW_PROJECT": "none",
        "OPSFLOW_SCHEDULES": str(tmp_path / "schedules"), "OPSFLOW_RUNBOOKS": str(tmp_path / "runbooks")})


def test_schedule_list_next_and_forecast_show_what_a_report_entry_does(tmp_path: Path) -> None:
    write(tmp_path, REPORTS)
    r = cli(tmp_path, "schedule", "list", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert rows["weekly"]["runbook"] is None and rows["weekly"]["does"] == "report (html, 7d, hours office)"
    assert rows["weekly"]["report"] == {"since": 604800.0, "service": None, "hours": "office", "format": "html",
                                        "title": "Weekly operations report"}
    assert rows["run"]["runbook"] == rows["run"]["does"] == "quick" and rows["run"]["report"] is None
    r = cli(tmp_path, "schedule", "list")
    assert r.exit_code == 0 and "report (csv, 36h)" in r.output
    r = cli(tmp_path, "schedule", "next", "weekly", "--from", "2030-01-01T00:00", "-n", "2")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == ["weekly: report (html, 7d, hours office) over the span before each slot",
                                     "2030-01-07T07:00:00+01:00  run    no window applies",
                                     "2030-01-14T07:00:00+01:00  run    no window applies"]
    ics = tmp_path / "f.ics"
    r = cli(tmp_path, "schedule", "forecast", "--days", "7", "--from", "2030-01-06T00:00:00+01:00",
            "--timezone", "Europe/Paris", "--ics", str(ics))
    assert r.exit_code == 0 and "weekly" in r.output
    assert "SUMMARY:weekly: report (html\\, 7d\\, hours office)" in ics.read_text()


def report(objectives: list[dict[str, Any]], **totals: Any) -> dict[str, Any]:
    base = {"runs": 0, "succeeded": 0, "failed": 0, "success_rate": None, "objectives": len(objectives),
            "objectives_met": sum(1 for o in objectives if o["met"])}
    return {"service": None, "hours": None, "totals": {**base, **totals},
            "services": [{"name": "app", "objectives": objectives}],
            "runbooks": [{"name": "deploy", "objectives": objectives}],  # listed there again: counted once
            "schedule": {"slots": 0}}


def test_the_summary_says_the_figures_and_names_each_breached_objective_once() -> None:
    paris = ZoneInfo("Europe/Paris")
    end = datetime(2030, 1, 7, 6, tzinfo=UTC).timestamp()
    objectives = [
        {"service": "app", "name": "ok", "kind": "success_rate", "target": 0.99, "actual": 0.5, "met": False,
         "unit": "ratio"},
        {"service": "app", "name": "fast", "kind": "duration", "target": 120, "actual": 7260, "met": False,
         "unit": "seconds"},
        {"service": "app", "name": "quiet", "kind": "mttr", "target": 300, "actual": None, "met": True,
         "unit": "seconds"}]
    text = summary(report(objectives, runs=4, succeeded=2, failed=2, success_rate=0.5), end - 7 * 86400, end,
                   paris, "Europe/Paris")
    assert text.splitlines() == ["Period: 2029-12-31 07:00 to 2030-01-07 07:00 (Europe/Paris)",
                                 "Runs: 4 (2 succeeded, 2 failed)", "Success rate: 50.0%", "Objectives met: 1/3",
                                 "Breached objectives:",
                                 "  - app/ok (success_rate): 50.0% against 99.0%",
                                 "  - app/fast (duration): 2h01m against 2m"]
    empty = summary(report([]), end - 86400, end, paris, "Europe/Paris")
    assert "Runs: 0 (0 succeeded, 0 failed)" in empty and "Success rate: no data" in empty
    assert "Breached" not in empty and "Schedule adherence" not in empty


def test_the_period_ends_at_the_slot_the_fire_was_meant_for(tmp_path: Path) -> None:
    entry = load_schedules(write(tmp_path, REPORTS), tmp_path / "runbooks").entries["daily"]
    t = datetime(2030, 1, 7, tzinfo=UTC).timestamp()
    assert period(Fire(entry=entry, slot=t, reason="")) == (t - 36 * 3600, t)
    assert period(Fire(entry=entry, slot=t + 7200, reason="", deferred_from=[t, t + 3600])) == (t - 36 * 3600, t)
    assert period(Fire(entry=entry, slot=t + 900, reason="", origin=t)) == (t - 36 * 3600, t)  # a retry
