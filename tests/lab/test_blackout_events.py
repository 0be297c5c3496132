"""A maintenance blackout holds automatic remediation back too: the event is recorded suppressed with
reason `blackout`, unless the rule says `emergency: true` — then the run starts and the override is in
the audit log, with the rule as the actor. (Local steps: no lab host is needed.)"""

from __future__ import annotations

import signal
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsflow.store import open_store
from tests.helpers import Cli, write_runbook
from tests.lab.test_daemon import Daemon, actions, am_alert, wait_for

TODAY = datetime.now(UTC).date()


def test_events_in_a_blackout_are_held_unless_emergency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  children:\n    servers:\n      hosts:\n"
                         "        h1: {ansible_host: 192.0.2.1}\n        h2: {ansible_host: 192.0.2.2}\n")
    rb = tmp_path / "rb"
    for name, emergency in (("routine", "false"), ("urgent", "true")):
        write_runbook(rb, name, f"""\
            name: {name}
            targets: servers
            triggers:
              events:
                - match: {{name: {name.capitalize()}Alert}}
                  host: labels.instance
                  cooldown: 0
                  emergency: {emergency}
            steps:
              - name: fix
                local: ['true']
        """)
    schedules = tmp_path / "schedules"
    schedules.mkdir()
    (schedules / "freeze.yaml").write_text(textwrap.dedent(f"""\
        calendars:
          - name: change-freeze
            mode: blackout
            scope: all
            dates: [{{from: '{TODAY - timedelta(days=1)}', to: '{TODAY + timedelta(days=1)}'}}]
        """))
    monkeypatch.setenv("OPSFLOW_SCHEDULES", str(schedules))
    cli = Cli(tmp_path / "home", inventory)
    d = Daemon(cli, rb)
    try:
        d.alerts(am_alert("RoutineAlert", instance="h1"))
        d.alerts(am_alert("UrgentAlert", instance="h2"))
        wait_for(lambda: [a for a in actions(cli) if a["run_status"]], 30, "the emergency run to end")
    finally:
        if d.proc.poll() is None and d.stop() != 0:
            d.stop(signal.SIGKILL, 10)
    by_rule = {a["rule"]: a for a in actions(cli)}
    held, urgent = by_rule["routine"], by_rule["urgent"]
    assert (held["outcome"], held["reason"], held["run_id"]) == ("suppressed", "blackout", None)
    assert "change-freeze" in held["detail"]
    assert urgent["run_status"] == "succeeded" and d.proc.returncode == 0
    store = open_store(str(cli.db))
    (row,) = store.audit_log()
    assert (row["action"], row["target"]) == ("window_override", f"run {urgent['run_id']} of urgent")
    assert row["actor"].endswith(":urgent") and "emergency rule urgent" in row["detail"]
    store.close()
