"""Per-run working directories that no crash leaves behind.

A run's working directory holds SSH control sockets, a generated ssh_config and, during
an ``ansible`` step, the extra vars and the inventory handed to ansible-runner — files
that may hold secrets. It is created mode 0700 under the system temporary directory and
named after the process that owns it (``ofr-PID-START-RANDOM``), so that any later opsflow
start (:func:`reap_workdirs`, called where abandoned runs are reaped) removes the
directories whose process is gone: a SIGKILLed run leaves its secrets on disk only until
the next opsflow command.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from opsflow.proc import process_alive, process_start

PREFIX = "ofr-"
_NAME = re.compile(rf"^{PREFIX}(\d+)-(\d+)-[A-Za-z0-9_]+$")


def make_workdir() -> Path:
    """A new private directory owned by this process (mode 0700)."""
    pid = os.getpid()
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{pid}-{process_start(pid) or 0}-"))


def reap_workdirs(base: Path | None = None) -> list[Path]:
    """Remove the working directories whose owning process is gone; return them."""
    root = base or Path(tempfile.gettempdir())
    removed = []
    try:
        entries = list(root.glob(f"{PREFIX}*"))
    except OSError:
        return []
    uid = os.getuid()
    for entry in entries:
        m = _NAME.match(entry.name)
        if not m:
            continue
        try:
            st = entry.lstat()
        except OSError:
            continue
        if st.st_uid != uid or not entry.is_dir() or entry.is_symlink():
            continue  # another user's, or not ours to judge
        pid, start = int(m.group(1)), m.group(2)
        if process_alive(pid, "" if start == "0" else start):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed
