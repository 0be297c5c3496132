"""Device configurations versioned in a git repository: one file per device, a commit per change."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from opsflow.errors import OpsflowError

_lock = threading.Lock()
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


class BackupError(OpsflowError):
    exit_code = 1


@dataclass(frozen=True)
class Version:
    id: str  # short commit hash
    device: str
    at: float
    message: str


class ConfigRepo:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["git", "-C", str(self.root), "-c", "user.name=opsflow",
                               "-c", "user.email=opsflow@localhost", "-c", "commit.gpgsign=false", *args],
                              capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise BackupError(f"git {args[0]} in {self.root} failed: {proc.stderr.strip()}")
        return proc

    def ensure(self) -> None:
        if not (self.root / ".git").is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            self._git("init", "-q")

    @staticmethod
    def _file(device: str) -> str:
        if not _SAFE.match(device):
            raise BackupError(f"device name {device!r} is not usable as a file name")
        return f"{device}.cfg"

    def save(self, device: str, config: str, run_id: str) -> tuple[str, str | None]:
        """Store a config; commit only when it changed. Return (version, diff or None when unchanged).

        Four git processes for a change (add, diff, commit, rev-parse), three when unchanged.
        """
        name = self._file(device)
        with _lock:
            self.ensure()
            path = self.root / name
            tmp = path.with_suffix(".tmp")
            tmp.write_text(config)
            tmp.replace(path)
            self._git("add", "--", name)
            diff = self._git("diff", "--cached", "--no-color", "-U1", "--", name).stdout
            if not diff:
                return self._git("log", "-1", "--format=%h", "--abbrev=12", "--", name).stdout.strip(), None
            self._git("commit", "-q", "-m", f"{device}: backup by run {run_id}", "--", name)
            version = self._git("rev-parse", "--short=12", "HEAD").stdout.strip()
            new_file = "new file mode" in diff.split("@@", 1)[0]
            return version, "" if new_file else diff

    def versions(self, device: str | None = None) -> list[Version]:
        """Newest first."""
        if not (self.root / ".git").is_dir():
            return []
        args = ["log", "--format=%h%x09%ct%x09%s", "--abbrev=12"]
        if device:
            args += ["--", self._file(device)]
        proc = self._git(*args, check=False)
        out = []
        for line in proc.stdout.splitlines():
            vid, ts, msg = line.split("\t", 2)
            dev = device or msg.split(":", 1)[0]
            out.append(Version(vid, dev, float(ts), msg))
        return out

    def devices(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.cfg")) if self.root.is_dir() else []

    def resolve(self, device: str, version: str | None) -> Version:
        versions = self.versions(device)
        if not versions:
            raise BackupError(f"no backup of {device} in {self.root} (run a network.backup first)")
        if version in (None, "", "latest"):
            return versions[0]
        if version.startswith("~") and version[1:].isdigit():
            n = int(version[1:])
            if n >= len(versions):
                raise BackupError(f"{device} has only {len(versions)} version(s)")
            return versions[n]
        hits = [v for v in versions if v.id.startswith(version)]
        if len(hits) != 1:
            raise BackupError(f"version {version!r} of {device} not found; see `opsflow backup list {device}`")
        return hits[0]

    def show(self, device: str, version: str | None = None) -> str:
        v = self.resolve(device, version)
        return self._git("show", f"{v.id}:{self._file(device)}").stdout

    def diff(self, device: str, old: str | None = None, new: str | None = None) -> str:
        """Diff between two versions (default: the previous and the latest)."""
        versions = self.versions(device)
        if old is None and new is None:
            if len(versions) < 2:
                return ""
            a, b = versions[1].id, versions[0].id
        else:
            a = self.resolve(device, old).id
            b = self.resolve(device, new).id
        return self._git("diff", a, b, "--", self._file(device)).stdout

    def age(self, device: str) -> float | None:
        versions = self.versions(device)
        return time.time() - versions[0].at if versions else None
