"""What the lab needs from the machine: root, a few packages, kernel features."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from opsflow.errors import EnvironmentProblem

FIX = "apt-get install -y openssh-server frr iproute2 nftables"
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# tool -> (package that provides it, absolute path to prefer)
TOOLS: dict[str, tuple[str, str | None]] = {
    "sshd": ("openssh-server", "/usr/sbin/sshd"),
    "ssh": ("openssh-client", None),
    "ssh-keygen": ("openssh-client", None),
    "vtysh": ("frr", "/usr/bin/vtysh"),
    "frrinit.sh": ("frr", "/usr/lib/frr/frrinit.sh"),
    "ip": ("iproute2", None),
    "nft": ("nftables", None),
    "unshare": ("util-linux", None),
    "nsenter": ("util-linux", None),
    "useradd": ("passwd", None),
    "mount": ("mount", None),
    "umount": ("mount", None),
}


def _default_lookup(tool: str, preferred: str | None) -> str | None:
    if preferred and os.access(preferred, os.X_OK):
        return preferred
    return shutil.which(tool, path=SEARCH_PATH)


def find_tools(lookup: Callable[[str, str | None], str | None] = _default_lookup) -> dict[str, str]:
    """Absolute paths of the tools the lab runs; EnvironmentProblem naming what is missing and the fix."""
    found: dict[str, str] = {}
    missing: list[str] = []
    for tool, (package, preferred) in TOOLS.items():
        path = lookup(tool, preferred)
        if path:
            found[tool] = path
        else:
            missing.append(f"{tool} ({package})")
    if missing:
        raise EnvironmentProblem(
            f"the lab needs {', '.join(missing)}, not installed on this machine; fix: {FIX}"
        )
    return found


def check_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "the lab needs root: it creates network namespaces, veth links, a bridge and mounts "
            "(run it as root, e.g. `sudo opsflow lab up`)"
        )


def check_kernel() -> None:
    if not sys.platform.startswith("linux"):
        raise EnvironmentProblem(f"the lab needs Linux (network/mount/PID namespaces); this is {sys.platform}")
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read /proc/filesystems: {exc}") from exc
    if "overlay" not in filesystems.split():
        raise EnvironmentProblem("the lab needs overlayfs in the kernel; fix: modprobe overlay")
    if not Path("/proc/self/ns/net").exists():
        raise EnvironmentProblem("the lab needs network namespaces (CONFIG_NET_NS) in the kernel")


def check() -> dict[str, str]:
    """Everything at once, in the order a user fixes them: platform, root, packages."""
    check_kernel()
    check_root()
    return find_tools()
