"""Backup age and the last restore drill per host and device, from the store's step results.

One computation for ``opsflow backup report`` and the ``opsflow_backup_*`` gauges
(``opsflow.reports.metrics``): the newest successful ``backup``/``network.backup`` result of a host
is its last backup; the newest successful ``restore``/``network.restore`` result that measured an
RTO is the last drill of its source (``data.source``, else the host it ran on).
"""

from __future__ import annotations

import time
from typing import Any

from opsflow.store.base import Store

BACKUP_ACTIONS = ("backup", "network.backup")
RESTORE_ACTIONS = ("restore", "network.restore")
MAX_BACKUP_AGE = 26 * 3600.0
MAX_DRILL_AGE = 8 * 86400.0


def backup_status(store: Store, now: float | None = None, max_backup_age: float = MAX_BACKUP_AGE,
                  max_drill_age: float = MAX_DRILL_AGE) -> list[dict[str, Any]]:
    """Per name (sorted): ``name``, ``backup_at`` (absent: never), ``drill_at``, ``rto``, ``rpo``,
    ``drill_on`` (absent: no drill) and ``flags`` ("backup overdue", "no recent drill")."""
    now = time.time() if now is None else now
    # the SQL store: the newest successful result per action and host, through a partial index; another store:
    # its newest results of these actions
    last = getattr(store, "last_backup_results", None)
    rows = last() if last is not None else store.results_by_action(BACKUP_ACTIONS + RESTORE_ACTIONS)
    table: dict[str, dict[str, Any]] = {}
    for r in rows:  # newest first: the first one seen of each kind is the last
        ok = r["status"] in ("ok", "changed")
        if r["action"] in BACKUP_ACTIONS:
            entry = table.setdefault(r["host"], {"name": r["host"]})
            if ok and "backup_at" not in entry:
                entry["backup_at"] = r["ended_at"]
        elif ok and "rto_seconds" in r["data"]:
            source = r["data"].get("source") or r["host"]
            entry = table.setdefault(source, {"name": source})
            if "drill_at" not in entry:
                entry.update(drill_at=r["ended_at"], rto=r["data"]["rto_seconds"], rpo=r["data"]["rpo_seconds"],
                             drill_on=r["host"])
    for entry in table.values():
        flags = []
        if now - entry.get("backup_at", 0) > max_backup_age:
            flags.append("backup overdue")
        if now - entry.get("drill_at", 0) > max_drill_age:
            flags.append("no recent drill")
        entry["flags"] = flags
    return sorted(table.values(), key=lambda e: e["name"])
