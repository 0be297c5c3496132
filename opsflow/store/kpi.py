"""The queries of KPI reports and the daily roll-ups of finished runs: a mixin of SqlStore.

A day (UTC) is rolled up once every run started in it has ended: ``run_rollups`` then holds one row
per (day, runbook, runbook hash, trigger, started by, status, check mode) with the count, the sum of
durations and a duration sketch (``opsflow.reports.stats.Sketch``), ``host_rollups`` the runs and
failures per (day, runbook, host), and ``rollup_days`` marks the day done. ``started_by`` is ``'='`` +
who started the run for the triggers people use (what :meth:`people_rows` counts), ``''`` otherwise.
An ISO week (Monday to Sunday, UTC) whose 7 days are rolled is rolled up too: ``week_rollups`` per
(week, runbook, runbook hash, status, check mode), ``host_week_rollups`` and ``people_week_rollups``;
``rollup_weeks`` marks it.
The claim on ``rollup_days``/``rollup_weeks`` and the rows go in one transaction, so two reports
rolling the same day at once leave one copy. Statuses of ended runs never change, so a rolled day
stays true.

:meth:`rollup_plan` splits a span into whole rolled weeks, other whole rolled days and the spans
left (read from ``runs``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from opsflow.store.ddl import BACKUP_ACTIONS_SQL

RUN_COLS = ("id", "runbook", "runbook_hash", "trigger", "status", "check_mode", "started_at", "ended_at",
            "duration", "hosts", "started_by")
ACTION_COLS = ("event_id", "rule", "outcome", "reason", "run_id", "run_status", "received_at", "started_at",
               "ended_at", "start_latency", "end_latency")
UNFINISHED = ("running", "waiting")
PERSON_TRIGGERS_SQL = "trigger NOT IN ('event', 'schedule')"  # runs people started (NULL: none)
DAY = 86400.0


def person_key(trigger: str | None, started_by: str | None) -> str:
    """``run_rollups.started_by`` of a run: '=' + who, when a person started it (trigger not event or
    schedule, as :data:`PERSON_TRIGGERS_SQL` says), else ''."""
    return "=" + (started_by or "") if trigger is not None and trigger not in ("event", "schedule") else ""


@lru_cache(maxsize=8192)
def day_name(n: int) -> str:
    """The UTC day number n (days since the epoch) as YYYY-MM-DD."""
    return datetime.fromtimestamp(n * DAY, UTC).strftime("%Y-%m-%d")


def week_days(monday: str) -> list[str]:
    d = date.fromisoformat(monday)
    return [(d + timedelta(days=i)).isoformat() for i in range(7)]


def _marks(values: Any) -> str:
    return "(" + ", ".join("?" for _ in values) + ")"


class KpiStoreMixin:
    if TYPE_CHECKING:
        _dialect: str

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

    def rolled_weeks(self, first: str, last: str) -> set[str]:
        """Mondays from first to last (inclusive) whose week is rolled up."""
        return {r[0] for r in self._exec("SELECT week FROM rollup_weeks WHERE week >= ? AND week <= ?", (first, last))}

    def rollup_plan(self, since: float, until: float) -> tuple[list[str], list[str], list[tuple[float, float]]]:
        """[since, until) as (rolled weeks wholly inside, the other rolled days wholly inside, the spans left)."""
        first_n = -int(-since // DAY)  # the first whole day
        last_n = int(until // DAY) - 1  # the last whole day
        if first_n > last_n:
            return [], [], [(since, until)]
        rolled = self.rolled_days(day_name(first_n), day_name(last_n))
        numbers = sorted(n for n in range(first_n, last_n + 1) if day_name(n) in rolled)
        # day n is a Monday when (n + 3) % 7 == 0 (1970-01-01, day 0, was a Thursday)
        mondays = [n for n in numbers if (n + 3) % 7 == 0 and n + 6 <= last_n
                   and all(day_name(n + i) in rolled for i in range(1, 7))]
        weeks_done = self.rolled_weeks(day_name(mondays[0]), day_name(mondays[-1])) if mondays else set()
        weeks = [n for n in mondays if day_name(n) in weeks_done]
        in_weeks = {n + i for n in weeks for i in range(7)}
        days = [day_name(n) for n in numbers if n not in in_weeks]
        raw: list[tuple[float, float]] = []
        t = since
        for n in numbers:
            a = n * DAY
            if a > t:
                raw.append((t, a))
            t = a + DAY
        if t < until:
            raw.append((t, until))
        return [day_name(n) for n in weeks], days, raw

    def save_rollup(self, day: str, runs: int, rows: list[tuple[Any, ...]], hosts: list[tuple[Any, ...]]) -> bool:
        """Record one day's roll-up; False when another process recorded it first. ``rows``: (runbook, runbook_hash,
        trigger, started_by, status, check_mode, runs, duration_sum, sketch, buckets)."""
        with self.transaction() as execute:
            cur = execute("INSERT INTO rollup_days (day, runs, rolled_at) VALUES (?, ?, ?) ON CONFLICT (day) "
                          "DO NOTHING RETURNING day", (day, runs, time.time()))
            if not cur.fetchall():
                return False
            _insert_many(execute, "run_rollups (day, runbook, runbook_hash, trigger, started_by, status, check_mode, "
                         "runs, duration_sum, sketch, buckets)", [(day, *row) for row in rows])
            _insert_many(execute, "host_rollups (day, runbook, host, runs, failed)", [(day, *row) for row in hosts])
        return True

    def week_source_rows(self, monday: str) -> list[tuple[Any, ...]]:
        """(day, runbook, runbook_hash, status, check_mode, runs, sketch) of the 7 days of a week (sketch: '' but
        for succeeded runs not in check mode)."""
        days = week_days(monday)
        return self._exec("SELECT day, runbook, runbook_hash, status, check_mode, runs, CASE WHEN status = 'succeeded' "
                          "AND check_mode = 0 THEN sketch ELSE '' END FROM run_rollups WHERE day >= ? AND day <= ?",
                          (days[0], days[-1]))

    def save_week(self, monday: str, runs: int, rows: list[tuple[Any, ...]]) -> bool:
        """Record one week's roll-up (its host and people rows summed from its days'); False when recorded before.
        ``rows``: (runbook, runbook_hash, status, check_mode, first day, runs, sketch)."""
        days = week_days(monday)
        with self.transaction() as execute:
            cur = execute("INSERT INTO rollup_weeks (week, runs, rolled_at) VALUES (?, ?, ?) ON CONFLICT (week) "
                          "DO NOTHING RETURNING week", (monday, runs, time.time()))
            if not cur.fetchall():
                return False
            _insert_many(execute, "week_rollups (week, runbook, runbook_hash, status, check_mode, day, runs, sketch)",
                         [(monday, *row) for row in rows])
            execute("INSERT INTO host_week_rollups (week, runbook, host, runs, failed) SELECT ?, runbook, host, "
                    "SUM(runs), SUM(failed) FROM host_rollups WHERE day >= ? AND day <= ? GROUP BY runbook, host",
                    (monday, days[0], days[-1]))
            execute("INSERT INTO people_week_rollups (week, started_by, runs) SELECT ?, started_by, SUM(runs) FROM "
                    "run_rollups WHERE day >= ? AND day <= ? AND started_by <> '' GROUP BY started_by",
                    (monday, days[0], days[-1]))
        return True

    def rollup_rows(self, weeks: list[str], days: list[str]) -> list[tuple[Any, ...]]:
        """(day, runbook, runbook_hash, status, check_mode, runs, sketch) of these weeks (day: the first with such
        runs) and days (one row per trigger and starter); sketch '' but for succeeded runs not in check mode."""
        out: list[tuple[Any, ...]] = []
        if weeks:
            out += self._exec("SELECT day, runbook, runbook_hash, status, check_mode, runs, sketch FROM week_rollups "
                              f"WHERE week IN {_marks(weeks)}", tuple(weeks))
        for i in range(0, len(days), 400):
            chunk = days[i:i + 400]
            out += self._exec("SELECT day, runbook, runbook_hash, status, check_mode, runs, CASE WHEN status = "
                              "'succeeded' AND check_mode = 0 THEN sketch ELSE '' END FROM run_rollups "
                              f"WHERE day IN {_marks(chunk)}", tuple(chunk))
        return out

    def host_rollup_rows(self, weeks: list[str], days: list[str]) -> list[tuple[Any, ...]]:
        """(runbook, host, runs, failed) summed over these weeks and days."""
        sums: dict[tuple[str, str], list[int]] = {}
        # many weeks: SQLite walks the covering index host_week_rollups_sums in (runbook, host) order, the week a
        # filter (+week: not the primary key's seek per week, then a sort of every row read)
        many = "+week" if self._dialect == "sqlite" and len(weeks) > 8 else "week"
        for table, key, values in (("host_week_rollups", many, weeks), ("host_rollups", "day", days)):
            for i in range(0, len(values), 400):
                chunk = values[i:i + 400]
                for runbook, host, n, failed in self._exec(
                        f"SELECT runbook, host, SUM(runs), SUM(failed) FROM {table} WHERE {key} IN {_marks(chunk)} "
                        "GROUP BY runbook, host", tuple(chunk)):
                    cell = sums.setdefault((runbook, host), [0, 0])
                    cell[0] += int(n)
                    cell[1] += int(failed)
        return [(rb, host, n, failed) for (rb, host), (n, failed) in sums.items()]

    # ---- backups ---------------------------------------------------------------------------------------
    def last_backup_results(self) -> list[dict[str, Any]]:
        """Per (action, host) of the backup and restore actions: the newest successful result (of a restore: the
        newest that measured an RTO), newest first; then, status '', the pairs without one. Through the partial
        index ``results_backups``: a few rows, whatever the number of results."""
        ok = "x.status IN ('ok', 'changed') AND (x.action IN ('backup', 'network.backup') OR x.data LIKE ?)"
        pairs = self._exec(f"SELECT p.action, p.host, (SELECT x.id FROM results x WHERE x.action = p.action AND "
                           f"x.host = p.host AND {BACKUP_ACTIONS_SQL} AND {ok} ORDER BY x.ended_at DESC LIMIT 1) "
                           f"FROM (SELECT DISTINCT action, host FROM results WHERE {BACKUP_ACTIONS_SQL}) p",
                           ('%"rto_seconds"%',))
        ids = [p[2] for p in pairs if p[2] is not None]
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for action, host, status, ended, data in self._exec(
                    f"SELECT action, host, status, ended_at, data FROM results WHERE id IN {_marks(chunk)}", tuple(chunk)):
                found[(action, host)] = {"action": action, "host": host, "status": status, "ended_at": ended,
                                         "data": json.loads(data or "{}")}
        for (action, host), row in list(found.items()):
            if action in ("restore", "network.restore") and "rto_seconds" not in row["data"]:
                # "rto_seconds" in the text, not a key of it: the newest result that has the key, if any
                del found[(action, host)]
                for status, ended, data in self._exec(
                        f"SELECT x.status, x.ended_at, x.data FROM results x WHERE x.action = ? AND x.host = ? AND "
                        f"{BACKUP_ACTIONS_SQL} AND {ok} ORDER BY x.ended_at DESC", (action, host, '%"rto_seconds"%')):
                    parsed = json.loads(data or "{}")
                    if "rto_seconds" in parsed:
                        found[(action, host)] = {"action": action, "host": host, "status": status, "ended_at": ended,
                                                 "data": parsed}
                        break
        rows = sorted(found.values(), key=lambda r: -(r["ended_at"] or 0.0))
        return rows + [{"action": a, "host": h, "status": "", "ended_at": None, "data": {}}
                       for a, h, _ in pairs if (a, h) not in found]

    # ---- events, schedule, people ----------------------------------------------------------------------
    def event_counts(self, since: float, until: float) -> tuple[int, int]:
        """(events received, of which matched a rule), dry-run events excluded."""
        rows = self._exec("SELECT COUNT(*), SUM(CASE WHEN EXISTS (SELECT 1 FROM event_actions a WHERE a.event_id = "
                          "e.id) THEN 1 ELSE 0 END) FROM events e WHERE received_at >= ? AND received_at < ? AND "
                          "check_mode = 0", (since, until))
        return int(rows[0][0] or 0), int(rows[0][1] or 0)

    def action_rows(self, since: float, until: float) -> list[tuple[Any, ...]]:
        """Rule actions of the events received in [since, until): ACTION_COLS + the run's runbook."""
        # the runbook by a lookup per action (the primary key of runs): with a LEFT JOIN, PostgreSQL hashed every
        # run of the store (1 M runs: 480 -> 250 ms); SQLite's plan is the same either way
        return self._exec(f"SELECT {', '.join('a.' + c for c in ACTION_COLS)}, (SELECT r.runbook FROM runs r WHERE "
                          "r.id = a.run_id) FROM event_actions a JOIN events e ON e.id = a.event_id WHERE "
                          "e.received_at >= ? AND e.received_at < ? AND e.check_mode = 0", (since, until))

    def fire_rows(self, since: float, until: float) -> list[tuple[Any, ...]]:
        """(entry, slot, decision, reason, run_id, outcome) of the slots in [since, until)."""
        return self._exec("SELECT entry, slot, decision, reason, run_id, outcome FROM schedule_fires WHERE slot >= ? "
                          "AND slot < ?", (since, until))

    def people_rows(self, since: float, until: float) -> dict[str, list[tuple[Any, ...]]]:
        """What people did in [since, until): runs started by hand (from the roll-ups of the rolled days, the runs
        elsewhere), approvals decided, audited actions."""
        weeks, days, raw = self.rollup_plan(since, until)
        started: Counter[str | None] = Counter()
        for table, key, values in (("people_week_rollups", "week", weeks), ("run_rollups", "day", days)):
            for i in range(0, len(values), 400):
                chunk = values[i:i + 400]
                for who, n in self._exec(f"SELECT started_by, SUM(runs) FROM {table} WHERE {key} IN {_marks(chunk)} "
                                         "AND started_by <> '' GROUP BY started_by", tuple(chunk)):
                    started[str(who)[1:] or None] += int(n)
        for a, b in raw:
            for who, n in self._exec("SELECT started_by, COUNT(*) FROM runs WHERE started_at >= ? AND started_at < ? "
                                     f"AND {PERSON_TRIGGERS_SQL} GROUP BY started_by", (a, b)):
                started[who or None] += int(n)
        return {
            "runs": list(started.items()),
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


__all__ = ["ACTION_COLS", "PERSON_TRIGGERS_SQL", "RUN_COLS", "UNFINISHED", "KpiStoreMixin", "day_name", "person_key",
           "week_days"]
