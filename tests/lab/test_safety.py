"""Production safety against the lab: batches, rollback, resume, approvals, dry-run, cancel, locks."""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, Cli, by_step, wait_for, write_runbook

pytestmark = pytest.mark.lab


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:10]



def db_rows(cli: Cli, sql: str) -> list[tuple[Any, ...]]:
    return cli.query(sql)


def test_rolling_batches_stop_past_max_fail_percentage(cli: Cli, tmp_path: Path, lab: Any, token: str) -> None:
    rb = write_runbook(tmp_path, "roll", f"""\
        name: roll
        targets: servers
        serial: 1
        max_fail_percentage: 0
        steps:
          - name: restart
            command: [sh, -c, 'touch /tmp/restarted-{token}; test "$(hostname)" != srv2']
    """)
    run = cli.run_json(str(rb), rc=1)
    assert run["status"] == "failed"
    assert "batch 2 of 4" in run["error"] and "not started: srv3, srv4" in run["error"]
    assert run["hosts"] == {"srv1": "changed", "srv2": "failed", "srv3": "skipped", "srv4": "skipped"}
    for host, touched in (("srv1", True), ("srv2", True), ("srv3", False), ("srv4", False)):
        assert (lab.exec(host, ["test", "-e", f"/tmp/restarted-{token}"]).returncode == 0) is touched, host


def test_rollback_only_where_the_step_completed(cli: Cli, tmp_path: Path, lab: Any, token: str) -> None:
    conf = f"/etc/app-{token}.conf"
    for host in ("srv1", "srv2", "srv3"):
        lab.exec(host, ["sh", "-c", f"echo original > {conf}"])
    rb = write_runbook(tmp_path, "rb", f"""\
        name: rb
        targets: srv1:srv2:srv3
        steps:
          - name: change config
            when: inventory_hostname != 'srv3'
            command: [sh, -c, 'cp {conf} {conf}.bak && echo new > {conf}']
            rollback:
              - name: restore config
                command: [mv, {conf}.bak, {conf}]
          - name: health
            command: [sh, -c, 'test "$(hostname)" = srv1']
    """)
    run = cli.run_json(str(rb), rc=1)
    assert run["status"] == "partial"
    contents = {h: lab.exec(h, ["cat", conf]).stdout.strip() for h in ("srv1", "srv2", "srv3")}
    assert contents == {"srv1": "new", "srv2": "original", "srv3": "original"}
    rollbacks = [(r["host"], r["step"], r["status"]) for r in run["results"] if r["phase"] == "rollback"]
    assert rollbacks == [("srv2", "restore config", "changed")]


def test_resume_runs_only_what_did_not_complete(cli: Cli, tmp_path: Path, lab: Any, token: str) -> None:
    log = f"/tmp/steps-{token}.log"
    gate = f"/tmp/gate-{token}"
    rb = write_runbook(tmp_path, "res", f"""\
        name: res
        targets: srv1:srv2
        steps:
          - name: one
            command: [sh, -c, 'echo one >> {log}; hostname']
            register: first
          - name: two
            command: [sh, -c, 'echo two >> {log}; test "$(hostname)" = srv1 || test -e {gate}']
          - name: three
            command: [sh, -c, 'echo "three $1" >> {log}', x, "{{{{ first.stdout | trim }}}}"]
    """)
    first = cli.run_json(str(rb), rc=1)
    assert first["status"] == "partial" and first["hosts"]["srv2"] == "failed"
    lab.exec("srv2", ["touch", gate])  # the fault is cleared
    proc = cli.run("resume", first["id"], "--json", check_rc=0)
    second = json.loads(proc.stdout)
    assert second["status"] == "succeeded" and second["parent_run"] == first["id"]
    steps = by_step(second)
    assert steps[("one", "srv2")]["status"] == "skipped" and steps[("one", "srv2")]["data"]["done_in"] == first["id"]
    assert steps[("three", "srv1")]["status"] == "skipped"
    assert lab.exec("srv1", ["cat", log]).stdout.split("\n")[:-1] == ["one", "two", "three srv1"]
    assert lab.exec("srv2", ["cat", log]).stdout.split("\n")[:-1] == ["one", "two", "two", "three srv2"]
    again = cli.run("resume", second["id"])
    assert again.returncode == 2 and "only failed, partial, canceled or abandoned" in again.stderr
    twice = cli.run("resume", first["id"])  # the original again: its chain ends in a succeeded run
    assert twice.returncode == 2 and f"resumed by run {second['id']}" in twice.stderr
    assert lab.exec("srv2", ["cat", log]).stdout.split("\n")[:-1] == ["one", "two", "two", "three srv2"]


def test_resume_follows_the_chain(cli: Cli, tmp_path: Path, lab: Any, token: str) -> None:
    """Resuming an original that was already resumed continues from the latest run of the chain."""
    log, gate1, gate2 = f"/tmp/chain-{token}.log", f"/tmp/gate1-{token}", f"/tmp/gate2-{token}"
    rb = write_runbook(tmp_path, "chain", f"""\
        name: chain
        targets: srv2
        steps:
          - name: one
            command: [sh, -c, 'echo one >> {log}']
          - name: two
            command: [sh, -c, 'echo two >> {log}; test -e {gate1}']
          - name: three
            command: [sh, -c, 'echo three >> {log}; test -e {gate2}']
    """)
    first = cli.run_json(str(rb), rc=1)
    lab.exec("srv2", ["touch", gate1])
    second = json.loads(cli.run("resume", first["id"], "--json", check_rc=1).stdout)
    assert by_step(second)[("three", "srv2")]["status"] == "failed"
    lab.exec("srv2", ["touch", gate2])
    third = json.loads(cli.run("resume", first["id"], "--json", check_rc=0).stdout)  # the original, again
    assert third["parent_run"] == second["id"]
    steps = by_step(third)
    assert steps[("one", "srv2")]["data"]["done_in"] == first["id"]
    assert steps[("two", "srv2")]["data"]["done_in"] == second["id"]
    assert lab.exec("srv2", ["cat", log]).stdout.split("\n")[:-1] == ["one", "two", "two", "three", "three"]


@pytest.mark.parametrize("decision", ["approve", "deny", "timeout"])
def test_approval_from_another_process(cli: Cli, tmp_path: Path, lab: Any, token: str, decision: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    rb = write_runbook(tmp_path, "appr", f"""\
        name: appr
        targets: srv1
        steps:
          - name: before
            command: ["true"]
          - name: four eyes
            approve: {{message: "restart the database?", timeout: {2 if decision == "timeout" else 60}}}
          - name: after
            command: [touch, /tmp/approved-{token}]
    """)
    proc = cli.popen("run", str(rb), "--json")
    run_id = wait_for(lambda: (db_rows(cli, "SELECT id FROM runs WHERE status='waiting'") or [[None]])[0][0],
                      what="the run to wait for approval")
    assert cli.history()[0]["status"] == "waiting"
    if decision != "timeout":
        monkeypatch.setenv("OPSFLOW_USER", "oncall@desk")  # four-eyes: not the one who started the run
        out = cli.run(decision, run_id, "--comment", "checked with on-call", check_rc=0)
        assert {"approve": "approved", "deny": "denied"}[decision] in out.stdout
    stdout, stderr = proc.communicate(timeout=60)
    run = json.loads(stdout)
    gate = by_step(run)[("four eyes", "srv1")]
    touched = lab.exec("srv1", ["test", "-e", f"/tmp/approved-{token}"]).returncode == 0
    if decision == "approve":
        assert proc.returncode == 0 and touched and gate["data"]["state"] == "approved"
        assert gate["data"]["comment"] == "checked with on-call" and gate["data"]["decided_by"] == "oncall@desk"
    else:
        assert proc.returncode == 1 and not touched
        assert gate["data"]["state"] == ("denied" if decision == "deny" else "expired")
        assert by_step(run)[("after", "srv1")]["status"] == "skipped"


def _lab_state(lab: Any) -> dict[str, str]:
    state = {}
    for host in ("srv1", "srv2", "srv3", "srv4"):
        state[host] = lab.exec(host, ["sh", "-c", "cat /etc/motd; ls -la /var/log/demoapp 2>&1; "
                                      "find /etc /srv -newer /etc/hostname -type f 2>/dev/null | sort"]).stdout
    for rtr in ("rtr1", "rtr2"):
        state[rtr] = lab.exec(rtr, ["vtysh", "-c", "show running-config"]).stdout
    return state


def test_check_mode_changes_nothing_and_shows_diffs(cli: Cli, lab: Any, token: str) -> None:
    before = _lab_state(lab)
    params = {"router-static-route": ["-e", "prefix=203.0.113.0/24"],
              "deploy-motd": ["-e", f"message=check {token}"], "restore-drill": ["-e", "source=srv1"]}
    outputs = {}
    for rb in sorted((ROOT / "runbooks").glob("*.yaml")):
        proc = cli.run("run", str(rb), "--check", "--json", *params.get(rb.stem, []))
        assert proc.returncode in (0, 1), proc.stderr
        outputs[rb.stem] = (json.loads(proc.stdout), proc.stderr)
    assert _lab_state(lab) == before
    route, route_err = outputs["router-static-route"]
    assert route["check_mode"] is True
    add = by_step(route)[("add route", "rtr1")]
    assert add["data"]["check_mode"] is True and "+ip route 203.0.113.0/24 Null0" in add["data"]["diff"]
    assert "+ip route 203.0.113.0/24 Null0" in route_err
    motd, _ = outputs["deploy-motd"]
    publish = by_step(motd)[("publish motd", "srv1")]
    assert publish["status"] == "changed" and publish["data"]["tasks"][0]["diff"]
    rotate, _ = outputs["rotate-app-logs"]
    skipped = by_step(rotate)[("rotate", "srv1")]
    assert skipped["status"] == "skipped" and skipped["data"]["not_checked"] is True


def test_check_strict_refuses_uncheckable_steps(cli: Cli) -> None:
    proc = cli.run("run", str(ROOT / "runbooks/rotate-app-logs.yaml"), "--check", "--strict")
    assert proc.returncode == 2
    assert "--check --strict refused" in proc.stderr and "'rotate'" in proc.stderr
    cli.run("run", str(ROOT / "runbooks/server-health.yaml"), "--check", "--strict", "--limit", "srv1",
            check_rc=2)  # its uptime step is a command
    assert not db_rows(cli, "SELECT id FROM runs")


def test_sigterm_cancels_and_releases_locks(cli: Cli, tmp_path: Path, lab: Any) -> None:
    rb = write_runbook(tmp_path, "long", """\
        name: long
        targets: srv1:srv2
        lock: true
        steps:
          - name: long
            command: [sleep, "60"]
          - name: never
            command: ["true"]
    """)
    proc = cli.popen("run", str(rb), "--json")
    wait_for(lambda: len(db_rows(cli, "SELECT resource FROM locks")) == 2, what="locks")
    time.sleep(0.5)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=40)
    assert time.time() - t0 < 20  # in-flight work is stopped after the grace period
    run = json.loads(stdout)
    assert proc.returncode == 1 and run["status"] == "canceled" and "SIGTERM" in run["error"]
    assert by_step(run)[("never", "srv1")]["status"] == "skipped"
    assert db_rows(cli, "SELECT * FROM locks") == []
    assert db_rows(cli, "SELECT status FROM runs") == [("canceled",)]


@pytest.mark.parametrize("wait", [0, 30])
def test_second_run_on_a_locked_host_waits_or_is_refused(cli: Cli, tmp_path: Path, lab: Any, wait: int) -> None:
    rb = write_runbook(tmp_path, "locked", f"""\
        name: locked
        targets: srv4
        lock: {{scope: host, wait: {wait}}}
        steps:
          - name: hold
            command: [sleep, "3"]
    """)
    first = cli.popen("run", str(rb), "--json")
    holder = wait_for(lambda: (db_rows(cli, "SELECT run_id FROM locks") or [[None]])[0][0], what="first lock")
    second = cli.run("run", str(rb), "--json")
    first.communicate(timeout=60)
    assert first.returncode == 0
    run = json.loads(second.stdout)
    if wait:
        assert second.returncode == 0 and run["status"] == "succeeded"
    else:
        assert second.returncode == 1 and run["status"] == "failed"
        assert f"lock host:srv4 is held by run {holder}" in run["error"]
        assert run["results"] == []


def test_retry_on_rc_and_backoff(cli: Cli, tmp_path: Path, lab: Any, token: str) -> None:
    rb = write_runbook(tmp_path, "retry", f"""\
        name: retry
        targets: srv1
        steps:
          - name: transient
            command: [sh, -c, 'n=$(cat /tmp/n-{token} 2>/dev/null || echo 0); echo $((n+1)) > /tmp/n-{token}; test $n -ge 2 || exit 75']
            retries: 3
            delay: 0.2
            backoff: 2
            retry_on: [75]
          - name: permanent
            command: [sh, -c, 'exit 4']
            retries: 3
            delay: 0.1
            retry_on: [75, unreachable]
    """)
    run = cli.run_json(str(rb), rc=1)
    s = by_step(run)
    assert s[("transient", "srv1")]["attempts"] == 3 and s[("transient", "srv1")]["status"] == "changed"
    assert s[("permanent", "srv1")]["attempts"] == 1 and s[("permanent", "srv1")]["rc"] == 4


def test_sub_runbook_is_recorded_under_the_parent(cli: Cli, tmp_path: Path, lab: Any) -> None:
    rb = write_runbook(tmp_path, "parent", f"""\
        name: parent
        targets: srv1:srv2
        steps:
          - name: health first
            runbook:
              path: {ROOT / 'runbooks/server-health.yaml'}
              params: {{min_disk_mb: 1}}
    """)
    run = cli.run_json(str(rb))
    child_id = by_step(run)[("health first", "srv1")]["data"]["run"]
    child = json.loads(cli.run("show", child_id, "--json", check_rc=0).stdout)
    assert child["parent_run"] == run["id"] and child["runbook"] == "server-health"
    assert child["params"]["min_disk_mb"] == 1 and set(child["hosts"]) == {"srv1", "srv2"}


def test_runbook_timeout_stops_the_run(cli: Cli, tmp_path: Path, lab: Any) -> None:
    rb = write_runbook(tmp_path, "slowrb", """\
        name: slowrb
        targets: srv1
        timeout: 2
        steps:
          - name: slow
            command: [sleep, "30"]
          - name: never
            command: ["true"]
    """)
    t0 = time.time()
    run = cli.run_json(str(rb), rc=1)
    assert time.time() - t0 < 15
    assert run["status"] == "failed" and "runbook timeout of 2 s" in run["error"]
    assert by_step(run)[("never", "srv1")]["status"] == "skipped"
