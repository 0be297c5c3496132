"""What the console reads from the store beyond the store's own queries (``query_runs``, ``query_events``).

Approvals waiting for a decision, across runs, each with its run: one indexed join, oldest first. (A
candidate for the store itself, next to ``approvals_of``, once another reader needs it.)
"""

from __future__ import annotations

from typing import Any

_APPROVAL_COLS = ("run_id", "step_index", "step", "message", "state", "requested_at", "deadline", "four_eyes")
_RUN_COLS = ("id", "runbook", "trigger", "started_by", "status", "started_at", "hosts")


def pending_approvals(store: Any, limit: int = 200) -> list[dict[str, Any]]:
    """Approvals still waiting for a decision, oldest first, each with its run's brief (``run``)."""
    import json

    rows = store._exec(f"SELECT {', '.join('a.' + c for c in _APPROVAL_COLS)}, "
                       f"{', '.join('r.' + c for c in _RUN_COLS)} FROM approvals a JOIN runs r ON r.id = a.run_id "
                       "WHERE a.state = 'pending' ORDER BY a.requested_at, a.run_id LIMIT ?", (limit,))
    out = []
    for row in rows:
        a = dict(zip(_APPROVAL_COLS, row[:len(_APPROVAL_COLS)], strict=True))
        run = dict(zip(_RUN_COLS, row[len(_APPROVAL_COLS):], strict=True))
        try:
            run["hosts"] = json.loads(run["hosts"] or "{}")
        except ValueError:
            run["hosts"] = {}
        a["run"] = run
        out.append(a)
    return out


__all__ = ["pending_approvals"]
