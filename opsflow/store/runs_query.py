"""Filtered, paged reads of runs and events for the HTTP API: a mixin of SqlStore.

Newest first, keyset-paged: a cursor is the last row's ``started_at`` (``received_at``) and id, so a
page costs one index range scan (``runs_started``, ``runs_runbook``, ``events_received``) however deep
it is, and rows inserted meanwhile neither repeat nor shift a page.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from opsflow.errors import UsageError

RUN_COLS = ("id", "runbook", "runbook_path", "runbook_hash", "params", "trigger", "started_by", "status",
            "check_mode", "started_at", "ended_at", "duration", "pid", "pid_start", "node", "error", "hosts",
            "parent_run", "inventory", "error_kind")
EVENT_COLS = ("id", "received_at", "source", "name", "status", "host", "severity", "fingerprint", "rules",
              "outcome", "check_mode")  # never the payload, message or peer: event data stays in the store


def encode_cursor(at: float, ident: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at, ident]).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[float, str]:
    try:
        at, ident = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        return float(at), str(ident)
    except (ValueError, TypeError):
        raise UsageError("cursor: not a cursor this service gave (use next_cursor of the previous page)") from None


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class RunsQueryMixin:
    if TYPE_CHECKING:
        def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
        def _run_dict(self, row: tuple[Any, ...]) -> dict[str, Any]: ...
        def _actions(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]: ...

    def query_runs(self, *, runbook: str | None = None, status: str | None = None, trigger: str | None = None,
                   host: str | None = None, since: float | None = None, until: float | None = None,
                   started_by: str | None = None, limit: int = 50, cursor: str | None = None,
                   offset: int = 0) -> tuple[list[dict[str, Any]], str | None]:
        """Runs newest first matching every filter given; (page, cursor of the next page or None)."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("runbook", runbook), ("status", status), ("trigger", trigger),
                              ("started_by", started_by)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if host:  # hosts is a JSON object {host: outcome}: its key, quoted as json.dumps writes it
            where.append("hosts LIKE ? ESCAPE '\\'")
            args.append("%" + _like(json.dumps(host)) + ":%")
        if since is not None:
            where.append("started_at >= ?")
            args.append(since)
        if until is not None:
            where.append("started_at < ?")
            args.append(until)
        if cursor:
            at, ident = decode_cursor(cursor)
            where.append("(started_at < ? OR (started_at = ? AND id < ?))")
            args += [at, at, ident]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._exec(f"SELECT {', '.join(RUN_COLS)} FROM runs {clause} ORDER BY started_at DESC, id DESC "
                          "LIMIT ? OFFSET ?", (*args, limit + 1, offset))
        page = [self._run_dict(r) for r in rows[:limit]]
        if len(rows) > limit and page:
            return page, encode_cursor(page[-1]["started_at"], page[-1]["id"])
        return page, None

    def query_events(self, *, since: float | None = None, until: float | None = None, source: str | None = None,
                     host: str | None = None, rule: str | None = None, outcome: str | None = None,
                     limit: int = 100, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Events newest first, each with its actions (what the daemon did), without their payloads."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("source", source), ("host", host)):
            if value:
                where.append(f"e.{column} = ?")
                args.append(value)
        if since is not None:
            where.append("e.received_at >= ?")
            args.append(since)
        if until is not None:
            where.append("e.received_at < ?")
            args.append(until)
        if rule:
            where.append("e.id IN (SELECT event_id FROM event_actions WHERE rule = ?)")
            args.append(rule)
        if outcome == "no_rule":
            where.append("e.outcome = 'no_rule'")
        elif outcome == "started":
            where.append("e.id IN (SELECT event_id FROM event_actions WHERE run_id IS NOT NULL)")
        elif outcome:
            where.append("e.id IN (SELECT event_id FROM event_actions WHERE outcome = ? OR reason = ?)")
            args += [outcome, outcome]
        if cursor:
            at, ident = decode_cursor(cursor)
            where.append("(e.received_at < ? OR (e.received_at = ? AND e.id < ?))")
            args += [at, at, ident]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._exec(f"SELECT {', '.join('e.' + c for c in EVENT_COLS)} FROM events e {clause} "
                          "ORDER BY e.received_at DESC, e.id DESC LIMIT ?", (*args, limit + 1))
        page = []
        for r in rows[:limit]:
            d = dict(zip(EVENT_COLS, r, strict=True))
            d["rules"] = json.loads(d["rules"] or "[]")
            d["check_mode"] = bool(d["check_mode"])
            d["actions"] = []
            page.append(d)
        by_id = {e["id"]: e for e in page}
        ids = list(by_id)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for a in self._actions(f"event_id IN ({', '.join('?' for _ in chunk)})", tuple(chunk)):
                by_id[a["event_id"]]["actions"].append(a)
        if len(rows) > limit and page:
            return page, encode_cursor(page[-1]["received_at"], page[-1]["id"])
        return page, None
