"""The baselines a user would write instead of opsflow: minimal scripts, one per tool.

``python -m bench.drivers KIND --hosts FILE --user U --key K --known-hosts KH [-P N] [--cmd CMD]``

KIND is one of ``paramiko``, ``asyncssh``, ``nornir-paramiko`` (plain Nornir, threaded
runner, a netmiko-free task), ``netmiko-loop`` (sequential), ``netmiko-pool`` (threads)
and ``nornir-netmiko``; or, for device backups (``--repo DIR``), ``netmiko-backup`` (thread
pool) and ``nornir-backup`` (Nornir + nornir-netmiko): ``show running-config``, the file
``DIR/<device>.cfg`` written, and a git commit for each device whose file changed.
FILE has one ``name address`` per line. Host keys are checked against KH everywhere.
Prints one JSON line ``{"ok": n, "failed": {...}, "changed": k}`` and exits 0 only when
every host answered (rc 0 for commands, a non-empty output for devices, a configuration
for backups). Each script is as plain as the tool's documentation suggests: no tuning
beyond opsflow's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

Hosts = list[tuple[str, str]]


def read_hosts(path: str) -> Hosts:
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            name, addr = line.split()[:2]
            out.append((name, addr))
    return out


# ---- servers: run a command -----------------------------------------------------------

def paramiko_exec(addr: str, a: argparse.Namespace) -> str | None:
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(a.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(addr, username=a.user, key_filename=a.key, allow_agent=False, look_for_keys=False,
                       timeout=10, banner_timeout=10, auth_timeout=10)
        _, stdout, _ = client.exec_command(a.cmd)
        rc = stdout.channel.recv_exit_status()
        return None if rc == 0 else f"rc {rc}"
    finally:
        client.close()


def run_paramiko(hosts: Hosts, a: argparse.Namespace) -> dict[str, str]:
    return _pool(hosts, a.parallel, lambda addr: paramiko_exec(addr, a))


def run_asyncssh(hosts: Hosts, a: argparse.Namespace) -> dict[str, str]:
    import asyncio

    import asyncssh

    async def one(sem: asyncio.Semaphore, name: str, addr: str) -> tuple[str, str | None]:
        async with sem:
            try:
                async with asyncssh.connect(addr, username=a.user, client_keys=[a.key], known_hosts=a.known_hosts,
                                            agent_path=None, connect_timeout=10) as conn:
                    res = await conn.run(a.cmd, check=False)
                    return name, None if res.exit_status == 0 else f"rc {res.exit_status}"
            except (OSError, asyncssh.Error) as exc:
                return name, f"{type(exc).__name__}: {exc}"

    async def main() -> dict[str, str]:
        sem = asyncio.Semaphore(a.parallel)
        results = await asyncio.gather(*(one(sem, n, ad) for n, ad in hosts))
        return {n: e for n, e in results if e}

    return asyncio.run(main())


def _nornir(hosts: Hosts, a: argparse.Namespace, platform: str | None, extras: dict[str, Any] | None) -> Any:
    from nornir.core import Nornir
    from nornir.core.inventory import ConnectionOptions, Defaults, Groups, Host, Inventory
    from nornir.core.inventory import Hosts as NHosts
    from nornir.plugins.runners import ThreadedRunner

    nh = NHosts()
    for name, addr in hosts:
        opts = {"netmiko": ConnectionOptions(extras=extras)} if extras is not None else {}
        nh[name] = Host(name=name, hostname=addr, username=a.user, platform=platform, connection_options=opts)
    nr = Nornir(inventory=Inventory(hosts=nh, groups=Groups(), defaults=Defaults()),
                runner=ThreadedRunner(num_workers=a.parallel))
    nr.config.ssh.config_file = "/dev/null"
    return nr


def _nornir_failures(result: Any) -> dict[str, str]:
    return {h: str(r.exception or r.result)[:300] for h, r in result.items() if r.failed}


def run_nornir_paramiko(hosts: Hosts, a: argparse.Namespace) -> dict[str, str]:
    from nornir.core.task import Result, Task

    def task(t: Task) -> Result:
        err = paramiko_exec(str(t.host.hostname), a)
        return Result(host=t.host, result=err, failed=err is not None)

    return _nornir_failures(_nornir(hosts, a, None, None).run(task=task))


# ---- devices: a show command ----------------------------------------------------------

def _netmiko_params(addr: str, a: argparse.Namespace) -> dict[str, Any]:
    return {"device_type": "cisco_ios", "host": addr, "username": a.user, "use_keys": True, "key_file": a.key,
            "allow_agent": False, **_netmiko_extras(a)}


def _netmiko_extras(a: argparse.Namespace) -> dict[str, Any]:
    return {"ssh_strict": True, "system_host_keys": False, "alt_host_keys": True, "alt_key_file": a.known_hosts}


def netmiko_show(addr: str, a: argparse.Namespace) -> str | None:
    from netmiko import ConnectHandler

    conn = ConnectHandler(**_netmiko_params(addr, a))
    try:
        out = str(conn.send_command(a.cmd))
    finally:
        conn.disconnect()
    return None if out.strip() and not out.lstrip().startswith("%") else f"unexpected output {out[:100]!r}"


def run_netmiko_loop(hosts: Hosts, a: argparse.Namespace) -> dict[str, str]:
    failed = {}
    for name, addr in hosts:
        try:
            err = netmiko_show(addr, a)
        except Exception as exc:  # noqa: BLE001 - reported, the loop goes on
            err = f"{type(exc).__name__}: {exc}"
        if err:
            failed[name] = err
    return failed


def run_netmiko_pool(hosts: Hosts, a: argparse.Namespace) -> dict[str, str]:
    return _pool(hosts, a.parallel, lambda addr: netmiko_show(addr, a))


def run_nornir_netmiko(hosts: Hosts, a: argparse.Namespace) -> dict[str, str]:
    from nornir.core.plugins.connections import ConnectionPluginRegister
    from nornir_netmiko.connections import Netmiko
    from nornir_netmiko.tasks import netmiko_send_command

    if "netmiko" not in ConnectionPluginRegister.available:
        ConnectionPluginRegister.register("netmiko", Netmiko)
    extras = {**_netmiko_extras(a), "use_keys": True, "key_file": a.key, "allow_agent": False}
    nr = _nornir([(n, ad) for n, ad in hosts], a, "cisco_ios", extras)
    try:
        result = nr.run(task=netmiko_send_command, command_string=a.cmd)
    finally:
        nr.close_connections()
    failed = _nornir_failures(result)
    for h, r in result.items():
        if h not in failed and not str(r.result).strip():
            failed[h] = "empty output"
    return failed


# ---- devices: backups of the running config into a git repository ------------------------

_git_lock = threading.Lock()  # one git index: commits one at a time
_changed: list[str] = []


def _git(repo: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", repo, "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                           "-c", "commit.gpgsign=false", *args], capture_output=True, text=True)


def save_config(repo: str, name: str, text: str) -> str | None:
    """Write DIR/<name>.cfg; commit it when it changed. None when stored, else why not."""
    if "hostname" not in text or not text.rstrip().endswith("end"):
        return f"not a configuration: {text[:100]!r}"
    with _git_lock:
        (Path(repo) / f"{name}.cfg").write_text(text)
        if _git(repo, "add", "--", f"{name}.cfg").returncode != 0:
            return "git add failed"
        if _git(repo, "diff", "--cached", "--quiet", "--", f"{name}.cfg").returncode == 0:
            return None  # unchanged: no new version
        proc = _git(repo, "commit", "-q", "-m", f"{name}: backup", "--", f"{name}.cfg")
        if proc.returncode != 0:
            return f"git commit failed: {proc.stderr.strip()[:200]}"
        _changed.append(name)
    return None


def _init_repo(repo: str) -> None:
    if not (Path(repo) / ".git").is_dir():
        Path(repo).mkdir(parents=True, exist_ok=True)
        _git(repo, "init", "-q")


def netmiko_backup(name: str, addr: str, a: argparse.Namespace) -> str | None:
    from netmiko import ConnectHandler

    conn = ConnectHandler(**_netmiko_params(addr, a))
    try:
        out = str(conn.send_command(a.cmd))
    finally:
        conn.disconnect()
    return save_config(a.repo, name, out)


def run_netmiko_backup(hosts: Hosts, a: argparse.Namespace) -> dict[str, str]:
    _init_repo(a.repo)
    addr_of = {addr: name for name, addr in hosts}
    return _pool(hosts, a.parallel, lambda addr: netmiko_backup(addr_of[addr], addr, a))


def run_nornir_backup(hosts: Hosts, a: argparse.Namespace) -> dict[str, str]:
    from nornir.core.plugins.connections import ConnectionPluginRegister
    from nornir.core.task import Result, Task
    from nornir_netmiko.connections import Netmiko
    from nornir_netmiko.tasks import netmiko_send_command

    if "netmiko" not in ConnectionPluginRegister.available:
        ConnectionPluginRegister.register("netmiko", Netmiko)
    _init_repo(a.repo)

    def backup(t: Task) -> Result:
        out = t.run(task=netmiko_send_command, command_string=a.cmd)
        err = save_config(a.repo, t.host.name, str(out.result))
        return Result(host=t.host, result=err, failed=err is not None)

    extras = {**_netmiko_extras(a), "use_keys": True, "key_file": a.key, "allow_agent": False}
    nr = _nornir(hosts, a, "cisco_ios", extras)
    try:
        result = nr.run(task=backup)
    finally:
        nr.close_connections()
    return _nornir_failures(result)


# ---- plumbing -------------------------------------------------------------------------

def _pool(hosts: Hosts, parallel: int, fn: Callable[[str], str | None]) -> dict[str, str]:
    def one(h: tuple[str, str]) -> tuple[str, str | None]:
        try:
            return h[0], fn(h[1])
        except Exception as exc:  # noqa: BLE001 - reported per host
            return h[0], f"{type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(hosts)))) as pool:
        return {n: e for n, e in pool.map(one, hosts) if e}


KINDS: dict[str, Callable[[Hosts, argparse.Namespace], dict[str, str]]] = {
    "paramiko": run_paramiko,
    "asyncssh": run_asyncssh,
    "nornir-paramiko": run_nornir_paramiko,
    "netmiko-loop": run_netmiko_loop,
    "netmiko-pool": run_netmiko_pool,
    "nornir-netmiko": run_nornir_netmiko,
    "netmiko-backup": run_netmiko_backup,
    "nornir-backup": run_nornir_backup,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.drivers")
    p.add_argument("kind", choices=sorted(KINDS))
    p.add_argument("--hosts", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--known-hosts", required=True)
    p.add_argument("-P", "--parallel", type=int, default=20)
    p.add_argument("--cmd", default="true")
    p.add_argument("--repo", default=None, help="git repository of the backups (netmiko-backup, nornir-backup)")
    a = p.parse_args(argv)
    if a.kind.endswith("-backup") and not a.repo:
        p.error(f"{a.kind} needs --repo DIR")
    hosts = read_hosts(a.hosts)
    failed = KINDS[a.kind](hosts, a)
    print(json.dumps({"ok": len(hosts) - len(failed), "failed": failed, "changed": len(_changed)}))
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
