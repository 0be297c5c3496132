"""The :class:`Lab`: bring a lab of hosts up, inspect it, inject faults, take it down."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from opsflow.errors import LabError
from opsflow.lab import files, preflight
from opsflow.lab.net import NETNS_DIR, Net
from opsflow.lab.plan import (
    HostRecord,
    LabState,
    check_name,
    check_shape,
    check_state_dir,
    choose_subnet,
    plan,
    read_state,
    write_state,
)
from opsflow.lab.proc import (
    alive,
    children,
    kill,
    kill_tree,
    memory_kib,
    netns_inode,
    pids_by_netns,
    run,
    spawn,
    start_time,
)

FaultMode = Literal["down", "drop", "reject", "up"]
FAULT_MODES: tuple[str, ...] = ("down", "drop", "reject", "up")
CHILD_ENV = {"PATH": preflight.SEARCH_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb"}
FRRINIT = "/usr/lib/frr/frrinit.sh"
# Files of a lab in its state dir, removed by `down` (the dir itself too when then empty).
LAB_FILES = ("state.json", "inventory.yml", "known_hosts", "ssh_config", "id_ed25519", "id_ed25519.pub")


@dataclass
class HostStatus:
    name: str
    kind: Literal["server", "router"]
    address: str
    up: bool  # namespace present and the host's init alive
    ssh: bool  # TCP 22 answered with an SSH banner within ~1 s
    adjacency: bool | None  # routers: an OSPF neighbour is Full; servers: None
    fault: str | None = None  # the fault injected with `fault` (down/drop/reject), if any


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def ssh_banner(address: str, timeout: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((address, 22), timeout=timeout) as sock:
            data = b""
            while b"\n" not in data and len(data) < 256:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            return data.startswith(b"SSH-")
    except OSError:
        return False


def ospf_full(vtysh_json: str) -> bool:
    try:
        data = json.loads(vtysh_json)
    except ValueError:
        return False
    neighbours = data.get("neighbors", {}) if isinstance(data, dict) else {}
    for entries in neighbours.values():
        for n in entries if isinstance(entries, list) else [entries]:
            state = str(n.get("state") or n.get("nbrState") or "")
            if state.startswith("Full"):
                return True
    return False


class Lab:
    """A lab of real OpenSSH servers and FRR routers in namespaces of this machine (see the package doc)."""

    def __init__(self, state_dir: str | Path, name: str = "lab") -> None:
        self.state_dir = Path(state_dir).expanduser().resolve()
        self.name = check_name(name)
        self.inventory_path = self.state_dir / "inventory.yml"
        self.known_hosts = self.state_dir / "known_hosts"
        self.ssh_config = self.state_dir / "ssh_config"
        self.private_key = self.state_dir / "id_ed25519"
        self.state_path = self.state_dir / "state.json"
        self._tools: dict[str, str] | None = None

    def __repr__(self) -> str:
        return f"Lab({str(self.state_dir)!r}, name={self.name!r})"

    # -- plumbing --------------------------------------------------------------------

    @property
    def tools(self) -> dict[str, str]:
        if self._tools is None:
            self._tools = preflight.check()
        return self._tools

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def _state(self) -> LabState | None:
        state = read_state(self.state_path)
        if state is not None and state.name != self.name:
            raise LabError(
                f"{self.state_dir} holds lab {state.name!r}, not {self.name!r}: "
                f"use --name {state.name} or another --state-dir"
            )
        return state

    def _running(self) -> LabState:
        state = self._state()
        if state is None:
            raise LabError(f"no lab in {self.state_dir} (start one with: opsflow lab up --state-dir {self.state_dir})")
        return state

    def _hostdir(self, host: str) -> Path:
        return self.state_dir / "hosts" / host

    @staticmethod
    def _host_alive(h: HostRecord) -> bool:
        return (NETNS_DIR / h.netns).exists() and alive(h.pid, h.pid_start) and alive(h.init_pid, h.init_start)

    # -- the API ----------------------------------------------------------------------

    def hosts(self) -> list[str]:
        state = self._state()
        return [h.name for h in state.hosts] if state else []

    def address(self, host: str) -> str:
        return self._running().host(host).address

    def up(self, servers: int = 2, routers: int = 2, progress: Callable[[str], None] | None = None) -> None:
        say = progress or (lambda _msg: None)
        self.tools  # noqa: B018 - root and packages first: the clearest error
        check_state_dir(self.state_dir)
        check_shape(servers, routers)
        t0 = time.monotonic()
        try:
            self._up(servers, routers, say, t0)
        finally:
            self._tidy_dir()  # a refused or failed up leaves no empty state dir behind

    def _up(self, servers: int, routers: int, say: Callable[[str], None], t0: float) -> None:
        tools = self.tools
        with self._lock():
            old = self._state()
            if old is not None:
                dead = [h.name for h in old.hosts if not self._host_alive(h)]
                if old.phase == "up" and not dead:
                    if (old.servers, old.routers) == (servers, routers):
                        say(f"lab {self.name} is already up ({_count(servers, 'server')}, {_count(routers, 'router')}) in {self.state_dir}")
                        return
                    raise LabError(
                        f"lab {self.name!r} is already up in {self.state_dir} with {old.servers} servers and "
                        f"{old.routers} routers; take it down first (opsflow lab down --state-dir {self.state_dir})"
                    )
                if old.phase == "up" and len(dead) < len(old.hosts):
                    say(f"lab {self.name} is only partly running (down: {', '.join(dead[:10])}): starting it afresh")
                else:
                    say(f"removing the remains of lab {self.name} (not running)")
                self._teardown(old)
            net = Net(tools)
            self._sweep(net, say, strict=True)
            self._remove_files()
            state = plan(self.name, self.state_dir, choose_subnet(self.name, net.networks_in_use()), servers, routers)
            self._mount_hosts_dir()
            write_state(self.state_path, state)  # before anything exists: a crash leaves a record for `down`
            try:
                self._build(state, net, say, t0)
            except BaseException as exc:
                with contextlib.suppress(Exception):  # the progress callback may be what failed
                    say(f"up failed ({exc}); removing what it created")
                cleanup = ""
                try:
                    self._teardown(state)
                except Exception as td:  # report both; never hide the first error
                    cleanup = f"; cleaning up also failed: {td} (run `opsflow lab down --state-dir {self.state_dir}`)"
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                detail = str(exc) if isinstance(exc, LabError) else f"{type(exc).__name__}: {exc}"
                raise LabError(
                    f"lab up failed: {detail}{cleanup or ' (everything it had created was removed)'}"
                ) from exc

    def _build(self, state: LabState, net: Net, say: Callable[[str], None], t0: float) -> None:
        tools = self.tools
        say(
            f"lab {state.name}: {_count(state.servers, 'server')}, {_count(state.routers, 'router')} on {state.subnet} "
            f"(bridge {state.bridge}, state {self.state_dir})"
        )
        client_priv, client_pub = files.ed25519_keypair(f"opsflow-lab-{state.name}", tools["ssh-keygen"])
        files.write_file(self.private_key, client_priv, 0o600)
        files.write_file(self.private_key.with_suffix(".pub"), client_pub + "\n")
        host_pub: dict[str, str] = {}
        for h in state.hosts:
            priv, pub = files.ed25519_keypair(f"{h.name}@opsflow-lab-{state.name}", tools["ssh-keygen"])
            host_pub[h.name] = pub
            files.write_host(state, h, self._hostdir(h.name), client_pub, (priv, pub))
        say(f"keys and host configs written ({time.monotonic() - t0:.2f} s)")

        net.create(state)
        say(f"network: bridge {state.bridge} {state.gateway}, {len(state.hosts)} namespaces ({time.monotonic() - t0:.2f} s)")

        for h in state.hosts:
            hostdir = self._hostdir(h.name)
            argv = [
                tools["nsenter"], f"--net={NETNS_DIR / h.netns}",
                tools["unshare"], "--mount", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc",
                "--propagation", "private", str(hostdir / "init"),
            ]  # fmt: skip
            h.pid = spawn(argv, hostdir / "init.log", CHILD_ENV)
            h.pid_start = start_time(h.pid)
        write_state(self.state_path, state)
        say(f"{len(state.hosts)} hosts starting ({time.monotonic() - t0:.2f} s)")

        self._wait_ready(state, say, t0)
        for h in state.hosts:
            kids = children(h.pid or 0)
            h.init_pid = kids[0] if kids else None
            h.init_start = start_time(h.init_pid) if h.init_pid else None

        # A host is ready once its sshd wrote its pid file (after binding its address). One server and
        # one router must also answer a real SSH banner from here (a connection costs each sshd a
        # fork and re-exec: too dear to do for a fleet of 200).
        sample = [h for h in state.hosts if h.name in ("srv1", "rtr1")]
        banners = self._parallel(lambda h: self._await_ssh(h.address, 10.0), sample)
        silent = [h.name for h, ok in zip(sample, banners, strict=True) if not ok]
        if silent:
            raise LabError(f"sshd does not answer from this machine on {', '.join(silent)} (lab bridge {state.bridge})")

        files.write_file(self.known_hosts, files.known_hosts(state, host_pub))
        files.write_file(self.ssh_config, files.ssh_config(state, self.private_key, self.known_hosts))
        files.write_file(self.inventory_path, files.inventory(state, self.private_key, self.known_hosts))
        state.phase = "up"
        state.up_seconds = round(time.monotonic() - t0, 3)
        nprocs, rss, pss = memory_kib(self._lab_pids(state))
        state.memory = {"processes": nprocs, "rss_kib": rss, "pss_kib": pss}
        write_state(self.state_path, state)
        say(
            f"up in {state.up_seconds:.2f} s: {_count(state.servers, 'server')}, {_count(state.routers, 'router')}; memory: "
            f"{nprocs} processes, RSS sum {rss / 1024:.1f} MiB (PSS {pss / 1024:.1f} MiB)"
        )

    def _wait_ready(self, state: LabState, say: Callable[[str], None], t0: float) -> None:
        timeout = 30 + 0.25 * len(state.hosts)
        deadline = time.monotonic() + timeout
        pending = {h.name: h for h in state.hosts}
        last_report = last_alive_check = time.monotonic()
        while pending:
            check_alive = time.monotonic() - last_alive_check > 0.5
            for name, h in list(pending.items()):
                hostdir = self._hostdir(name)
                failed = hostdir / "failed"
                if failed.exists():
                    raise LabError(f"host {name}: {failed.read_text().strip()}{self._log_tail(hostdir)}")
                if (hostdir / "ready").exists():
                    del pending[name]
                elif check_alive and not alive(h.pid, h.pid_start):
                    raise LabError(f"host {name}: its init exited before it was ready{self._log_tail(hostdir)}")
            if check_alive:
                last_alive_check = time.monotonic()
            if not pending:
                break
            now = time.monotonic()
            if now > deadline:
                names = ", ".join(sorted(pending)[:10])
                raise LabError(f"hosts not ready after {timeout:.0f} s: {names}")
            if now - last_report >= 2:
                done = len(state.hosts) - len(pending)
                say(f"  {done}/{len(state.hosts)} hosts ready ({now - t0:.1f} s)")
                last_report = now
            time.sleep(0.02)
        say(f"{len(state.hosts)} hosts ready: sshd on each, FRR and vtysh on routers ({time.monotonic() - t0:.2f} s)")

    @staticmethod
    def _log_tail(hostdir: Path) -> str:
        try:
            lines = (hostdir / "init.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return f" (init.log: {' | '.join(lines[-3:])})" if lines else ""

    @staticmethod
    def _await_ssh(address: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if ssh_banner(address, 1.0):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    @staticmethod
    def _parallel(fn: Callable[[HostRecord], bool], hosts: list[HostRecord]) -> list[bool]:
        if not hosts:
            return []
        with ThreadPoolExecutor(max_workers=min(64, len(hosts))) as pool:
            return list(pool.map(fn, hosts))

    def _lab_pids(self, state: LabState) -> list[int]:
        spaces = {}
        for h in state.hosts:
            key = netns_inode(NETNS_DIR / h.netns)
            if key is not None:
                spaces[key] = h.netns
        return [pid for pids in pids_by_netns(spaces).values() for pid in pids]

    # -- down ---------------------------------------------------------------------------

    def down(self) -> None:
        tools = self.tools
        with self._lock():
            try:
                state = self._state()
            except LabError as exc:
                if self.state_path.exists() and "holds lab" in str(exc):
                    raise
                state = None  # unreadable state: fall back to finding leftovers by name
            if state is not None:
                self._teardown(state)
            self._sweep(Net(tools), lambda _msg: None, strict=False)
            self._remove_files()
            self._tidy_dir()

    def _tidy_dir(self) -> None:
        """Remove the lock file and the state dir itself when nothing else is left in it."""
        with contextlib.suppress(OSError):
            if {p.name for p in self.state_dir.iterdir()} <= {".lock"}:
                (self.state_dir / ".lock").unlink(missing_ok=True)
                self.state_dir.rmdir()

    def _teardown(self, state: LabState) -> None:
        """Kill the hosts (by recorded pid), anything else in their namespaces, remove namespaces and links."""
        # Init first: its parent `unshare` reaps it and exits, and we reap `unshare` when it is our
        # child (no zombie left). Killing `unshare` first would orphan the dying init to PID 1.
        kill(((h.init_pid, h.init_start) for h in state.hosts if h.init_pid), wait=2.0)
        survivors = kill((h.pid, h.pid_start) for h in state.hosts if h.pid)
        spaces = {}
        for h in state.hosts:
            key = netns_inode(NETNS_DIR / h.netns)
            if key is not None:
                spaces[key] = h.netns
        stray = [pid for pids in pids_by_netns(spaces).values() for pid in pids]
        survivors += kill_tree(stray)
        if survivors:
            raise LabError(f"processes of lab {state.name} would not die: {survivors[:10]}")
        Net(self.tools).destroy([h.netns for h in state.hosts], [state.bridge] + [h.veth for h in state.hosts])
        self._remove_files()

    def _sweep(self, net: Net, say: Callable[[str], None], strict: bool) -> None:
        """Remove namespaces/links named after this lab that no state file accounts for (a crash, a lost dir)."""
        owner = net.bridge_owner(self.name)
        if owner and owner != str(self.state_dir):
            other = read_state(Path(owner) / "state.json") if Path(owner).is_dir() else None
            if other is not None and any(self._host_alive(h) for h in other.hosts):
                if strict:
                    raise LabError(
                        f"a lab named {self.name!r} is already running from {owner}: "
                        f"choose another --name or run `opsflow lab down --state-dir {owner}`"
                    )
                return
        namespaces = net.leftover_netns(self.name)
        links = net.leftover_links(self.name)
        if not namespaces and not links:
            return
        say(f"removing leftovers of lab {self.name}: {len(namespaces)} namespaces, {len(links)} links")
        spaces = {}
        for ns in namespaces:
            key = netns_inode(NETNS_DIR / ns)
            if key is not None:
                spaces[key] = ns
        stray = [pid for pids in pids_by_netns(spaces).values() for pid in pids]
        survivors = kill_tree(stray)
        if survivors:
            raise LabError(f"leftover processes of lab {self.name} would not die: {survivors[:10]}")
        net.destroy(namespaces, links)

    def _mount_hosts_dir(self) -> None:
        """Hosts' files (init, keys, overlay upper dirs) live on a tmpfs of the lab's own: creating
        thousands of small files for a big fleet is much slower on ext4 (inode allocation)."""
        hosts = self.state_dir / "hosts"
        hosts.mkdir(parents=True)
        run(
            [self.tools["mount"], "-t", "tmpfs", "-o", "mode=0700", f"ofl-{self.name}-hosts", str(hosts)],
            f"mount a tmpfs on {hosts}",
        )

    def _remove_files(self) -> None:
        hosts = self.state_dir / "hosts"
        for _ in range(8):  # a crashed up may have stacked mounts
            if not os.path.ismount(hosts):
                break
            if run([self.tools["umount"], str(hosts)], f"unmount {hosts}", check=False).returncode != 0:
                run([self.tools["umount"], "-l", str(hosts)], f"unmount {hosts}")
        if hosts.exists():
            shutil.rmtree(hosts)
        for name in LAB_FILES:
            (self.state_dir / name).unlink(missing_ok=True)

    # -- inspect and drive ------------------------------------------------------------

    def status(self) -> list[HostStatus]:
        state = self._state()
        if state is None:
            return []
        self.tools  # noqa: B018 - root and tools are needed to look inside the hosts
        up = {h.name: self._host_alive(h) for h in state.hosts}
        ssh = self._parallel(lambda h: up[h.name] and ssh_banner(h.address, 1.0), state.hosts)

        def adjacency(h: HostRecord) -> bool:
            if not up[h.name]:
                return False
            try:
                out = self._exec(h, ["vtysh", "-c", "show ip ospf neighbor json"], None, 10)
            except LabError:
                return False
            return out.returncode == 0 and ospf_full(out.stdout)

        routers = [h for h in state.hosts if h.kind == "router"]
        adj = dict(zip([h.name for h in routers], self._parallel(adjacency, routers), strict=True))
        return [
            HostStatus(
                name=h.name,
                kind=h.kind,
                address=h.address,
                up=up[h.name],
                ssh=ok,
                adjacency=adj.get(h.name) if h.kind == "router" else None,
                fault=h.fault,
            )
            for h, ok in zip(state.hosts, ssh, strict=True)
        ]

    def fault(self, host: str, mode: FaultMode) -> None:
        if mode not in FAULT_MODES:
            raise LabError(f"unknown fault {mode!r}: use one of {', '.join(FAULT_MODES)}")
        net = Net(self.tools)
        with self._lock():
            state = self._running()
            h = state.host(host)
            if not (NETNS_DIR / h.netns).exists():
                raise LabError(f"host {host} is not running (namespace {h.netns} is gone)")
            # one fault at a time: each mode replaces the previous one
            if mode == "down":
                net.set_ssh_filter(h.netns, None)
                net.set_link(h.veth, False)
            else:
                net.set_link(h.veth, True)
                net.set_ssh_filter(h.netns, None if mode == "up" else mode)
            h.fault = None if mode == "up" else mode
            write_state(self.state_path, state)

    def exec(
        self, host: str, argv: list[str], input: str | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        h = self._running().host(host)
        if not self._host_alive(h):
            raise LabError(f"host {host} is not running")
        return self._exec(h, argv, input, timeout)

    def _exec(
        self, h: HostRecord, argv: list[str], input: str | None, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.tools["nsenter"], "-t", str(h.init_pid), "-m", "-u", "-p", "-n", "--wd=/", "--", *argv]
        try:
            return subprocess.run(
                cmd, input=input, capture_output=True, text=True, timeout=timeout, env=CHILD_ENV, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{h.name}: `{' '.join(argv)}` timed out after {timeout:g} s") from exc
        except OSError as exc:
            raise LabError(f"{h.name}: cannot run nsenter: {exc}") from exc

    def restart_frr(self, host: str) -> None:
        h = self._running().host(host)
        if h.kind != "router":
            raise LabError(f"{host} is a {h.kind}, not a router: it has no FRR")
        out = self.exec(host, [FRRINIT, "restart"], timeout=60)
        if out.returncode != 0:
            tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-3:])
            raise LabError(f"{host}: FRR restart failed: {tail}")
        deadline = time.monotonic() + 30
        while True:
            check = self.exec(host, ["vtysh", "-c", "show version"], timeout=10)
            if check.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise LabError(f"{host}: vtysh does not answer 30 s after the FRR restart")
            time.sleep(0.1)
