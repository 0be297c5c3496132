"""Which reviews are due: found from the records, nothing written until someone opens a review.

Due are (ITIL: a review after every significant failure or exception):

- ``failed_remediation``: a run started by an event (trigger ``event``; not check mode, not a sub-runbook
  or a resume) whose status is failed, partial, crashed or abandoned;
- ``window_override``: a person started a run in a blackout or outside its maintenance window (audit
  ``window_override``, target ``run <id> of <runbook>``);
- ``breach``: a service-level objective missed, as the caller (the KPI report) passes it:
  ``{runbook, service, objective, actual, target[, at]}`` (``at``: epoch seconds or ISO 8601; without
  it, the start of the period asked about).

A run's item is gone once any review links that run; a breach's once a review of its runbook was opened
at or after the breach. :func:`due_items` is pure; :func:`find_due` reads the records from a store.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsflow.reviews.timeline import OVERRIDE_TARGET

if TYPE_CHECKING:
    from opsflow.store.base import Store


def _epoch(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def due_items(failed_runs: list[dict[str, Any]], overrides: list[dict[str, Any]], breaches: list[dict[str, Any]],
              reviews: list[dict[str, Any]], since: float | None = None) -> list[dict[str, Any]]:
    """What is due, oldest first: dicts with ``kind``, ``at``, ``runbook``, ``run_id`` (None for a breach),
    ``what`` (one line; also as ``title``), ``runbooks`` ([runbook]), ``reason`` (= kind), and the breach's
    ``service``, ``objective``, ``actual``, ``target`` for a breach."""
    linked_runs = {rid for r in reviews for rid in r.get("runs") or []}
    out: list[dict[str, Any]] = []
    for run in failed_runs:
        if run["id"] in linked_runs:
            continue
        out.append({"kind": "failed_remediation", "at": float(run.get("started_at") or 0), "run_id": run["id"],
                    "runbook": run.get("runbook"),
                    "what": f"automatic remediation {run['id']} of {run.get('runbook')} {run.get('status')}"})
    for o in overrides:
        m = OVERRIDE_TARGET.fullmatch(str(o.get("target") or ""))
        if not m or m[1] in linked_runs:
            continue
        out.append({"kind": "window_override", "at": float(o.get("at") or 0), "run_id": m[1], "runbook": m[2],
                    "what": f"run {m[1]} of {m[2]} started past its window by {o.get('actor')}: {o.get('detail')}"})
    for b in breaches:
        runbook = b.get("runbook")
        at = _epoch(b.get("at"))
        after = at if at is not None else since
        covered = any(runbook in (r.get("runbooks") or []) and (after is None or float(r["created_at"]) >= after)
                      for r in reviews)
        if covered:
            continue
        service = f"{b.get('service')}: " if b.get("service") else ""
        out.append({"kind": "breach", "at": after or 0.0, "run_id": None, "runbook": runbook,
                    "service": b.get("service"), "objective": b.get("objective"), "actual": b.get("actual"),
                    "target": b.get("target"),
                    "what": f"{service}objective {b.get('objective')} of {runbook} missed: "
                            f"{b.get('actual')} against {b.get('target')}"})
    for d in out:  # the fields a table of reviews shows (opsflow.reports): title, runbooks, reason
        d.update(title=d["what"], runbooks=[d["runbook"]] if d["runbook"] else [], reason=d["kind"])
    return sorted(out, key=lambda d: (d["at"], d["kind"]))


def find_due(store: Store, since: float | None = None, breaches: list[dict[str, Any]] | None = None,
             runbook: str | None = None) -> list[dict[str, Any]]:
    """Reviews due since ``since`` (epoch seconds; None: ever), for ``runbook`` or all of them."""
    items = due_items(store.failed_remediations(since), store.audit_entries("window_override", since=since),
                      breaches or [], store.list_reviews(limit=100000), since)
    return [d for d in items if runbook is None or d["runbook"] == runbook]
