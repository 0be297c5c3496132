"""The local lab against real OpenSSH, FRR and Netmiko (needs root; see conftest.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from opsflow.cli.lab import lab as lab_cli
from opsflow.errors import EnvironmentProblem, LabError
from opsflow.lab import HostStatus, Lab, files, plan, preflight
from opsflow.lab.net import NETNS_DIR

pytestmark = pytest.mark.lab

SERVERS = ["srv1", "srv2", "srv3", "srv4"]
ROUTERS = ["rtr1", "rtr2"]


def ssh(lab: Lab, host: str, command: str, *options: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(lab.ssh_config), *options, host, command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def netmiko_router(lab: Lab, host: str):  # type: ignore[no-untyped-def]
    from netmiko import ConnectHandler

    return ConnectHandler(
        device_type="cisco_ios",
        host=lab.address(host),
        username="admin",
        use_keys=True,
        key_file=str(lab.private_key),
        allow_agent=False,
        ssh_strict=True,
        system_host_keys=False,
        alt_host_keys=True,
        alt_key_file=str(lab.known_hosts),
        conn_timeout=10,
    )


def wait_for(condition: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def by_name(statuses: list[HostStatus]) -> dict[str, HostStatus]:
    return {s.name: s for s in statuses}


# -- what up wrote ---------------------------------------------------------------------


def test_inventory_ssh_config_and_known_hosts(lab: Lab, lab_inventory: Path) -> None:
    inv = yaml.safe_load(lab_inventory.read_text())["all"]
    assert inv["vars"]["ansible_ssh_private_key_file"] == str(lab.private_key)
    assert inv["vars"]["opsflow_known_hosts"] == str(lab.known_hosts)
    servers, routers = inv["children"]["servers"], inv["children"]["routers"]
    assert servers["vars"] == {"ansible_user": "root", "platform": "linux", "ansible_python_interpreter": "/usr/bin/python3"}
    assert routers["vars"] == {"ansible_user": "admin", "platform": "frr"}
    assert list(servers["hosts"]) == SERVERS and list(routers["hosts"]) == ROUTERS
    assert servers["hosts"]["srv1"]["ansible_host"] == lab.address("srv1")
    assert lab.hosts() == SERVERS + ROUTERS

    known = lab.known_hosts.read_text().split("\n")
    assert {line.split()[0] for line in known if line} == {lab.address(h) for h in lab.hosts()}
    config = lab.ssh_config.read_text()
    for option in ("StrictHostKeyChecking yes", "KexAlgorithms curve25519-sha256", "ServerAliveInterval 2",
                   "ServerAliveCountMax 3", "ConnectTimeout 5", f"UserKnownHostsFile {lab.known_hosts}"):
        assert option in config
    for path in lab.state_dir.rglob("*"):
        if path.is_file() and path.suffix in ("", ".yml", ".json") and "upper" not in path.parts:
            assert "StrictHostKeyChecking no" not in path.read_text(errors="replace"), path
    assert lab.private_key.stat().st_mode & 0o077 == 0
    state = json.loads((lab.state_dir / "state.json").read_text())
    assert state["name"] == lab.name and state["phase"] == "up" and state["subnet"].startswith("10.250.")


# -- servers ---------------------------------------------------------------------------


def test_ssh_with_host_key_checking_to_each_server(lab: Lab) -> None:
    with ThreadPoolExecutor(len(SERVERS)) as pool:
        results = list(pool.map(lambda h: ssh(lab, h, "hostname; id -un"), SERVERS))
    for host, out in zip(SERVERS, results, strict=True):
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [host, "root"]
    # by address too (what Ansible does with ansible_host)
    out = ssh(lab, f"root@{lab.address('srv2')}", "hostname")
    assert out.returncode == 0 and out.stdout.strip() == "srv2"


def test_changed_or_unknown_host_key_is_refused(lab: Lab, tmp_path: Path) -> None:
    keys = {line.split()[0]: line.split(maxsplit=1)[1] for line in lab.known_hosts.read_text().splitlines()}
    wrong = tmp_path / "known_hosts_wrong"
    wrong.write_text(f"{lab.address('srv1')} {keys[lab.address('srv2')]}\n")  # srv2's key for srv1's address
    out = ssh(lab, "srv1", "true", "-o", f"UserKnownHostsFile={wrong}")
    assert out.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in out.stderr or "Host key verification failed" in out.stderr

    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    out = ssh(lab, "srv1", "true", "-o", f"UserKnownHostsFile={empty}")
    assert out.returncode == 255 and "Host key verification failed" in out.stderr


def test_each_server_has_a_private_filesystem(lab: Lab) -> None:
    token = f"opsflow-lab-{uuid.uuid4().hex}"
    write = f"echo {token} > /srv/{token} && echo {token} > /etc/{token} && echo {token} > /tmp/{token} && cat /srv/{token}"
    out = ssh(lab, "srv1", write)
    assert out.returncode == 0 and out.stdout.strip() == token, out.stderr
    assert lab.exec("srv1", ["cat", f"/etc/{token}"]).stdout.strip() == token
    for where in ("srv", "etc", "tmp"):
        assert not Path(f"/{where}/{token}").exists(), f"/{where} of srv1 leaked to the machine"
        assert ssh(lab, "srv2", f"test ! -e /{where}/{token}").returncode == 0, f"/{where} of srv1 leaked to srv2"
    lab.exec("srv1", ["rm", "-f", f"/srv/{token}", f"/etc/{token}", f"/tmp/{token}"])


def test_host_identity_and_sysvinit(lab: Lab) -> None:
    out = lab.exec("srv3", ["sh", "-c", "hostname; cat /etc/hostname; readlink /sbin/init; ls -A /root; cat"],
                   input="stdin-ok\n")
    assert out.returncode == 0, out.stderr
    hostname, etc_hostname, init, *rest = out.stdout.split()
    assert (hostname, etc_hostname, init) == ("srv3", "srv3", "/run/ofl/init")
    assert ".pyenv" not in rest and rest[-1] == "stdin-ok"  # a fresh /root, not the machine's
    service = lab.exec("srv3", ["service", "ssh", "status"])
    assert service.returncode == 0 and "sshd is running" in service.stdout


# -- routers ---------------------------------------------------------------------------


def test_netmiko_show_running_config_on_each_router(lab: Lab) -> None:
    for router in ROUTERS:
        conn = netmiko_router(lab, router)
        try:
            assert conn.find_prompt() == f"{router}#"
            config = conn.send_command("show running-config")
        finally:
            conn.disconnect()
        assert f"hostname {router}" in config
        assert "router ospf" in config and f"ospf router-id {lab.address(router)}" in config


def test_netmiko_refuses_an_unknown_router_key(lab: Lab, tmp_path: Path) -> None:
    from netmiko import ConnectHandler
    from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException
    from paramiko.ssh_exception import SSHException

    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises((SSHException, NetmikoTimeoutException, NetmikoAuthenticationException, ValueError)):
        ConnectHandler(
            device_type="cisco_ios", host=lab.address("rtr1"), username="admin", use_keys=True,
            key_file=str(lab.private_key), allow_agent=False, ssh_strict=True, system_host_keys=False,
            alt_host_keys=True, alt_key_file=str(empty), conn_timeout=5,
        )  # fmt: skip


def test_saved_config_survives_frr_restart(lab: Lab) -> None:
    route = "ip route 198.51.100.0/24 Null0"
    conn = netmiko_router(lab, "rtr2")
    try:
        conn.send_config_set([route], error_pattern=r"% (Unknown|Invalid|Ambiguous|Incomplete)")
        assert "[OK]" in conn.save_config()
    finally:
        conn.disconnect()
    assert route in lab.exec("rtr2", ["cat", "/etc/frr/frr.conf"]).stdout
    assert route not in Path("/etc/frr/frr.conf").read_text()  # the machine's FRR config is untouched

    lab.restart_frr("rtr2")
    running = lab.exec("rtr2", ["vtysh", "-c", "show running-config"])
    assert route in running.stdout
    conn = netmiko_router(lab, "rtr2")
    try:
        assert route in conn.send_command("show running-config")
        conn.send_config_set([f"no {route}"])
        conn.save_config()
    finally:
        conn.disconnect()


def test_ospf_adjacency_comes_up(lab: Lab) -> None:
    def full() -> bool:
        return all(s.adjacency for s in lab.status() if s.kind == "router")

    assert wait_for(full, timeout=30, step=0.5), lab.exec("rtr1", ["vtysh", "-c", "show ip ospf neighbor"]).stdout
    neighbours = lab.exec("rtr1", ["vtysh", "-c", "show ip ospf neighbor"]).stdout
    assert lab.address("rtr2") in neighbours and "Full" in neighbours


# -- status and faults -------------------------------------------------------------------


def test_status_and_cli_json(lab: Lab) -> None:
    statuses = by_name(lab.status())
    assert list(statuses) == SERVERS + ROUTERS
    for name, s in statuses.items():
        assert s.up and s.ssh, s
        assert s.kind == ("server" if name.startswith("srv") else "router")
        assert (s.adjacency is None) == (s.kind == "server")
    result = CliRunner().invoke(lab_cli, ["status", "--json", "--state-dir", str(lab.state_dir)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["name"] for r in rows] == SERVERS + ROUTERS
    assert set(rows[0]) >= {"name", "kind", "address", "up", "ssh", "adjacency"}
    table = CliRunner().invoke(lab_cli, ["status", "--state-dir", str(lab.state_dir)])
    assert table.exit_code == 0 and table.output.split("\n")[0].split()[:6] == [
        "HOST", "KIND", "ADDRESS", "UP", "SSH", "ADJACENCY"]  # fmt: skip


def test_fault_down_then_up(lab: Lab) -> None:
    lab.fault("srv3", "down")
    try:
        out = ssh(lab, "srv3", "true", "-o", "ConnectTimeout=1")
        assert out.returncode == 255
        srv3 = by_name(lab.status())["srv3"]
        assert srv3.up and not srv3.ssh and srv3.fault == "down"
        assert ssh(lab, "srv4", "true").returncode == 0  # only srv3 is cut off
    finally:
        lab.fault("srv3", "up")
    out = ssh(lab, "srv3", "hostname")
    assert out.returncode == 0 and out.stdout.strip() == "srv3"
    assert by_name(lab.status())["srv3"].fault is None


def test_fault_drop_times_out_and_reject_is_refused(lab: Lab) -> None:
    address = lab.address("srv4")
    lab.fault("srv4", "drop")
    try:
        with pytest.raises(TimeoutError):
            socket.create_connection((address, 22), timeout=1.0)
        lab.fault("srv4", "reject")
        start = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, 22), timeout=5.0)
        assert time.monotonic() - start < 0.5
    finally:
        lab.fault("srv4", "up")
    with socket.create_connection((address, 22), timeout=2.0) as sock:
        assert sock.recv(64).startswith(b"SSH-")


def test_fault_on_unknown_host_is_a_lab_error(lab: Lab) -> None:
    with pytest.raises(LabError, match="no host 'srv99'"):
        lab.fault("srv99", "down")


def test_up_again_same_shape_is_a_no_op_other_shape_refused(lab: Lab) -> None:
    pids = [h["pid"] for h in json.loads((lab.state_dir / "state.json").read_text())["hosts"]]
    lab.up(servers=4, routers=2)
    assert [h["pid"] for h in json.loads((lab.state_dir / "state.json").read_text())["hosts"]] == pids
    with pytest.raises(LabError, match="already up"):
        lab.up(servers=5, routers=2)


# -- lifecycle of other labs ---------------------------------------------------------------


def _lab_pids(lab: Lab) -> list[int]:
    netns = {os.stat(NETNS_DIR / f"ofl-{lab.name}-{h}").st_ino for h in lab.hosts()}
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino in netns:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _assert_gone(lab: Lab, pids: list[int]) -> None:
    assert not [n for n in os.listdir(NETNS_DIR) if plan.netns_re(lab.name).fullmatch(n)]
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout)
    names = {link["ifname"] for link in links}
    assert plan.bridge_name(lab.name) not in names
    assert not [n for n in names if plan.veth_re(lab.name).fullmatch(n)]
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
    assert str(lab.state_dir) not in Path("/proc/self/mountinfo").read_text()
    assert not lab.state_dir.exists()


def _throwaway_name() -> str:
    return f"tdown-{os.getpid()}"  # unique: test sessions may run side by side


def test_down_leaves_no_namespace_or_process(tmp_path: Path) -> None:
    small = Lab(tmp_path / "down-lab", name=_throwaway_name())
    small.up(servers=1, routers=1)
    pids = _lab_pids(small)
    assert len(pids) >= 6  # init + sleep + sshd on each, FRR daemons on the router
    small.down()
    _assert_gone(small, pids)
    small.down()  # idempotent

    # after a "crash" that lost the state file, down still finds everything by name
    small.up(servers=1, routers=0)
    pids = _lab_pids(small)
    (small.state_dir / "state.json").unlink()
    small.down()
    _assert_gone(small, pids)


def test_failed_up_removes_what_it_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "SSHD_CONFIG", files.SSHD_CONFIG + "NoSuchSshdOption yes\n")
    broken = Lab(tmp_path / "broken-lab", name=_throwaway_name())
    with pytest.raises(LabError, match=r"sshd did not start") as err:
        broken.up(servers=1, routers=0)
    assert "srv1" in str(err.value) and "removed" in str(err.value)
    _assert_gone(broken, [])


def test_missing_packages_give_the_exact_fix() -> None:
    with pytest.raises(EnvironmentProblem) as err:
        preflight.find_tools(lookup=lambda tool, _path: None if tool in ("vtysh", "nft") else f"/usr/bin/{tool}")
    assert "apt-get install -y openssh-server frr iproute2 nftables" in str(err.value)
    assert "vtysh (frr)" in str(err.value) and "nft (nftables)" in str(err.value)
