"""network.backup / network.restore on one device session (called by the network connector)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from opsflow.backup import backup_home
from opsflow.backup.repo import BackupError, ConfigIntegrityError, ConfigRepo
from opsflow.connectors.base import HostTask, RunContext
from opsflow.connectors.devconfig import run_steps
from opsflow.platforms import InvalidConfig, get
from opsflow.results import ErrorKind, HostStatus, StepResult, bound

_repos: dict[Path, ConfigRepo] = {}


def repo() -> ConfigRepo:
    """One ConfigRepo per repository in this process (it caches the checksum ledger it has read)."""
    root = backup_home() / "network"
    return _repos.setdefault(root, ConfigRepo(root))


def backup(conn: Any, ht: HostTask, ctx: RunContext, timeout: float) -> StepResult:
    name, p = ht.host.name, get(ht.host.platform)
    text = conn.send_command(p.show_config, read_timeout=timeout)
    try:
        config = p.validate(text)
    except InvalidConfig as exc:
        return ht.result(HostStatus.FAILED, error_class=ErrorKind.INVALID_CONFIG,
                         error=f"not stored: {exc}", stdout=bound(ctx.redactor.text(text), 4096))
    try:
        if p.salted:  # secrets re-encrypted on every show: keep the stored form when only the salt moved
            config = p.stabilize(config, _latest(name))
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


def _latest(name: str) -> str | None:
    """The latest stored config (read under the writers' lock: the repository may be being created)."""
    with repo()._exclusive():  # noqa: SLF001 - one lock for readers and writers of the repository
        versions = repo().versions(name, limit=1)
        return repo().read(versions[0]) if versions else None


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
    p = get(ht.host.platform)
    running = conn.send_command(p.show_config, read_timeout=timeout)
    plan = p.plan(running, target)
    delta = plan.delta
    red = ctx.redactor  # config lines and the device's answers may carry the inventory's secrets
    data: dict[str, Any] = {"version": v.id, "delta": red.value(delta), "rpo_seconds": round(started - v.at, 3),
                            "mechanism": plan.mechanism}
    if not delta:
        return ht.result(HostStatus.OK, data={**data, "check_mode": ht.check},
                         stdout=f"running config already equals {v.id}")
    if ht.check:
        shown = "\n".join(delta)
        if plan.check:  # the platform's own diff; the device is left as it was
            res = run_steps(conn, plan.check, p, timeout)
            if res.failed:
                return ht.result(HostStatus.FAILED, error_class=ErrorKind.COMMAND_FAILED, data=data,
                                 error=red.text(f"the {plan.mechanism} check failed: {res.failed}"),
                                 stdout=bound(red.text(res.output)))
            data["diff"] = ctx.redactor.text(res.native_diff)
            shown = res.native_diff or shown
        return ht.result(HostStatus.OK, data={**data, "check_mode": True}, stdout=ctx.redactor.text(shown))
    res = run_steps(conn, plan.apply, p, timeout)
    if res.failed:
        return ht.result(HostStatus.FAILED, error_class=ErrorKind.CONFIG_REJECTED, data={**data, "steps": red.value(res.steps)},
                         stdout=bound(red.text(res.output)),
                         error=red.text(f"device rejected the restore ({plan.mechanism}): {res.failed}"))
    after = conn.send_command(p.show_config, read_timeout=timeout)
    left = p.delta(after, target)
    data.update(rto_seconds=round(time.time() - started, 3), applied=len(delta))
    if left:
        return ht.result(HostStatus.FAILED, error_class=ErrorKind.RESTORE_NOT_VERIFIED, data={**data, "remaining": red.value(left)},
                         stdout=bound(red.text(res.output)),
                         error=red.text(f"after the restore the config still differs: {left[:5]}"))
    how = "" if plan.mechanism == "delta" else f" by {plan.mechanism}"
    return ht.result(HostStatus.CHANGED, changed=True, data=data,
                     stdout=ctx.redactor.text("\n".join(delta)) + f"\nrestored {v.id}{how}; running config verified")
