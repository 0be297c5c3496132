"""Process liveness, shared by the store (abandoned runs, stale locks), the daemon and work directories.

A pid alone is not an identity: pids are reused. ``process_start`` reads the start time
of a process (field 22 of ``/proc/PID/stat``); (pid, start) names one process for ever.
"""

from __future__ import annotations

import os


def process_start(pid: int) -> str:
    """A token that tells a live process from a later one reusing its pid ("" when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def process_alive(pid: int, start: str = "") -> bool:
    """True while process ``pid`` runs and (when ``start`` is given) is the one that started then."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or process_start(pid) == start
