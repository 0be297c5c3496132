"""Policies the scheduler service applies at fire time, as pure decisions.

- :func:`misfired_runs`: after downtime, which missed fires still run (``misfire: {grace, catchup}``);
  the default runs the latest one within the grace, never a stale run hours late;
- :func:`dependency_decision`: whether an entry with ``after:`` may run now, given the outcomes of the
  entries it depends on (by default their run must be of the same local day).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Literal

from opsflow.schedule.models import EntrySpec
from opsflow.schedule.tz import zone

Decision = Literal["run", "skip", "wait"]
SUCCESS = frozenset({"succeeded"})


def misfired_runs(spec: EntrySpec, missed: Sequence[datetime], now: datetime) -> list[datetime]:
    """Of the fire instants ``missed`` while nothing ran, those to run now, oldest first."""
    grace = timedelta(seconds=spec.misfire.grace)
    fresh = sorted(t for t in missed if timedelta(0) <= now - t <= grace)
    if spec.misfire.catchup == "none" or not fresh:
        return []
    if spec.misfire.catchup == "latest":
        return [fresh[-1]]
    return fresh


def dependency_decision(spec: EntrySpec, at: datetime,
                        outcomes: Mapping[str, Sequence[tuple[datetime, str]]]) -> tuple[Decision, str]:
    """``(decision, reason)`` for a fire at ``at`` of an entry with ``after:`` dependencies.

    ``outcomes`` maps an entry name to its runs as (finished or fired at, status). A dependency counts
    when its latest run is within ``within`` before ``at`` (default: the same local day in the entry's
    zone). Failed → ``on_failure``; none → ``on_missing`` (``wait`` means: ask again later, up to
    ``wait`` after the fire, then skip).
    """
    z = zone(spec.timezone)
    decision: Decision = "run"
    reasons: list[str] = []
    for dep in spec.after:
        if dep.within is not None:
            since = at - timedelta(seconds=dep.within)
        else:
            local = at.astimezone(z)
            since = local.replace(hour=0, minute=0, second=0, microsecond=0)
        runs = sorted((t, s) for t, s in outcomes.get(dep.entry, ()) if since <= t <= at)
        if not runs:
            verdict: Decision = dep.on_missing
            reasons.append(f"{dep.entry} has not run since {since.isoformat()} (on_missing: {verdict})")
        elif runs[-1][1] in SUCCESS:
            continue
        else:
            verdict = dep.on_failure
            reasons.append(f"{dep.entry} {runs[-1][1]} (on_failure: {verdict})")
        if verdict == "skip" or (verdict == "wait" and decision == "run"):
            decision = verdict
    if not reasons:
        return "run", "dependencies succeeded" if spec.after else "no dependencies"
    return decision, "; ".join(reasons)


__all__ = ["dependency_decision", "misfired_runs"]
