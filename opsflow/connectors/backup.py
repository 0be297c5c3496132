"""Server backups and restores over the run's SSH connections (tar streamed, checksums verified)."""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

from opsflow.backup import backup_home
from opsflow.backup.archives import ArchiveStore
from opsflow.backup.repo import BackupError
from opsflow.connectors.base import HostTask, PerHostConnector, RunContext, run_process
from opsflow.connectors.ssh import ssh_failure
from opsflow.results import ErrorKind, HostStatus, StepResult


def _ssh(ctx: RunContext, host: str, command: str) -> list[str]:
    return ["ssh", "-F", str(ctx.ssh_config), host, "--", command]


def _stream(argv: list[str], stdin: Path | None, stdout: Path | None, timeout: float | None,
            ctx: RunContext) -> tuple[int | None, str]:
    """Run with a file as stdin or stdout (binary); return (rc, stderr)."""
    fin: Any = stdin.open("rb") if stdin else subprocess.DEVNULL
    fout: Any = stdout.open("wb") if stdout else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(argv, stdin=fin, stdout=fout, stderr=subprocess.PIPE, start_new_session=True)
        ctx.inflight.add(proc)  # type: ignore[arg-type,unused-ignore]
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            return None, "timed out"
        finally:
            ctx.inflight.discard(proc)  # type: ignore[arg-type,unused-ignore]
        return proc.returncode, err.decode(errors="replace")
    finally:
        for f in (fin, fout):
            if hasattr(f, "close"):
                f.close()


def _unreachable(task: HostTask, rc: int | None, err: str) -> StepResult | None:
    return ssh_failure(task, rc, err)


class BackupConnector(PerHostConnector):
    """``backup`` (archive paths of a host) and ``restore`` (put an archive back, verified)."""

    def run_one(self, task: HostTask, ctx: RunContext) -> StepResult:
        store = ArchiveStore(backup_home() / "servers")
        try:
            if task.action == "backup":
                return self._backup(task, ctx, store)
            return self._restore(task, ctx, store)
        except BackupError as exc:
            return task.result(HostStatus.FAILED, error_class=ErrorKind.BACKUP_ERROR, error=str(exc))

    def _backup(self, task: HostTask, ctx: RunContext, store: ArchiveStore) -> StepResult:
        spec, host = task.spec, task.host.name
        rel = [p.lstrip("/") or "." for p in spec.paths]
        aid, part = store.new_path(host, ctx.run_id)
        cmd = "tar --numeric-owner -czf - -C / -- " + " ".join(shlex.quote(p) for p in rel)
        started = time.time()
        rc, err = _stream(_ssh(ctx, host, cmd), None, part, task.timeout, ctx)
        bad = _unreachable(task, rc, err)
        if bad or rc not in (0, 1):  # GNU tar: 1 = a file changed while read; 2 = fatal
            part.unlink(missing_ok=True)
            return bad or task.result(HostStatus.FAILED, rc=rc, error_class=ErrorKind.BACKUP_FAILED,
                                      error=f"tar on {host} failed (rc {rc}): {err.strip()[-300:]}")
        archive = store.commit(host, aid, part, ctx.run_id, list(spec.paths))
        manifest = archive.manifest()
        pruned = []
        policy = [int(x) if x is not None else None for x in
                  (spec.keep_last, spec.keep_daily, spec.keep_weekly, spec.keep_monthly)]
        if any(policy):
            pruned = store.prune(host, policy[0], policy[1] or 0, policy[2] or 0, policy[3] or 0)
        files = [f for f in manifest["files"] if f["type"] == "file"]
        return task.result(HostStatus.CHANGED, changed=True, rc=rc, started_at=started,
                           stdout=f"archive {aid}: {len(files)} files, {manifest['archive_size']} bytes",
                           stderr=err.strip()[-2000:] if rc == 1 else "",
                           data={"archive": aid, "files": len(files), "bytes": manifest["archive_size"],
                                 "sha256": manifest["archive_sha256"], "pruned": pruned})

    def _restore(self, task: HostTask, ctx: RunContext, store: ArchiveStore) -> StepResult:
        spec, host = task.spec, task.host.name
        source = spec.from_host or host
        started = time.time()
        archive = store.resolve(source, spec.version)
        problems = store.verify(archive)
        if problems:
            return task.result(HostStatus.FAILED, error_class=ErrorKind.ARCHIVE_CORRUPT,
                               error=f"backup {archive.id} of {source} fails verification, nothing restored: "
                                     + "; ".join(problems[:5]), data={"archive": archive.id, "problems": problems})
        manifest = archive.manifest()
        files = [f for f in manifest["files"] if f["type"] == "file"]
        target = spec.target or "/"
        data = {"archive": archive.id, "source": source, "target": target, "files": len(files),
                "rpo_seconds": round(started - archive.created, 3)}
        if task.check:
            return task.result(HostStatus.OK, data={**data, "check_mode": True},
                               stdout=f"would restore {len(files)} files of {archive.id} to {host}:{target}")
        rc, err = _stream(_ssh(ctx, host, f"mkdir -p {shlex.quote(target)} && "
                                          f"tar --numeric-owner -xzf - -C {shlex.quote(target)}"),
                          archive.path, None, task.timeout, ctx)
        bad = _unreachable(task, rc, err)
        if bad or rc != 0:
            return bad or task.result(HostStatus.FAILED, rc=rc, error_class=ErrorKind.RESTORE_FAILED,
                                      error=f"tar on {host} failed (rc {rc}): {err.strip()[-300:]}", data=data)
        mismatched = self._verify_on_host(task, ctx, target, files)
        ended = time.time()
        data.update(rto_seconds=round(ended - started, 3), verified=len(files) - len(mismatched))
        if mismatched:
            return task.result(HostStatus.FAILED, error_class=ErrorKind.RESTORE_NOT_VERIFIED, started_at=started,
                               ended_at=ended, data={**data, "mismatched": mismatched[:50]},
                               error=f"{len(mismatched)} restored file(s) differ from the manifest: "
                                     + ", ".join(mismatched[:5]))
        return task.result(HostStatus.CHANGED, changed=True, started_at=started, ended_at=ended, data=data,
                           stdout=f"restored {len(files)} files of {archive.id} ({source}) to {host}:{target}, "
                                  f"all checksums verified; RTO {data['rto_seconds']:.2f}s RPO {data['rpo_seconds']:.0f}s")

    def _verify_on_host(self, task: HostTask, ctx: RunContext, target: str, files: list[dict[str, str]]) -> list[str]:
        rel = "\0".join("." + f["path"] for f in files) + "\0"
        rc, out, err, _ = run_process(
            _ssh(ctx, task.host.name, f"cd {shlex.quote(target)} && xargs -0 sha256sum --"), rel,
            task.timeout, track=ctx.inflight)
        got = {}
        for line in out.splitlines():
            digest, _, name = line.partition("  ")
            got["/" + name.lstrip("./")] = digest
        return [f["path"] for f in files if got.get(f["path"]) != f["sha256"]]
