"""Resume chains: a run, the runs that resumed it, the runs that resumed those.

``opsflow resume X`` continues from the newest run of X's chain (so resuming an original
twice never redoes what its first resume completed), and a resume skips, per host, every
step that any run of the chain completed.
"""

from __future__ import annotations

from typing import Any

from opsflow.errors import UsageError
from opsflow.store.base import Store

RESUMABLE = ("failed", "partial", "canceled", "abandoned", "crashed", "interrupted")


def ancestors(store: Store, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The chain up to ``record``, oldest first: the runs it (transitively) resumed, then itself."""
    chain = [record]
    seen = {record["id"]}
    while chain[0].get("parent_run"):
        parent = store.get_run(chain[0]["parent_run"])
        if parent is None or parent["id"] in seen or parent["runbook_path"] != chain[0]["runbook_path"]:
            break  # a sub-runbook's parent is another runbook: not part of a resume chain
        seen.add(parent["id"])
        chain.insert(0, parent)
    return chain


def latest(store: Store, record: dict[str, Any]) -> dict[str, Any]:
    """The newest run that continues ``record`` (itself when nothing resumed it)."""
    seen = {record["id"]}
    while True:
        later = [r for r in store.resumes_of(record["id"]) if r["id"] not in seen]
        if not later:
            return record
        record = later[-1]
        seen.add(record["id"])


def resume_target(store: Store, run_id: str) -> dict[str, Any]:
    """The run a ``resume RUN_ID`` continues, or a UsageError that says why there is none."""
    record = store.get_run(run_id)
    if record is None:
        raise UsageError(f"no run {run_id!r} (see opsflow history)")
    tip = latest(store, record)
    via = f" (run {record['id']} was resumed by run {tip['id']})" if tip["id"] != record["id"] else ""
    if tip["status"] in ("running", "waiting"):
        raise UsageError(f"run {tip['id']} is {tip['status']}{via}: it is already being resumed; "
                         f"follow it with opsflow show {tip['id']}")
    if tip["status"] not in RESUMABLE:
        raise UsageError(f"run {tip['id']} is {tip['status']}{via}: only failed, partial, canceled or "
                         "abandoned runs (and interrupted ones) can be resumed")
    return tip
