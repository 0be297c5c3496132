"""Device configuration text for backups and restores (pure): thin functions over ``opsflow.platforms``.

``platform`` defaults to ``frr``, the lab's routers.
"""

from __future__ import annotations

from opsflow.platforms import InvalidConfig, get

__all__ = ["InvalidConfig", "normalize", "restore_delta", "validate"]


def normalize(text: str, platform: str = "frr") -> str:
    """The configuration without volatile lines, with one trailing newline."""
    return get(platform).normalize(text)


def validate(text: str, platform: str = "frr") -> str:
    """Return the normalized config, or raise InvalidConfig saying why the text is not one."""
    return get(platform).validate(text)


def restore_delta(running: str, target: str, platform: str = "frr") -> list[str]:
    """Configuration lines that turn ``running`` into ``target`` (empty when they already match)."""
    return get(platform).delta(running, target)
