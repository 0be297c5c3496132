"""opsflow backup list / show / diff / verify / report."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from opsflow.backup.repo import BackupError
from opsflow.cli.options import db_opt
from opsflow.errors import UsageError
from opsflow.textsafe import for_terminal

if TYPE_CHECKING:
    from opsflow.backup.archives import ArchiveStore
    from opsflow.backup.repo import ConfigRepo


def _stores() -> tuple[ConfigRepo, ArchiveStore]:
    from opsflow.backup import backup_home
    from opsflow.backup.archives import ArchiveStore
    from opsflow.backup.repo import ConfigRepo

    home = backup_home()
    return ConfigRepo(home / "network"), ArchiveStore(home / "servers")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@click.group()
def backup() -> None:
    """Device config versions and server archives: list, show, diff, verify, report."""


@backup.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
def list_(name: str | None, as_json: bool) -> None:
    """Versions of a device's config or a server's archives (all, without NAME)."""
    repo, archives = _stores()
    rows: list[dict[str, Any]] = []
    devices = [name] if name and name in repo.devices() else ([] if name else repo.devices())
    for dev in devices:
        rows += [{"name": dev, "kind": "config", "version": v.id, "at": v.at, "note": v.message}
                 for v in repo.versions(dev)]
    for a in archives.archives(name) if (not name or (archives.root / name).is_dir()) else []:
        try:
            m = a.manifest()
            note = f"{sum(1 for f in m['files'] if f['type'] == 'file')} files, {m['archive_size']} bytes"
        except (BackupError, KeyError, TypeError) as exc:
            note = f"manifest unreadable ({type(exc).__name__}): run `opsflow backup verify {a.host} --all`"
        rows.append({"name": a.host, "kind": "archive", "version": a.id, "at": a.created, "note": note})
    if name and not rows:
        raise UsageError(f"no backup of {name!r} (devices: {', '.join(repo.devices()) or 'none'})")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        click.echo(for_terminal(f"{r['name']:<12} {r['kind']:<8} {r['version']:<34} {_when(r['at'])}  {r['note']}"))


@backup.command()
@click.argument("device")
@click.argument("version", required=False)
def show(device: str, version: str | None) -> None:
    """A device's saved config (default: the latest version)."""
    repo, _ = _stores()
    click.echo(for_terminal(repo.show(device, version)), nl=False)


@backup.command()
@click.argument("device")
@click.argument("v1", required=False)
@click.argument("v2", required=False)
def diff(device: str, v1: str | None, v2: str | None) -> None:
    """Diff of two versions (default: previous → latest; one version → that → latest)."""
    repo, _ = _stores()
    text = repo.diff(device, v1, v2 or ("latest" if v1 else None))
    click.echo(for_terminal(text) or "no difference", nl=not text)


@backup.command()
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True,
              help="every archive and config version (default: the latest per host and device)")
def verify(name: str | None, all_: bool) -> None:
    """Re-read stored archives against their manifests and config versions against their git object
    hashes and recorded checksums; one line per item, exit 1 when any fails."""
    repo, archives = _stores()
    found = archives.archives(name) if not name or (archives.root / name).is_dir() else []
    if not all_:
        latest: dict[str, Any] = {}
        for a in found:
            latest.setdefault(a.host, a)
        found = list(latest.values())
    history, _ = repo.history()
    configs = repo.verify(name, every=all_) if not name or name in history else []
    if not found and not configs:
        what = f"of {name!r} " if name else ""
        raise UsageError(f"nothing to verify: no server archive {what}under {archives.root} and no device config "
                         f"version {what}under {repo.root}")
    bad = 0
    for a in found:
        problems = archives.verify(a)
        bad += bool(problems)
        click.echo(for_terminal(f"{'FAILED' if problems else 'ok':<7}archive {a.host:<12} {a.id}"
                                + (f": {'; '.join(problems[:3])}" if problems else "")))
    versions = 0
    legacy = 0
    for c in configs:
        bad += not c.ok
        versions += c.version is not None
        legacy += bool(c.ok and c.note.startswith("no recorded checksum"))
        vid = c.version.id if c.version else "-"
        detail = f": {'; '.join(c.problems)}" if c.problems else (f" ({c.note})" if c.note else "")
        click.echo(for_terminal(f"{'ok' if c.ok else 'FAILED':<7}config  {c.device:<12} {vid}{detail}"))
    summary = f"checked {len(found)} archive(s), {versions} config version(s): "
    summary += f"{bad} failed" if bad else "all ok"
    if legacy:
        summary += f" ({legacy} version(s) without a recorded checksum: verified by git object hash only)"
    click.echo(summary)
    sys.exit(1 if bad else 0)


@backup.command()
@db_opt
@click.option("--max-backup-age", default=26 * 3600, show_default=True, help="seconds")
@click.option("--max-drill-age", default=8 * 86400, show_default=True, help="seconds")
@click.option("--json", "as_json", is_flag=True)
def report(db: str | None, max_backup_age: float, max_drill_age: float, as_json: bool) -> None:
    """Backup age and the last restore drill (RTO, RPO) per host and device; flags what is overdue."""
    from opsflow.reports.backups import backup_status
    from opsflow.store import open_store

    store = open_store(db)
    now = time.time()
    try:
        out = backup_status(store, now, max_backup_age, max_drill_age)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"{'name':<12} {'backup age':>10} {'last drill':>10} {'RTO':>8} {'RPO':>8}  flags")
    for e in out:
        rto = f"{e['rto']:.2f}s" if "rto" in e else "-"
        rpo = _age(e["rpo"]) if "rpo" in e else "-"
        click.echo(f"{e['name']:<12} {_age(now - e['backup_at'] if 'backup_at' in e else None):>10} "
                   f"{_age(now - e['drill_at'] if 'drill_at' in e else None):>10} {rto:>8} {rpo:>8}  "
                   f"{', '.join(e['flags']) or 'ok'}")
