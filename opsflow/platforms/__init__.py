"""Network platforms (pure): per Netmiko device_type, how to show, check, compare and restore a config.

One registry (``catalog.PLATFORMS``), keyed by the platform name an inventory gives (``platform``
var, or ``ansible_network_os``), which is the Netmiko device_type except ``frr`` (driven as
``cisco_ios``). Nothing here talks to a device: the network connectors run the ``Plan`` steps.
"""

from __future__ import annotations

from opsflow.platforms.catalog import PLATFORMS
from opsflow.platforms.model import InvalidConfig, Plan, Platform, Step

__all__ = ["PLATFORMS", "InvalidConfig", "Plan", "Platform", "Step", "UnknownPlatform", "get", "names"]


class UnknownPlatform(ValueError):
    """A platform opsflow has no knowledge of (its configs cannot be checked, compared or restored)."""


def names() -> list[str]:
    return sorted(PLATFORMS)


def get(name: str) -> Platform:
    """The platform of this name; ``cisco_ios_ssh``-style Netmiko aliases are accepted."""
    for candidate in (name, name.removesuffix("_ssh"), name.removesuffix("_telnet")):
        if candidate in PLATFORMS:
            return PLATFORMS[candidate]
    raise UnknownPlatform(f"platform {name!r} is not known to opsflow (known: {', '.join(names())}); set the host's "
                          "`platform` var to one of them")
