"""Server backups: tar.gz archives with a manifest (path, size, mode, owner, sha256 per file).

The manifest is computed from the archive itself, so it always describes exactly
what was stored; the archive's own sha256 is in it too. Files are written to a
temporary name and renamed, so a crash never leaves a half archive in the catalogue.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsflow.backup.repo import BackupError

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_of(archive: Path) -> list[dict[str, Any]]:
    """Every member of the archive with its metadata and, for files, its sha256."""
    entries = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for m in tar:
                entry: dict[str, Any] = {"path": "/" + m.name.lstrip("./"), "type": _kind(m), "size": m.size,
                                         "mode": f"{m.mode:04o}", "owner": m.uname or str(m.uid),
                                         "group": m.gname or str(m.gid)}
                if m.isfile():
                    f = tar.extractfile(m)
                    assert f is not None
                    entry["sha256"] = hashlib.sha256(f.read()).hexdigest()
                elif m.issym():
                    entry["target"] = m.linkname
                entries.append(entry)
    except (tarfile.TarError, OSError, EOFError, AssertionError) as exc:
        raise BackupError(f"archive {archive} is unreadable: {exc}") from exc
    return entries


def _kind(m: tarfile.TarInfo) -> str:
    return "file" if m.isfile() else "dir" if m.isdir() else "symlink" if m.issym() else "other"


@dataclass(frozen=True)
class Archive:
    host: str
    id: str
    path: Path
    manifest_path: Path
    created: float
    run_id: str

    def manifest(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.manifest_path.read_text())
            return data
        except (OSError, ValueError) as exc:
            raise BackupError(f"manifest {self.manifest_path} is unreadable: {exc}") from exc


class ArchiveStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, host: str) -> Path:
        if not _SAFE.match(host):
            raise BackupError(f"host name {host!r} is not usable as a directory name")
        return self.root / host

    def new_path(self, host: str, run_id: str) -> tuple[str, Path]:
        d = self._dir(host)
        d.mkdir(parents=True, exist_ok=True)
        aid = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 1000000:06d}-{run_id[-6:]}"
        return aid, d / f"{aid}.tar.gz.part"

    def commit(self, host: str, aid: str, part: Path, run_id: str, paths: list[str]) -> Archive:
        """Describe a downloaded archive, then publish archive and manifest atomically."""
        files = manifest_of(part)
        if not files:
            raise BackupError("the archive is empty")
        final = part.with_name(f"{aid}.tar.gz")
        manifest = {"host": host, "id": aid, "run_id": run_id, "created": time.time(), "paths": paths,
                    "archive": final.name, "archive_sha256": sha256_file(part),
                    "archive_size": part.stat().st_size, "files": files}
        mpath = final.with_name(f"{aid}.json")
        tmp = mpath.with_suffix(".json.part")
        tmp.write_text(json.dumps(manifest, indent=1))
        part.replace(final)
        tmp.replace(mpath)
        return Archive(host, aid, final, mpath, float(str(manifest["created"])), run_id)

    def archives(self, host: str | None = None) -> list[Archive]:
        """Newest first."""
        hosts = [host] if host else sorted(p.name for p in self.root.iterdir() if p.is_dir()) \
            if self.root.is_dir() else []
        out = []
        for h in hosts:
            for m in self._dir(h).glob("*.json"):
                try:
                    data = json.loads(m.read_text())
                    out.append(Archive(h, data["id"], m.with_name(data["archive"]), m, float(data["created"]),
                                       data.get("run_id", "")))
                except (OSError, ValueError, KeyError):
                    out.append(Archive(h, m.stem, m.with_suffix(".tar.gz"), m, m.stat().st_mtime, ""))
        return sorted(out, key=lambda a: a.created, reverse=True)

    def resolve(self, host: str, version: str | None) -> Archive:
        found = self.archives(host)
        if not found:
            raise BackupError(f"no backup of {host} in {self.root / host}")
        if version in (None, "", "latest"):
            return found[0]
        hits = [a for a in found if a.id.startswith(version)]
        if len(hits) != 1:
            raise BackupError(f"backup {version!r} of {host} not found; see `opsflow backup list {host}`")
        return hits[0]

    def verify(self, archive: Archive) -> list[str]:
        """Problems found re-reading an archive against its manifest (empty: intact).

        An unreadable or malformed manifest is a problem like any other, never an exception:
        one bad archive does not stop the verification of the others.
        """
        try:
            manifest = archive.manifest()
            entries = [(str(e["path"]), e.get("sha256")) for e in manifest["files"]]
        except BackupError as exc:
            return [str(exc)]
        except (KeyError, TypeError, AttributeError) as exc:
            return [f"manifest {archive.manifest_path} is malformed: {type(exc).__name__}: {exc}"]
        if not archive.path.is_file():
            return [f"archive file {archive.path.name} is missing"]
        problems = []
        digest = sha256_file(archive.path)
        if digest != manifest.get("archive_sha256"):
            problems.append(f"archive sha256 {digest[:16]}… != manifest {str(manifest.get('archive_sha256'))[:16]}…")
        try:
            actual = {e["path"]: e for e in manifest_of(archive.path)}
        except BackupError as exc:
            return [*problems, str(exc)]
        for path, digest in entries:
            got = actual.get(path)
            if got is None:
                problems.append(f"{path}: missing from the archive")
            elif digest != got.get("sha256"):
                problems.append(f"{path}: content differs from the manifest")
        return problems

    def prune(self, host: str, keep_last: int | None, daily: int, weekly: int, monthly: int) -> list[str]:
        found = self.archives(host)
        keep = retained([(a.id, a.created) for a in found], keep_last, daily, weekly, monthly)
        removed = []
        for a in found:
            if a.id not in keep:
                for p in (a.path, a.manifest_path):
                    p.unlink(missing_ok=True)
                removed.append(a.id)
        return removed


def retained(items: list[tuple[str, float]], keep_last: int | None, daily: int = 0, weekly: int = 0,
             monthly: int = 0) -> set[str]:
    """Ids kept by a retention policy: the newest ``keep_last``, plus the newest backup of each of the
    last ``daily`` days, ``weekly`` ISO weeks and ``monthly`` months that have one (GFS)."""
    newest = sorted(items, key=lambda x: x[1], reverse=True)
    if keep_last is None and not (daily or weekly or monthly):
        return {i for i, _ in newest}
    keep = {i for i, _ in newest[: keep_last or 0]}
    for count, key in ((daily, "%Y-%m-%d"), (weekly, "%G-W%V"), (monthly, "%Y-%m")):
        seen: list[str] = []
        for ident, ts in newest:
            bucket = datetime.fromtimestamp(ts, UTC).strftime(key)
            if bucket not in seen:
                seen.append(bucket)
                if len(seen) > count:
                    break
                keep.add(ident)
    return keep
