"""Maintenance windows govern every run, not only scheduled ones.

A calendar with a ``scope`` (all runbooks, some runbooks, some inventory groups or hosts) governs
any run it covers, whoever starts it: a blackout in force, or no open window among the ``allowed``
calendars that cover the run, means the run may not start now. ``opsflow run`` then refuses unless
``--override-window --reason TEXT`` (recorded in the audit log with who did it); the event daemon
records the event as suppressed with reason ``blackout`` unless its rule says ``emergency: true``.
Calendars without a scope apply only to the schedule entries that list them.

Pure: the caller loads the calendars (``governing_calendars``) and asks ``verdict``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from opsflow.schedule.calendars import Calendar

_CACHE: dict[str, tuple[tuple[tuple[str, int, int], ...], list[Calendar]]] = {}


def governing_calendars(schedules_dir: str | Path, runbooks: str | Path | None = None) -> list[Calendar]:
    """The scoped calendars of a schedules directory ([] when there is none).

    Kept per directory while none of its files changed (names, sizes, modification times), so a
    long-running process (the daemon, the service) plans each run without parsing the directory again.
    """
    path = Path(schedules_dir)
    if not path.is_dir():
        return []
    stamp = _stamp(path)
    key = str(path.resolve())
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    calendars: list[Calendar] = []
    if _mentions_scope(path):  # else nothing governs unscheduled runs: no need to load the schedule machinery
        from opsflow.schedule.loader import load_schedules

        found = load_schedules(path, runbooks, check_runbooks=False)
        calendars = [c for c in found.calendars.values() if c.scope is not None]
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[key] = (stamp, calendars)
    return calendars


def _stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for f in sorted(path.rglob("*")):
        try:
            st = f.stat()
        except OSError:
            continue
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


def _mentions_scope(path: Path) -> bool:
    """Whether any schedules file has a ``scope:`` key (a cheap text look before parsing anything)."""
    pattern = re.compile(rb"\bscope\s*:")  # block or flow style; a comment that says so only costs a parse
    for f in path.rglob("*"):
        if f.suffix in (".yaml", ".yml") and f.is_file():
            try:
                if pattern.search(f.read_bytes()):
                    return True
            except OSError:
                return True  # unreadable: let the loader say what is wrong
    return False


def verdict(calendars: Iterable[Calendar], runbook: str, targets: Iterable[str], at: datetime) -> str | None:
    """None when a run of ``runbook`` on ``targets`` (hosts and their groups) may start at ``at``;
    otherwise why not: the blackout in force, or the windows it is outside of."""
    names = frozenset(targets)
    covering = [c for c in calendars if c.scope is not None and c.scope.covers(runbook, names)]
    for calendar in covering:
        if calendar.mode == "blackout":
            is_open, reason = calendar.open_at(at)
            if not is_open:
                return reason
    windows = [c for c in covering if c.mode == "allowed"]
    if windows and not any(c.open_at(at)[0] for c in windows):
        return "outside its maintenance window(s) " + ", ".join(repr(c.name) for c in windows)
    return None
