"""The timeline of a review: what happened, in order, from the records of its events and runs.

event received → what each rule did with it (queued, started, suppressed with the reason …) → run start →
each host × step result with status and duration → approvals requested and decided (by whom) → window
overrides (audit) → run end with its status. :func:`build_timeline` is pure (records in, entries out);
:func:`gather` reads the records of a review from a store. No output of a step is taken, only its status,
duration and kind of error: a timeline holds no secret a command printed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsflow.store.base import Store

OVERRIDE_TARGET = re.compile(r"run (\S+) of (.+)")


def _entry(at: Any, kind: str, what: str, **kw: Any) -> dict[str, Any]:
    return {"at": float(at or 0.0), "kind": kind, "what": what, "run_id": kw.get("run_id"), "host": kw.get("host"),
            "step": kw.get("step"), "status": kw.get("status"), "duration": kw.get("duration"), "who": kw.get("who")}


def _event_entries(event: dict[str, Any]) -> list[dict[str, Any]]:
    where = f" on {event['host']}" if event.get("host") else ""
    out = [_entry(event.get("received_at"), "event", f"event {event.get('name') or '?'} ({event.get('status') or '?'})"
                  f"{where} received from {event.get('source') or '?'}", status=event.get("outcome"),
                  who=event.get("source"))]
    for a in event.get("actions") or []:
        reason = f" ({a['reason']})" if a.get("reason") else ""
        run = f" → run {a['run_id']}" if a.get("run_id") else ""
        out.append(_entry(a.get("queued_at") or a.get("received_at") or event.get("received_at"), "rule",
                          f"rule {a.get('rule')}: {a.get('outcome')}{reason}{run}", run_id=a.get("run_id"),
                          host=a.get("host"), status=a.get("outcome"), who=a.get("rule")))
    return out


def _run_entries(run: dict[str, Any], results: list[dict[str, Any]], approvals: list[dict[str, Any]],
                 overrides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rid = run["id"]
    out = [_entry(run.get("started_at"), "run_start", f"run {rid} of {run.get('runbook')} started "
                  f"(trigger {run.get('trigger')})", run_id=rid, who=run.get("started_by"), status="running")]
    for r in results:
        error = f" [{r['error_class']}]" if r.get("error_class") else ""
        phase = f" ({r['phase']})" if r.get("phase") and r.get("phase") != "main" else ""
        out.append(_entry(r.get("ended_at") or r.get("started_at") or run.get("started_at"), "step",
                          f"{r.get('step')}{phase} on {r.get('host')}: {r.get('status')}{error}", run_id=rid,
                          host=r.get("host"), step=r.get("step"), status=r.get("status"), duration=r.get("duration")))
    for a in approvals:
        out.append(_entry(a.get("requested_at"), "approval", f"approval of step {a.get('step')!r} requested",
                          run_id=rid, step=a.get("step"), status="pending"))
        if a.get("decided_at") and a.get("state") != "pending":
            comment = f": {a['comment']}" if a.get("comment") else ""
            who = a.get("decided_by") or "nobody (deadline)"
            out.append(_entry(a["decided_at"], "approval", f"step {a.get('step')!r} {a.get('state')} by {who}{comment}",
                              run_id=rid, step=a.get("step"), status=a.get("state"), who=a.get("decided_by")))
    for o in overrides:
        out.append(_entry(o.get("at"), "window_override", f"window overridden by {o.get('actor')}: {o.get('detail')}",
                          run_id=rid, who=o.get("actor"), status="override"))
    if run.get("ended_at"):
        error = f": {run['error']}" if run.get("error") else ""
        out.append(_entry(run["ended_at"], "run_end", f"run {rid} ended {run.get('status')}{error}", run_id=rid,
                          status=run.get("status"), duration=run.get("duration")))
    return out


def build_timeline(events: list[dict[str, Any]], runs: list[dict[str, Any]],
                   results: dict[str, list[dict[str, Any]]], approvals: dict[str, list[dict[str, Any]]],
                   overrides: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries (``at``, ``kind``, ``what``, ``run_id``, ``host``, ``step``, ``status``, ``duration``, ``who``)
    in time order; ``overrides`` are audit rows ``window_override`` (target ``run <id> of <runbook>``)."""
    out: list[dict[str, Any]] = []
    for e in events:
        out += _event_entries(e)
    by_run: dict[str, list[dict[str, Any]]] = {}
    for o in overrides:
        m = OVERRIDE_TARGET.fullmatch(str(o.get("target") or ""))
        if m:
            by_run.setdefault(m[1], []).append(o)
    for run in runs:
        out += _run_entries(run, results.get(run["id"], []), approvals.get(run["id"], []), by_run.get(run["id"], []))
    order = {"event": 0, "rule": 1, "run_start": 2, "window_override": 3, "approval": 4, "step": 5, "run_end": 6}
    return sorted(out, key=lambda e: (e["at"], order.get(e["kind"], 9)))


def gather(store: Store, review: dict[str, Any]) -> list[dict[str, Any]]:
    """The timeline of a review from the store: its events, its runs and their records."""
    events = [e for eid in review.get("events") or [] if (e := store.event_with_actions(eid)) is not None]
    runs = [r for rid in review.get("runs") or [] if (r := store.get_run(rid)) is not None]
    results = {r["id"]: store.results(r["id"]) for r in runs}
    approvals = {r["id"]: store.approvals_of(r["id"]) for r in runs}
    overrides = [o for r in runs for o in store.audit_entries("window_override", f"run {r['id']} of *")]
    return build_timeline(events, runs, results, approvals, overrides)
