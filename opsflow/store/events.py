"""Events, what the daemon did with each (actions), and circuit breakers: a mixin of SqlStore.

An event row is what was received; an action row is one matched rule's decision: ``queued`` →
``started`` (a run) → ``finished``, or ``suppressed`` / ``canceled`` with a reason. Receipt, queueing,
run start and run end are timestamped, so the event → run latencies are on record.

The daemon records requests' events and decisions with ``write_all`` (many requests at once: group
commit): in one transaction, all of them or none (a sender whose request failed retries it, and
nothing of it is then recorded twice).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsflow.store.base import Statement

if TYPE_CHECKING:
    from opsflow.events.models import Event


PAYLOAD_LIMIT = 64 * 1024  # characters of an event's labels/annotations/data kept
_EVENT_COLS = ("id", "received_at", "source", "name", "status", "host", "severity", "message", "fingerprint",
               "occurrence", "peer", "payload", "rules", "outcome", "check_mode")
_ACTION_COLS = ("id", "event_id", "rule", "host", "dedup_key", "occurrence", "outcome", "reason", "detail",
                "run_id", "run_status", "daemon", "received_at", "queued_at", "started_at", "ended_at",
                "start_latency", "end_latency")
_INSERT_EVENT = f"INSERT INTO events ({', '.join(_EVENT_COLS)}) VALUES ({', '.join('?' for _ in _EVENT_COLS)})"
_BREAKER_COLS = ("rule", "failures", "state", "opened_at", "last_run", "reset_at", "reset_by")


try:  # optional: the standard library's json writes the same document, slower
    import orjson as _orjson
except ImportError:  # pragma: no cover - installed with opsflow
    _orjson = None  # type: ignore[assignment]


def _dumps(doc: Any) -> str:
    """JSON text of a payload: orjson's (compact; a NaN or infinity, which only the standard library's parser
    lets into an event, is written null), or the standard library's (an integer over 64 bits)."""
    if _orjson is not None:
        try:
            return _orjson.dumps(doc, default=str).decode()
        except TypeError:
            pass
    return json.dumps(doc, default=str, ensure_ascii=False)


def _payload(event: Event) -> str:
    text = _dumps({"labels": event.labels, "annotations": event.annotations, "data": event.data})
    if len(text) > PAYLOAD_LIMIT:
        labels = event.labels if len(json.dumps(event.labels)) < PAYLOAD_LIMIT // 2 else {}
        return json.dumps({"labels": labels, "annotations": {}, "data": {}, "truncated": True, "size": len(text)})
    return text


_ROWS_PER_INSERT = 200  # rows of one multi-row INSERT (SQLite allows 32,766 variables)


def _batched(statements: list[Statement]) -> list[Statement]:
    """INSERTs of one text joined into multi-row INSERTs (first appearance order), then the rest in order."""
    inserts: dict[str, list[tuple[Any, ...]]] = {}
    rest: list[Statement] = []
    for sql, args in statements:
        if sql.startswith("INSERT INTO ") and sql.endswith(")") and " ON CONFLICT" not in sql:
            inserts.setdefault(sql, []).append(args)
        else:
            rest.append((sql, args))
    out: list[Statement] = []
    for sql, rows in inserts.items():
        head, _, marks = sql.rpartition(" VALUES ")
        for i in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[i:i + _ROWS_PER_INSERT]
            if len(chunk) == 1:
                out.append((sql, chunk[0]))
            else:
                out.append((f"{head} VALUES {', '.join(marks for _ in chunk)}", tuple(a for r in chunk for a in r)))
    return out + rest


class EventStoreMixin:
    if TYPE_CHECKING:
        url: str

        def transaction(self) -> contextlib.AbstractContextManager[Callable[..., Any]]: ...
        def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
        def _sql(self, sql: str) -> str: ...
        def release_locks(self, run_id: str) -> None: ...

    # ---- events and actions ----------------------------------------------------------
    @staticmethod
    def event_row(event: Event, rules: list[str] | None, check: bool = False) -> Statement:
        """The event's row; ``rules`` None: not decided yet (outcome ``pending``, see ``events_decided``)."""
        row = (event.id, event.received_at, event.source, event.name, event.status, event.host, event.severity,
               event.message[:8192], event.fingerprint, event.occurrence, event.peer, _payload(event),
               None if rules is None else json.dumps(rules),
               "pending" if rules is None else "matched" if rules else "no_rule", int(check))
        return _INSERT_EVENT, row

    @staticmethod
    def events_decided(decided: list[tuple[str, list[str]]]) -> list[Statement]:
        """Pending events decided: (event id, the rules it matched) → UPDATEs, one per set of rules (500 ids each)."""
        by_rules: dict[str, list[str]] = {}
        for event_id, rules in decided:
            by_rules.setdefault(json.dumps(rules), []).append(event_id)
        out: list[Statement] = []
        for text, ids in by_rules.items():
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                out.append((f"UPDATE events SET rules = ?, outcome = ? WHERE id IN ({', '.join('?' for _ in chunk)})",
                            (text, "no_rule" if text == "[]" else "matched", *chunk)))
        return out

    def events_by_id(self, ids: list[str]) -> list[dict[str, Any]]:
        """These events (those that exist), as ``events`` gives them, without their actions."""
        out: list[dict[str, Any]] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            out += [self._event_dict(r) for r in self._exec(
                f"SELECT {', '.join(_EVENT_COLS)} FROM events WHERE id IN ({', '.join('?' for _ in chunk)})",
                tuple(chunk))]
        return out

    def pending_events(self, limit: int = 100_000) -> list[dict[str, Any]]:
        """Events recorded but not decided (the daemon stopped in between), oldest first, as ``events`` gives them."""
        rows = self._exec(f"SELECT {', '.join(_EVENT_COLS)} FROM events WHERE outcome = 'pending' "
                          "ORDER BY received_at, id LIMIT ?", (limit,))
        return [self._event_dict(r) for r in rows]

    @staticmethod
    def action_row(action: dict[str, Any]) -> Statement:
        cols = [c for c in _ACTION_COLS if c in action]
        return (f"INSERT INTO event_actions ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                tuple(action[c] for c in cols))

    @staticmethod
    def action_update(action_id: str, **fields: Any) -> Statement:
        cols = [c for c in fields if c in _ACTION_COLS and c != "id"]
        sets = ", ".join(f"{c} = ?" for c in cols)
        return f"UPDATE event_actions SET {sets} WHERE id = ?", (*(fields[c] for c in cols), action_id)

    def add_event(self, event: Event, rules: list[str], check: bool = False) -> None:
        self._exec(*self.event_row(event, rules, check))

    def add_action(self, action: dict[str, Any]) -> None:
        self._exec(*self.action_row(action))

    def update_action(self, action_id: str, **fields: Any) -> None:
        self._exec(*self.action_update(action_id, **fields))

    def write_all(self, statements: list[Statement]) -> None:
        """Execute the statements in one transaction: every one of them, or (StoreError) none.

        The daemon's group commit hands it many requests' rows at once: the ``INSERT … VALUES (…)``
        statements go first, those of one text joined into multi-row INSERTs (in their order), then
        every other statement (the updates, which may name a row inserted here) in its order."""
        if not statements:
            return
        with self.transaction() as execute:
            for sql, args in _batched(statements):
                execute(sql, args)

    def _actions(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        rows = self._exec(f"SELECT {', '.join(_ACTION_COLS)} FROM event_actions WHERE {where} ORDER BY id", args)
        return [dict(zip(_ACTION_COLS, r, strict=True)) for r in rows]

    def _event_dict(self, row: tuple[Any, ...]) -> dict[str, Any]:
        d = dict(zip(_EVENT_COLS, row, strict=True))
        d.update(json.loads(d.pop("payload") or "{}"))
        d["rules"] = json.loads(d["rules"] or "[]")  # pending: not decided yet
        d["check_mode"] = bool(d["check_mode"])
        return d

    def events(self, since: float | None = None, limit: int = 100, rule: str | None = None,
               outcome: str | None = None) -> list[dict[str, Any]]:
        """Events newest first, each with its actions (``outcome``: no_rule, or an action outcome or reason)."""
        where: list[str] = ["1 = 1"]
        args: list[Any] = []
        if since is not None:
            where.append("e.received_at >= ?")
            args.append(since)
        if rule:
            where.append("e.id IN (SELECT event_id FROM event_actions WHERE rule = ?)")
            args.append(rule)
        if outcome == "no_rule":
            where.append("e.outcome = 'no_rule'")
        elif outcome == "started":  # a run was started, whether it still runs or has ended
            where.append("e.id IN (SELECT event_id FROM event_actions WHERE run_id IS NOT NULL)")
        elif outcome:
            where.append("e.id IN (SELECT event_id FROM event_actions WHERE outcome = ? OR reason = ?)")
            args += [outcome, outcome]
        rows = self._exec(f"SELECT {', '.join('e.' + c for c in _EVENT_COLS)} FROM events e "
                          f"WHERE {' AND '.join(where)} ORDER BY e.received_at DESC, e.id DESC LIMIT ?",
                          (*args, limit))
        out = [self._event_dict(r) for r in rows]
        by_id = {e["id"]: e for e in out}
        for e in out:
            e["actions"] = []
        ids = list(by_id)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for a in self._actions(f"event_id IN ({', '.join('?' for _ in chunk)})", tuple(chunk)):
                by_id[a["event_id"]]["actions"].append(a)
        return out

    def event_for_run(self, run_id: str) -> dict[str, Any] | None:
        """The event that started a run, with the action that started it (``action``)."""
        actions = self._actions("run_id = ?", (run_id,))
        if not actions:
            return None
        rows = self._exec(f"SELECT {', '.join(_EVENT_COLS)} FROM events WHERE id = ?", (actions[0]["event_id"],))
        if not rows:
            return None
        event = self._event_dict(rows[0])
        event["action"] = actions[0]
        return event

    def recent_actions(self, since: float) -> list[dict[str, Any]]:
        """Actions of events received since then, oldest first (to restore the daemon's guard)."""
        return self._actions("received_at >= ?", (since,))

    def recover_actions(self, daemon_alive: Callable[[str], bool]) -> int:
        """After a crash: queued actions of a dead daemon are canceled; started ones take their run's end."""
        n = 0
        for a in self._actions("outcome = 'queued'", ()):
            if not daemon_alive(a["daemon"] or ""):
                self.update_action(a["id"], outcome="canceled", reason="daemon_stopped",
                                   detail="the daemon stopped before this run started")
                n += 1
        for a in self._actions("outcome = 'started'", ()):
            rows = self._exec("SELECT status, ended_at FROM runs WHERE id = ?", (a["run_id"],))
            if rows and rows[0][0] not in ("running", "waiting"):
                ended = rows[0][1] or time.time()
                self.update_action(a["id"], outcome="finished", run_status=rows[0][0], ended_at=ended,
                                   end_latency=ended - (a["received_at"] or ended))
                n += 1
        return n

    def host_lock_holder(self, host: str) -> str | None:
        rows = self._exec("SELECT l.run_id FROM locks l JOIN runs r ON r.id = l.run_id "
                          "WHERE l.resource = ? AND r.status IN ('running', 'waiting')", (f"host:{host}",))
        return str(rows[0][0]) if rows else None

    # ---- circuit breakers ------------------------------------------------------------
    def breaker(self, rule: str) -> dict[str, Any] | None:
        rows = self._exec(f"SELECT {', '.join(_BREAKER_COLS)} FROM breakers WHERE rule = ?", (rule,))
        return dict(zip(_BREAKER_COLS, rows[0], strict=True)) if rows else None

    def breakers(self) -> list[dict[str, Any]]:
        rows = self._exec(f"SELECT {', '.join(_BREAKER_COLS)} FROM breakers ORDER BY rule")
        return [dict(zip(_BREAKER_COLS, r, strict=True)) for r in rows]

    def breaker_result(self, rule: str, run_id: str, failed: bool, threshold: int) -> bool:
        """Count a remediation's outcome; return True when this failure opened the breaker."""
        self._exec("INSERT INTO breakers (rule, failures, state) VALUES (?, 0, 'closed') "
                   "ON CONFLICT (rule) DO NOTHING", (rule,))
        if not failed:
            self._exec("UPDATE breakers SET failures = 0, last_run = ? WHERE rule = ? AND state = 'closed'",
                       (run_id, rule))
            return False
        self._exec("UPDATE breakers SET failures = failures + 1, last_run = ? WHERE rule = ?", (run_id, rule))
        if threshold <= 0:
            return False
        state = self.breaker(rule) or {}
        if state.get("state") != "closed" or int(state.get("failures") or 0) < threshold:
            return False
        self._exec("UPDATE breakers SET state = 'open', opened_at = ? WHERE rule = ?", (time.time(), rule))
        return True

    def breaker_reset(self, rule: str, by: str) -> dict[str, Any] | None:
        if self.breaker(rule) is None:
            return None
        self._exec("UPDATE breakers SET state = 'closed', failures = 0, reset_at = ?, reset_by = ? WHERE rule = ?",
                   (time.time(), by, rule))
        return self.breaker(rule)
