"""Reviews (lessons learned) and the records they are built from: a mixin of SqlStore.

A review is linked to runs, events and runbooks (JSON lists) and carries its document (``doc``, a JSON
object: see ``opsflow.reviews.doc``). ``open_lessons(runbook)`` is what ``opsflow plan`` / ``run`` show
before a run: one query on the ``reviews_state`` index, the JSON list of runbooks matched in Python.

The reads below it (approvals of a run, audit entries of an action, failed automatic remediations, an
event with its actions) feed the timeline of a review and the detection of reviews that are due.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

REVIEW_STATES = ("open", "closed")
FAILING_RUNS = ("failed", "partial", "crashed", "abandoned")  # an automatic remediation that did not succeed
_REVIEW_COLS = ("id", "title", "state", "created_at", "created_by", "updated_at", "updated_by", "closed_at",
                "closed_by", "runbooks", "runs", "events", "doc")
_JSON_COLS: dict[str, type] = {"runbooks": list, "runs": list, "events": list, "doc": dict}
_APPROVAL_COLS = ("run_id", "step_index", "step", "message", "state", "requested_at", "deadline", "decided_at",
                  "decided_by", "comment")
_AUDIT_COLS = ("id", "at", "actor", "action", "target", "detail")
_RUN_BRIEF = ("id", "runbook", "runbook_hash", "trigger", "status", "started_at", "ended_at", "error")


def _like(text: str) -> str:
    """``text`` for a LIKE pattern: its own ``%``, ``_`` and ``\\`` taken literally (ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class ReviewStoreMixin:
    if TYPE_CHECKING:
        def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
        def _event_dict(self, row: tuple[Any, ...]) -> dict[str, Any]: ...
        def _actions(self, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]: ...

    # ---- reviews ---------------------------------------------------------------------
    def _review_dict(self, row: tuple[Any, ...]) -> dict[str, Any]:
        d = dict(zip(_REVIEW_COLS, row, strict=True))
        for col, empty in _JSON_COLS.items():
            d[col] = json.loads(d[col]) if d[col] else empty()
        return d

    def create_review(self, title: str, by: str, *, runbooks: list[str], runs: list[str], events: list[str],
                      doc: dict[str, Any] | None = None) -> dict[str, Any]:
        """A new open review (its id ``R-`` and 6 hex digits); returns it as stored."""
        now = time.time()
        for _ in range(8):
            review_id = f"R-{secrets.token_hex(3)}"
            rows = self._exec(
                f"INSERT INTO reviews ({', '.join(_REVIEW_COLS)}) VALUES ({', '.join('?' for _ in _REVIEW_COLS)}) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                (review_id, title, "open", now, by, now, by, None, None, json.dumps(runbooks), json.dumps(runs),
                 json.dumps(events), json.dumps(doc or {}, default=str)))
            if rows:
                review = self.get_review(review_id)
                assert review is not None
                return review
        raise RuntimeError("no free review id after 8 tries")  # 16 million ids: not reached in practice

    def get_review(self, review_id: str) -> dict[str, Any] | None:
        """The review of this id, or of the one id that starts with it (``R-`` may be left out)."""
        cols = ", ".join(_REVIEW_COLS)
        rows = self._exec(f"SELECT {cols} FROM reviews WHERE id = ?", (review_id,))
        if not rows and review_id:
            prefix = review_id if review_id.upper().startswith("R-") else f"R-{review_id}"
            prefix = "R-" + prefix[2:].lower()
            rows = self._exec(f"SELECT {cols} FROM reviews WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 2",
                              (_like(prefix) + "%",))
            if len(rows) != 1:
                return None
        return self._review_dict(rows[0])

    def update_review(self, review_id: str, by: str, *, title: str | None = None, state: str | None = None,
                      doc: dict[str, Any] | None = None, runbooks: list[str] | None = None,
                      runs: list[str] | None = None, events: list[str] | None = None) -> dict[str, Any] | None:
        """Change a review (who and when recorded; ``state='closed'`` also sets closed_at/closed_by)."""
        now = time.time()
        fields: dict[str, Any] = {"updated_at": now, "updated_by": by}
        if title is not None:
            fields["title"] = title
        if state is not None:
            if state not in REVIEW_STATES:
                raise ValueError(f"unknown review state {state!r}")
            fields.update(state=state, closed_at=now if state == "closed" else None,
                          closed_by=by if state == "closed" else None)
        for col, value in (("doc", doc), ("runbooks", runbooks), ("runs", runs), ("events", events)):
            if value is not None:
                fields[col] = json.dumps(value, default=str)
        sets = ", ".join(f"{k} = ?" for k in fields)
        self._exec(f"UPDATE reviews SET {sets} WHERE id = ?", (*fields.values(), review_id))
        return self.get_review(review_id)

    def list_reviews(self, state: str | None = None, runbook: str | None = None,
                     limit: int = 1000) -> list[dict[str, Any]]:
        """Reviews newest first; ``state`` open/closed (None: both); ``runbook``: those linked to it."""
        where: list[str] = []
        args: list[Any] = []
        if state:
            where.append("state = ?")
            args.append(state)
        if runbook:
            where.append("runbooks LIKE ? ESCAPE '\\'")
            args.append(f"%{_like(json.dumps(runbook))}%")
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._exec(f"SELECT {', '.join(_REVIEW_COLS)} FROM reviews {clause}ORDER BY created_at DESC, id "
                          "LIMIT ?", (*args, limit))
        out = [self._review_dict(r) for r in rows]
        return [r for r in out if runbook is None or runbook in r["runbooks"]]

    def open_lessons(self, runbook: str) -> list[dict[str, Any]]:
        """Open reviews of ``runbook``, oldest first, each with ``open_actions``: its action items not done."""
        lessons = self.list_reviews(state="open", runbook=runbook)
        for r in lessons:
            items = r["doc"].get("action_items") or []
            r["open_actions"] = [a for a in items if isinstance(a, dict) and not a.get("done")]
        return sorted(lessons, key=lambda r: (r["created_at"], r["id"]))

    # ---- what reviews are built from -------------------------------------------------
    def event_with_actions(self, event_id: str) -> dict[str, Any] | None:
        """One event (id, or the one id starting with it) with ``actions``: what each rule did with it."""
        cols = ("id", "received_at", "source", "name", "status", "host", "severity", "message", "fingerprint",
                "occurrence", "peer", "payload", "rules", "outcome", "check_mode")
        rows = self._exec(f"SELECT {', '.join(cols)} FROM events WHERE id = ?", (event_id,))
        if not rows:
            rows = self._exec(f"SELECT {', '.join(cols)} FROM events WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                              (_like(event_id) + "%",))
            if len(rows) != 1:
                return None
        event = self._event_dict(rows[0])
        event["actions"] = self._actions("event_id = ?", (event["id"],))
        return event

    def approvals_of(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._exec(f"SELECT {', '.join(_APPROVAL_COLS)} FROM approvals WHERE run_id = ? ORDER BY step_index",
                          (run_id,))
        return [dict(zip(_APPROVAL_COLS, r, strict=True)) for r in rows]

    def pending_approvals(self, limit: int = 200) -> list[dict[str, Any]]:
        """Approvals still waiting for a decision, across runs, oldest first, each with its run's brief (``run``:
        id, runbook, trigger, started_by, status, started_at, hosts): the console's inbox."""
        acols = ("run_id", "step_index", "step", "message", "state", "requested_at", "deadline", "four_eyes")
        rcols = ("id", "runbook", "trigger", "started_by", "status", "started_at", "hosts")
        rows = self._exec(f"SELECT {', '.join('a.' + c for c in acols)}, {', '.join('r.' + c for c in rcols)} "
                          "FROM approvals a JOIN runs r ON r.id = a.run_id WHERE a.state = 'pending' "
                          "ORDER BY a.requested_at, a.run_id LIMIT ?", (limit,))
        out = []
        for row in rows:
            approval = dict(zip(acols, row[:len(acols)], strict=True))
            run = dict(zip(rcols, row[len(acols):], strict=True))
            try:
                run["hosts"] = json.loads(run["hosts"] or "{}")
            except ValueError:
                run["hosts"] = {}
            approval["run"] = run
            out.append(approval)
        return out

    def audit_entries(self, action: str, target: str | None = None, since: float | None = None,
                      limit: int = 1000) -> list[dict[str, Any]]:
        """Audit entries of one action, oldest first; ``target`` matched exactly, or as a prefix ending in ``*``."""
        where, args = ["action = ?", "at >= ?"], [action, since or 0.0]
        if target is not None:
            if target.endswith("*"):
                where.append("target LIKE ? ESCAPE '\\'")
                args.append(_like(target[:-1]) + "%")
            else:
                where.append("target = ?")
                args.append(target)
        rows = self._exec(f"SELECT {', '.join(_AUDIT_COLS)} FROM audit WHERE {' AND '.join(where)} "
                          "ORDER BY at, id LIMIT ?", (*args, limit))
        return [dict(zip(_AUDIT_COLS, r, strict=True)) for r in rows]

    def failed_remediations(self, since: float | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Runs started by an event (not in check mode, not a sub-runbook or a resume) that did not succeed."""
        marks = ", ".join("?" for _ in FAILING_RUNS)
        rows = self._exec(f"SELECT {', '.join(_RUN_BRIEF)} FROM runs WHERE started_at >= ? AND trigger = 'event' "
                          f"AND status IN ({marks}) AND check_mode = 0 AND parent_run IS NULL "
                          "ORDER BY started_at LIMIT ?", (since or 0.0, *FAILING_RUNS, limit))
        return [dict(zip(_RUN_BRIEF, r, strict=True)) for r in rows]
