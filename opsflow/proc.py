"""Process liveness, shared by the store (abandoned runs, stale locks), the daemon, work directories
and the lab.

A pid alone is not an identity: pids are reused. ``process_start`` reads the start time of a
process (field 22 of ``/proc/PID/stat``); (pid, start) names one process for ever.
"""

from __future__ import annotations


def stat_fields(pid: int) -> list[str] | None:
    """Fields 3… of /proc/PID/stat (state first), or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            raw = f.read()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()  # comm is in parentheses and may hold spaces


def process_start(pid: int) -> str:
    """A token that tells a live process from a later one reusing its pid ("" when it is gone)."""
    fields = stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else ""


def process_alive(pid: int, start: str | int | None = None) -> bool:
    """True while process ``pid`` runs (a zombie does not) and, when ``start`` is given, is the one
    that started then."""
    if pid <= 0:
        return False
    fields = stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return not start or (len(fields) > 19 and fields[19] == str(start))
