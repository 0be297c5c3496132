"""Maintenance windows govern every run: a scoped blackout (or a closed scoped window) holds back
`opsflow run` unless --override-window --reason, recorded with who; the event daemon records the
event suppressed with reason `blackout` unless its rule says `emergency: true`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsflow.errors import WindowClosed
from opsflow.executor import Executor
from opsflow.planning import RunRequest, build_plan
from opsflow.schedule.governance import governing_calendars, verdict
from opsflow.store import open_store
from tests.helpers import ROOT

TODAY = datetime.now(UTC).date()


def calendars(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "calendars.yaml").write_text(textwrap.dedent(text))
    return directory


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "inventory.yml").write_text("all:\n  children:\n    servers:\n      hosts:\n"
                                            "        h1: {ansible_host: 127.0.0.1}\n        h2: {ansible_host: 127.0.0.1}\n")
    rb = tmp_path / "runbooks"
    rb.mkdir()
    (rb / "patch.yaml").write_text("name: patch\ntargets: servers\nsteps:\n  - name: go\n    local: ['true']\n")
    (rb / "health.yaml").write_text("name: health\ntargets: servers\nsteps:\n  - name: go\n    local: ['true']\n")
    monkeypatch.setenv("OPSFLOW_SCHEDULES", str(tmp_path / "schedules"))
    monkeypatch.setenv("OPSFLOW_RUNBOOKS", str(rb))
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    yield tmp_path


def freeze(project: Path, scope: str = "{runbooks: [patch]}", extra: str = "") -> None:
    calendars(project / "schedules", f"""\
        calendars:
          - name: freeze
            mode: blackout
            scope: {scope}
            dates: [{{from: '{TODAY - timedelta(days=1)}', to: '{TODAY + timedelta(days=1)}'}}]
          - name: unscoped-freeze
            mode: blackout
            dates: [{{from: '{TODAY - timedelta(days=1)}', to: '{TODAY + timedelta(days=1)}'}}]
        {extra}""")


def request(project: Path, runbook: str, **kw: object) -> RunRequest:
    return RunRequest(runbook=str(project / "runbooks" / f"{runbook}.yaml"), inventory=str(project / "inventory.yml"),
                      **kw)  # type: ignore[arg-type]


def test_a_scoped_blackout_refuses_the_runs_it_covers_only(project: Path) -> None:
    freeze(project)
    with pytest.raises(WindowClosed, match=r"patch not started: blackout 'freeze' in force.*--override-window"):
        build_plan(request(project, "patch"))
    assert build_plan(request(project, "health")).window_override is None  # not in its scope; unscoped: no effect


def test_a_group_scope_covers_the_hosts_of_the_group(project: Path) -> None:
    freeze(project, scope="{groups: [servers]}")
    with pytest.raises(WindowClosed):
        build_plan(request(project, "health"))


def test_outside_a_scoped_window_is_refused_too(project: Path) -> None:
    closed = (datetime.now(UTC) + timedelta(hours=3)).strftime("%H:00")
    closes = (datetime.now(UTC) + timedelta(hours=4)).strftime("%H:00")
    calendars(project / "schedules", f"""\
        calendars:
          - name: nightly
            mode: allowed
            scope: {{runbooks: [patch]}}
            time_intervals:
              - times: [{{start_time: '{closed}', end_time: '{closes if closes != "00:00" else "24:00"}'}}]
        """)
    with pytest.raises(WindowClosed, match="outside its maintenance window"):
        build_plan(request(project, "patch"))


def test_an_override_runs_and_is_audited_with_who_and_why(project: Path) -> None:
    freeze(project)
    plan = build_plan(request(project, "patch", override_window="payments down, vendor fix", started_by="alice@ops"))
    assert plan.window_override is not None and "freeze" in plan.window_override
    store = open_store(str(project / "home" / "s.db"))
    result = Executor(store).execute(plan)
    (row,) = store.audit_log()
    assert (row["actor"], row["action"]) == ("alice@ops", "window_override")
    assert row["target"] == f"run {result.run_id} of patch"
    assert "payments down, vendor fix" in row["detail"] and "freeze" in row["detail"]
    store.close()


def test_governance_logic_is_pure(project: Path) -> None:
    freeze(project)
    found = governing_calendars(project / "schedules")
    assert [c.name for c in found] == ["freeze"]  # only scoped calendars govern unscheduled runs
    now = datetime.now(UTC)
    assert verdict(found, "patch", {"h1"}, now) is not None
    assert verdict(found, "patch", {"h1"}, now + timedelta(days=5)) is None
    assert verdict(found, "health", {"h1"}, now) is None


def test_cli_refuses_and_needs_a_reason_to_override(project: Path) -> None:
    freeze(project)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def opsflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsflow", "run", str(project / "runbooks" / "patch.yaml"),
                               "-i", str(project / "inventory.yml"), *args], capture_output=True, text=True, env=env,
                              cwd=project)

    refused = opsflow()
    assert refused.returncode == 2 and "blackout 'freeze' in force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert opsflow("--override-window").returncode == 2  # no reason given
    ran = opsflow("--override-window", "--reason", "urgent CVE", "--json")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["id"]
    store = open_store()
    assert [(a["action"], a["target"]) for a in store.audit_log()] == [("window_override", f"run {run_id} of patch")]
    store.close()


def test_a_flow_style_scope_is_seen_and_no_scope_loads_nothing(project: Path) -> None:
    calendars(project / "schedules", f"""\
        calendars:
          - {{name: freeze, mode: blackout, scope: all, dates: [{{from: '{TODAY}', to: '{TODAY}'}}]}}
        """)
    assert [c.name for c in governing_calendars(project / "schedules")] == ["freeze"]
    (project / "schedules" / "calendars.yaml").write_text("calendars:\n  - name: w\n    mode: blackout\n"
                                                         f"    dates: ['{TODAY}']\n")
    assert governing_calendars(project / "schedules") == []
