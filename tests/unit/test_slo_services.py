"""Services files: every problem at file:line:col, all at once; the shipped services load."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsflow.errors import RunbookError
from opsflow.slo.loader import load_services
from opsflow.slo.models import DURATION_BOUNDS, Objective, parse_ratio

ROOT = Path(__file__).resolve().parents[2]


def problems(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "deploy.yaml").write_text("name: deploy\ntargets: localhost\nsteps: []\n")
    (tmp_path / "schedules").mkdir(exist_ok=True)
    (tmp_path / "schedules" / "c.yaml").write_text(
        "calendars:\n  - name: business-hours\n    mode: allowed\n    time_intervals: [{weekdays: ['monday:friday']}]\n")
    (tmp_path / "services").mkdir(exist_ok=True)
    f = tmp_path / "services" / "s.yaml"
    f.write_text(text)
    with pytest.raises(RunbookError) as exc:
        load_services(tmp_path / "services", tmp_path / "runbooks", tmp_path / "schedules")
    return [str(d).replace(str(f), "s.yaml") for d in exc.value.diagnostics]


def test_every_problem_with_its_position(tmp_path: Path) -> None:
    text = """services:
  - name: app
    runbooks: [deploy, deplyo]
    hours: business-hour
    objectives:
      - {name: ok, kind: success_rate, target: 100%}
      - {name: fast, kind: duration, max: 7m}
      - {name: x, kind: succes_rate, target: 0.9}
      - {name: y, kind: mttr, target: 0.9, max: 5m}
      - {name: ok, kind: success_rate, target: 0.9, windw: 7d}
"""
    got = problems(tmp_path, text)
    assert "s.yaml:6:9: services.0.objectives.0: a target of 100% leaves no error budget: use 99.9% or the like" in got
    assert any(p.startswith("s.yaml:7:9:") and "max 7m is not a bound of the run-duration histogram; use 5m" in p
               for p in got)
    assert any(p.startswith("s.yaml:8:") and "unknown objective kind 'succes_rate'; did you mean 'success_rate'?" in p
               for p in got)
    assert any(p.startswith("s.yaml:9:9:") and "'target' does not apply to a mttr objective" in p for p in got)
    assert any(p.startswith("s.yaml:10:") and "unknown key 'windw'; did you mean 'window'?" in p for p in got)
    assert len(got) == 5  # shape errors stop the cross-checks of that file


def test_cross_references(tmp_path: Path) -> None:
    text = """services:
  - name: app
    runbooks: [deploy, deplyo]
    hours: business-hour
    corrections: [nightly]
    schedules: [nope]
    objectives:
      - {name: ok, kind: success_rate, target: 0.9}
      - {name: ok, kind: success_rate, target: 0.95}
      - {name: rpo, kind: backup_age, rpo: 1d}
  - name: app
    runbooks: [deploy]
"""
    got = problems(tmp_path, text)
    assert "s.yaml:3:24: no runbook 'deplyo' in " + str(tmp_path / "runbooks") + "; did you mean 'deploy'?" in got
    assert any(p.startswith("s.yaml:4:12: no calendar 'business-hour'") and "did you mean 'business-hours'" in p
               for p in got)
    assert any(p.startswith("s.yaml:5:19: no calendar 'nightly'") for p in got)
    assert any(p.startswith("s.yaml:6:17: no schedule entry 'nope'") for p in got)
    assert any(p.startswith("s.yaml:9:16: objective 'ok' is defined twice") for p in got)
    assert any(p.startswith("s.yaml:10:") and "needs the service's groups" in p for p in got)
    assert any(p.startswith("s.yaml:11:") and "service 'app' is defined twice" in p for p in got)


def test_ratios_and_bounds() -> None:
    assert parse_ratio("99.9%") == pytest.approx(0.999)
    assert parse_ratio(0.5) == 0.5
    for bad in ("101%", 0, 1.5, True, "ninety"):
        with pytest.raises(ValueError):
            parse_ratio(bad)
    o = Objective(name="d", kind="duration", max=300)
    assert o.ratio == 0.95 and 300.0 in DURATION_BOUNDS
    assert o.describe() == "95% of runs finish within 5m over 30d"


def test_shipped_services_load_against_the_example_runbooks_and_calendars() -> None:
    services = load_services(ROOT / "services", ROOT / "runbooks", ROOT / "schedules")
    assert {"server-operations", "backup-and-recovery", "network-routing"} <= set(services.services)
    kinds = {o.kind for s in services.services.values() for o in s.objectives}
    assert kinds == {"success_rate", "duration", "auto_remediation", "time_to_start", "mttr", "schedule_adherence",
                     "backup_age", "restore_drill"}
    ops = services.service("server-operations")
    assert ops.hours == "business-hours" and ops.corrections == ["weeknights"]
    assert services.runbooks_of(ops) == ["deploy-motd", "remediate-disk-full", "rotate-app-logs", "server-health"]
