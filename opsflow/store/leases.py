"""Scale-out state of the store: dispatched runs, leases of their units of work, steps in flight, workers.

A mixin of SqlStore (:mod:`opsflow.dispatch` is its user). Every write a unit makes — a result, a step
put in flight, a synchronisation point, its end — goes through :meth:`LeaseStoreMixin.fenced`: in one
transaction the unit's lease row is locked and its token compared with the writer's, so a worker that
was presumed dead (its lease requeued with a new token) cannot record anything once another took over.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from opsflow.errors import StoreError
from opsflow.results import StepResult

if TYPE_CHECKING:
    from opsflow.dispatch.lease import Lease

# migration 0007 (and an empty store created at head)
DISPATCH_DDL = """
CREATE TABLE IF NOT EXISTS dispatches (
  run_id TEXT PRIMARY KEY, request TEXT NOT NULL, runbook_hash TEXT, step_sync INTEGER NOT NULL DEFAULT 0,
  dispatched_by TEXT, dispatched_at DOUBLE PRECISION NOT NULL, finished_at DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS leases (
  run_id TEXT NOT NULL, queue TEXT NOT NULL, hosts TEXT NOT NULL, state TEXT NOT NULL,
  token INTEGER NOT NULL DEFAULT 0, worker TEXT, heartbeat DOUBLE PRECISION, ttl DOUBLE PRECISION NOT NULL,
  sync INTEGER NOT NULL DEFAULT 0, deliveries INTEGER NOT NULL DEFAULT 0, outcome TEXT, error TEXT, error_kind TEXT,
  PRIMARY KEY (run_id, queue));
CREATE INDEX IF NOT EXISTS leases_state ON leases (state);
CREATE TABLE IF NOT EXISTS inflight (
  run_id TEXT NOT NULL, queue TEXT NOT NULL, step_index INTEGER NOT NULL, phase TEXT NOT NULL, host TEXT NOT NULL,
  step TEXT, idempotent INTEGER NOT NULL DEFAULT 0, token INTEGER NOT NULL, started_at DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS inflight_run ON inflight (run_id, queue);
CREATE TABLE IF NOT EXISTS workers (
  name TEXT PRIMARY KEY, node TEXT, pid INTEGER, queues TEXT NOT NULL, concurrency INTEGER,
  ttl DOUBLE PRECISION NOT NULL, started_at DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
  running TEXT, state TEXT NOT NULL)
"""

_LEASE_COLS = ("run_id", "queue", "hosts", "state", "token", "worker", "heartbeat", "ttl", "sync", "deliveries",
               "outcome", "error", "error_kind")
_WORKER_COLS = ("name", "node", "pid", "queues", "concurrency", "ttl", "started_at", "last_seen", "running", "state")
_RESULT_COLS = ("run_id", "step_index", "step", "action", "host", "phase", "status", "changed", "rc",
                "started_at", "ended_at", "duration", "attempts", "stdout", "stderr", "data", "error_class",
                "error")

Execute = Callable[[str, tuple[Any, ...]], Any]


def _insert_result(execute: Execute, run_id: str, r: StepResult) -> None:
    row = (run_id, r.step_index, r.step, r.action, r.host, r.phase, str(r.status), int(r.changed), r.rc,
           r.started_at, r.ended_at, r.duration, r.attempts, r.stdout, r.stderr, json.dumps(r.data, default=str),
           r.error_class, r.error)
    execute(f"INSERT INTO results ({', '.join(_RESULT_COLS)}) VALUES ({', '.join('?' for _ in row)})", row)


class Fenced(StoreError):
    """This worker's lease was taken over (its token is no longer the unit's): it must stop writing."""

    exit_code = 1


class LeaseStoreMixin:
    if TYPE_CHECKING:
        _dialect: str

        def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
        def transaction(self) -> contextlib.AbstractContextManager[Execute]: ...

    def _locking(self) -> str:
        return " FOR UPDATE" if self._dialect == "postgres" else ""  # SQLite: BEGIN IMMEDIATE serialises

    # ---- dispatching ----------------------------------------------------------------------
    def create_dispatch(self, run_id: str, request: dict[str, Any], runbook_hash: str, units: dict[str, list[str]],
                        ttl: float, by: str, step_sync: bool) -> None:
        now = time.time()
        with self.transaction() as execute:
            execute("INSERT INTO dispatches (run_id, request, runbook_hash, step_sync, dispatched_by, dispatched_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (run_id, json.dumps(request), runbook_hash, int(step_sync), by, now))
            for queue, hosts in units.items():
                execute("INSERT INTO leases (run_id, queue, hosts, state, token, heartbeat, ttl) "
                        "VALUES (?, ?, ?, 'queued', 0, ?, ?)", (run_id, queue, json.dumps(hosts), now, ttl))

    def dispatched(self, run_id: str) -> dict[str, Any] | None:
        rows = self._exec("SELECT run_id, request, runbook_hash, step_sync, dispatched_by, dispatched_at, finished_at "
                          "FROM dispatches WHERE run_id = ?", (run_id,))
        if not rows:
            return None
        d = dict(zip(("run_id", "request", "runbook_hash", "step_sync", "dispatched_by", "dispatched_at",
                      "finished_at"), rows[0], strict=True))
        d["request"] = json.loads(d["request"])
        d["step_sync"] = bool(d["step_sync"])
        return d

    def leases(self, run_id: str | None = None, open_only: bool = False) -> list[Lease]:
        from opsflow.dispatch.lease import Lease

        where, args = [], []
        if run_id is not None:
            where.append("run_id = ?")
            args.append(run_id)
        if open_only:
            where.append("state IN ('queued', 'running')")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._exec(f"SELECT {', '.join(_LEASE_COLS)} FROM leases{clause} ORDER BY run_id, queue", tuple(args))
        out = []
        for row in rows:
            d = dict(zip(_LEASE_COLS, row, strict=True))
            d["hosts"] = json.loads(d["hosts"])
            out.append(Lease.from_row(d))
        return out

    # ---- claiming, renewing, fencing --------------------------------------------------------
    def claim_unit(self, run_id: str, queue: str, worker: str, ttl: float,
                   decide: Callable[[Lease | None, float], str | None]) -> tuple[int, str, list[dict[str, Any]]] | None:
        """Claim a unit for ``worker`` when ``decide`` allows it: (new token, why, steps left in flight by the
        holder before), or None (done, lost, held by a live worker)."""
        from opsflow.dispatch.lease import Lease

        now = time.time()
        with self.transaction() as execute:
            row = execute(f"SELECT {', '.join(_LEASE_COLS)} FROM leases WHERE run_id = ? AND queue = ?"
                          + self._locking(), (run_id, queue)).fetchone()
            lease = None
            if row is not None:
                d = dict(zip(_LEASE_COLS, row, strict=True))
                d["hosts"] = json.loads(d["hosts"])
                lease = Lease.from_row(d)
            why = decide(lease, now)
            if lease is None or why is None:
                return None
            token = lease.token + 1
            execute("UPDATE leases SET state = 'running', token = ?, worker = ?, heartbeat = ?, ttl = ?, "
                    "deliveries = deliveries + 1 WHERE run_id = ? AND queue = ?", (token, worker, now, ttl, run_id, queue))
            cols = ("step_index", "phase", "host", "step", "idempotent", "token", "started_at")
            left = [dict(zip(cols, r, strict=True)) for r in execute(
                f"SELECT {', '.join(cols)} FROM inflight WHERE run_id = ? AND queue = ?", (run_id, queue)).fetchall()]
        return token, why, left

    def renew(self, run_id: str, queue: str, token: int) -> bool:
        """The holder's heartbeat; False when the lease is no longer its own (taken over, requeued)."""
        rows = self._exec("UPDATE leases SET heartbeat = ? WHERE run_id = ? AND queue = ? AND token = ? "
                          "AND state = 'running' RETURNING token", (time.time(), run_id, queue, token))
        return bool(rows)

    @contextlib.contextmanager
    def fenced(self, run_id: str, queue: str, token: int) -> Iterator[Execute]:
        """A transaction that commits only while ``token`` holds the unit's lease (else Fenced, nothing written)."""
        with self.transaction() as execute:
            row = execute("SELECT token, state FROM leases WHERE run_id = ? AND queue = ?" + self._locking(),
                          (run_id, queue)).fetchone()
            if row is None or int(row[0]) != token or row[1] != "running":
                raise Fenced(f"run {run_id} queue {queue}: lease token {token} is no longer held "
                             f"(now {row[0] if row else 'none'}, {row[1] if row else 'gone'}): another worker took over")
            yield execute

    def fenced_result(self, run_id: str, queue: str, token: int, r: StepResult) -> None:
        with self.fenced(run_id, queue, token) as execute:
            execute("DELETE FROM inflight WHERE run_id = ? AND queue = ? AND step_index = ? AND phase = ? AND host = ?",
                    (run_id, queue, r.step_index, r.phase, r.host))
            _insert_result(execute, run_id, r)

    def mark_inflight(self, run_id: str, queue: str, token: int, step_index: int, phase: str, step: str,
                      idempotent: bool, hosts: list[str]) -> None:
        """These hosts start this step now: what a worker taking over finds if this one dies before recording."""
        now = time.time()
        with self.fenced(run_id, queue, token) as execute:
            for host in hosts:
                execute("DELETE FROM inflight WHERE run_id = ? AND queue = ? AND step_index = ? AND phase = ? "
                        "AND host = ?", (run_id, queue, step_index, phase, host))
                execute("INSERT INTO inflight (run_id, queue, step_index, phase, host, step, idempotent, token, "
                        "started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run_id, queue, step_index, phase, host, step, int(idempotent), token, now))

    def clear_inflight(self, run_id: str, queue: str, token: int) -> None:
        with self.fenced(run_id, queue, token) as execute:
            execute("DELETE FROM inflight WHERE run_id = ? AND queue = ?", (run_id, queue))

    def reach(self, run_id: str, queue: str, token: int, point: int) -> None:
        with self.fenced(run_id, queue, token) as execute:
            execute("UPDATE leases SET sync = ? WHERE run_id = ? AND queue = ?", (point, run_id, queue))

    def finish_unit(self, run_id: str, queue: str, token: int, outcome: str, error: str | None,
                    error_kind: str | None) -> bool:
        """Record the unit's end; True for the unit that ends last (it records the run's outcome)."""
        with self.fenced(run_id, queue, token) as execute:
            execute("SELECT run_id FROM dispatches WHERE run_id = ?" + self._locking(), (run_id,))
            execute("UPDATE leases SET state = 'done', outcome = ?, error = ?, error_kind = ?, heartbeat = ? "
                    "WHERE run_id = ? AND queue = ?", (outcome, error, error_kind, time.time(), run_id, queue))
            return self._close_if_last(execute, run_id)

    def _close_if_last(self, execute: Execute, run_id: str) -> bool:
        left = execute("SELECT COUNT(*) FROM leases WHERE run_id = ? AND state IN ('queued', 'running')",
                       (run_id,)).fetchone()[0]
        if left:
            return False
        cur = execute("UPDATE dispatches SET finished_at = ? WHERE run_id = ? AND finished_at IS NULL",
                      (time.time(), run_id))
        return bool(cur.rowcount)

    # ---- sweeping ---------------------------------------------------------------------------
    def requeue(self, run_id: str, queue: str, seen_token: int) -> bool:
        """Fence a presumed-dead holder out (new token) and put its unit back in the queue; False when someone
        else did first."""
        with self.transaction() as execute:
            cur = execute("UPDATE leases SET state = 'queued', token = token + 1, heartbeat = ? WHERE run_id = ? "
                          "AND queue = ? AND token = ? AND state = 'running'", (time.time(), run_id, queue, seen_token))
            return bool(cur.rowcount)

    def lose_unit(self, run_id: str, queue: str, seen_token: int, state: str, reason: str,
                  interrupted: Callable[[dict[str, Any]], StepResult] | None = None) -> bool | None:
        """The unit (``state``, ``seen_token``) is lost, for ``reason``: a new token fences out any holder, and
        each step it had in flight is recorded as ``interrupted(row)`` says (never run again by itself). None
        when someone else acted first; else True when the run has no open unit left."""
        cols = ("step_index", "phase", "host", "step", "idempotent", "token", "started_at")
        with self.transaction() as execute:  # the lease row, then the run's (the order of fenced writes)
            cur = execute("UPDATE leases SET state = 'lost', token = token + 1, error = ?, error_kind = 'lost' "
                          "WHERE run_id = ? AND queue = ? AND token = ? AND state = ?",
                          (reason, run_id, queue, seen_token, state))
            if not cur.rowcount:
                return None
            execute("SELECT run_id FROM dispatches WHERE run_id = ?" + self._locking(), (run_id,))
            rows = [dict(zip(cols, r, strict=True)) for r in execute(
                f"SELECT {', '.join(cols)} FROM inflight WHERE run_id = ? AND queue = ?", (run_id, queue)).fetchall()]
            execute("DELETE FROM inflight WHERE run_id = ? AND queue = ?", (run_id, queue))
            for row in rows:
                if interrupted is not None:
                    _insert_result(execute, run_id, interrupted(row))
            return self._close_if_last(execute, run_id)

    def cancel_queued(self, run_id: str, reason: str) -> bool | None:
        """The run is canceled: its units no worker claimed yet end ``canceled`` here (a later delivery finds them
        done), those held by workers are stopped by them. None when no unit was waiting; else True when the run
        has no open unit left."""
        with self.transaction() as execute:
            cur = execute("UPDATE leases SET state = 'done', token = token + 1, outcome = 'canceled', error = ?, "
                          "error_kind = 'canceled' WHERE run_id = ? AND state = 'queued'", (reason, run_id))
            if not cur.rowcount:
                return None
            execute("SELECT run_id FROM dispatches WHERE run_id = ?" + self._locking(), (run_id,))
            return self._close_if_last(execute, run_id)

    # ---- following a dispatched run ------------------------------------------------------
    def run_status(self, run_id: str) -> str | None:
        rows = self._exec("SELECT status FROM runs WHERE id = ?", (run_id,))
        return str(rows[0][0]) if rows else None

    def results_after(self, run_id: str, after: int) -> list[dict[str, Any]]:
        """The run's results recorded after result ``after`` (its ``id``), oldest first: what a follower has not
        seen yet, without reading again what it has."""
        rows = self._exec(f"SELECT id, {', '.join(_RESULT_COLS)} FROM results WHERE run_id = ? AND id > ? ORDER BY id",
                          (run_id, after))
        out = []
        for row in rows:
            d = dict(zip(("id", *_RESULT_COLS), row, strict=True))
            d["data"] = json.loads(d["data"] or "{}")
            d["changed"] = bool(d["changed"])
            out.append(d)
        return out

    # ---- workers ----------------------------------------------------------------------------
    def worker_beat(self, name: str, node: str, pid: int, queues: list[str], concurrency: int, ttl: float,
                    started_at: float, running: list[str], state: str = "running") -> None:
        self._exec("INSERT INTO workers (name, node, pid, queues, concurrency, ttl, started_at, last_seen, running, "
                   "state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET last_seen = "
                   "excluded.last_seen, running = excluded.running, state = excluded.state, queues = excluded.queues",
                   (name, node, pid, json.dumps(queues), concurrency, ttl, started_at, time.time(),
                    json.dumps(running), state))

    def workers(self) -> list[dict[str, Any]]:
        rows = self._exec(f"SELECT {', '.join(_WORKER_COLS)} FROM workers ORDER BY name")
        out = []
        for row in rows:
            d = dict(zip(_WORKER_COLS, row, strict=True))
            d["queues"], d["running"] = json.loads(d["queues"]), json.loads(d["running"] or "[]")
            out.append(d)
        return out
