"""The review document (ITIL lessons learned) and how an edit is merged into it. Pure: no I/O.

A document is a JSON object::

    summary: str             impact: str
    contributing_factors: [str]   went_well: [str]   takeaways: [str]
    action_items: [{id: 1, 2, 3…, text, owner, due: "YYYY-MM-DD", done: bool, done_at, done_by}]
    links: [{title, url, kind?}]   kind: "runbook" (a runbook version: its hash) or "ticket" (a change ticket)

An :class:`Edit` is what one ``opsflow review edit`` asks for: scalars replace, list entries are appended
(an entry already there is not added twice), action items get the next number, ``done`` marks items done
with who and when. Bad input raises :class:`ReviewInputError` (a UsageError) saying what is wrong and how
to fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from opsflow.errors import UsageError

LIST_FIELDS = ("contributing_factors", "went_well", "takeaways")
TEXT_FIELDS = ("summary", "impact")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_FILE_KEYS = (*TEXT_FIELDS, *LIST_FIELDS, "action_items", "links", "ticket", "done", "title")


class ReviewInputError(UsageError):
    """A review edit that cannot be applied (bad date, unknown action item, bad file)."""


def empty_doc() -> dict[str, Any]:
    return {"summary": "", "impact": "", "contributing_factors": [], "went_well": [], "takeaways": [],
            "action_items": [], "links": []}


def parse_due(text: str, where: str = "--due") -> str:
    """``YYYY-MM-DD`` checked to be a real date; anything else is a ReviewInputError naming the format."""
    value = str(text).strip()
    try:
        if not _DATE.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ReviewInputError(f"{where} {text!r}: expected a date as YYYY-MM-DD, e.g. 2027-01-10") from None


def parse_link(text: str) -> dict[str, str]:
    title, sep, url = text.partition("=")
    if not sep or not title.strip() or not url.strip():
        raise ReviewInputError(f"--link {text!r}: expected TITLE=URL, e.g. 'postmortem doc=https://wiki/x'")
    return {"title": title.strip(), "url": url.strip()}


@dataclass
class Edit:
    """One edit of a review; empty fields change nothing."""

    title: str | None = None
    summary: str | None = None
    impact: str | None = None
    contributing_factors: list[str] = field(default_factory=list)
    went_well: list[str] = field(default_factory=list)
    takeaways: list[str] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)  # {text, owner, due[, done]}
    done: list[int] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)
    ticket: str | None = None

    def empty(self) -> bool:
        return not any((self.title, self.summary is not None, self.impact is not None, self.contributing_factors,
                        self.went_well, self.takeaways, self.actions, self.done, self.links, self.ticket))


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ReviewInputError(f"{where}: expected text, got {type(value).__name__}")
    return str(value).strip()


def _texts(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ReviewInputError(f"{where}: expected a list of texts")
    return [t for i, v in enumerate(value) if (t := _text(v, f"{where}[{i}]"))]


def action(text: str, owner: str | None, due: str | None, where: str = "--action") -> dict[str, Any]:
    """A new action item (not numbered yet): text, owner and due date are all needed."""
    if not text.strip():
        raise ReviewInputError(f"{where}: the action's text is empty")
    if not owner or not owner.strip():
        raise ReviewInputError(f"{where} {text!r}: say who owns it (--owner NAME)")
    if not due:
        raise ReviewInputError(f"{where} {text!r}: say when it is due (--due YYYY-MM-DD)")
    return {"text": text.strip(), "owner": owner.strip(),
            "due": parse_due(due, "--due" if where == "--action" else f"{where}: due")}


def edit_from_mapping(data: Any, source: str) -> Edit:
    """An Edit from a YAML/JSON mapping (``--from-file``): the document's keys, ``ticket``, ``done`` and ``title``."""
    if not isinstance(data, dict):
        raise ReviewInputError(f"{source}: expected a mapping with keys like summary, impact, action_items")
    unknown = sorted(str(k) for k in data if k not in _FILE_KEYS)
    if unknown:
        raise ReviewInputError(f"{source}: unknown key(s) {', '.join(unknown)} (known: {', '.join(_FILE_KEYS)})")
    edit = Edit()
    for key in ("title", *TEXT_FIELDS, "ticket"):
        if data.get(key) is not None:
            setattr(edit, key, _text(data[key], f"{source}: {key}"))
    for key in LIST_FIELDS:
        if data.get(key) is not None:
            setattr(edit, key, _texts(data[key], f"{source}: {key}"))
    items = data.get("action_items") or []
    if not isinstance(items, list):
        raise ReviewInputError(f"{source}: action_items: expected a list of {{text, owner, due}}")
    for i, item in enumerate(items):
        where = f"{source}: action_items[{i}]"
        if not isinstance(item, dict) or "text" not in item:
            raise ReviewInputError(f"{where}: expected a mapping with text, owner and due")
        due = item.get("due")
        new = action(_text(item["text"], where), _text(item.get("owner") or "", where),
                     due.isoformat() if isinstance(due, date) else _text(due or "", where), where)
        new["done"] = bool(item.get("done"))
        edit.actions.append(new)
    links = data.get("links") or []
    if not isinstance(links, list):
        raise ReviewInputError(f"{source}: links: expected a list of {{title, url}}")
    for i, link in enumerate(links):
        if not isinstance(link, dict) or not link.get("title") or not link.get("url"):
            raise ReviewInputError(f"{source}: links[{i}]: expected a mapping with title and url")
        edit.links.append({"title": _text(link["title"], f"{source}: links[{i}]"),
                           "url": _text(link["url"], f"{source}: links[{i}]")})
    done = data.get("done") or []
    for n in done if isinstance(done, list) else [done]:
        if not isinstance(n, int) or isinstance(n, bool):
            raise ReviewInputError(f"{source}: done: expected action item numbers, got {n!r}")
        edit.done.append(n)
    return edit


def apply_edit(doc: dict[str, Any], edit: Edit, by: str, at: str) -> tuple[dict[str, Any], list[str]]:
    """The document with ``edit`` merged in, and what changed (for the audit log); ``doc`` is not modified."""
    out = {**empty_doc(), **{k: (list(v) if isinstance(v, list) else v) for k, v in doc.items()}}
    out["action_items"] = [dict(a) for a in out["action_items"]]
    changed: list[str] = []
    for key in TEXT_FIELDS:
        value = getattr(edit, key)
        if value is not None and value != out[key]:
            out[key] = value
            changed.append(key)
    for key in LIST_FIELDS:
        added = [t for t in dict.fromkeys(getattr(edit, key)) if t not in out[key]]
        if added:
            out[key] = out[key] + added
            changed.append(f"{key} +{len(added)}")
    next_id = max((int(a.get("id") or 0) for a in out["action_items"]), default=0) + 1
    for new in edit.actions:
        item = {"id": next_id, "text": new["text"], "owner": new["owner"], "due": new["due"],
                "done": bool(new.get("done")), "done_at": at if new.get("done") else None,
                "done_by": by if new.get("done") else None}
        out["action_items"].append(item)
        changed.append(f"action {next_id} added")
        next_id += 1
    items = {int(a.get("id") or 0): a for a in out["action_items"]}
    for n in edit.done:
        if n not in items:
            known = ", ".join(str(i) for i in sorted(items)) or "none yet"
            raise ReviewInputError(f"--done {n}: no action item {n} in this review (items: {known})")
        if not items[n].get("done"):
            items[n].update(done=True, done_at=at, done_by=by)
            changed.append(f"action {n} done")
    links = list(edit.links)
    if edit.ticket:
        links.append({"title": "change ticket", "url": edit.ticket.strip(), "kind": "ticket"})
    for link in links:
        if not any(x.get("url") == link["url"] and x.get("title") == link["title"] for x in out["links"]):
            out["links"].append(link)
            changed.append(f"link {link['title']}")
    return out, changed


def open_actions(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in doc.get("action_items") or [] if isinstance(a, dict) and not a.get("done")]
