"""SQL implementation of the store for SQLite (default) and PostgreSQL.

Each result is committed as it happens, so a killed run leaves its finished steps
on record; ``reap()`` marks runs whose process died as ``abandoned``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from opsflow.auth import four_eyes_refusal
from opsflow.auth.store import AuthStoreMixin
from opsflow.errors import FourEyesRefused, StoreError
from opsflow.proc import process_alive, process_start
from opsflow.results import RunStatus, StepResult
from opsflow.store import migrate as schema
from opsflow.store.base import RunRecord
from opsflow.store.events import EventStoreMixin
from opsflow.store.kpi import KpiStoreMixin
from opsflow.store.leases import LeaseStoreMixin
from opsflow.store.reviews import ReviewStoreMixin
from opsflow.store.runs_query import RunsQueryMixin
from opsflow.store.schedule import ScheduleStoreMixin

_RUN_COLS = ("id", "runbook", "runbook_path", "runbook_hash", "params", "trigger", "started_by", "status",
             "check_mode", "started_at", "ended_at", "duration", "pid", "pid_start", "node", "error", "hosts",
             "parent_run", "inventory", "error_kind")
_RESULT_COLS = ("run_id", "step_index", "step", "action", "host", "phase", "status", "changed", "rc",
                "started_at", "ended_at", "duration", "attempts", "stdout", "stderr", "data", "error_class",
                "error")


class SqlStore(AuthStoreMixin, EventStoreMixin, ScheduleStoreMixin, ReviewStoreMixin, KpiStoreMixin, RunsQueryMixin,
               LeaseStoreMixin):
    def __init__(self, url: str, raw_url: str, dialect: str, conn: Any = None, pool: Any = None) -> None:
        self.url = url  # for messages: any password masked
        self._raw_url = raw_url
        self._dialect = dialect
        self._conn = conn  # SQLite: one connection, statements serialised by _lock
        self._pool = pool  # PostgreSQL: a connection pool (_PgPool)
        self._lock = threading.Lock()

    # ---- connection ------------------------------------------------------------------
    @classmethod
    def connect(cls, url: str, migrate: bool = True) -> SqlStore:
        """Open the store; with ``migrate``, bring its schema to this opsflow's (see opsflow.store.migrate)."""
        if url.startswith(("postgresql://", "postgres://")):
            store = cls(_redact_url(url), url, "postgres", pool=_pg_pool(url))
        else:
            path = Path(url.removeprefix("sqlite:///").removeprefix("sqlite://"))
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot open store {path}: {exc}") from exc
            store = cls(str(path), str(path), "sqlite", conn=conn)
        if migrate:
            schema.ensure_current(store._exec, store.url, store._raw_url, store._dialect,
                                  auto=store._dialect == "sqlite")
        return store

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """A driver connection for a few statements (autocommit; ``transaction()`` for more)."""
        if self._pool is None:
            with self._lock:
                yield self._conn
            return
        fairy = self._pool.connect()
        try:
            yield fairy.driver_connection
        finally:
            fairy.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Callable[[str, tuple[Any, ...]], Any]]:
        """Statements in one transaction: all of them, or (StoreError) none."""
        try:
            with self.connection() as conn:
                def execute(sql: str, args: tuple[Any, ...] = ()) -> Any:
                    return conn.execute(self._sql(sql), args)

                if self._dialect == "postgres":
                    with conn.transaction():
                        yield execute
                    return
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield execute
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - sqlite3 and psycopg errors alike
            raise StoreError(f"store {self.url}: {type(exc).__name__}: {exc} (nothing of it recorded)") from exc

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self._dialect == "postgres" else sql

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            if self._pool is None:  # SQLite, the hot path of every result recorded: no detour
                with self._lock:
                    cur = self._conn.execute(sql, args)
                    return list(cur.fetchall()) if cur.description else []
            with self.connection() as conn:
                cur = conn.execute(self._sql(sql), args)
                return list(cur.fetchall()) if cur.description else []
        except Exception as exc:  # noqa: BLE001 - sqlite3 and psycopg errors alike
            raise StoreError(f"store {self.url}: {type(exc).__name__}: {exc}") from exc

    def revision(self) -> str | None:
        """The schema revision (``opsflow db current``)."""
        return schema.revision(self._exec)

    def upgrade(self) -> tuple[str | None, str]:
        """``opsflow db upgrade``: (revision before, after)."""
        return schema.upgrade(self._exec, self.url, self._raw_url, self._dialect)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.dispose()
            return
        with self._lock:
            self._conn.close()

    # ---- writes ----------------------------------------------------------------------
    def create_run(self, record: RunRecord) -> None:
        values = {
            "id": record.id, "runbook": record.runbook, "runbook_path": record.runbook_path,
            "runbook_hash": record.runbook_hash, "params": json.dumps(record.params, default=str),
            "trigger": record.trigger, "started_by": record.started_by, "status": str(record.status),
            "check_mode": int(record.check_mode), "started_at": record.started_at, "ended_at": None,
            "duration": None, "pid": record.pid or os.getpid(),
            "pid_start": record.pid_start or process_start(os.getpid()),
            "node": record.node or socket.gethostname(), "error": None, "hosts": json.dumps(record.hosts),
            "parent_run": record.parent_run, "inventory": record.inventory, "error_kind": None,
        }
        cols = ", ".join(_RUN_COLS)
        marks = ", ".join("?" for _ in _RUN_COLS)
        self._exec(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(values[c] for c in _RUN_COLS))

    def add_result(self, run_id: str, r: StepResult) -> None:
        row = (run_id, r.step_index, r.step, r.action, r.host, r.phase, str(r.status), int(r.changed), r.rc,
               r.started_at, r.ended_at, r.duration, r.attempts, r.stdout, r.stderr,
               json.dumps(r.data, default=str), r.error_class, r.error)
        marks = ", ".join("?" for _ in _RESULT_COLS)
        self._exec(f"INSERT INTO results ({', '.join(_RESULT_COLS)}) VALUES ({marks})", row)

    def finish_run(self, run_id: str, status: RunStatus, ended_at: float, hosts: dict[str, str],
                   error: str | None = None, error_kind: str | None = None) -> None:
        self._exec("UPDATE runs SET status = ?, ended_at = ?, duration = ? - started_at, hosts = ?, error = ?, "
                   "error_kind = ? WHERE id = ?",
                   (str(status), ended_at, ended_at, json.dumps(hosts), error, error_kind, run_id))

    def set_status(self, run_id: str, status: RunStatus) -> None:
        self._exec("UPDATE runs SET status = ? WHERE id = ?", (str(status), run_id))

    # ---- locks -----------------------------------------------------------------------
    def try_lock(self, resource: str, run_id: str, runbook: str, owners: frozenset[str] = frozenset()) -> str | None:
        """Take a lock; return None when taken (or already ours), else the holding run's id.

        A lock whose holder process is gone (killed, crashed) is stale and taken over.
        """
        node = socket.gethostname()
        pid, start = os.getpid(), process_start(os.getpid())
        for _ in range(3):
            with self.connection() as conn:
                cur = conn.execute(self._sql(
                    "INSERT INTO locks (resource, run_id, runbook, pid, pid_start, node, acquired_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (resource) DO NOTHING"),
                    (resource, run_id, runbook, pid, start, node, time.time()))
                if cur.rowcount == 1:
                    return None
            rows = self._exec("SELECT run_id, pid, pid_start, node FROM locks WHERE resource = ?", (resource,))
            if not rows:
                continue
            holder, hpid, hstart, hnode = rows[0]
            if holder == run_id or holder in owners:
                return None
            if hnode == node and not process_alive(int(hpid or 0), hstart or ""):
                self._exec("DELETE FROM locks WHERE resource = ? AND run_id = ?", (resource, holder))
                continue
            return str(holder)
        return None

    def release_locks(self, run_id: str) -> None:
        self._exec("DELETE FROM locks WHERE run_id = ?", (run_id,))

    def locks(self) -> list[dict[str, Any]]:
        rows = self._exec("SELECT resource, run_id, runbook, pid, node, acquired_at FROM locks ORDER BY resource")
        return [dict(zip(("resource", "run_id", "runbook", "pid", "node", "acquired_at"), r, strict=True))
                for r in rows]

    # ---- approvals -------------------------------------------------------------------
    def request_approval(self, run_id: str, step_index: int, step: str, message: str, deadline: float,
                         four_eyes: bool = True) -> None:
        self._exec("INSERT INTO approvals (run_id, step_index, step, message, state, requested_at, deadline, "
                   "four_eyes) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?) ON CONFLICT (run_id, step_index) DO NOTHING",
                   (run_id, step_index, step, message, time.time(), deadline, int(four_eyes)))

    def decide(self, run_id: str, approved: bool, by: str, comment: str | None) -> dict[str, Any] | None:
        """Approve or deny the pending approval of a run; None when nothing is pending.

        Four-eyes (opsflow.auth): who started the run may deny it but not approve it (FourEyesRefused),
        unless its step says ``approve: {four_eyes: false}``.
        """
        state = "approved" if approved else "denied"
        rows = self._exec("SELECT a.step_index, a.four_eyes, r.started_by FROM approvals a LEFT JOIN runs r "
                          "ON r.id = a.run_id WHERE a.run_id = ? AND a.state = 'pending'", (run_id,))
        if not rows:
            return None
        refusal = approved and four_eyes_refusal(by, rows[0][2], rows[0][1] is None or bool(rows[0][1]))
        if refusal:
            raise FourEyesRefused(f"run {run_id}: {refusal}")
        self._exec("UPDATE approvals SET state = ?, decided_at = ?, decided_by = ?, comment = ? "
                   "WHERE run_id = ? AND step_index = ? AND state = 'pending'",
                   (state, time.time(), by, comment, run_id, rows[0][0]))
        return self.approval(run_id, int(rows[0][0]))

    def approval(self, run_id: str, step_index: int) -> dict[str, Any] | None:
        cols = ("run_id", "step_index", "step", "message", "state", "requested_at", "deadline", "decided_at",
                "decided_by", "comment", "four_eyes")
        rows = self._exec(f"SELECT {', '.join(cols)} FROM approvals WHERE run_id = ? AND step_index = ?",
                          (run_id, step_index))
        if not rows:
            return None
        approval = dict(zip(cols, rows[0], strict=True))
        approval["four_eyes"] = approval["four_eyes"] is None or bool(approval["four_eyes"])
        return approval

    def expire_approval(self, run_id: str, step_index: int, reason: str) -> None:
        self._exec("UPDATE approvals SET state = 'expired', decided_at = ?, comment = ? "
                   "WHERE run_id = ? AND step_index = ? AND state = 'pending'",
                   (time.time(), reason, run_id, step_index))

    # ---- crash recovery --------------------------------------------------------------
    def reap(self) -> list[str]:
        """Mark runs of this node whose process is gone as abandoned; return their ids."""
        rows = self._exec("SELECT id, pid, pid_start FROM runs WHERE status IN (?, ?) AND node = ?",
                          (str(RunStatus.RUNNING), str(RunStatus.WAITING), socket.gethostname()))
        dead = [rid for rid, pid, start in rows if not process_alive(int(pid or 0), start or "")]
        now = time.time()
        for rid in dead:
            last = self._exec("SELECT MAX(ended_at) FROM results WHERE run_id = ?", (rid,))
            ended = last[0][0] if last and last[0][0] else now
            self._exec("UPDATE runs SET status = ?, ended_at = ?, duration = ? - started_at, error = ? "
                       "WHERE id = ? AND status IN (?, ?)",
                       (str(RunStatus.ABANDONED), ended, ended,
                        "the opsflow process running it died (found by a later opsflow start)", rid,
                        str(RunStatus.RUNNING), str(RunStatus.WAITING)))
            self.release_locks(rid)
            self.expire_approval_all(rid)
        return dead

    def expire_approval_all(self, run_id: str) -> None:
        self._exec("UPDATE approvals SET state = 'expired', decided_at = ?, comment = 'run abandoned' "
                   "WHERE run_id = ? AND state = 'pending'", (time.time(), run_id))

    # ---- reads -----------------------------------------------------------------------
    def _run_dict(self, row: tuple[Any, ...]) -> dict[str, Any]:
        d = dict(zip(_RUN_COLS, row, strict=True))
        d["params"] = json.loads(d["params"] or "{}")
        d["hosts"] = json.loads(d["hosts"] or "{}")
        d["check_mode"] = bool(d["check_mode"])
        return d

    def history(self, runbook: str | None = None, status: str | None = None, since: float | None = None,
                limit: int = 50) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[Any] = []
        if runbook:
            where.append("runbook = ?")
            args.append(runbook)
        if status:
            where.append("status = ?")
            args.append(status)
        if since is not None:
            where.append("started_at >= ?")
            args.append(since)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._exec(f"SELECT {', '.join(_RUN_COLS)} FROM runs {clause} ORDER BY started_at DESC LIMIT ?",
                          (*args, limit))
        return [self._run_dict(r) for r in rows]

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._exec(f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            rows = self._exec(f"SELECT {', '.join(_RUN_COLS)} FROM runs WHERE id LIKE ? ORDER BY started_at "
                              "DESC LIMIT 2", (run_id + "%",))
            if len(rows) != 1:
                return None
        return self._run_dict(rows[0])

    def resumes_of(self, run_id: str) -> list[dict[str, Any]]:
        """The runs that resumed ``run_id`` (same runbook file, started as its continuation), oldest first."""
        rows = self._exec(f"SELECT {', '.join('r.' + c for c in _RUN_COLS)} FROM runs r JOIN runs p "
                          "ON r.parent_run = p.id AND r.runbook_path = p.runbook_path "
                          "WHERE p.id = ? ORDER BY r.started_at", (run_id,))
        return [self._run_dict(r) for r in rows]

    def results_by_action(self, actions: tuple[str, ...], limit: int = 10000) -> list[dict[str, Any]]:
        """Newest first: results of the given actions across runs (backup reports)."""
        marks = ", ".join("?" for _ in actions)
        rows = self._exec(f"SELECT {', '.join(_RESULT_COLS)} FROM results WHERE action IN ({marks}) "
                          "ORDER BY ended_at DESC LIMIT ?", (*actions, limit))
        out = []
        for row in rows:
            d = dict(zip(_RESULT_COLS, row, strict=True))
            d["data"] = json.loads(d["data"] or "{}")
            out.append(d)
        return out

    def results(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._exec(f"SELECT {', '.join(_RESULT_COLS)} FROM results WHERE run_id = ? ORDER BY id",
                          (run_id,))
        out = []
        for row in rows:
            d = dict(zip(_RESULT_COLS, row, strict=True))
            d["data"] = json.loads(d["data"] or "{}")
            d["changed"] = bool(d["changed"])
            out.append(d)
        return out


def _pg_pool(url: str) -> Any:
    """A pool of autocommit psycopg connections (:class:`_PgPool`): the daemon's threads query at once, a CLI
    process opens one connection."""
    try:
        import psycopg
    except ImportError as exc:
        raise StoreError("PostgreSQL store needs psycopg: pip install 'opsflow[postgres]'") from exc

    def creator() -> Any:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)

    pool = _PgPool(creator, keep=5, most=15, timeout=30.0, recycle=3600.0)
    try:
        pool.connect().close()  # fail now, with a clear message, when the server is not there
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL store: {str(exc).strip()}") from exc
    return pool


class _PgPool:
    """Connections opened when needed, at most ``most`` at once (a caller waits up to ``timeout`` s for one),
    up to ``keep`` kept open when given back, none used longer than ``recycle`` s; one given back broken, or
    inside a transaction, is closed. What SQLAlchemy's QueuePool did here (pool_size 5, max_overflow 10), without
    importing SQLAlchemy (~140 ms of every short CLI process on PostgreSQL)."""

    def __init__(self, creator: Callable[[], Any], keep: int, most: int, timeout: float, recycle: float) -> None:
        self._creator = creator
        self._keep, self._most, self._timeout, self._recycle = keep, most, timeout, recycle
        self._idle: list[tuple[Any, float]] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(most)

    def connect(self) -> _PgHandle:
        if not self._slots.acquire(timeout=self._timeout):
            raise StoreError(f"no PostgreSQL connection free after {self._timeout:g} s ({self._most} in use)")
        try:
            while True:
                with self._lock:
                    conn, born = self._idle.pop() if self._idle else (None, 0.0)
                if conn is None:
                    return _PgHandle(self, self._creator(), time.monotonic())
                if not conn.closed and time.monotonic() - born < self._recycle:
                    return _PgHandle(self, conn, born)
                _close_quietly(conn)
        except BaseException:
            self._slots.release()
            raise

    def give_back(self, conn: Any, born: float) -> None:
        try:
            import psycopg

            usable = not conn.closed and not conn.broken and \
                conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            with self._lock:
                if usable and len(self._idle) < self._keep:
                    self._idle.append((conn, born))
                    return
            _close_quietly(conn)
        finally:
            self._slots.release()

    def dispose(self) -> None:
        """Close the idle connections (the pool stays usable)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            _close_quietly(conn)


class _PgHandle:
    """One connection of a :class:`_PgPool`, until ``close()`` gives it back."""

    def __init__(self, pool: _PgPool, conn: Any, born: float) -> None:
        self._pool, self.driver_connection, self._born = pool, conn, born
        self._given = False

    def close(self) -> None:
        if not self._given:
            self._given = True
            self._pool.give_back(self.driver_connection, self._born)


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def _redact_url(url: str) -> str:
    """Never show a password that is part of a database URL."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1********@", url)
