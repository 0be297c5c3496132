"""Pure helpers for device configuration text (no I/O)."""

from __future__ import annotations

import difflib
import re

_VOLATILE = re.compile(r"^(Building configuration|Current configuration|! Last configuration change|"
                       r"! NVRAM config last updated|ntp clock-period)", re.I)

def config_lines(text: str) -> list[str]:
    """The running configuration without volatile lines (timestamps, banners of the show command)."""
    return [line.rstrip() for line in text.splitlines() if line.strip() and not _VOLATILE.match(line)]


def config_diff(before: str, after: str, name: str = "running-config") -> str:
    return "\n".join(difflib.unified_diff(config_lines(before), config_lines(after), f"{name} (before)",
                                          f"{name} (after)", lineterm="", n=1))


def candidate_diff(running: str, lines: list[str]) -> str:
    """What applying ``lines`` would change: top-level lines absent from the running config.

    A line that is already present is no change; ``no X`` removes X if present.
    """
    have = {line.strip() for line in config_lines(running)}
    out = []
    for line in lines:
        text = line.strip()
        if text.startswith("no "):
            if text[3:] in have:
                out.append(f"-{text[3:]}")
        elif text not in have and text not in ("exit", "end", "!"):
            out.append(f"+{text}")
    return "\n".join(out)
