"""What the store knows about an entry, for the schedule views: last outcome, recorded p95 duration.

Both take a store object (any with the methods used; absent methods mean "not known") and never fail:
the schedule is shown without them.
"""

from __future__ import annotations

import math
from typing import Any


def last_outcomes(store: Any) -> dict[str, str]:
    """entry name → its latest fire's outcome (or decision: skipped, deferred, missed …)."""
    last_fires = getattr(store, "last_fires", None)
    if last_fires is None:
        return {}
    try:
        rows = last_fires()
    except Exception:  # noqa: BLE001 - an older store without the table: nothing known
        return {}
    out: dict[str, str] = {}
    for name, row in rows.items():
        outcome, decision = row.get("outcome"), row.get("decision")
        out[name] = str(outcome or ("running" if decision == "fired" else decision) or "-")
    return out


def p95_duration(store: Any, runbook: str, sample: int = 100) -> float | None:
    """The 95th percentile (nearest rank) of the runbook's recent succeeded runs, in seconds."""
    history = getattr(store, "history", None)
    if history is None:
        return None
    try:
        rows = history(runbook=runbook, status="succeeded", limit=sample)
    except Exception:  # noqa: BLE001
        return None
    durations = sorted(float(r["duration"]) for r in rows if r.get("duration") is not None)
    if not durations:
        return None
    return durations[max(0, math.ceil(0.95 * len(durations)) - 1)]


__all__ = ["last_outcomes", "p95_duration"]
