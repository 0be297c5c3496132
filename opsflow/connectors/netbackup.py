"""network.backup / network.restore on one device session (called by the network connector)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from opsflow.backup import backup_home
from opsflow.backup.configs import InvalidConfig, restore_delta, validate
from opsflow.backup.repo import BackupError, ConfigIntegrityError, ConfigRepo
from opsflow.connectors.base import HostTask, RunContext
from opsflow.connectors.devconfig import ConfigRejected, apply_config
from opsflow.results import ErrorKind, HostStatus, StepResult, bound

_repos: dict[Path, ConfigRepo] = {}


def repo() -> ConfigRepo:
    """One ConfigRepo per repository in this process (it caches the checksum ledger it has read)."""
    root = backup_home() / "network"
    return _repos.setdefault(root, ConfigRepo(root))


def backup(conn: Any, ht: HostTask, ctx: RunContext, timeout: float) -> StepResult:
    name = ht.host.name
    text = conn.send_command("show running-config", read_timeout=timeout)
    try:
        config = validate(text, ht.host.platform)
    except InvalidConfig as exc:
        return ht.result(HostStatus.FAILED, error_class=ErrorKind.INVALID_CONFIG,
                         error=f"not stored: {exc}", stdout=bound(ctx.redactor.text(text), 4096))
    try:
        saved = repo().save(name, config, ctx.run_id)
    except BackupError as exc:
        return ht.result(HostStatus.FAILED, error_class=_kind(exc), error=str(exc))
    version, diff = saved.version, saved.diff
    new_version = diff is not None
    if saved.repaired:
        text = (f"stored version {version} failed verification ({saved.previous_problem}); the running config "
                "is identical to it: its content was re-stored and verified")
    elif saved.previous_problem:
        text = (f"new version {version}; the previous version failed verification ({saved.previous_problem}), "
                "so there is no diff against it")
    else:
        text = diff or (f"new version {version}" if new_version else f"unchanged ({version})")
    changed = new_version or saved.repaired
    return ht.result(HostStatus.CHANGED if changed else HostStatus.OK, changed=changed,
                     stdout=ctx.redactor.text(text),
                     data={"version": version, "new_version": new_version, "repaired": saved.repaired,
                           "previous_failed": saved.previous_problem, "lines": len(config.splitlines()),
                           "diff": ctx.redactor.text(diff or "")})


def _kind(exc: BackupError) -> ErrorKind:
    return ErrorKind.CONFIG_INTEGRITY if isinstance(exc, ConfigIntegrityError) else ErrorKind.BACKUP_ERROR


def restore(conn: Any, ht: HostTask, ctx: RunContext, timeout: float) -> StepResult:
    name, spec = ht.host.name, ht.spec
    started = time.time()
    try:
        v = repo().resolve(name, spec.version)
        target = repo().read(v)  # verified: a version that fails is refused, nothing is planned or applied
    except BackupError as exc:
        return ht.result(HostStatus.FAILED, error_class=_kind(exc), error=str(exc))
    running = conn.send_command("show running-config", read_timeout=timeout)
    delta = restore_delta(running, target)
    data: dict[str, Any] = {"version": v.id, "delta": delta, "rpo_seconds": round(started - v.at, 3)}
    if ht.check or not delta:
        return ht.result(HostStatus.OK, data={**data, "check_mode": ht.check},
                         stdout="\n".join(delta) or f"running config already equals {v.id}")
    out = apply_config(conn, delta, timeout)
    if isinstance(out, ConfigRejected):
        return ht.result(HostStatus.FAILED, error_class=ErrorKind.CONFIG_REJECTED, data=data,
                         error=f"device rejected the restore: {out.reason}")
    conn.save_config()
    after = conn.send_command("show running-config", read_timeout=timeout)
    left = restore_delta(after, target)
    data.update(rto_seconds=round(time.time() - started, 3), applied=len(delta))
    if left:
        return ht.result(HostStatus.FAILED, error_class=ErrorKind.RESTORE_NOT_VERIFIED, data={**data, "remaining": left},
                         stdout=bound(out), error=f"after the restore the config still differs: {left[:5]}")
    return ht.result(HostStatus.CHANGED, changed=True, data=data,
                     stdout=ctx.redactor.text("\n".join(delta)) + f"\nrestored {v.id}; running config verified")
