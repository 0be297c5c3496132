"""Host keys that are unknown or changed: every action refuses the host, names the problem, never retries.

The lab's inventory is copied with ``opsflow_known_hosts`` pointing at a known_hosts file whose
keys are wrong (a fresh ed25519 key for every lab address) or empty. Each action kind runs on
its own hosts with ``retries: 2`` and ``retry_on: [unreachable, failed]``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, Cli, by_step, write_runbook

pytestmark = pytest.mark.lab

ROUTE = "ip route 198.51.77.0/24 Null0"
MARKER = "/tmp/opsflow-hostkey-marker"  # noqa: S108 - a path on the lab server, not here

SERVER_STEPS = {
    "command": {"command": ["touch", MARKER]},
    "ansible": {"ansible": {"playbook": str(ROOT / "playbooks/motd.yml"),
                            "extra_vars": {"motd_message": "hostkey-test"}}},
    "server verify": {"verify": [{"file": "/etc/hostname", "exists": True}]},
    "backup": {"backup": {"paths": ["/etc/hostname"]}},
}
ROUTER_STEPS = {
    "router verify": {"verify": [{"show": "show running-config", "contains": "hostname"}]},
    "network.command": {"network.command": ["show version"]},
    "network.config": {"network.config": [ROUTE]},
    "network.backup": {"network.backup": None},
    "network.restore": {"network.restore": {"version": "latest"}},
}
SERVERS = "srv1:srv2"
ROUTERS = "rtr1:rtr2"


def _inventory_with(lab: Any, lab_inventory: Path, tmp_path: Path, known_hosts: str) -> Path:
    kh = tmp_path / "known_hosts"
    kh.write_text(known_hosts)
    inv = yaml.safe_load(lab_inventory.read_text())
    inv["all"]["vars"]["opsflow_known_hosts"] = str(kh)
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    return path


def _wrong_keys(lab: Any, tmp_path: Path) -> str:
    key = tmp_path / "fake_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    keytype, blob = key.with_suffix(".pub").read_text().split()[:2]
    addresses = [line.split()[0] for line in lab.known_hosts.read_text().splitlines() if line.strip()]
    assert len(addresses) >= 6
    return "".join(f"{addr} {keytype} {blob}\n" for addr in addresses)


def _runbook(tmp_path: Path, server_steps: dict[str, Any], router_steps: dict[str, Any]) -> Path:
    """One step per action, each retried on anything; failures are ignored so every step runs."""
    steps = []
    for hosts, actions in ((SERVERS, server_steps), (ROUTERS, router_steps)):
        for name, action in actions.items():
            steps.append({"name": name, "hosts": hosts, "retries": 2, "delay": 0, "ignore_errors": True,
                          "retry_on": ["unreachable", "failed"], **action})
    doc = {"name": "hostkeys", "targets": f"{SERVERS}:{ROUTERS}", "steps": steps}
    return write_runbook(tmp_path, "hostkeys", yaml.safe_dump(doc, sort_keys=False))


def _names_the_problem(error: str, host: str) -> bool:
    """The message says it is the host key, of which host, and where the known keys are."""
    return "host key" in error.lower() and host in error and "known_hosts" in error


@pytest.mark.parametrize("kind", ["changed", "unknown"])
def test_every_action_refuses_a_wrong_host_key(kind: str, tmp_path: Path, lab: Any, lab_inventory: Path) -> None:
    lab.exec("srv1", ["rm", "-f", MARKER])
    motd = {h: lab.exec(h, ["cat", "/etc/motd"]).stdout for h in ("srv1", "srv2")}
    configs = {r: lab.exec(r, ["vtysh", "-c", "show running-config"]).stdout for r in ("rtr1", "rtr2")}
    assert all(ROUTE not in c for c in configs.values())

    known = _wrong_keys(lab, tmp_path) if kind == "changed" else ""
    cli = Cli(home=tmp_path / "home", inventory=_inventory_with(lab, lab_inventory, tmp_path, known))
    run = cli.run_json(str(_runbook(tmp_path, SERVER_STEPS, ROUTER_STEPS)))  # every failure is ignored: the run goes on
    steps = by_step(run)

    expected = [(s, h) for s in SERVER_STEPS for h in ("srv1", "srv2")]
    expected += [(s, h) for s in ROUTER_STEPS for h in ("rtr1", "rtr2")]
    assert sorted(steps) == sorted(expected)
    wrong = {f"{step} on {host}": (r["status"], r["error_class"], r["attempts"], r["error"])
             for (step, host), r in sorted(steps.items())
             if (r["status"], r["error_class"], r["attempts"]) != ("failed", "HostKeyVerificationFailed", 1)
             or "host key" not in (r["error"] or "").lower()
             or not _names_the_problem(r["error"], host)}
    assert not wrong, "\n".join(f"{k}: {v}" for k, v in wrong.items())

    # nothing changed on the targets, nothing stored
    assert lab.exec("srv1", ["test", "-e", MARKER]).returncode != 0
    assert {h: lab.exec(h, ["cat", "/etc/motd"]).stdout for h in ("srv1", "srv2")} == motd
    for rtr in ("rtr1", "rtr2"):
        assert ROUTE not in lab.exec(rtr, ["vtysh", "-c", "show running-config"]).stdout
    backups = cli.home / "backups"
    assert not any(p.is_file() for p in (backups / "servers").rglob("*")) if backups.exists() else True
    assert not list((backups / "network").glob("rtr*")) if backups.exists() else True

    shown = cli.run("show", run["id"], check_rc=0).stdout
    assert "HostKeyVerificationFailed" in shown or "host key" in shown.lower()


def test_server_backup_names_the_host_key(tmp_path: Path, lab: Any, lab_inventory: Path) -> None:
    cli = Cli(home=tmp_path / "home", inventory=_inventory_with(lab, lab_inventory, tmp_path, ""))
    run = cli.run_json(str(_runbook(tmp_path, {"backup": SERVER_STEPS["backup"]}, {})), "--limit", "srv1")
    r = by_step(run)[("backup", "srv1")]
    assert r["error_class"] == "HostKeyVerificationFailed" and r["attempts"] == 1
    assert _names_the_problem(r["error"], "srv1"), r["error"]
