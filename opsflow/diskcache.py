"""Values kept on disk between processes, each keyed by a digest of everything it was made from.

``get(kind, parts)`` / ``put(kind, parts, value)``: ``parts`` are what the value depends on (the text
it was made from, the fingerprint of the code that made it, …); their digest names the entry, so a
changed input is simply another entry and nothing is ever invalidated. Entries are pickles in
``$OPSFLOW_HOME/cache/<kind>/`` (``~/.opsflow/cache``): the directory mode 0700, every file 0600,
written atomically (a temporary file, then a rename), the newest :data:`KEEP` of a kind kept.

A pickle is code, so an entry is read only when this user owns it and its directory and nobody else
may write to either. Anything wrong with an entry (missing, corrupt, written by another version of
Python or opsflow) is a miss, never an error; a cache that cannot be written only makes the next
process slower.

Users: the validated runbooks (:mod:`opsflow.runbook.cache`) and the scoped calendars of a schedules
directory (:func:`opsflow.planning.check_windows`).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FORMAT = 1
KEEP = 256  # entries kept per kind; the oldest written go first


def cache_dir(kind: str) -> Path:
    from opsflow.settings import current

    return current().home / "cache" / kind


def digest(parts: Iterable[Any]) -> str:
    """The key of a value made from ``parts`` (their ``repr``), by this Python and pickle format."""
    text = repr((FORMAT, sys.version, pickle.HIGHEST_PROTOCOL, *parts))
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def stamp(path: str | Path) -> tuple[str, int, int] | tuple[str]:
    """A file's (path, mtime, size): changes when the file does; (path,) when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return (str(path),)
    return (str(path), st.st_mtime_ns, st.st_size)


def tree_stamp(root: str | Path, limit: int = 20000) -> list[Any] | None:
    """Stamps of a directory and everything under it (following links); None when more than ``limit``."""
    out: list[Any] = [stamp(root)]
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            out.append(stamp(entry.path))
            if len(out) > limit:
                return None
            try:
                if entry.is_dir():
                    stack.append(entry.path)
            except OSError:
                continue
    return out


def code_stamp(*paths: str | Path) -> list[Any]:
    """Stamps of source files and of every ``.py`` file in source directories: the code a value depends on."""
    out: list[Any] = []
    for path in paths:
        if os.path.isdir(path):
            out += [stamp(e.path) for e in sorted(os.scandir(path), key=lambda e: e.name) if e.name.endswith(".py")]
        else:
            out.append(stamp(path))
    return out


def package_stamp(name: str) -> tuple[str, int, int] | tuple[str]:
    """The stamp of an installed package's ``__init__`` (changes with its version), found without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return (name,)
    return stamp(spec.origin) if spec is not None and spec.origin else (name,)


def _private(st: os.stat_result) -> bool:
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def get(kind: str, key: str) -> Any | None:
    """The value stored under ``key``, or None (a miss)."""
    folder = cache_dir(kind)
    try:
        if not _private(os.stat(folder)):
            return None
        with open(folder / f"{key}.pickle", "rb") as fh:
            if not _private(os.fstat(fh.fileno())):
                return None
            entry = pickle.load(fh)  # noqa: S301 - our own file, in our own directory (checked above)
    except Exception:  # noqa: BLE001 - a missing, unreadable or corrupt entry is a miss
        return None
    if not isinstance(entry, tuple) or len(entry) != 2 or entry[0] != key:
        return None
    return entry[1]


def put(kind: str, key: str, value: Any) -> None:
    """Store ``value`` under ``key`` (atomically); failures are ignored."""
    folder = cache_dir(kind)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(os.stat(folder)):
            return
        data = pickle.dumps((key, value), protocol=pickle.HIGHEST_PROTOCOL)
        tmp = folder / f".{key}.{os.getpid()}.{threading.get_ident()}"  # writers of one key never share it
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, folder / f"{key}.pickle")
    except (OSError, pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return
    evict(folder, ".pickle", KEEP)


def evict(folder: Path, suffix: str, keep: int) -> None:
    """Keep the newest ``keep`` entries (files ending in ``suffix``) of a cache directory."""
    try:
        entries = [(e.stat().st_mtime_ns, e.path) for e in os.scandir(folder) if e.name.endswith(suffix)]
    except OSError:
        return
    if len(entries) <= keep:
        return
    for _, old in sorted(entries)[: len(entries) - keep]:
        try:
            os.unlink(old)
        except OSError:
            continue
