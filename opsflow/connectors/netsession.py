"""One Netmiko session per device per run: opened on a device's first step, reused by every later
step of the run, closed when the run ends (as the SSH connector's multiplexed connections are).

Netmiko is driven directly (no Nornir: the executor already runs hosts in parallel), with host keys
checked against the inventory's known_hosts (Netmiko's default would accept any). Two things Netmiko
leaves slow or blind are fixed per session, for real devices and the lab's simulator alike:

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


def connect(h: Host) -> Any:
    conn = netmiko().ConnectHandler(**params(h))
    _notice_close(conn)
    if str(h.device_type).startswith("paloalto_panos"):
        _panos_prompt_check(conn)
    return conn


class Sessions:
    """The run's open sessions, by host name."""

    def __init__(self) -> None:
        self._open: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, h: Host) -> Any:
        conn = self._open.get(h.name)
        if conn is None:
            conn = connect(h)  # hosts connect in parallel; one host is only ever in one thread
            with self._lock:
                self._open[h.name] = conn
        return conn

    def has(self, name: str) -> bool:
        return name in self._open

    def drop(self, name: str) -> None:
        with self._lock:
            conn = self._open.pop(name, None)
        if conn is not None:
            try:
                conn.disconnect()
            except Exception:  # noqa: BLE001,S110 - a session already dead
                pass

    def close(self) -> None:
        names = list(self._open)
        if len(names) < 2:
            for name in names:
                self.drop(name)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(20, len(names)), thread_name_prefix="opsflow-net-close") as pool:
            list(pool.map(self.drop, names))  # each logout waits for its device's answer


def sessions(ctx: RunContext) -> Sessions:
    """The run's sessions (created on first use; closed when the run ends)."""
    with ctx._lock:  # noqa: SLF001 - the context's own lock guards its shared dict
        found = ctx.shared.get("netmiko")
        if found is None:
            found = ctx.shared["netmiko"] = Sessions()
            ctx.on_close(found.close)
        return found
