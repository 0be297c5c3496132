"""The runbook engine end to end: the real CLI against the lab's servers and routers."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, Cli, by_step, pg_store_url, write_runbook

pytestmark = pytest.mark.lab


def test_server_health(cli: Cli, lab: Any) -> None:
    run = cli.run_json(str(ROOT / "runbooks/server-health.yaml"), "--limit", "srv1:srv2")
    assert run["status"] == "succeeded" and run["trigger"] == "cli"
    assert set(run["hosts"]) == {"srv1", "srv2"}
    steps = by_step(run)
    checks = steps[("sshd", "srv1")]["data"]["checks"]
    assert [c["passed"] for c in checks] == [True, True, True]
    assert steps[("uptime", "srv2")]["status"] == "ok"  # changed_when: false
    assert all(r["duration"] > 0 for r in run["results"])


def test_failed_check_fails_the_host(cli: Cli, tmp_path: Path, lab: Any) -> None:
    rb = write_runbook(tmp_path, "chk", """\
        name: chk
        targets: srv1
        steps:
          - name: impossible
            verify:
              - file: /etc/hostname
                contains: not-this-host
              - disk_free: /
                min_mb: 1
    """)
    run = cli.run_json(str(rb), rc=1)
    r = by_step(run)[("impossible", "srv1")]
    assert run["status"] == "failed" and r["status"] == "failed" and r["error_class"] == "VerificationFailed"
    assert [c["passed"] for c in r["data"]["checks"]] == [False, True]


def test_maintenance_rotates_and_keeps_n(cli: Cli, lab: Any) -> None:
    for _ in range(4):
        run = cli.run_json(str(ROOT / "runbooks/rotate-app-logs.yaml"), "--limit", "srv3", "-e", "app=rotapp",
                           "-e", "keep=2")
        assert run["status"] == "succeeded"
    listing = lab.exec("srv3", ["ls", "/var/log/rotapp"]).stdout.split()
    assert "current.log" in listing and len(listing) == 3, listing
    assert lab.exec("srv1", ["test", "-d", "/var/log/rotapp"]).returncode != 0  # only the targeted host changed


def test_ansible_playbook_step_and_literal_event_data(cli: Cli, lab: Any) -> None:
    message = f"alert {time.time_ns()} {{{{ 7*7 }}}} $(id) `whoami`; echo pwned"
    run = cli.run_json(str(ROOT / "runbooks/deploy-motd.yaml"), "--limit", "srv1:srv2", "-e", f"message={message}")
    assert run["status"] == "succeeded", json.dumps(run, indent=1)[:3000]
    steps = by_step(run)
    pub = steps[("publish motd", "srv1")]
    assert pub["status"] == "changed" and pub["data"]["tasks"][0]["task"] == "Write /etc/motd"
    for host in ("srv1", "srv2"):
        assert lab.exec(host, ["cat", "/etc/motd"]).stdout == message + "\n"
    assert lab.exec("srv3", ["cat", "/etc/motd"]).stdout != message + "\n"
    # second run: idempotent, nothing changed
    again = cli.run_json(str(ROOT / "runbooks/deploy-motd.yaml"), "--limit", "srv1", "-e", f"message={message}")
    assert by_step(again)[("publish motd", "srv1")]["status"] == "ok"


def test_command_args_reach_target_literally(cli: Cli, tmp_path: Path, lab: Any) -> None:
    rb = write_runbook(tmp_path, "lit", """\
        name: lit
        targets: srv1
        params:
          value: {type: str}
        steps:
          - name: print
            command: [printf, "%s", "{{ value }}"]
          - name: as string
            command: "printf %s {{ value }}"
    """)
    value = "{{ 7*7 }} $(id) `id` ; touch /tmp/pwned | x && y"
    run = cli.run_json(str(rb), "-e", f"value={value}")
    steps = by_step(run)
    assert steps[("print", "srv1")]["stdout"] == value
    assert lab.exec("srv1", ["test", "-e", "/tmp/pwned"]).returncode != 0


def test_router_static_route_with_diff(cli: Cli, lab: Any) -> None:
    prefix = f"198.51.{random.randint(100, 199)}.0/24"
    run = cli.run_json(str(ROOT / "runbooks/router-static-route.yaml"), "-e", f"prefix={prefix}")
    assert run["status"] == "succeeded", json.dumps(run, indent=1)[:3000]
    steps = by_step(run)
    for rtr in ("rtr1", "rtr2"):
        add = steps[("add route", rtr)]
        assert add["status"] == "changed" and f"+ip route {prefix} Null0" in add["data"]["diff"]
        assert add["data"]["saved"] is True
        assert steps[("route is configured", rtr)]["status"] == "ok"
        assert prefix in steps[("routing table", rtr)]["stdout"]
    again = cli.run_json(str(ROOT / "runbooks/router-static-route.yaml"), "-e", f"prefix={prefix}",
                         "--limit", "rtr1")
    assert by_step(again)[("add route", "rtr1")]["status"] == "ok"  # no diff, no change


def test_device_rejects_bad_config(cli: Cli, tmp_path: Path, lab: Any) -> None:
    rb = write_runbook(tmp_path, "badcfg", """\
        name: badcfg
        targets: rtr1
        steps:
          - name: nonsense
            network.config: [frobnicate the widgets]
          - name: bad show
            network.command: [show frobnication]
            ignore_errors: true
    """)
    run = cli.run_json(str(rb), rc=1)
    r = by_step(run)[("nonsense", "rtr1")]
    assert r["status"] == "failed" and r["error_class"] == "ConfigRejected"


def test_step_features_retries_timeout_when_register(cli: Cli, tmp_path: Path, lab: Any) -> None:
    marker = f"/tmp/retry-{os.getpid()}-{time.time_ns()}"
    rb = write_runbook(tmp_path, "feat", f"""\
        name: feat
        targets: srv1:srv2
        steps:
          - name: flaky
            command: [sh, -c, 'test -e {marker} || {{ touch {marker}; exit 3; }}']
            retries: 2
            delay: 0.1
            hosts: srv1
          - name: name
            command: [hostname]
            register: hn
          - name: only srv2
            command: [echo, "I am {{{{ hn.stdout | trim }}}}"]
            when: inventory_hostname == 'srv2'
          - name: slow
            command: [sleep, "5"]
            timeout: 1
            ignore_errors: true
          - name: connection is reused
            command: [sh, -c, 'echo $PPID']
            register: p1
          - name: connection is reused again
            command: [sh, -c, 'echo $PPID']
            failed_when: "stdout != p1.stdout"
    """)
    run = cli.run_json(str(rb))
    s = by_step(run)
    assert s[("flaky", "srv1")]["attempts"] == 2 and s[("flaky", "srv1")]["status"] == "changed"
    assert s[("only srv2", "srv1")]["status"] == "skipped"
    assert s[("only srv2", "srv2")]["stdout"].strip() == "I am srv2"
    slow = s[("slow", "srv1")]
    assert slow["status"] == "timeout" and slow["duration"] < 4 and slow["data"]["ignored"] is True
    assert s[("connection is reused again", "srv1")]["status"] == "changed"
    assert run["status"] == "succeeded"


def test_host_cut_off_mid_run_is_unreachable_others_go_on(cli: Cli, tmp_path: Path, lab: Any) -> None:
    rb = write_runbook(tmp_path, "cut", """\
        name: cut
        targets: srv1:srv2:srv3
        steps:
          - name: first
            command: ["true"]
          - name: wait
            command: [sleep, "2"]
          - name: last
            command: ["true"]
    """)
    proc = cli.popen("run", str(rb), "--json")
    try:
        deadline = time.time() + 30
        while time.time() < deadline:  # cut srv2 once the first step has finished everywhere
            if cli.query("SELECT COUNT(*) FROM results WHERE step='first'") == [(3,)]:
                break
            time.sleep(0.05)
        lab.fault("srv2", "down")
        out, err = proc.communicate(timeout=120)
    finally:
        lab.fault("srv2", "up")
    assert proc.returncode == 1, err
    run = json.loads(out)
    assert run["status"] == "partial"
    assert run["hosts"] == {"srv1": "changed", "srv2": "unreachable", "srv3": "changed"}
    s = by_step(run)
    assert s[("last", "srv2")]["status"] in ("skipped", "unreachable")


@pytest.mark.parametrize("case", ["syntax", "unknown_key", "wrong_type", "missing_param", "undefined_var",
                                  "unknown_target"])
def test_bad_runbooks_exit_2_and_record_nothing(cli: Cli, tmp_path: Path, case: str, lab: Any) -> None:
    good = """\
        name: bad
        targets: servers
        params:
          who: {type: str}
        steps:
          - name: hello
            command: [echo, "{{ who }}"]
    """
    text = {
        "syntax": good.replace("[echo,", "[echo"),
        "unknown_key": good.replace("    command:", "    comand: x\n            command:"),
        "wrong_type": good.replace("    command:", "    retries: lots\n            command:"),
        "missing_param": good,
        "undefined_var": good.replace("{{ who }}", "{{ whom }}"),
        "unknown_target": good.replace("targets: servers", "targets: databases"),
    }[case]
    rb = write_runbook(tmp_path, case, text)
    args = ["run", str(rb)] + ([] if case == "missing_param" else ["-e", "who=x"])
    proc = cli.run(*args)
    assert proc.returncode == 2, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith(f"{rb}:") and first.split(":")[1].isdigit(), proc.stderr
    assert "Traceback" not in proc.stderr
    assert cli.query("SELECT COUNT(*) FROM runs") in ([], [(0,)])


def test_secret_never_in_store_or_output(cli: Cli, tmp_path: Path, lab: Any) -> None:
    secret = "hunter2-TOPSECRET-9f8e"
    rb = write_runbook(tmp_path, "sec", """\
        name: sec
        targets: srv1
        params:
          token: {type: str, secret: true}
        steps:
          - name: use it
            command: [sh, -c, 'echo "token is $1"; echo "$1" >&2; exit 1', x, "{{ token }}"]
    """)
    proc = cli.run("run", str(rb), "-e", f"token={secret}", "--json", "--junit", str(tmp_path / "j.xml"))
    assert proc.returncode == 1
    run = json.loads(proc.stdout)
    assert by_step(run)[("use it", "srv1")]["stdout"] == "token is ********\n"
    assert run["params"] == {"token": "********"}
    assert secret not in proc.stdout + proc.stderr
    assert secret not in (tmp_path / "j.xml").read_text()
    for f in cli.home.glob("opsflow.db*"):
        assert secret.encode() not in f.read_bytes()
    shown = cli.run("show", run["id"], "-v", check_rc=0)
    assert secret not in shown.stdout and "token is ********" in shown.stdout


def test_sigkill_leaves_finished_steps_and_run_is_abandoned(cli: Cli, tmp_path: Path, lab: Any) -> None:
    rb = write_runbook(tmp_path, "killme", """\
        name: killme
        targets: srv1
        steps:
          - name: quick
            command: ["true"]
          - name: long
            command: [sleep, "30"]
    """)
    proc = cli.popen("run", str(rb))
    deadline = time.time() + 30
    while time.time() < deadline:
        if cli.query("SELECT COUNT(*) FROM results WHERE step='quick'") == [(1,)]:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (row,) = cli.history()  # the next opsflow start reaps it
    assert row["status"] == "abandoned"
    shown = json.loads(cli.run("show", row["id"], "--json", check_rc=0).stdout)
    assert [(r["step"], r["status"]) for r in shown["results"]] == [("quick", "changed")]


def test_junit_and_show(cli: Cli, tmp_path: Path, lab: Any) -> None:
    junit = tmp_path / "out.xml"
    proc = cli.run("run", str(ROOT / "runbooks/server-health.yaml"), "--limit", "srv1", "--junit", str(junit),
                   check_rc=0)
    assert "succeeded" in proc.stderr
    import xml.etree.ElementTree as ET

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "3" and suite.get("failures") == "0"
    (row,) = cli.history()
    shown = cli.run("show", row["id"], check_rc=0).stdout
    assert "resources" in shown and "srv1" in shown


def test_runs_recorded_in_postgresql(cli: Cli, lab: Any) -> None:
    """The same run recorded in a shared PostgreSQL store instead of SQLite."""
    with pg_store_url() as url:
        run = cli.run_json(str(ROOT / "runbooks/server-health.yaml"), "--limit", "srv1", "--db", url)
        assert run["status"] == "succeeded"
        rows = json.loads(cli.run("history", "--json", "--db", url, check_rc=0).stdout)
        assert [r["id"] for r in rows] == [run["id"]]
        shown = json.loads(cli.run("show", run["id"], "--json", "--db", url, check_rc=0).stdout)
        assert len(shown["results"]) == 3 and not cli.db.exists()


def test_gather_facts(cli: Cli, tmp_path: Path, lab: Any) -> None:
    rb = write_runbook(tmp_path, "facts", """\
        name: facts
        targets: srv1:srv2
        gather_facts: true
        steps:
          - name: use facts
            command: [echo, "{{ facts.hostname }} {{ facts.os }} {{ facts.cpus > 0 }}"]
    """)
    run = cli.run_json(str(rb))
    s = by_step(run)
    assert s[("gather facts", "srv1")]["status"] == "ok"
    assert s[("use facts", "srv2")]["stdout"].split()[0] == "srv2"
    assert s[("use facts", "srv2")]["stdout"].split()[2] == "True"
