"""Changing a device over an open Netmiko session: shared by network.config and network.restore
(so the network connector and the backup/restore code need not import each other).

``apply_config`` sends configuration lines (committing them where the platform commits);
``run_steps`` runs a platform's restore ``Plan`` steps (``opsflow.platforms``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any

from opsflow.platforms import Platform, Step

CONFIG_ERROR = r"^%\s*(Unknown|Invalid|Ambiguous|Incomplete|Error|Command incomplete)"


@dataclass
class ConfigRejected:
    reason: str
    output: str


def _leave(conn: Any) -> None:
    try:
        conn.exit_config_mode()
    except Exception:  # noqa: BLE001,S110 - the rejection is what gets reported
        pass


def apply_config(conn: Any, lines: list[str], timeout: float, platform: Platform | None = None,
                 enter: bool = True, leave: bool = True) -> str | ConfigRejected:
    """Send configuration lines; a line the device rejects stops it and leaves config mode.
    On a committing platform (Junos, IOS-XR, PAN-OS) the lines are committed."""
    pattern = CONFIG_ERROR if platform is None or platform.name == "frr" else platform.errors
    commit = platform is not None and platform.commit and leave
    try:
        out = str(conn.send_config_set(lines, error_pattern=pattern, read_timeout=timeout,
                                       enter_config_mode=enter, exit_config_mode=leave and not commit))
    except Exception as exc:
        if type(exc).__name__ != "ConfigInvalidException":
            raise
        _discard(conn, platform)
        text = str(exc).strip()
        return ConfigRejected(text.splitlines()[-1][:300] if text else "rejected", text)
    if commit:
        try:
            out += str(conn.commit(read_timeout=timeout))
        except ValueError as exc:  # netmiko: the commit marker is missing
            _discard(conn, platform)
            return ConfigRejected(f"commit failed: {str(exc).strip().splitlines()[-1][:300]}", out + str(exc))
        _leave(conn)
    return out


def _discard(conn: Any, platform: Platform | None) -> None:
    """Leave config mode without keeping the candidate (committing platforms would keep it pending)."""
    if platform is not None and platform.commit:
        try:
            conn.send_command({"juniper_junos": "rollback 0", "cisco_xr": "abort"}.get(platform.name, "revert config"),
                              expect_string=r"[>#]\s*$")
        except Exception:  # noqa: BLE001,S110
            pass
    _leave(conn)


@dataclass
class StepsOutcome:
    output: str = ""
    native_diff: str = ""
    failed: str | None = None  # why it stopped: a step the device rejected
    steps: list[str] = field(default_factory=list)


def run_steps(conn: Any, steps: list[Step], platform: Platform, timeout: float) -> StepsOutcome:
    """Run a plan's steps in order; the first one the device rejects stops them."""
    res = StepsOutcome()
    for step in steps:
        res.steps.append(step.kind + (f" {step.text}" if step.kind == "send" else f" {step.path}"
                                      if step.kind == "stage" else ""))
        if step.kind == "config":
            out = apply_config(conn, list(step.lines), timeout, platform, enter=step.enter, leave=step.leave)
            if isinstance(out, ConfigRejected):
                res.failed = f"the device rejected the configuration: {out.reason}"
                return res
        elif step.kind == "save":
            out = str(conn.save_config())
        elif step.kind == "stage":
            out = _stage(conn, step, timeout)
            if out.startswith("stage failed"):
                res.failed = out
                return res
        elif step.kind == "paste":
            conn.write_channel(step.text.replace("\n", conn.RETURN))
            out = str(conn.read_until_pattern(pattern=step.expect or r"[>#]\s*$", read_timeout=timeout))
        else:
            # the prompt may change (a config session, config mode): wait for any prompt of this device
            expect = step.expect or re.escape(str(conn.base_prompt)) + r"[^\n]*[#>$]\s*$"
            out = str(conn.send_command(step.text, expect_string=expect, read_timeout=timeout,
                                        strip_prompt=True, strip_command=True))
        res.output += out if out.endswith("\n") or not out else out + "\n"
        err = platform.error(out) if step.kind in ("send", "paste") else None
        if err:
            res.failed = f"{step.text.splitlines()[0] if step.text else step.kind}: the device answered {err!r}"
            if step.kind in ("send", "paste"):
                _discard(conn, platform)
            return res
        if step.capture:
            res.native_diff = out.strip()
    return res


def _stage(conn: Any, step: Step, timeout: float) -> str:
    """Copy a file to the device by SCP (a connection checked against the same known_hosts), then
    compare the md5 the device computes with ours."""
    from netmiko import SCPConn

    data = step.text.encode()
    fd, local = tempfile.mkstemp(prefix="opsflow-stage-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        scp = SCPConn(conn, socket_timeout=timeout)
        try:
            scp.scp_transfer_file(local, step.path)
        finally:
            scp.close()
    finally:
        os.unlink(local)
    want = hashlib.md5(data, usedforsecurity=False).hexdigest()
    out = str(conn.send_command(step.verify, read_timeout=timeout)) if step.verify else want
    got = re.findall(r"\b[0-9a-f]{32}\b", out)
    if want not in got:
        return f"stage failed: {step.path} on the device does not match what was sent (md5 {want}, device: {out[:200]!r})"
    return f"staged {step.path} ({len(data)} bytes, md5 verified)\n"
