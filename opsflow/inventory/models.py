"""Hosts, groups and inventory patterns (pure: no file I/O, never imports Ansible)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsflow.errors import InventoryError
from opsflow.inventory.patterns import PatternIndex

# platform → (kind, netmiko device_type). Servers are driven by SSH/Ansible/testinfra,
# devices by Nornir + Netmiko.
PLATFORMS: dict[str, tuple[str, str | None]] = {
    "linux": ("server", None),
    "frr": ("device", "cisco_ios"),  # FRRouting's vtysh speaks an IOS-like CLI
    "cisco_ios": ("device", "cisco_ios"),
    "cisco_xe": ("device", "cisco_xe"),
    "cisco_nxos": ("device", "cisco_nxos"),
    "cisco_xr": ("device", "cisco_xr"),
    "arista_eos": ("device", "arista_eos"),
    "juniper_junos": ("device", "juniper_junos"),
}
_NETWORK_OS = {  # ansible_network_os → platform
    "cisco.ios.ios": "cisco_ios", "ios": "cisco_ios", "cisco.nxos.nxos": "cisco_nxos", "nxos": "cisco_nxos",
    "cisco.iosxr.iosxr": "cisco_xr", "arista.eos.eos": "arista_eos", "eos": "arista_eos",
    "junipernetworks.junos.junos": "juniper_junos", "junos": "juniper_junos", "frr.frr.frr": "frr",
}
SECRET_VARS = ("ansible_password", "ansible_ssh_pass", "ansible_become_password", "ansible_become_pass",
               "password", "secret", "enable_secret")


@dataclass(frozen=True)
class Host:
    name: str
    vars: dict[str, Any]  # exactly what ``ansible-inventory --host NAME`` gives
    groups: tuple[str, ...]  # Ansible's group_names: sorted, without ``all``
    implicit: bool = False  # Ansible's implicit localhost

    @property
    def address(self) -> str:
        return str(self.vars.get("ansible_host", self.name))

    @property
    def port(self) -> int:
        return int(self.vars.get("ansible_port", 22))

    @property
    def user(self) -> str | None:
        user = self.vars.get("ansible_user")
        return str(user) if user is not None else None

    @property
    def key_file(self) -> str | None:
        key = self.vars.get("ansible_ssh_private_key_file")
        return str(key) if key else None

    @property
    def password(self) -> str | None:
        pw = self.vars.get("ansible_password") or self.vars.get("ansible_ssh_pass")
        return str(pw) if pw else None

    @property
    def platform(self) -> str:
        if "platform" in self.vars:
            return str(self.vars["platform"])
        nos = self.vars.get("ansible_network_os")
        if nos:
            return _NETWORK_OS.get(str(nos), str(nos).rsplit(".", 1)[-1])
        return "linux"

    @property
    def kind(self) -> str:
        return PLATFORMS.get(self.platform, ("device", None))[0]

    @property
    def device_type(self) -> str:
        return PLATFORMS.get(self.platform, ("device", self.platform))[1] or self.platform

    @property
    def known_hosts(self) -> str | None:
        kh = self.vars.get("opsflow_known_hosts")
        return str(kh) if kh else None

    def secrets(self) -> list[str]:
        return [str(self.vars[k]) for k in SECRET_VARS if self.vars.get(k)]


def _stderr_warning(message: str) -> None:
    """Ansible's way: ``[WARNING]: …`` on stderr, once per message and process."""
    if message not in _WARNED:
        _WARNED.add(message)
        sys.stderr.write(f"[WARNING]: {message}\n")
        sys.stderr.flush()


_WARNED: set[str] = set()
WARN: list[Callable[[str], None]] = [_stderr_warning]  # replaceable (tests, the daemon's log)


def warn(message: str) -> None:
    WARN[0](message)


@dataclass
class Inventory:
    """An inventory as Ansible resolves it: hosts with their variables, groups, patterns."""

    hosts: dict[str, Host]  # Ansible's inventory order
    groups: dict[str, list[str]]  # group → its hosts, transitively (Ansible's order of groups and hosts)
    source: str = ""
    children: dict[str, list[str]] = field(default_factory=dict)  # group → child groups
    own: dict[str, list[str]] = field(default_factory=dict)  # group → hosts listed in the group itself
    implicit: dict[str, dict[str, Any]] = field(default_factory=dict)  # implicit localhost → its vars
    warnings: list[str] = field(default_factory=list)  # Ansible's warnings when it read the sources
    dynamic: list[str] = field(default_factory=list)  # sources of dynamic plugins (script, cloud, CMDB)
    pattern_warnings: list[str] = field(default_factory=list)  # Ansible's warnings about the last pattern
    _index: PatternIndex | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if "all" not in self.groups:  # an inventory built in code (tests): the shape Ansible gives
            self.groups = {"all": list(self.hosts), **self.groups}
            self.own = self.own or {g: list(m) for g, m in self.groups.items() if g != "all"}
            self.children.setdefault("all", [g for g in self.groups if g != "all"])

    @property
    def index(self) -> PatternIndex:
        if self._index is None:
            self._index = PatternIndex(host_order=list(self.hosts), group_hosts=self.groups,
                                       implicit=self._implicit_localhost)
        return self._index

    def _implicit_localhost(self, name: str) -> str | None:
        """Ansible's implicit localhost (ansible_connection=local), made a host when a pattern names it."""
        made = [h for h in self.hosts.values() if h.implicit]
        if made:
            return made[0].name  # like Ansible, one implicit localhost per inventory
        if name not in self.implicit:
            return None
        self.hosts[name] = Host(name=name, vars=dict(self.implicit[name]), groups=(), implicit=True)
        return name

    def select(self, pattern: str) -> list[str]:
        """The hosts an Ansible pattern selects, in Ansible's order; ``[]`` when none.

        ``a:b``/``a,b`` union, ``a:&b`` intersection, ``a:!b`` exclusion (plain terms first, then ``&``,
        then ``!``), globs, ``~regex``, ``group[0]``/``group[1:3]``/``group[-1]`` subscripts, host ranges.
        Ansible's warnings (``Could not match supplied host pattern, ignoring: x``) are in
        ``pattern_warnings``; they are shown on stderr when hosts are selected all the same. When none
        is, the caller reports it (``select_or_fail`` puts them in its error).
        """
        return self._select(pattern)[0]

    def select_or_fail(self, pattern: str, what: str = "pattern") -> list[str]:
        """``select``, refusing (InventoryError, exit 2) a pattern that selects no host, naming it."""
        hosts, warnings = self._select(pattern)
        if not hosts:
            why = "; ".join([*warnings, "No hosts matched, nothing to do"])
            raise InventoryError(f"{what} {pattern!r} selects no host of inventory "
                                 f"{self.source or '(in memory)'} ({why})")
        return hosts

    def _select(self, pattern: str) -> tuple[list[str], list[str]]:
        if not pattern or not pattern.strip():
            raise InventoryError(f"empty host pattern {pattern!r}")
        warnings: list[str] = []  # per call: one inventory serves the daemon's concurrent runs
        hosts = self.index.select(pattern, warnings)
        self.pattern_warnings = warnings
        if hosts:
            for message in warnings:
                warn(message)
        return hosts, warnings

    def secrets(self) -> list[str]:
        return [s for h in self.hosts.values() for s in h.secrets()]
