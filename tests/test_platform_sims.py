"""network.command / config / backup / restore and --check, end to end through Netmiko, against the lab's
device simulator: one simulator process serving ten platforms (opsflow/lab/simulator), host keys checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsflow.backup.repo import ConfigRepo
from opsflow.platforms import get
from tests.helpers import ROOT, Cli, by_step, free_port, wait_for, write_runbook

DATA = ROOT / "tests" / "data" / "platforms"
# platform → (device name, a read-only command, config lines making a nested change, a line the change adds)
SIMS: dict[str, tuple[str, str, list[str], str]] = {
    "cisco_ios": ("ios1", "show version", ["router bgp 65001", "address-family ipv4",
                                            "network 10.2.0.0 mask 255.255.255.0"], "network 10.2.0.0 mask 255.255.255.0"),
    "cisco_xe": ("xe1", "show version", ["interface GigabitEthernet1/0", "ip ospf cost 20"], "ip ospf cost 20"),
    "cisco_nxos": ("nx1", "show version", ["router bgp 65010", "neighbor 10.0.0.2", "address-family ipv4 unicast",
                                           "route-map PEER-OUT out"], "route-map PEER-OUT out"),
    "cisco_xr": ("xr1", "show version", ["router bgp 65100", "neighbor 10.0.0.2", "address-family ipv4 unicast",
                                         "route-policy DENY out"], "route-policy DENY out"),
    "arista_eos": ("eos1", "show version", ["router bgp 65001", "vrf blue", "neighbor 10.9.0.3 remote-as 65010"],
                   "neighbor 10.9.0.3 remote-as 65010"),
    "juniper_junos": ("vmx1", "show version | no-more", ["set protocols bgp group ext neighbor 10.0.0.3"],
                      "neighbor 10.0.0.3"),
    "fortinet": ("fgt1", "get system status", ["config router bgp", "config neighbor", 'edit "10.0.0.3"',
                                               "set remote-as 65003", "next", "end", "end"], "set remote-as 65003"),
    "paloalto_panos": ("fw1", "show system info", ["set rulebase security rules allow-web action deny"],
                       "action deny"),
    "mikrotik_routeros": ("mt1", "/system resource print", ["/ip route add dst-address=10.9.0.0/16 gateway=10.0.0.254"],
                          "add dst-address=10.9.0.0/16 gateway=10.0.0.254"),
    "aruba_aoscx": ("cx1", "show version", ["router bgp 65030", "address-family ipv4 unicast", "network 10.20.0.0/24",
                                            "exit-address-family", "exit"], "network 10.20.0.0/24"),
}
NAMES = {name: platform for platform, (name, *_rest) in SIMS.items()}
NATIVE_CHECK = {"cisco_xe", "cisco_nxos", "arista_eos", "juniper_junos"}  # --check shows the platform's own diff


@pytest.fixture(scope="session")
def sims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """One simulator process for all platforms; yields (inventory, state dir)."""
    import asyncssh

    base = tmp_path_factory.mktemp("sims")
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(base / "id_ed25519"))
    key.write_public_key(str(base / "id_ed25519.pub"))
    os.chmod(base / "id_ed25519", 0o600)
    devices = [{"name": name, "platform": platform, "port": free_port(), "config": str(DATA / f"{platform}.txt")}
               for platform, (name, *_rest) in SIMS.items()]
    (base / "devices.yaml").write_text(yaml.safe_dump({"authorized_keys": str(base / "id_ed25519.pub"),
                                                        "listen": "127.0.0.1", "devices": devices}))
    state = base / "state"
    log = (base / "simulator.log").open("w")
    proc = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "opsflow.lab.simulator", str(base / "devices.yaml"),
                             str(state)], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_for(lambda: (state / "ready").exists() or proc.poll() is not None, 20, "the simulator to listen")
        assert proc.poll() is None, (base / "simulator.log").read_text()
        hosts = {d["name"]: {"ansible_host": "127.0.0.1", "ansible_port": d["port"], "platform": d["platform"],
                             "show_cmd": SIMS[str(d["platform"])][1], "change": SIMS[str(d["platform"])][2]}
                 for d in devices}
        inv = {"all": {"vars": {"ansible_user": "admin", "ansible_ssh_private_key_file": str(base / "id_ed25519"),
                                "opsflow_known_hosts": str(state / "known_hosts")},
                       "children": {"sims": {"hosts": hosts}}}}
        (base / "inventory.yml").write_text(yaml.safe_dump(inv))
        yield base / "inventory.yml", state
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def statuses(run: dict[str, Any], step: str) -> dict[str, str]:
    return {host: r["status"] for (s, host), r in by_step(run).items() if s == step}


def test_every_platform_end_to_end(sims: tuple[Path, Path], tmp_path: Path) -> None:
    inventory, state = sims
    cli = Cli(home=tmp_path / "home", inventory=inventory)
    all_ok = {name: "ok" for name in NAMES}

    # one run: a show command of each platform; the first backup (a version each); an unknown command is an
    # error on every one
    cmd = write_runbook(tmp_path, "cmd", """\
        name: cmd
        targets: sims
        concurrency: 10
        steps:
          - name: show
            network.command: ["{{ show_cmd }}"]
          - name: backup
            network.backup:
          - name: bogus
            network.command: ["bogus-command now"]
    """)
    run = cli.run_json(str(cmd), rc=1)
    assert statuses(run, "show") == all_ok
    assert all(r["stdout"].strip() for (s, _), r in by_step(run).items() if s == "show")
    assert statuses(run, "backup") == {name: "changed" for name in NAMES}
    assert statuses(run, "bogus") == {name: "failed" for name in NAMES}

    # network.backup again, though every volatile line moved: no new version
    backup = write_runbook(tmp_path, "backup", """\
        name: backup
        targets: sims
        concurrency: 10
        steps:
          - name: backup
            network.backup:
    """)
    time.sleep(1.05)  # clocks in the banners move on
    assert statuses(cli.run_json(str(backup)), "backup") == all_ok

    # errors, configs cut short and dropped sessions are never stored
    for i, name in enumerate(NAMES):
        (state / f"{name}.fault").write_text(["error", "cut", "drop drop"][i % 3])  # a dropped session is retried
    faulty = write_runbook(tmp_path, "faulty", """\
        name: faulty
        targets: sims
        concurrency: 10
        steps:
          - name: backup
            timeout: 3
            network.backup:
    """)  # a dropped session is noticed when its read times out
    bad = cli.run_json(str(faulty), rc=1)
    assert set(statuses(bad, "backup").values()) <= {"failed", "unreachable", "timeout"}, \
        {h: (r["status"], r.get("error")) for (_, h), r in by_step(bad).items() if r["status"] == "ok"}
    listing = json.loads(cli.run("backup", "list", "--json", check_rc=0).stdout)
    assert {r["name"]: r.get("versions", 1) for r in listing} == dict.fromkeys(NAMES, 1), listing

    # network.config, one step for every platform (each host's lines from the inventory; a line rendered
    # empty is not sent): --check previews the nested change, changes nothing; then it is applied with a diff
    width = max(len(lines) for _n, _c, lines, _a in SIMS.values())
    lines = json.dumps([f"{{{{ change[{i}] | default('') }}}}" for i in range(width)])
    config = write_runbook(tmp_path, "config", f"""\
        name: config
        targets: sims
        concurrency: 10
        steps:
          - name: change
            network.config: {lines}
    """)
    before = {name: (state / f"{name}.cfg").read_text() for name in NAMES}
    dry = by_step(cli.run_json(str(config), "--check"))
    for name, platform in NAMES.items():
        assert SIMS[platform][3] in dry[("change", name)]["data"]["diff"], (name, dry[("change", name)])
        assert (state / f"{name}.cfg").read_text() == before[name]
    done = by_step(cli.run_json(str(config)))
    for name, platform in NAMES.items():
        r = done[("change", name)]
        assert r["status"] == "changed" and SIMS[platform][3] in r["data"]["diff"], (name, r)
        assert SIMS[platform][3] in (state / f"{name}.cfg").read_text()

    # the change is a new version with a diff
    again = by_step(cli.run_json(str(backup)))
    for name, platform in NAMES.items():
        assert again[("backup", name)]["data"]["new_version"], name
        assert SIMS[platform][3] in again[("backup", name)]["data"]["diff"], name

    # network.restore --check: what would change (the platform's own diff where it has one), nothing applied
    restore = write_runbook(tmp_path, "restore", """\
        name: restore
        targets: sims
        concurrency: 10
        steps:
          - name: restore
            network.restore: "~1"
    """)
    changed_state = {name: (state / f"{name}.cfg").read_text() for name in NAMES}
    check = by_step(cli.run_json(str(restore), "--check"))
    for name, platform in NAMES.items():
        r = check[("restore", name)]
        assert r["status"] == "ok" and r["data"]["check_mode"] and r["data"]["delta"], (name, r)
        if platform in NATIVE_CHECK:
            assert SIMS[platform][3].split()[-1] in r["data"]["diff"], (name, r)
        assert (state / f"{name}.cfg").read_text() == changed_state[name]

    # network.restore: each platform's mechanism brings the simulator's state back to the version
    restored = by_step(cli.run_json(str(restore)))
    repo = ConfigRepo(cli.home / "backups" / "network")
    for name, platform in NAMES.items():
        r = restored[("restore", name)]
        assert r["status"] == "changed", (name, r)
        p = get(platform)
        version = repo.read(repo.resolve(name, "~1"))
        assert p.same((state / f"{name}.cfg").read_text(), version), name  # salted secrets aside
    assert cli.run("backup", "show", "ios1", "~1", check_rc=0).stdout == repo.read(repo.resolve("ios1", "~1"))
    assert statuses(cli.run_json(str(restore), "--check"), "restore") == all_ok
