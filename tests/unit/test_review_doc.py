"""Reviews, pure: edits merged into the document, due detection on records as dicts, timeline order, Markdown."""

from __future__ import annotations

from typing import Any

import pytest

from opsflow.errors import UsageError
from opsflow.reviews.doc import Edit, action, apply_edit, edit_from_mapping, empty_doc, parse_due, parse_link
from opsflow.reviews.due import due_items
from opsflow.reviews.render import lesson_lines, to_markdown
from opsflow.reviews.timeline import build_timeline

AT = "2027-01-01T10:00:00+0000"


def review(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "R-abc123", "title": "disk full on web1", "state": "open", "created_at": 1000.0,
                            "created_by": "alice", "updated_at": 1000.0, "updated_by": "alice", "closed_at": None,
                            "closed_by": None, "runbooks": ["disk"], "runs": ["run-1"], "events": [],
                            "doc": empty_doc()}
    base.update(kw)
    return base


# ---- edits -------------------------------------------------------------------------------
def test_edit_replaces_text_appends_lists_and_numbers_actions() -> None:
    doc, changed = apply_edit(empty_doc(), Edit(summary="disk filled", contributing_factors=["no alert", "no alert"],
                                                actions=[action("rotate logs", "bob", "2027-01-10")]), "alice", AT)
    doc, more = apply_edit(doc, Edit(summary="disk filled up", contributing_factors=["no alert", "rotation off"],
                                     actions=[action("add alert", "carol", "2027-02-01")]), "alice", AT)
    assert doc["summary"] == "disk filled up"
    assert doc["contributing_factors"] == ["no alert", "rotation off"]
    assert [(a["id"], a["owner"], a["due"], a["done"]) for a in doc["action_items"]] == \
        [(1, "bob", "2027-01-10", False), (2, "carol", "2027-02-01", False)]
    assert changed == ["summary", "contributing_factors +1", "action 1 added"]
    assert more == ["summary", "contributing_factors +1", "action 2 added"]


def test_done_records_who_and_when_and_leaves_the_input_alone() -> None:
    before, _ = apply_edit(empty_doc(), Edit(actions=[action("a", "bob", "2027-01-10")]), "alice", AT)
    after, changed = apply_edit(before, Edit(done=[1]), "dave", AT)
    assert after["action_items"][0] | {} == {"id": 1, "text": "a", "owner": "bob", "due": "2027-01-10", "done": True,
                                             "done_at": AT, "done_by": "dave"}
    assert before["action_items"][0]["done"] is False  # the stored document is not modified in place
    assert changed == ["action 1 done"]
    assert apply_edit(after, Edit(done=[1]), "erin", AT)[1] == []  # done once: who did it stays


def test_done_of_an_unknown_item_says_which_exist() -> None:
    doc, _ = apply_edit(empty_doc(), Edit(actions=[action("a", "bob", "2027-01-10")]), "alice", AT)
    with pytest.raises(UsageError, match=r"--done 7: no action item 7 in this review \(items: 1\)"):
        apply_edit(doc, Edit(done=[7]), "alice", AT)


def test_links_and_ticket_are_added_once() -> None:
    edit = Edit(links=[parse_link("wiki=https://wiki/x?a=b")], ticket="CHG-123")
    doc, _ = apply_edit(empty_doc(), edit, "alice", AT)
    doc, changed = apply_edit(doc, edit, "alice", AT)
    assert doc["links"] == [{"title": "wiki", "url": "https://wiki/x?a=b"},
                            {"title": "change ticket", "url": "CHG-123", "kind": "ticket"}]
    assert changed == []


@pytest.mark.parametrize("text", ["10/01/2027", "2027-13-01", "2027-02-30", "tomorrow", "2027-1-5"])
def test_a_bad_due_date_names_the_format(text: str) -> None:
    with pytest.raises(UsageError, match="expected a date as YYYY-MM-DD"):
        parse_due(text)


def test_an_action_needs_owner_and_due() -> None:
    with pytest.raises(UsageError, match="--owner"):
        action("rotate logs", None, "2027-01-10")
    with pytest.raises(UsageError, match="--due"):
        action("rotate logs", "bob", None)
    with pytest.raises(UsageError, match="TITLE=URL"):
        parse_link("just a title")


def test_edit_from_a_file_mapping() -> None:
    import datetime

    edit = edit_from_mapping({"summary": "s", "went_well": "paged fast", "takeaways": ["t1"],
                              "action_items": [{"text": "x", "owner": "bob", "due": datetime.date(2027, 3, 1)}],
                              "links": [{"title": "doc", "url": "https://d"}], "ticket": "CHG-9", "done": [1]},
                             "r.yaml")
    doc, _ = apply_edit(empty_doc(), edit, "alice", AT)
    assert doc["went_well"] == ["paged fast"] and doc["action_items"][0]["due"] == "2027-03-01"
    assert doc["action_items"][0]["done"] is True  # a file can add an item and mark it done at once
    with pytest.raises(UsageError, match=r"r.yaml: unknown key\(s\) sumary"):
        edit_from_mapping({"sumary": "typo"}, "r.yaml")
    with pytest.raises(UsageError, match=r"r.yaml: action_items\[0\]: due"):
        edit_from_mapping({"action_items": [{"text": "x", "owner": "bob", "due": "soon"}]}, "r.yaml")


# ---- due detection -----------------------------------------------------------------------
FAILED = [{"id": "run-1", "runbook": "disk", "status": "failed", "started_at": 100.0},
          {"id": "run-2", "runbook": "disk", "status": "partial", "started_at": 200.0}]
OVERRIDE = [{"at": 150.0, "actor": "bob@h", "action": "window_override", "target": "run run-3 of web",
             "detail": "hotfix (overrode: blackout)"}]
BREACH = [{"runbook": "web", "service": "shop", "objective": "success_rate", "actual": 0.9, "target": 0.99,
           "at": 500.0}]


def test_due_lists_failed_remediations_overrides_and_breaches_oldest_first() -> None:
    items = due_items(FAILED, OVERRIDE, BREACH, [])
    assert [(d["kind"], d["run_id"], d["runbook"]) for d in items] == [
        ("failed_remediation", "run-1", "disk"), ("window_override", "run-3", "web"),
        ("failed_remediation", "run-2", "disk"), ("breach", None, "web")]
    assert "shop: objective success_rate of web missed: 0.9 against 0.99" in items[-1]["what"]


def test_a_review_linking_the_run_clears_it_and_only_it() -> None:
    items = due_items(FAILED, OVERRIDE, [], [review(runs=["run-1", "run-3"], runbooks=["disk", "web"])])
    assert [d["run_id"] for d in items] == ["run-2"]


def test_a_breach_is_cleared_only_by_a_review_of_its_runbook_opened_after_it() -> None:
    assert due_items([], [], BREACH, [review(runbooks=["web"], created_at=400.0)])  # before the breach
    assert due_items([], [], BREACH, [review(runbooks=["disk"], created_at=600.0)])  # another runbook
    assert due_items([], [], BREACH, [review(runbooks=["web"], created_at=600.0)]) == []
    undated = [{k: v for k, v in BREACH[0].items() if k != "at"}]  # then the period's start counts
    assert due_items([], [], undated, [review(runbooks=["web"], created_at=600.0)], since=700.0)
    assert due_items([], [], undated, [review(runbooks=["web"], created_at=600.0)], since=550.0) == []


# ---- timeline and Markdown ---------------------------------------------------------------
def timeline() -> list[dict[str, Any]]:
    event = {"id": "ev-1", "received_at": 10.0, "name": "DiskFull", "status": "firing", "host": "web1",
             "source": "alertmanager", "outcome": "matched",
             "actions": [{"rule": "disk", "outcome": "finished", "reason": None, "run_id": "run-1", "host": "web1",
                          "queued_at": 10.5, "received_at": 10.0},
                         {"rule": "page", "outcome": "suppressed", "reason": "cooldown", "run_id": None,
                          "host": "web1", "queued_at": None, "received_at": 10.0}]}
    run = {"id": "run-1", "runbook": "disk", "trigger": "event", "started_by": "alertmanager:disk",
           "started_at": 11.0, "ended_at": 20.0, "duration": 9.0, "status": "failed", "error": None}
    results = {"run-1": [{"step": "clean | tmp", "host": "web1", "status": "failed", "duration": 2.5,
                          "started_at": 12.0, "ended_at": 14.5, "error_class": "CommandFailed", "phase": "main",
                          "stdout": "password=hunter2"}]}
    approvals = {"run-1": [{"step": "reboot", "state": "approved", "requested_at": 15.0, "decided_at": 16.0,
                            "decided_by": "carol", "comment": "go"}]}
    overrides = [{"at": 11.0, "actor": "bob", "target": "run run-1 of disk", "detail": "urgent"},
                 {"at": 11.0, "actor": "x", "target": "run other of disk", "detail": "not this run"}]
    return build_timeline([event], [run], results, approvals, overrides)


def test_timeline_runs_from_the_event_to_the_run_end() -> None:
    kinds = [(e["kind"], e["status"]) for e in timeline()]
    assert kinds == [("event", "matched"), ("rule", "suppressed"), ("rule", "finished"), ("run_start", "running"),
                     ("window_override", "override"), ("step", "failed"), ("approval", "pending"),
                     ("approval", "approved"), ("run_end", "failed")]
    what = [e["what"] for e in timeline()]
    assert "rule page: suppressed (cooldown)" in what and "step 'reboot' approved by carol: go" in what
    assert not any("hunter2" in str(e) for e in timeline())  # no output of a step: no secret it printed


def test_markdown_has_every_section_and_escapes_table_cells() -> None:
    doc, _ = apply_edit(empty_doc(), Edit(summary="Disk filled.", impact="shop down 20 min",
                                          contributing_factors=["no alert"], went_well=["paged fast"],
                                          takeaways=["watch inodes"], ticket="CHG-7",
                                          links=[parse_link("postmortem=https://wiki/pm")],
                                          actions=[action("add alert", "bob", "2027-01-10"),
                                                   action("rotate", "carol", "2027-02-01")]), "alice", AT)
    doc, _ = apply_edit(doc, Edit(done=[2]), "carol", AT)
    md = to_markdown(review(doc=doc), timeline())
    for heading in ("# disk full on web1 (R-abc123)", "## Summary", "## Impact", "## Timeline",
                    "## Contributing factors", "## What went well", "## Takeaways", "## Action items", "## Links"):
        assert heading in md
    assert "- [ ] 1. add alert — owner bob, due 2027-01-10" in md
    assert f"- [x] 2. rotate — owner carol, due 2027-02-01 (done {AT} by carol)" in md
    assert "| clean \\| tmp on web1: failed [CommandFailed] | web1 | failed | 2.50 s |  |" in md
    assert "- [postmortem](https://wiki/pm)" in md and "- change ticket: `CHG-7`" in md
    assert "shop down 20 min" in md and "- **Runbooks:** disk" in md


def test_lesson_lines_one_per_open_action_or_one_for_the_review() -> None:
    doc, _ = apply_edit(empty_doc(), Edit(actions=[action("add alert", "bob", "2027-01-10"),
                                                   action("rotate", "carol", "2027-02-01")]), "alice", AT)
    doc, _ = apply_edit(doc, Edit(done=[1]), "bob", AT)
    lines = lesson_lines([review(doc=doc), review(id="R-000001", title="no items\x1b[2J")])
    assert lines == ["lesson R-abc123 (open): disk full on web1; action 2: rotate — owner carol, due 2027-02-01",
                     "lesson R-000001 (open): no items\\x1b[2J"]


def test_summary_per_runbook_counts_open_reviews_and_their_open_actions() -> None:
    from opsflow.reviews.summary import lessons_by_runbook, review_rows

    doc, _ = apply_edit(empty_doc(), Edit(actions=[action("a", "bob", "2027-01-10"), action("b", "bob", "2027-01-11")]),
                        "alice", AT)
    doc, _ = apply_edit(doc, Edit(done=[1]), "bob", AT)
    reviews = [review(doc=doc, runbooks=["disk", "web"]), review(id="R-2", runbooks=["disk"]),
               review(id="R-3", state="closed", doc=doc, runbooks=["disk"])]
    assert lessons_by_runbook(reviews) == {"disk": {"open_reviews": 2, "open_actions": 1},
                                           "web": {"open_reviews": 1, "open_actions": 1}}
    assert review_rows(reviews)[0] == {"id": "R-abc123", "title": "disk full on web1", "state": "open",
                                       "runbooks": ["disk", "web"], "open_actions": 1}
    due = due_items(FAILED[:1], [], [], [])
    assert (due[0]["title"], due[0]["runbooks"], due[0]["reason"]) == (due[0]["what"], ["disk"], "failed_remediation")
