"""opsflow schedule list|next|forecast and opsflow calendar check: the interfaces to keep exactly."""

from __future__ import annotations

import json
from pathlib import Path

import icalendar
from click.testing import CliRunner, Result

from opsflow.cli import main
from tests.helpers import ROOT

SCHEDULES = str(ROOT / "schedules")


def cli(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"OPSFLOW_HOME": str(tmp_path), "OPSFLOW_DB": None,
                                                     "OPSFLOW_PROJECT": "none", "OPSFLOW_SCHEDULES": SCHEDULES,
                                                     "OPSFLOW_RUNBOOKS": str(ROOT / "runbooks")})


def test_next_json(tmp_path: Path) -> None:
    r = cli(tmp_path, "schedule", "next", "nightly-backup", "--from", "2027-12-16T00:00:00+01:00", "--count", "6",
            "--json")
    assert r.exit_code == 0, r.output
    slots = json.loads(r.output)
    assert [s["at"] for s in slots][:2] == ["2027-12-16T02:30:00+01:00", "2027-12-17T02:30:00+01:00"]
    assert [s["action"] for s in slots] == ["run", "run", "skip", "skip", "skip", "skip"]
    assert all({"at", "action", "reason"} <= set(s) for s in slots)
    assert "blackout year-end-freeze" in slots[4]["reason"]


def test_next_defer_has_to(tmp_path: Path) -> None:
    r = cli(tmp_path, "schedule", "next", "motd-refresh", "--from", "2027-11-01T00:00", "-n", "2", "--json")
    assert r.exit_code == 0, r.output
    first = json.loads(r.output)[0]
    assert first["action"] == "defer" and first["to"] == "2027-11-06T22:00:00+01:00"


def test_next_text_and_unknown_entry(tmp_path: Path) -> None:
    r = cli(tmp_path, "schedule", "next", "nightly-backup", "--from", "2027-06-02T00:00Z", "-n", "1")
    assert r.exit_code == 0 and r.output.startswith("2027-06-02T02:30:00+02:00  run")
    bad = cli(tmp_path, "schedule", "next", "nightly-bakup")
    assert bad.exit_code == 2 and "did you mean 'nightly-backup'?" in bad.output
    bad = cli(tmp_path, "schedule", "next", "nightly-backup", "--from", "yesterday")
    assert bad.exit_code == 2 and "--from 'yesterday'" in bad.output


def test_calendar_check(tmp_path: Path) -> None:
    r = cli(tmp_path, "calendar", "check", "weeknights", "--at", "2027-06-02T01:30:00+02:00", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["open"] is True and "weeknights" in out["reason"]
    assert out["next_change"] == "2027-06-02T03:00:00+00:00"
    r = cli(tmp_path, "calendar", "check", "year-end-freeze", "--at", "2027-12-24T12:00:00+01:00", "--json")
    assert r.exit_code == 1 and json.loads(r.output)["open"] is False
    r = cli(tmp_path, "calendar", "check", "year-end-freeze", "--at", "2028-01-03T00:00:00+01:00")
    assert r.exit_code == 0 and r.output.startswith("open: blackout 'year-end-freeze' not in force")


def test_list_without_a_store(tmp_path: Path) -> None:
    r = cli(tmp_path, "schedule", "list", "--json")
    assert r.exit_code == 0, r.output
    rows = {row["name"]: row for row in json.loads(r.output)}
    assert rows["nightly-backup"]["last_outcome"] == "-"
    assert rows["nightly-backup"]["calendars"][:2] == ["weeknights", "year-end-freeze"]
    assert not (tmp_path / "opsflow.db").exists()  # looking never creates a store


def test_forecast_and_ics(tmp_path: Path) -> None:
    out = tmp_path / "f.ics"
    r = cli(tmp_path, "schedule", "forecast", "--days", "2", "--from", "2027-12-23T00:00:00+01:00",
            "--timezone", "Europe/Berlin", "--ics", str(out))
    assert r.exit_code == 0, r.output
    assert "Thu 2027-12-23" in r.output and "BLACKOUT" in r.output and "nightly-backup" in r.output
    events = list(icalendar.Calendar.from_ical(out.read_bytes()).walk("VEVENT"))
    assert any(str(e["SUMMARY"]) == "blackout year-end-freeze" for e in events)


def test_missing_schedules_dir_is_a_usage_error(tmp_path: Path) -> None:
    r = cli(tmp_path, "schedule", "list", "--schedules", str(tmp_path / "nope"))
    assert r.exit_code == 2 and "no schedules directory" in r.output


def test_validate_checks_schedules_with_runbooks(tmp_path: Path) -> None:
    ok = cli(tmp_path, "validate", SCHEDULES, str(ROOT / "runbooks" / "server-health.yaml"))
    assert ok.exit_code == 0, ok.output
    assert "ok  " + str(Path(SCHEDULES) / "operations.yaml") in ok.output
    bad = tmp_path / "sched"
    bad.mkdir()
    (bad / "ops.yaml").write_text("calendars:\n  - name: w\n    mode: sometimes\nschedules:\n"
                                  "  - name: x\n    runbook: server-health\n    cron: '61 * * * *'\n")
    r = cli(tmp_path, "validate", str(bad))
    assert r.exit_code == 2
    lines = [line for line in r.output.splitlines() if line.startswith(str(bad / "ops.yaml") + ":")]
    assert len(lines) >= 2 and any(":3:5: calendars.0.mode" in line for line in lines), r.output  # all at once
    assert "Traceback" not in r.output


def test_schema_of_schedules(tmp_path: Path) -> None:
    r = cli(tmp_path, "schema", "--kind", "schedule")
    assert r.exit_code == 0 and json.loads(r.output)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
