"""Reviews summed up for the KPI report (``opsflow.reports``): per runbook, and as rows of a table.

One query of the open reviews (the ``reviews_state`` index), whatever the number of runbooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsflow.reviews.doc import open_actions

if TYPE_CHECKING:
    from opsflow.store.base import Store


def lessons_by_runbook(reviews: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """{runbook: {``open_reviews``, ``open_actions``}} over the open ones of ``reviews`` (pure)."""
    out: dict[str, dict[str, int]] = {}
    for r in reviews:
        if r.get("state") != "open":
            continue
        for rb in r.get("runbooks") or []:
            counts = out.setdefault(rb, {"open_reviews": 0, "open_actions": 0})
            counts["open_reviews"] += 1
            counts["open_actions"] += len(open_actions(r.get("doc") or {}))
    return out


def review_rows(reviews: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[{``id``, ``title``, ``state``, ``runbooks``, ``open_actions`` (a count)}] (pure)."""
    return [{"id": r["id"], "title": r["title"], "state": r["state"], "runbooks": list(r.get("runbooks") or []),
             "open_actions": len(open_actions(r.get("doc") or {}))} for r in reviews]


def open_lessons_summary(store: Store) -> tuple[dict[str, dict[str, int]], list[dict[str, Any]]]:
    """For the report: the lessons per runbook and the rows of the open reviews, from one query."""
    reviews = store.list_reviews(state="open", limit=100000)
    return lessons_by_runbook(reviews), review_rows(reviews)
