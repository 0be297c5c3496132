"""One Netmiko session per device per run: opened on a device's first step, reused by every later
step of the run, closed when the run ends (as the SSH connector's multiplexed connections are).

Nornir runs a step's devices in parallel and keeps their connections (its connection plugin below:
nornir-netmiko's, with host keys checked against the inventory's known_hosts — Netmiko's default would
accept any). Two things Netmiko leaves slow or blind are fixed per session, for real devices and the
lab's simulator alike:

- a session the device closed is noticed at the next read (Netmiko would poll an empty channel until
  the step's timeout): ``SessionClosed``;
- PAN-OS: the config-mode check reads up to the prompt instead of waiting for 2 s of silence (Netmiko's
  ``read_channel_timing``), three times per configuration change and once at logout.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from opsflow.connectors.base import RunContext
from opsflow.inventory.models import Host

_import_lock = threading.Lock()


class SessionClosed(EOFError):
    """The device closed the SSH session (a reload, a dropped link, a crash of its CLI)."""


def netmiko() -> Any:
    """The netmiko module. Imported without ``invoke``: paramiko imports it only for ``Match exec``
    in an ssh_config, which opsflow never reads (the inventory says how to connect); that saves about a
    third of netmiko's import."""
    with _import_lock:  # hosts connect in parallel: one thread imports, the others wait for it
        if "netmiko" in sys.modules:
            return sys.modules["netmiko"]
        blocked = "invoke" not in sys.modules and "paramiko" not in sys.modules
        if blocked:
            sys.modules["invoke"] = None  # type: ignore[assignment]  # import invoke → ImportError
        try:
            import netmiko as module
        finally:
            if blocked and sys.modules.get("invoke", 0) is None:
                del sys.modules["invoke"]
    return module


def params(h: Host) -> dict[str, Any]:
    """ConnectHandler's arguments for an inventory device."""
    p: dict[str, Any] = {
        "device_type": h.device_type, "host": h.address, "port": h.port, "username": h.user,
        "password": h.password or "", "ssh_strict": True, "system_host_keys": h.known_hosts is None,
        "alt_host_keys": bool(h.known_hosts), "alt_key_file": h.known_hosts or "", "allow_agent": False,
        "conn_timeout": 10, "auth_timeout": 10, "banner_timeout": 10, "fast_cli": True,
        "ssh_config_file": None,
    }
    if h.key_file:
        p.update(use_keys=True, key_file=h.key_file)
    if h.vars.get("enable_secret"):
        p["secret"] = str(h.vars["enable_secret"])
    return p


def _notice_close(conn: Any) -> None:
    """Reads on a channel the device closed raise ``SessionClosed`` instead of returning nothing."""
    channel = getattr(conn, "channel", None)
    remote = getattr(channel, "remote_conn", None)
    if channel is None or remote is None or not hasattr(remote, "recv_ready"):
        return
    read_buffer: Callable[[], str] = channel.read_buffer

    def read() -> str:
        out = read_buffer()
        if not out and (remote.closed or remote.eof_received) and not remote.recv_ready():
            raise SessionClosed("the device closed the session")
        return out

    channel.read_buffer = read


def _panos_prompt_check(conn: Any) -> None:
    check: Callable[..., bool] = conn.check_config_mode

    def check_config_mode(check_string: str = "]", pattern: str = "", force_regex: bool = False) -> bool:
        return check(check_string=check_string, pattern=pattern or r"[>#]", force_regex=force_regex)

    conn.check_config_mode = check_config_mode


def connect(parameters: dict[str, Any]) -> Any:
    conn = netmiko().ConnectHandler(**parameters)
    _notice_close(conn)
    if str(parameters.get("device_type", "")).startswith("paloalto_panos"):
        _panos_prompt_check(conn)
    return conn


CONNECTION = "opsflow-netmiko"


class OpsflowNetmiko:
    """Nornir's connection plugin for opsflow's devices: nornir-netmiko's, with the inventory's
    ``ConnectHandler`` arguments whole in ``extras`` (host keys, timeouts) and the two fixes above."""

    def open(self, hostname: str | None, username: str | None, password: str | None, port: int | None,
             platform: str | None, extras: dict[str, Any] | None = None, configuration: Any = None) -> None:
        self.connection = connect(dict(extras or {}))

    def close(self) -> None:
        self.connection.disconnect()


class Sessions:
    """The run's Nornir (its threaded runner runs a step's devices in parallel; its connections, one per
    device, stay open across the run's steps and are closed when the run ends)."""

    def __init__(self, ctx: RunContext) -> None:
        from nornir.core import Nornir
        from nornir.core.inventory import ConnectionOptions, Defaults, Groups, Hosts, Inventory
        from nornir.core.inventory import Host as NHost
        from nornir.core.plugins.connections import ConnectionPluginRegister
        from nornir.plugins.runners import ThreadedRunner

        if CONNECTION not in ConnectionPluginRegister.available:
            ConnectionPluginRegister.register(CONNECTION, OpsflowNetmiko)
        hosts = Hosts()
        for h in ctx.inventory.hosts.values():
            if h.kind != "device":
                continue
            hosts[h.name] = NHost(name=h.name, hostname=h.address, port=h.port, username=h.user,
                                  password=h.password, platform=h.device_type,
                                  connection_options={CONNECTION: ConnectionOptions(extras=params(h))})
        self.nornir = Nornir(inventory=Inventory(hosts=hosts, groups=Groups(), defaults=Defaults()),
                             runner=ThreadedRunner(num_workers=max(1, ctx.concurrency)))
        self.nornir.config.ssh.config_file = "/dev/null"  # the inventory says how to connect, not ~/.ssh/config

    def run(self, names: set[str], work: Callable[[Any], None]) -> None:
        """``work(nornir_host)`` for each named device, in parallel on Nornir's runner."""
        from nornir.core.task import Result

        def task(t: Any) -> Any:
            work(t.host)
            return Result(host=t.host, result=None)

        self.nornir.filter(filter_func=lambda h: h.name in names).run(task=task, name="opsflow", on_failed=True)

    def get(self, host: Any) -> Any:
        return host.get_connection(CONNECTION, self.nornir.config)

    @staticmethod
    def has(host: Any) -> bool:
        return CONNECTION in host.connections

    @staticmethod
    def drop(host: Any) -> None:
        try:
            host.close_connection(CONNECTION)
        except Exception:  # noqa: BLE001,S110 - a session already dead
            host.connections.pop(CONNECTION, None)

    def close(self) -> None:
        self.nornir.close_connections(on_good=True, on_failed=True)  # in parallel: each logout waits for its device


def sessions(ctx: RunContext) -> Sessions:
    """The run's sessions (created on first use; closed when the run ends)."""
    with ctx._lock:  # noqa: SLF001 - the context's own lock guards its shared dict
        found = ctx.shared.get("nornir")
        if found is None:
            found = ctx.shared["nornir"] = Sessions(ctx)
            ctx.on_close(found.close)
        return found
