"""Fire decisions of the scheduler and the audit log: a mixin of SqlStore.

A fire decision is recorded for (entry, slot) *before* anything runs, with an insert that only
one scheduler can win: a restarted or a second scheduler never fires a slot twice. Decisions:
``fired`` (a run was started: ``run_id``, later its ``outcome``), ``skipped`` (with the reason:
blackout, dependency, concurrency, outside window …), ``missed`` (its time passed while no scheduler
ran), ``deferred`` (to ``deferred_to``), ``coalesced`` (folded into a later slot by the misfire policy).

The audit log keeps every action of a person or token: who, what, on what, and why.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

FIRE_DECISIONS = ("fired", "skipped", "missed", "deferred", "coalesced")
_FIRE_COLS = ("entry", "slot", "decision", "reason", "deferred_to", "run_id", "outcome", "decided_at", "scheduler")
_AUDIT_COLS = ("id", "at", "actor", "action", "target", "detail")


class ScheduleStoreMixin:
    if TYPE_CHECKING:
        def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...

    def claim_fire(self, entry: str, slot: float, decision: str, reason: str | None = None,
                   deferred_to: float | None = None, run_id: str | None = None, scheduler: str = "") -> bool:
        """Record the decision for (entry, slot); False when a decision was already recorded for it."""
        if decision not in FIRE_DECISIONS:
            raise ValueError(f"unknown fire decision {decision!r}")
        rows = self._exec("INSERT INTO schedule_fires (entry, slot, decision, reason, deferred_to, run_id, decided_at, "
                          "scheduler) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (entry, slot) DO NOTHING "
                          "RETURNING entry", (entry, slot, decision, reason, deferred_to, run_id, time.time(), scheduler))
        return bool(rows)

    def update_fire(self, entry: str, slot: float, *, run_id: str | None = None, outcome: str | None = None,
                    decision: str | None = None, reason: str | None = None) -> None:
        fields = {k: v for k, v in (("run_id", run_id), ("outcome", outcome), ("decision", decision),
                                    ("reason", reason)) if v is not None}
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._exec(f"UPDATE schedule_fires SET {sets} WHERE entry = ? AND slot = ?", (*fields.values(), entry, slot))

    def fires(self, since: float | None = None, entry: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Fire decisions, newest first."""
        where: list[str] = []
        args: list[Any] = []
        if since is not None:
            where.append("slot >= ?")
            args.append(since)
        if entry is not None:
            where.append("entry = ?")
            args.append(entry)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._exec(f"SELECT {', '.join(_FIRE_COLS)} FROM schedule_fires {clause}ORDER BY slot DESC LIMIT ?",
                          (*args, limit))
        return [dict(zip(_FIRE_COLS, r, strict=True)) for r in rows]

    def last_fires(self) -> dict[str, dict[str, Any]]:
        """The latest decision of every entry."""
        rows = self._exec(f"SELECT {', '.join('f.' + c for c in _FIRE_COLS)} FROM schedule_fires f JOIN "
                          "(SELECT entry, MAX(slot) AS slot FROM schedule_fires GROUP BY entry) m "
                          "ON f.entry = m.entry AND f.slot = m.slot")
        return {r[0]: dict(zip(_FIRE_COLS, r, strict=True)) for r in rows}

    def audit(self, actor: str, action: str, target: str | None = None, detail: str | None = None) -> None:
        """Record an action of a person or token (who did what, to what, why)."""
        self._exec("INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                   (time.time(), actor, action, target, detail))

    def audit_log(self, since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self._exec(f"SELECT {', '.join(_AUDIT_COLS)} FROM audit WHERE at >= ? ORDER BY at DESC, id DESC "
                          "LIMIT ?", (since or 0.0, limit))
        return [dict(zip(_AUDIT_COLS, r, strict=True)) for r in rows]
