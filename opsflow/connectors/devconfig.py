"""Sending configuration to a device over an open Netmiko session: shared by network.config and
network.restore (so the network connector and the backup/restore code need not import each other)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONFIG_ERROR = r"^%\s*(Unknown|Invalid|Ambiguous|Incomplete|Error|Command incomplete)"


@dataclass
class ConfigRejected:
    reason: str
    output: str


def apply_config(conn: Any, lines: list[str], timeout: float) -> str | ConfigRejected:
    """Send configuration lines; a line the device rejects stops it and leaves config mode."""
    try:
        return str(conn.send_config_set(lines, error_pattern=CONFIG_ERROR, read_timeout=timeout))
    except Exception as exc:
        if type(exc).__name__ != "ConfigInvalidException":
            raise
        try:
            conn.exit_config_mode()
        except Exception:  # noqa: BLE001,S110 - the rejection is what gets reported
            pass
        text = str(exc).strip()
        return ConfigRejected(text.splitlines()[-1][:300] if text else "rejected", text)
