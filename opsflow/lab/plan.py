"""The lab's shape and its record: names, addresses, and ``state.json``.

Everything the lab creates is named from the lab name, so two labs (a test lab
and a demo lab) coexist and a crashed ``up`` can be cleaned up by name alone:

* network namespace of a host: ``ofl-<name>-srv1``, ``ofl-<name>-rtr1``
* bridge in the root namespace: ``ofl-<short>``
* root side of a host's veth: ``ofl<short>s1`` / ``ofl<short>r1`` (≤ 15 chars)

``<short>`` is the name itself when it is at most 5 letters/digits, else 5 hex
digits of its SHA-1.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from opsflow.errors import LabError

Kind = Literal["server", "router"]

MAX_SERVERS = 220  # .11 .. .230
MAX_ROUTERS = 120  # .250 down to .131, only as far as the servers leave free
STATE_VERSION = 1
NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,23}")
# Directories each host overlays: the state dir must not live under one of them.
OVERLAID = ("etc", "var", "usr", "home", "opt", "srv")


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name) or name.endswith("-"):
        raise LabError(
            f"invalid lab name {name!r}: use 1-24 lowercase letters, digits and '-' (e.g. 'lab', 'test', 'demo')"
        )
    return name


def short_id(name: str) -> str:
    if re.fullmatch(r"[a-z0-9]{1,5}", name):
        return name
    return hashlib.sha1(name.encode()).hexdigest()[:5]


def netns_prefix(name: str) -> str:
    return f"ofl-{name}-"


def netns_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"ofl-{re.escape(name)}-(srv|rtr)\d+")


def bridge_name(name: str) -> str:
    return f"ofl-{short_id(name)}"


def veth_re(name: str) -> re.Pattern[str]:
    return re.compile(rf"ofl{re.escape(short_id(name))}[sr]\d+")


@dataclass
class HostRecord:
    name: str
    kind: Kind
    address: str
    netns: str
    veth: str
    pid: int | None = None  # the `unshare` process (SIGKILL ends the host)
    pid_start: int | None = None  # its start time in clock ticks (guards against pid reuse)
    init_pid: int | None = None  # PID 1 of the host, as seen from the root namespace
    init_start: int | None = None
    fault: str | None = None


@dataclass
class LabState:
    name: str
    state_dir: str
    subnet: str
    bridge: str
    servers: int
    routers: int
    hosts: list[HostRecord] = field(default_factory=list)
    phase: str = "starting"  # starting | up
    created: float = field(default_factory=time.time)
    up_seconds: float | None = None
    memory: dict[str, int] = field(default_factory=dict)
    version: int = STATE_VERSION

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_network(self.subnet).network_address + 1)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def host(self, name: str) -> HostRecord:
        for h in self.hosts:
            if h.name == name:
                return h
        known = ", ".join(h.name for h in self.hosts) or "none"
        raise LabError(f"no host {name!r} in lab {self.name!r} (hosts: {known})")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["gateway"] = self.gateway
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LabState:
        hosts = [HostRecord(**h) for h in data.get("hosts", [])]
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "hosts"}
        return cls(hosts=hosts, **fields)


def check_shape(servers: int, routers: int) -> None:
    if not (0 <= servers <= MAX_SERVERS):
        raise LabError(f"--servers must be between 0 and {MAX_SERVERS}, not {servers}")
    if not (0 <= routers <= MAX_ROUTERS):
        raise LabError(f"--routers must be between 0 and {MAX_ROUTERS}, not {routers}")
    if 10 + servers >= 251 - routers:  # servers count up from .11, routers down from .250
        raise LabError(f"{servers} servers and {routers} routers do not fit in the lab's /24: at most "
                       f"{240 - servers} routers with {servers} servers")
    if servers + routers == 0:
        raise LabError("a lab needs at least one host (--servers or --routers)")


def plan(name: str, state_dir: Path, subnet: ipaddress.IPv4Network, servers: int, routers: int) -> LabState:
    check_shape(servers, routers)
    short = short_id(name)
    base = subnet.network_address
    hosts: list[HostRecord] = []
    for i in range(1, servers + 1):
        hosts.append(HostRecord(f"srv{i}", "server", str(base + 10 + i), f"ofl-{name}-srv{i}", f"ofl{short}s{i}"))
    for j in range(1, routers + 1):
        hosts.append(HostRecord(f"rtr{j}", "router", str(base + 251 - j), f"ofl-{name}-rtr{j}", f"ofl{short}r{j}"))
    return LabState(
        name=name,
        state_dir=str(state_dir),
        subnet=str(subnet),
        bridge=bridge_name(name),
        servers=servers,
        routers=routers,
        hosts=hosts,
    )


def choose_subnet(name: str, in_use: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """A /24 in 10.250.0.0/16 overlapping nothing routed on this machine; stable per lab name."""
    start = int(hashlib.sha1(name.encode()).hexdigest()[:4], 16) % 256
    for k in range(256):
        candidate = ipaddress.IPv4Network(f"10.250.{(start + k) % 256}.0/24")
        if not any(candidate.overlaps(net) for net in in_use):
            return candidate
    raise LabError("no free /24 in 10.250.0.0/16: every one overlaps a route on this machine")


def check_state_dir(state_dir: Path) -> None:
    resolved = state_dir.resolve()
    for d in OVERLAID:
        root = Path("/" + d).resolve()
        if resolved == root or root in resolved.parents:
            raise LabError(
                f"state dir {state_dir} is under /{d}, which every lab host overlays; "
                "use a directory elsewhere (e.g. /root/.opsflow/lab, /tmp/lab or the project's .lab)"
            )


def read_state(path: Path) -> LabState | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read {path}: {exc}") from exc
    try:
        return LabState.from_json(data)
    except (TypeError, KeyError) as exc:
        raise LabError(f"{path} is not a lab state file this opsflow understands: {exc}") from exc


def write_state(path: Path, state: LabState) -> None:
    """Write atomically: a temp file in the same directory, fsync, rename."""
    text = json.dumps(state.to_json(), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".state.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
