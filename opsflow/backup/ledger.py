"""The checksum ledger: a sha256 of every device config version written, kept outside git.

An append-only JSON-lines file beside the repository (``backups/network.checksums.jsonl``,
never inside ``.git``): one line per version, ``{"device", "version" (the full commit id),
"blob", "sha256", "at", "source"}``. ``source`` is ``backup`` (recorded when the version was
written, before it became visible) or ``adopted`` (a version that existed before the ledger,
recorded by the first backup that created the ledger, after its git objects were verified).
A ``{"void": true, ...}`` line withdraws a version whose commit never became visible. Lines
are appended with one write under an exclusive lock and fsynced; the ledger is created by an
atomic rename. A torn last line (a crash mid-write) is ignored; an unreadable line is a problem.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

SOURCES = ("backup", "adopted")


@dataclass(frozen=True)
class Entry:
    device: str
    version: str  # full commit id
    blob: str
    sha256: str
    at: float
    source: str = "backup"


def content_sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def mismatch(entry: Entry | None, actual: str | None, ledger_exists: bool = True) -> str | None:
    """Why content whose sha256 is ``actual`` (None: unreadable) fails the ledger; None when it passes.

    Without a ledger there is nothing to compare (versions made before it): that is not a failure.
    """
    if not ledger_exists:
        return None
    if entry is None:
        return ("not in the checksum ledger: it was not written by an opsflow backup "
                "(forged, or committed by hand)")
    if actual != entry.sha256:
        return f"checksum mismatch: expected sha256 {entry.sha256}, actual {actual or 'unreadable'}"
    return None


def _parse(line: str) -> Entry | tuple[str, str] | None:
    """An entry, a (device, version) withdrawn, or None for the header; ValueError when unreadable."""
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    if "ledger" in data:
        return None
    if data.get("void"):
        return str(data["device"]), str(data["version"])
    entry = Entry(str(data["device"]), str(data["version"]), str(data["blob"]), str(data["sha256"]),
                  float(data["at"]), str(data.get("source", "backup")))
    if len(entry.sha256) != 64 or entry.source not in SOURCES:
        raise ValueError("bad sha256 or source")
    return entry


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.Lock()  # one ledger is shared by the threads of a run
        self._reset(None)

    def _reset(self, ident: tuple[int, int] | None) -> None:
        self.problems: list[str] = []  # unreadable lines
        self._entries: dict[tuple[str, str], Entry] = {}
        self._offset = 0
        self._line = 0
        self._ident = ident

    def exists(self) -> bool:
        return self.path.is_file()

    def _refresh(self) -> None:
        """Read what was appended since the last look (everything again when the file was replaced)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._reset(None)
            return
        if (st.st_dev, st.st_ino) != self._ident or st.st_size < self._offset:
            self._reset((st.st_dev, st.st_ino))
        if st.st_size == self._offset:
            return
        with self.path.open("rb") as f:
            f.seek(self._offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1  # a torn last line is left for later
        for raw in chunk[:end].splitlines():
            self._line += 1
            if not raw.strip():
                continue
            try:
                got = _parse(raw.decode())
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                self.problems.append(f"line {self._line} of {self.path} is unreadable: {exc}")
                continue
            if isinstance(got, Entry):
                self._entries[(got.device, got.version)] = got
            elif got is not None:
                self._entries.pop(got, None)
        self._offset += end

    def get(self, device: str, version: str) -> Entry | None:
        with self._mutex:
            self._refresh()
            return self._entries.get((device, version))

    def entries(self, device: str | None = None) -> list[Entry]:
        with self._mutex:
            self._refresh()
            return [e for e in self._entries.values() if device is None or e.device == device]

    def create(self, entries: Iterable[Entry]) -> None:
        """Write a new ledger atomically (a header line, then the entries)."""
        lines = [json.dumps({"ledger": 1, "created": time.time()})]
        lines += [json.dumps(asdict(e), sort_keys=True) for e in entries]
        tmp = self.path.with_name(self.path.name + ".part")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
        _fsync_dir(self.path.parent)

    def append(self, entry: Entry) -> None:
        self._write(json.dumps(asdict(entry), sort_keys=True))

    def void(self, device: str, version: str) -> None:
        self._write(json.dumps({"void": True, "device": device, "version": version, "at": time.time()}))

    def _write(self, line: str) -> None:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size:  # a torn last line (a crash mid-write) must not swallow this one
                with open(self.path, "rb") as f:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        line = "\n" + line
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
