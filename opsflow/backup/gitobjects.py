"""Reading git objects without trusting them: every object is re-hashed against its name.

Git serves a loose object by its file name and does not check that the content hashes to
it: a corrupted object can read as "missing", a forged one (another valid object written
under the name) is served as if it were the original. ``ObjectReader`` keeps one
``git cat-file --batch`` process, re-hashes what it returns, and survives git dying on a
damaged object (the next read starts a new process).
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any


class ObjectProblem(Exception):
    """An object that cannot be read, or whose content does not hash to its name (``served``: what git gave)."""

    def __init__(self, message: str, served: bytes | None = None) -> None:
        super().__init__(message)
        self.served = served


def object_id(kind: str, data: bytes, algo: str = "sha1") -> str:
    """The git object name of ``data`` as an object of type ``kind``."""
    return hashlib.new(algo, f"{kind} {len(data)}\0".encode() + data).hexdigest()


def _algo(oid: str) -> str:
    return "sha256" if len(oid) == 64 else "sha1"


def tree_of(commit: bytes) -> str:
    """The tree named by a commit object's first line."""
    first = commit.split(b"\n", 1)[0].decode(errors="replace")
    if not first.startswith("tree ") or len(first.split()) != 2:
        raise ObjectProblem(f"not a commit (first line {first[:40]!r})")
    return first.split()[1]


def tree_entry(tree: bytes, name: str, oid_len: int = 20) -> str | None:
    """The object name of ``name`` in a (raw, binary) tree object, or None when it is not there."""
    pos = 0
    want = name.encode()
    while pos < len(tree):
        sp = tree.find(b" ", pos)
        nul = tree.find(b"\0", sp)
        if sp < 0 or nul < 0 or nul + 1 + oid_len > len(tree):
            raise ObjectProblem("malformed tree object")
        if tree[sp + 1:nul] == want:
            return tree[nul + 1:nul + 1 + oid_len].hex()
        pos = nul + 1 + oid_len
    return None


class ObjectReader:
    """``read(oid, kind)`` → the verified content of one object; ``ObjectProblem`` when it is not sound."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._proc: subprocess.Popen[bytes] | None = None
        self._err: IO[bytes] | None = None

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            self._proc.wait()
            self._proc = None
        if self._err is not None:
            self._err.close()
            self._err = None

    def _start(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            self._err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
            self._proc = subprocess.Popen(["git", "-C", str(self.root), "cat-file", "--batch"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err)
        return self._proc

    def _stderr(self) -> str:
        """What git said since the last look (the reason an object could not be read)."""
        if self._err is None:
            return ""
        self._err.seek(0)
        text = self._err.read().decode(errors="replace")
        self._err.seek(0)
        self._err.truncate()
        lines = [line.removeprefix("error: ").removeprefix("fatal: ") for line in text.splitlines()]
        return "; ".join(dict.fromkeys(line for line in lines if line))

    def _dead(self, oid: str, what: str) -> ObjectProblem:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        said = self._stderr()
        self.close()
        return ObjectProblem(f"object {oid[:12]} {what}" + (f" ({said})" if said else ""))

    def raw(self, name: str) -> tuple[str, str, bytes]:
        """(object name, type, content) as git serves it, unchecked."""
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(name.encode() + b"\n")
            proc.stdin.flush()
        except OSError:
            raise self._dead(name, "could not be read: git exited") from None
        header = proc.stdout.readline().decode(errors="replace").split()
        if len(header) == 2 and header[1] in ("missing", "ambiguous"):
            said = self._stderr()
            raise ObjectProblem(f"object {name[:12]} is missing or unreadable" + (f" ({said})" if said else ""))
        if len(header) != 3 or not header[2].isdigit():
            raise self._dead(name, "could not be read")
        size = int(header[2])
        data = proc.stdout.read(size + 1)
        if len(data) != size + 1:
            raise self._dead(name, "is corrupt: git could not read it")
        return header[0], header[1], data[:size]

    def read(self, oid: str, kind: str) -> bytes:
        """The content of object ``oid``, which must be a ``kind`` whose content hashes to ``oid``."""
        _, got, data = self.raw(oid)
        if got != kind:
            raise ObjectProblem(f"object {oid[:12]} is a {got}, expected a {kind}")
        actual = object_id(kind, data, _algo(oid))
        if actual != oid:
            raise ObjectProblem(f"object {oid[:12]} does not match its hash: its content hashes to {actual[:12]} "
                                "(forged or corrupted)", served=data)
        return data

    def resolve(self, name: str) -> str | None:
        """The object a revision (``HEAD``) names, or None when it names nothing readable (an unborn branch)."""
        try:
            return self.raw(name)[0]
        except ObjectProblem:
            return None
