"""Device configuration text (pure): volatile lines, sanity checks, and the delta that restores a version."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from opsflow.netconfig import config_lines

_CLI_ERROR = re.compile(r"^%\s*(Unknown command|Invalid input|Ambiguous command|Incomplete command|"
                        r"Authorization failed|Error)", re.M | re.I)
# lines that describe the software, not the configuration: never removed or re-applied
_FIXED = re.compile(r"^(frr version|frr defaults|end$|!|exit$|exit-address-family$|version \d)")
# single-valued settings: the target value replaces the running one, there is nothing to negate
_SET_ONLY = ("hostname ", "service integrated-vtysh-config", "log file ", "log syslog ")


class InvalidConfig(ValueError):
    """Output that is not a configuration: never stored as a version."""


def normalize(text: str, platform: str = "frr") -> str:
    """The configuration without volatile lines, with one trailing newline."""
    return "\n".join(config_lines(text)) + "\n"


def validate(text: str, platform: str = "frr") -> str:
    """Return the normalized config, or raise InvalidConfig saying why the text is not one."""
    if not text.strip():
        raise InvalidConfig("empty output")
    err = _CLI_ERROR.search(text)
    if err:
        raise InvalidConfig(f"the device answered with an error: {err.group(0).strip()!r}")
    lines = config_lines(text)
    if len(lines) < 3:
        raise InvalidConfig(f"only {len(lines)} line(s): truncated or not a configuration")
    if not any(line.startswith("hostname ") for line in lines):
        raise InvalidConfig("no hostname line: not a running configuration")
    last = lines[-1].strip()
    if platform in ("frr", "cisco_ios", "cisco_xe") and last != "end":
        raise InvalidConfig(f"does not end with 'end' (last line {last[:40]!r}): truncated")
    return normalize(text, platform)


@dataclass
class Block:
    header: str
    children: list[str] = field(default_factory=list)


def parse(text: str) -> tuple[list[str], dict[str, Block]]:
    """Top-level lines and indented blocks (``interface eth0`` + its lines) of an IOS-like config."""
    simple: list[str] = []
    blocks: dict[str, Block] = {}
    current: Block | None = None
    for raw in config_lines(text):
        line = raw.rstrip()
        if not line.strip() or line.strip() == "!":
            current = None if not line.startswith(" ") else current
            continue
        if line.startswith(" "):
            if current is not None and line.strip() not in ("exit", "exit-address-family"):
                current.children.append(line.strip())
            continue
        if line.strip() == "exit":
            current = None
            continue
        if _FIXED.match(line):
            continue
        if _opens_block(line):
            current = blocks.setdefault(line, Block(line))
        else:
            current = None
            simple.append(line)
    return simple, blocks


def _opens_block(line: str) -> bool:
    return line.split()[0] in ("interface", "router", "line", "route-map", "vrf", "key", "bfd", "segment-routing",
                               "mpls", "ip", "ipv6", "address-family") and line.split()[0:2] != ["ip", "route"] \
        and not line.startswith(("ip route", "ipv6 route", "ip prefix-list", "ip forwarding", "ipv6 forwarding",
                                 "ip protocol", "ip nht", "ip as-path", "ip community-list"))


def restore_delta(running: str, target: str) -> list[str]:
    """Configuration lines that turn ``running`` into ``target`` (empty when they already match)."""
    run_simple, run_blocks = parse(running)
    tgt_simple, tgt_blocks = parse(target)
    out: list[str] = []
    for line in run_simple:
        if line not in tgt_simple and not line.startswith(_SET_ONLY):
            out.append(_negate(line))
    out += [line for line in tgt_simple if line not in run_simple]
    for header in run_blocks:
        if header not in tgt_blocks:
            out.append(_negate(header))
    for header, block in tgt_blocks.items():
        have = run_blocks.get(header)
        if have is None:
            out += [header, *block.children, "exit"]
            continue
        removed = [_negate(c) for c in have.children if c not in block.children]
        added = [c for c in block.children if c not in have.children]
        if removed or added:
            out += [header, *removed, *added, "exit"]
    return out


def _negate(line: str) -> str:
    return line[3:] if line.startswith("no ") else f"no {line}"
