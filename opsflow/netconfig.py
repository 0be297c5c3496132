"""Device configuration text (pure): thin functions over the platform layer (``opsflow.platforms``).

``platform`` defaults to ``frr``, the lab's routers, whose behaviour these functions always had.
"""

from __future__ import annotations

from opsflow.platforms import get


def config_lines(text: str, platform: str = "frr") -> list[str]:
    """The running configuration without volatile lines (timestamps, banners of the show command)."""
    return get(platform).config_lines(text)


def config_diff(before: str, after: str, platform: str = "frr") -> str:
    """What changed between two configs (FRR: a unified diff; others: hierarchical, at any depth)."""
    return get(platform).compare(before, after)


def candidate_diff(running: str, lines: list[str], platform: str = "frr") -> str:
    """What applying ``lines`` would change.

    FRR: top-level lines absent from the running config; a line already present is no change;
    ``no X`` removes X if present. Others: the lines applied to a model of the platform's config
    mode, compared with the running config at every level.
    """
    if platform != "frr":
        return get(platform).candidate(running, lines)
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
