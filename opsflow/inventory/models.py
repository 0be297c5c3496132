"""Hosts, groups and inventory patterns (pure; no I/O)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

from opsflow.errors import InventoryError

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
    vars: dict[str, Any]
    groups: tuple[str, ...]

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


@dataclass
class Inventory:
    hosts: dict[str, Host]
    groups: dict[str, list[str]]  # group → member host names (transitively)
    source: str = ""
    children: dict[str, list[str]] = field(default_factory=dict)

    def select(self, pattern: str) -> list[str]:
        """Resolve an Ansible-style pattern (``a:b``, ``a:!b``, ``a:&b``, ``a,b``, globs)."""
        order = list(self.hosts)
        result: set[str] = set()
        first = True
        for raw in re.split(r"[:,]", pattern.strip()):
            term = raw.strip()
            if not term:
                continue
            if term.startswith("!"):
                result -= self._term(term[1:], pattern)
            elif term.startswith("&"):
                result &= self._term(term[1:], pattern)
            else:
                result |= self._term(term, pattern)
            first = False
        if first:
            raise InventoryError(f"empty host pattern {pattern!r}")
        return [h for h in order if h in result]

    def _term(self, term: str, pattern: str) -> set[str]:
        if term in ("all", "*"):
            return set(self.hosts)
        if term in self.groups:
            return set(self.groups[term])
        if term in self.hosts:
            return {term}
        if any(c in term for c in "*?["):
            hits = {h for h in self.hosts if fnmatch.fnmatchcase(h, term)}
            hits |= {h for g, members in self.groups.items() if fnmatch.fnmatchcase(g, term) for h in members}
            if hits:
                return hits
        known = ", ".join(sorted(self.groups)) or "none"
        raise InventoryError(
            f"pattern {pattern!r}: {term!r} is neither a host nor a group of inventory {self.source} "
            f"(groups: {known})"
        )

    def secrets(self) -> list[str]:
        return [s for h in self.hosts.values() for s in h.secrets()]
