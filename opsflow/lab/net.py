"""The lab network: one bridge in the root namespace, one veth + network namespace per host.

Only objects named after the lab are ever created or removed; the machine's own
interfaces, routes, sysctls and firewall are left alone. Firewall rules (faults)
live inside a host's network namespace only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
from pathlib import Path

from opsflow.errors import LabError
from opsflow.lab.plan import LabState, bridge_name, netns_re, veth_re
from opsflow.lab.proc import run

NETNS_DIR = Path("/run/netns")
FAULT_TABLE = "opsflow_fault"
ALIAS_PREFIX = "opsflow-lab:"


class Net:
    def __init__(self, tools: dict[str, str]) -> None:
        self.ip = tools["ip"]
        self.nft = tools["nft"]
        self.nsenter = tools["nsenter"]

    # -- discovery -----------------------------------------------------------------

    def networks_in_use(self) -> list[ipaddress.IPv4Network]:
        """Every IPv4 destination routed in any table, plus every address's subnet (default route excluded)."""
        nets: list[ipaddress.IPv4Network] = []
        routes = json.loads(run([self.ip, "-j", "-4", "route", "show", "table", "all"], "list routes").stdout or "[]")
        for r in routes:
            dst = r.get("dst", "")
            if dst in ("", "default"):
                continue
            try:
                net = ipaddress.IPv4Network(dst, strict=False)
            except ValueError:
                continue
            if net.prefixlen > 0:
                nets.append(net)
        addrs = json.loads(run([self.ip, "-j", "-4", "addr", "show"], "list addresses").stdout or "[]")
        for link in addrs:
            for a in link.get("addr_info", []):
                try:
                    nets.append(ipaddress.IPv4Network(f"{a['local']}/{a['prefixlen']}", strict=False))
                except (KeyError, ValueError):
                    continue
        return nets

    def links(self) -> dict[str, dict[str, object]]:
        data = json.loads(run([self.ip, "-j", "-d", "link", "show"], "list links").stdout or "[]")
        return {link["ifname"]: link for link in data if "ifname" in link}

    def bridge_owner(self, name: str) -> str | None:
        """The state dir recorded on the lab's bridge (ifalias), if the bridge exists."""
        link = self.links().get(bridge_name(name))
        if link is None:
            return None
        alias = str(link.get("ifalias", ""))
        return alias[len(ALIAS_PREFIX) :] if alias.startswith(ALIAS_PREFIX) else ""

    def leftover_netns(self, name: str) -> list[str]:
        pattern = netns_re(name)
        try:
            entries = os.listdir(NETNS_DIR)
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if pattern.fullmatch(e))

    def leftover_links(self, name: str) -> list[str]:
        pattern = veth_re(name)
        bridge = bridge_name(name)
        return sorted(n for n in self.links() if n == bridge or pattern.fullmatch(n))

    # -- build ---------------------------------------------------------------------

    def create(self, state: LabState) -> None:
        """Bridge (gateway address, up), and for every host: netns, veth with eth0 inside, on the bridge."""
        br = state.bridge
        lines = [
            f"link add name {br} type bridge stp_state 0 forward_delay 0",
            f"addr add {state.gateway}/{state.prefixlen} dev {br}",
        ]
        for h in state.hosts:
            lines += [
                f"netns add {h.netns}",
                f"link add name {h.veth} type veth peer name eth0 netns {h.netns}",
                f"link set dev {h.veth} master {br}",
            ]
        self._batch(lines, "create the lab network")
        # The lab LAN is IPv4: without IPv6 on its links, a big fleet coming up does not flood the
        # bridge with router solicitations, DAD and MLD (hosts do the same for their eth0).
        for link in [br] + [h.veth for h in state.hosts]:
            with contextlib.suppress(OSError):
                Path(f"/proc/sys/net/ipv6/conf/{link}/disable_ipv6").write_text("1\n")
        self._batch([f"link set dev {link} up" for link in [br] + [h.veth for h in state.hosts]], "bring the lab links up")
        # The alias ties the bridge to its state dir (for leftovers and name clashes).
        run([self.ip, "link", "set", "dev", br, "alias", ALIAS_PREFIX + state.state_dir], "label the lab bridge")

    def _batch(self, lines: list[str], what: str) -> None:
        proc = run([self.ip, "-batch", "-"], what, input="\n".join(lines) + "\n", check=False)
        if proc.returncode != 0:
            m = re.search(r"Command failed -:(\d+)", proc.stderr)
            failed = f" at `ip {lines[int(m.group(1)) - 1]}`" if m else ""
            first = proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else f"exit code {proc.returncode}"
            raise LabError(f"{what}{failed}: {first}")

    def destroy(self, netns: list[str], links: list[str]) -> None:
        """Delete namespaces and root-side links; missing ones are fine (idempotent)."""
        lines = [f"netns delete {ns}" for ns in netns if (NETNS_DIR / ns).exists()]
        existing = self.links()
        lines += [f"link delete dev {link}" for link in links if link in existing]
        if lines:
            run([self.ip, "-force", "-batch", "-"], "remove the lab network", input="\n".join(lines) + "\n", check=False)
        still_ns = [ns for ns in netns if (NETNS_DIR / ns).exists()]
        existing = self.links()
        still_links = [link for link in links if link in existing]
        if still_ns or still_links:
            raise LabError(f"could not remove {', '.join(still_ns + still_links)}")

    # -- faults --------------------------------------------------------------------

    def set_link(self, veth: str, up: bool) -> None:
        run([self.ip, "link", "set", "dev", veth, "up" if up else "down"], f"set {veth} {'up' if up else 'down'}")

    def set_ssh_filter(self, netns: str, action: str | None) -> None:
        """`drop` / `reject` TCP port 22 inside the host's namespace; None removes the rule."""
        script = f"table inet {FAULT_TABLE}\ndelete table inet {FAULT_TABLE}\n"
        if action is not None:
            verdict = {"drop": "drop", "reject": "reject with tcp reset"}[action]
            script += (
                f"table inet {FAULT_TABLE} {{\n"
                "  chain input {\n"
                "    type filter hook input priority filter; policy accept;\n"
                f"    tcp dport 22 {verdict}\n"
                "  }\n"
                "}\n"
            )
        run(
            [self.nsenter, f"--net={NETNS_DIR / netns}", self.nft, "-f", "-"],
            f"nft rule in {netns}",
            input=script,
        )
