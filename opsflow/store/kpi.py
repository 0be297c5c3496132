"""The queries of KPI reports and the daily roll-ups of finished runs: a mixin of SqlStore.

A day (UTC) is rolled up once every run started in it has ended: ``run_rollups`` then holds one row
per (day, runbook, runbook hash, trigger, status, check mode) with the count, the sum of durations
and a duration sketch (``opsflow.reports.stats.Sketch``), ``host_rollups`` the runs and failures per
(day, runbook, host), and ``rollup_days`` marks the day done. The claim on ``rollup_days`` and the
rows go in one transaction, so two reports rolling the same day at once leave one copy. Statuses of
ended runs never change, so a rolled day stays true.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

RUN_COLS = ("id", "runbook", "runbook_hash", "trigger", "status", "check_mode", "started_at", "ended_at",
            "duration", "hosts", "started_by")
ACTION_COLS = ("event_id", "rule", "outcome", "reason", "run_id", "run_status", "received_at", "started_at",
               "ended_at", "start_latency", "end_latency")
UNFINISHED = ("running", "waiting")


class KpiStoreMixin:
    if TYPE_CHECKING:
        def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
        def transaction(self) -> contextlib.AbstractContextManager[Callable[[str, tuple[Any, ...]], Any]]: ...

    # ---- runs ----------------------------------------------------------------------------------------
    def run_rows(self, since: float, until: float, runbooks: tuple[str, ...] | None = None) -> Iterator[tuple[Any, ...]]:
        """Runs started in [since, until), as RUN_COLS tuples, oldest first."""
        where = "started_at >= ? AND started_at < ?"
        args: list[Any] = [since, until]
        if runbooks is not None:
            if not runbooks:
                return iter(())
            where += f" AND runbook IN ({', '.join('?' for _ in runbooks)})"
            args += list(runbooks)
        return iter(self._exec(f"SELECT {', '.join(RUN_COLS)} FROM runs WHERE {where} ORDER BY started_at",
                               tuple(args)))

    def first_run_at(self) -> float | None:
        rows = self._exec("SELECT MIN(started_at) FROM runs")
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def unfinished_since(self, since: float) -> float | None:
        """The start of the oldest run still running or waiting (None when all have ended)."""
        # started_at + 0, +started_at: look the few unfinished runs up by status (SQLite would otherwise walk the
        # index on started_at from the oldest run until it meets one still running: every run of the store)
        rows = self._exec("SELECT MIN(started_at + 0) FROM runs WHERE status IN ('running', 'waiting') AND "
                          "+started_at >= ?", (since,))
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def slow_runs(self, runbook: str, since: float, until: float, at_least: float, limit: int = 10) -> list[dict[str, Any]]:
        # +started_at: the index on (runbook, duration) finds the few slow runs in order; the one on
        # (runbook, started_at) would read every run of the runbook in the span and sort them
        rows = self._exec("SELECT id, started_at, duration FROM runs WHERE runbook = ? AND duration >= ? AND "
                          "+started_at >= ? AND +started_at < ? AND check_mode = 0 AND status = 'succeeded' "
                          "ORDER BY duration DESC LIMIT ?", (runbook, at_least, since, until, limit))
        return [{"run_id": r[0], "started_at": r[1], "duration_s": r[2]} for r in rows]

    # ---- roll-ups ------------------------------------------------------------------------------------
    def rolled_days(self, first: str, last: str) -> set[str]:
        return {r[0] for r in self._exec("SELECT day FROM rollup_days WHERE day >= ? AND day <= ?", (first, last))}

    def save_rollup(self, day: str, runs: int, rows: list[tuple[Any, ...]], hosts: list[tuple[Any, ...]]) -> bool:
        """Record one day's roll-up; False when another process recorded it first."""
        with self.transaction() as execute:
            cur = execute("INSERT INTO rollup_days (day, runs, rolled_at) VALUES (?, ?, ?) ON CONFLICT (day) "
                          "DO NOTHING RETURNING day", (day, runs, time.time()))
            if not cur.fetchall():
                return False
            _insert_many(execute, "run_rollups (day, runbook, runbook_hash, trigger, status, check_mode, runs, "
                         "duration_sum, sketch, buckets)", [(day, *row) for row in rows])
            _insert_many(execute, "host_rollups (day, runbook, host, runs, failed)", [(day, *row) for row in hosts])
        return True

    def rollup_rows(self, first: str, last: str, runbooks: tuple[str, ...] | None = None) -> list[tuple[Any, ...]]:
        """(day, runbook, runbook_hash, trigger, status, check_mode, runs, duration_sum, sketch) of days
        first..last inclusive."""
        where = "day >= ? AND day <= ?"
        args: list[Any] = [first, last]
        if runbooks is not None:
            where += f" AND runbook IN ({', '.join('?' for _ in runbooks) or 'NULL'})"
            args += list(runbooks)
        return self._exec("SELECT day, runbook, runbook_hash, trigger, status, check_mode, runs, duration_sum, sketch "
                          f"FROM run_rollups WHERE {where}", tuple(args))

    def host_rollup_rows(self, first: str, last: str) -> list[tuple[Any, ...]]:
        return self._exec("SELECT runbook, host, SUM(runs), SUM(failed) FROM host_rollups WHERE day >= ? AND day <= ? "
                          "GROUP BY runbook, host", (first, last))

    # ---- events, schedule, people ----------------------------------------------------------------------
    def event_counts(self, since: float, until: float) -> tuple[int, int]:
        """(events received, of which matched a rule), dry-run events excluded."""
        rows = self._exec("SELECT COUNT(*), SUM(CASE WHEN EXISTS (SELECT 1 FROM event_actions a WHERE a.event_id = "
                          "e.id) THEN 1 ELSE 0 END) FROM events e WHERE received_at >= ? AND received_at < ? AND "
                          "check_mode = 0", (since, until))
        return int(rows[0][0] or 0), int(rows[0][1] or 0)

    def action_rows(self, since: float, until: float) -> list[tuple[Any, ...]]:
        """Rule actions of the events received in [since, until): ACTION_COLS + the run's runbook."""
        return self._exec(f"SELECT {', '.join('a.' + c for c in ACTION_COLS)}, r.runbook FROM event_actions a JOIN "
                          "events e ON e.id = a.event_id LEFT JOIN runs r ON r.id = a.run_id WHERE e.received_at >= ? "
                          "AND e.received_at < ? AND e.check_mode = 0", (since, until))

    def fire_rows(self, since: float, until: float) -> list[tuple[Any, ...]]:
        """(entry, slot, decision, reason, run_id, outcome) of the slots in [since, until)."""
        return self._exec("SELECT entry, slot, decision, reason, run_id, outcome FROM schedule_fires WHERE slot >= ? "
                          "AND slot < ?", (since, until))

    def people_rows(self, since: float, until: float) -> dict[str, list[tuple[Any, ...]]]:
        """What people did in [since, until): runs started by hand, approvals decided, audited actions."""
        return {
            "runs": self._exec("SELECT started_by, COUNT(*) FROM runs WHERE started_at >= ? AND started_at < ? AND "
                               "trigger NOT IN ('event', 'schedule') GROUP BY started_by", (since, until)),
            "approvals": self._exec("SELECT decided_by, state, requested_at, decided_at FROM approvals WHERE "
                                    "decided_at >= ? AND decided_at < ? AND decided_by IS NOT NULL", (since, until)),
            "audit": self._exec("SELECT actor, action, COUNT(*) FROM audit WHERE at >= ? AND at < ? GROUP BY actor, "
                                "action", (since, until)),
        }


def _insert_many(execute: Callable[[str, tuple[Any, ...]], Any], target: str, rows: list[tuple[Any, ...]],
                 per: int = 100) -> None:
    """INSERT rows (of equal length) in statements of up to ``per`` rows each: a day has thousands of host rows."""
    for i in range(0, len(rows), per):
        chunk = rows[i:i + per]
        marks = "(" + ", ".join("?" for _ in chunk[0]) + ")"
        execute(f"INSERT INTO {target} VALUES {', '.join(marks for _ in chunk)}",
                tuple(v for row in chunk for v in row))


__all__ = ["ACTION_COLS", "RUN_COLS", "UNFINISHED", "KpiStoreMixin"]
