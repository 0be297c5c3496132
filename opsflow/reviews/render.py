"""A review as Markdown (``opsflow review export``), as terminal text, and as the lesson lines ``plan`` / ``run``
print. Pure functions of the review dict (as the store returns it) and its timeline."""

from __future__ import annotations

import time
from typing import Any

from opsflow.reviews.doc import LIST_FIELDS, open_actions
from opsflow.textsafe import for_terminal

_HEADINGS = {"contributing_factors": "Contributing factors", "went_well": "What went well",
             "takeaways": "Takeaways"}


def when(at: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(at))) if at else "-"


def _cell(value: Any) -> str:
    """Text for one Markdown table cell: one line, its pipes escaped."""
    return " ".join(str("" if value is None else value).split()).replace("\\", "\\\\").replace("|", "\\|")


def _line(value: Any) -> str:
    return " ".join(str(value or "").split())


def _duration(value: Any) -> str:
    return f"{float(value):.2f} s" if value is not None else ""


def _meta(review: dict[str, Any]) -> list[tuple[str, str]]:
    closed = f"{when(review.get('closed_at'))} by {review.get('closed_by')}" if review.get("closed_at") else "-"
    return [("State", str(review["state"])),
            ("Opened", f"{when(review['created_at'])} by {review['created_by']}"),
            ("Updated", f"{when(review['updated_at'])} by {review['updated_by']}"),
            ("Closed", closed),
            ("Runbooks", ", ".join(review.get("runbooks") or []) or "-"),
            ("Runs", ", ".join(review.get("runs") or []) or "-"),
            ("Events", ", ".join(review.get("events") or []) or "-")]


def _item(a: dict[str, Any]) -> str:
    done = f" (done {a.get('done_at')} by {a.get('done_by')})" if a.get("done") else ""
    return f"{a.get('id')}. {_line(a.get('text'))} — owner {a.get('owner')}, due {a.get('due')}{done}"


def to_markdown(review: dict[str, Any], timeline: list[dict[str, Any]]) -> str:
    doc = review.get("doc") or {}
    out = [f"# {_line(review['title'])} ({review['id']})", ""]
    out += [f"- **{k}:** {_line(v)}" for k, v in _meta(review)]
    for key, heading in (("summary", "Summary"), ("impact", "Impact")):
        out += ["", f"## {heading}", "", str(doc.get(key) or "_(not written yet)_").strip()]
    out += ["", "## Timeline", ""]
    if timeline:
        out += ["| Time | What | Host | Status | Duration | Who |", "|---|---|---|---|---|---|"]
        out += [f"| {when(e['at'])} | {_cell(e['what'])} | {_cell(e.get('host'))} | {_cell(e.get('status'))} | "
                f"{_duration(e.get('duration'))} | {_cell(e.get('who'))} |" for e in timeline]
    else:
        out.append("_(no records of the linked runs and events)_")
    for key in LIST_FIELDS:
        out += ["", f"## {_HEADINGS[key]}", ""]
        out += [f"- {_line(t)}" for t in doc.get(key) or []] or ["_(none)_"]
    out += ["", "## Action items", ""]
    out += [f"- [{'x' if a.get('done') else ' '}] {_item(a)}" for a in doc.get("action_items") or []] or ["_(none)_"]
    out += ["", "## Links", ""]
    out += [f"- [{_line(li.get('title')).replace(']', '')}]({_line(li.get('url')).replace(')', '%29')})"
            if "://" in str(li.get("url")) else f"- {_line(li.get('title'))}: `{_line(li.get('url'))}`"
            for li in doc.get("links") or []] or ["_(none)_"]
    return "\n".join(out) + "\n"


def to_text(review: dict[str, Any], timeline: list[dict[str, Any]]) -> str:
    """A review for the terminal (control characters made visible)."""
    doc = review.get("doc") or {}
    out = [f"{review['id']}  {review['title']}"]
    out += [f"  {k.lower():<9} {v}" for k, v in _meta(review)]
    for key in ("summary", "impact"):
        if doc.get(key):
            out += [f"{key}:", *(f"  {line}" for line in str(doc[key]).splitlines())]
    if timeline:
        out.append("timeline:")
        out += [f"  {when(e['at'])}  {e['what']}" + (f"  ({_duration(e['duration'])})" if e.get("duration")
                                                     is not None else "") for e in timeline]
    for key in LIST_FIELDS:
        if doc.get(key):
            out += [f"{_HEADINGS[key].lower()}:", *(f"  - {t}" for t in doc[key])]
    if doc.get("action_items"):
        out += ["action items:", *(f"  [{'x' if a.get('done') else ' '}] {_item(a)}" for a in doc["action_items"])]
    if doc.get("links"):
        out += ["links:", *(f"  {li.get('title')}: {li.get('url')}" for li in doc["links"])]
    return for_terminal("\n".join(out))


def lesson_lines(lessons: list[dict[str, Any]]) -> list[str]:
    """One line per action item not done of each open review, or one for a review without any such item
    (``opsflow plan`` / ``run`` print them on stderr)."""
    out = []
    for r in lessons:
        items = r.get("open_actions", open_actions(r.get("doc") or {}))
        if not items:
            out.append(f"lesson {r['id']} ({r['state']}): {_line(r['title'])}")
        for a in items:
            out.append(f"lesson {r['id']} ({r['state']}): {_line(r['title'])}; action {a.get('id')}: "
                       f"{_line(a.get('text'))} — owner {a.get('owner')}, due {a.get('due')}")
    return [for_terminal(line) for line in out]
