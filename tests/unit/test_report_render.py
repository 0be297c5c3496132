"""The KPI report renderers (HTML, Markdown, CSV, terminal) on a report dict built by hand.

``sample_report`` follows the shape documented in :mod:`opsflow.reports`; the browser test
(tests/test_report_browser.py) renders the same report.
"""

from __future__ import annotations

import copy
import csv
import io
import re
from datetime import date, timedelta
from typing import Any

import pytest

from opsflow.reports.html import render_html
from opsflow.reports.text import render_csv, render_markdown, render_terminal

HOSTILE = "<script>alert(1)</script>"


def _objective(service: str, name: str, kind: str, target: float, actual: float | None, unit: str,
               budget: float | None, burn: float | None, runbooks: list[str], total: int) -> dict[str, Any]:
    """As opsflow.reports.objectives.evaluate makes it: listed under its service and under each runbook."""
    obj = {"service": service, "name": name, "kind": kind, "target": target, "actual": actual,
           "met": True if actual is None else (actual >= target if unit == "ratio" else actual <= target),
           "budget_remaining": budget, "burn_rate": burn, "unit": unit, "description": f"{name} ({kind})",
           "runbooks": runbooks, "total": total}
    if unit == "ratio":
        obj["good"] = round((actual or 0) * total)
    return obj


def _runbook(name: str, succeeded: int, failed: int, other: int, p50: float, p95: float,
             objectives: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    finished = succeeded + failed + other
    return {"name": name, "runs": finished + extra.pop("check_runs", 0), "succeeded": succeeded, "failed": failed,
            "other": other, "check_runs": 0, "success_rate": succeeded / finished if finished else None,
            "duration_p50_s": p50, "duration_p95_s": p95, "duration_mean_s": (p50 + p95) / 2,
            "slow_runs": extra.pop("slow_runs", []), "versions": extra.pop("versions", []),
            "objectives": objectives, "lessons": {"open_reviews": 0, "open_actions": 0}, **extra}


def sample_report() -> dict[str, Any]:
    """Four runbooks over eight weeks: objectives met and breached, one backup overdue, events, a schedule."""
    weeks = [date(2025, 3, 3) + timedelta(weeks=i) for i in range(8)]
    succeeded = [40, 42, 38, 45, 41, 30, 44, 46]
    failed = [1, 0, 2, 1, 0, 6, 1, 0]
    trends = [{"week": w.isoformat(), "runs": s + f, "succeeded": s, "failed": f,
               "success_rate": s / (s + f), "duration_p95_s": 300.0 + 20 * i}
              for i, (w, s, f) in enumerate(zip(weeks, succeeded, failed, strict=True))]
    availability = _objective("web", "availability", "success_rate", 0.999, 0.9995, "ratio", 0.5, 0.5,
                              ["server-health", "cert-renew"], 2000)
    health = _objective("web", "health succeeds", "success_rate", 0.99, 0.981308, "ratio", 0.35, 0.65,
                        ["server-health"], 214)
    route = _objective("network", "route change succeeds", "success_rate", 0.95, 0.815789, "ratio", -2.7, 3.7,
                       ["router-static-route"], 38)
    route_p95 = _objective("network", "route change p95", "time_to_start", 120.0, 61.0, "seconds", 0.49, 0.51,
                           ["router-static-route"], 38)
    restore = _objective("db", "restore time p95", "mttr", 1800.0, 1500.0, "seconds", 0.17, 0.83,
                         ["db-backup-verify"], 57)
    quiet = _objective("db", "drills on time", "drill", 0.9, None, "ratio", 1.0, 0.0, [], 0)
    runbooks = [
        _runbook("server-health", 210, 3, 1, 42.0, 95.5, [availability, health],
                 slow_runs=[{"run_id": "r-0192", "started_at": "2025-04-08T02:14:00Z", "duration_s": 180.0,
                             "ratio": 4.3}],
                 versions=[{"hash": "a1b2c3d4e5f60718", "first_run": "2025-03-03T06:00:00Z", "runs": 120,
                            "success_rate": 0.975, "duration_p50_s": 48.0},
                           {"hash": "0f9e8d7c6b5a4321", "first_run": "2025-04-01T06:00:00Z", "runs": 94,
                            "success_rate": 0.9894, "duration_p50_s": 39.0}]),
        _runbook("router-static-route", 31, 7, 0, 12.5, 61.0, [route, route_p95],
                 slow_runs=[{"run_id": "r-0077", "started_at": "2025-03-19T22:40:00Z", "duration_s": 55.0,
                             "ratio": 4.4}]),
        _runbook("db-backup-verify", 56, 1, 0, 620.0, 1500.0, [restore]),
        _runbook("cert-renew", 8, 0, 1, 3.2, 7.9, [availability]),
    ]
    services = [{"name": "web", "description": "Public web tier", "owner": "web team",
                 "runbooks": ["server-health", "cert-renew"], "hours": None, "objectives": [availability, health]},
                {"name": "network", "description": "Core routing", "owner": None, "runbooks": ["router-static-route"],
                 "hours": "business", "objectives": [route, route_p95]},
                {"name": "db", "description": "Databases", "owner": None, "runbooks": ["db-backup-verify"],
                 "hours": None, "objectives": [restore, quiet]}]
    hosts = ["web1", "web2", "db1", "rtr1", "rtr2"]
    names = [rb["name"] for rb in runbooks]
    failures = [[2, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 4, 0, 0], [0, 3, 0, 0]]
    buckets = [10, 30, 60, 120, 300, 600, 1800, 3600]

    def dist(counts: list[int]) -> list[dict[str, Any]]:
        return [{"le": le, "count": c} for le, c in zip([*buckets, "+Inf"], counts, strict=True)]

    return {
        "generated_at": "2025-04-28T07:00:00Z", "since": "2025-03-03T00:00:00Z", "until": "2025-04-28T00:00:00Z",
        "service": None, "hours": "business",
        "runbooks": runbooks, "services": services,
        "events": {"received": 120, "matched": 90, "remediated_automatically": 72, "automation_rate": 0.6,
                   "needed_human": 18, "suppressed": {"silenced": 20, "duplicate": 10}, "mttr_s": 540.0,
                   "time_to_start_p50_s": 4.0},
        "backups": [{"name": "db-main", "last_backup_age_s": 3600.0, "last_drill_rto_s": 1320.0,
                     "last_drill_age_s": 86400.0 * 20, "rpo_s": 86400.0, "overdue": False},
                    {"name": "fileshare", "last_backup_age_s": 86400.0 * 3, "last_drill_rto_s": None,
                     "last_drill_age_s": None, "rpo_s": 86400.0, "overdue": True}],
        "schedule": {"slots": 60, "run_in_slot": 54, "rescheduled": 3, "missed": 2, "skipped": 1, "adherence": 0.9,
                     "entries": [{"entry": "nightly-health", "slots": 56, "run_in_slot": 52, "rescheduled": 2,
                                  "missed": 1, "skipped": 1},
                                 {"entry": "weekly-routes", "slots": 4, "run_in_slot": 2, "rescheduled": 1,
                                  "missed": 1, "skipped": 0}]},
        "operators": [{"name": "alice", "runs_started": 40, "approvals": 12, "approval_response_mean_s": 300.0,
                       "window_overrides": 1, "breaker_resets": 0},
                      {"name": "bob", "runs_started": 25, "approvals": 3, "approval_response_mean_s": 1260.0,
                       "window_overrides": 0, "breaker_resets": 2}],
        "trends": trends,
        "heatmap": {"hosts": hosts, "runbooks": names, "failures": failures},
        "distributions": {"server-health": dist([5, 60, 120, 20, 9, 0, 0, 0, 0]),
                          "router-static-route": dist([10, 18, 8, 2, 0, 0, 0, 0, 0]),
                          "db-backup-verify": dist([0, 0, 0, 0, 2, 30, 24, 1, 0]),
                          "cert-renew": dist([9, 0, 0, 0, 0, 0, 0, 0, 0])},
        "reviews": [{"id": "rv-12", "title": "Route change failed on rtr1 during the window", "state": "open",
                     "runbooks": ["router-static-route"], "open_actions": 2}],
        "reviews_due": [{"id": "rv-13", "title": "server-health run r-0192 took 4× the median", "state": "due",
                         "runbooks": ["server-health"], "open_actions": 0}],
    }


def empty_report() -> dict[str, Any]:
    """A period without a single run: every section empty."""
    return {"generated_at": "2025-04-28T07:00:00Z", "since": "2025-04-21T00:00:00Z",
            "until": "2025-04-28T00:00:00Z", "service": "web", "hours": None, "runbooks": [], "services": [],
            "events": {"received": 0, "matched": 0, "remediated_automatically": 0, "automation_rate": None,
                       "needed_human": 0, "suppressed": {}, "mttr_s": None, "time_to_start_p50_s": None},
            "backups": [], "schedule": {"slots": 0, "run_in_slot": 0, "rescheduled": 0, "missed": 0, "skipped": 0,
                                        "adherence": None, "entries": []},
            "operators": [], "trends": [], "heatmap": {"hosts": [], "runbooks": [], "failures": []},
            "distributions": {}, "reviews": [], "reviews_due": []}


def hostile_report() -> dict[str, Any]:
    report = copy.deepcopy(sample_report())
    old = report["runbooks"][3]["name"]
    report["runbooks"][3]["name"] = HOSTILE
    report["heatmap"]["runbooks"][3] = HOSTILE
    report["distributions"][HOSTILE] = report["distributions"].pop(old)
    report["heatmap"]["hosts"][0] = "<img src=x onerror=alert(2)>"
    report["reviews"][0]["title"] = "</td><script>alert(3)</script>\x1b[2J"
    report["operators"][0]["name"] = "=HYPERLINK(\"http://evil\")"
    return report


SECTION_IDS = ["summary", "objectives", "trends", "durations", "heatmap", "backups", "events", "schedule",
               "operators", "versions", "slow-runs", "lessons"]


# -- HTML -------------------------------------------------------------------------------------

def _remote_references(html: str) -> list[str]:
    """Anything the page would load from the network: src/href/url() to a remote, @import."""
    found = re.findall(r"""(?:src|href|xlink:href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]*""", html,
                       re.I)
    found += re.findall(r"url\(\s*['\"]?\s*(?:https?:)?//[^)]*\)", html, re.I)
    found += re.findall(r"@import", html, re.I)
    found += re.findall(r"<link\b[^>]*>", html, re.I) + re.findall(r"<script\b", html, re.I)
    return found


@pytest.fixture(scope="module")
def sample_html() -> str:
    return render_html(sample_report())


def test_html_is_self_contained(sample_html: str) -> None:
    assert sample_html.lstrip().lower().startswith("<!doctype html>")
    assert _remote_references(sample_html) == []
    assert "<?xml" not in sample_html and "<!DOCTYPE svg" not in sample_html
    assert sample_html.count("<svg") >= 4  # trends, durations, heatmap, events at least


def test_the_check_for_remote_references_finds_them() -> None:
    assert _remote_references('<img src="https://cdn.example/x.png">')
    assert _remote_references("<style>@import 'x.css';</style>")
    assert _remote_references("<div style=\"background:url(//cdn.example/x)\"></div>")


def test_html_has_every_section(sample_html: str) -> None:
    for section in SECTION_IDS:
        assert f'id="{section}"' in sample_html, section
    assert "no data in this period" not in sample_html
    assert "@media print" in sample_html


def test_html_shows_the_figures(sample_html: str) -> None:
    text = re.sub(r"<[^>]+>", " ", sample_html)
    assert "2025-03-03" in text and "2025-04-28" in text and "business" in text
    assert "95.9%" in text  # overall success rate: 305 of 318 finished runs
    assert "4 / 6" in text  # objectives met of total, each once (the one without data counts as met)
    assert "60%" in text and "1 / 2" in text and "90%" in text  # automation, backups overdue, adherence
    assert "✗ breached" in text and "✓ met" in text
    assert "3.70×" in text  # burn rate of the breached objective
    assert "fileshare" in text and "OVERDUE" in text
    assert "rv-12" in text and "rv-13" in text
    assert "0f9e8d7c6b" in text and "r-0192" in text
    assert "9 min 00 s" in text  # MTTR


def test_html_escapes_store_strings() -> None:
    html = render_html(hostile_report())
    assert HOSTILE not in html and "<img src=x" not in html and "<script>alert(3)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\x1b" not in html
    assert re.search(r"<script\b", html, re.I) is None


def test_empty_report_says_no_data() -> None:
    html = render_html(empty_report())
    for section in SECTION_IDS:
        assert f'id="{section}"' in html
    assert html.count("no data in this period") >= 10
    assert "<svg" not in html.split('id="trends"')[1].split("</section>")[0]
    assert _remote_references(html) == []


# -- Markdown, CSV, terminal ------------------------------------------------------------------

def _md_rows(markdown: str, heading: str) -> list[list[str]]:
    part = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in part.splitlines()
            if line.startswith("|") and not line.startswith("|---")]


def test_markdown_tables_have_the_figures() -> None:
    md = render_markdown(sample_report())
    runbooks = _md_rows(md, "Runbooks")
    assert runbooks[0][:3] == ["Runbook", "Runs", "Succeeded"]
    assert runbooks[1][:6] == ["server-health", "214", "210", "3", "1", "98.1%"]
    assert runbooks[2][:6] == ["router-static-route", "38", "31", "7", "0", "81.6%"]
    objectives = {row[1]: row for row in _md_rows(md, "Objectives against targets")[1:]}
    assert len(objectives) == 6  # each once, though listed under its service and its runbooks
    assert objectives["availability"][:3] == ["web", "availability", "server-health, cert-renew"]
    assert objectives["route change succeeds"][3:] == ["95%", "81.58%", "✗ breached", "-270%", "3.70×"]
    assert objectives["restore time p95"][3:6] == ["30 min 00 s", "25 min 00 s", "✓ met"]
    assert objectives["drills on time"][4:6] == ["—", "– no data"]
    assert _md_rows(md, "Trends per week")[6] == ["2025-04-07", "36", "30", "6", "83.3%", "6 min 40 s"]
    assert ["rtr1", "0", "4", "0", "0"] in _md_rows(md, "Failures per host and runbook")
    assert "- Success rate: 95.9%" in md


def test_markdown_escapes_and_empty() -> None:
    md = render_markdown(hostile_report())
    assert "<script>" not in md and "&lt;script&gt;" in md and "\x1b" not in md
    assert "\\|" not in render_markdown(sample_report())
    assert render_markdown(empty_report()).count("_no data in this period_") == 12


def test_csv_parses_with_the_right_numbers() -> None:
    rows = list(csv.reader(io.StringIO(render_csv(sample_report()))))
    blank = rows.index([])
    head, runbooks = rows[0], {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:blank]}
    assert head[:10] == ["runbook", "runs", "succeeded", "failed", "other", "check_runs", "success_rate",
                         "duration_p50_s", "duration_p95_s", "duration_mean_s"]
    assert len(runbooks) == 4
    health = runbooks["server-health"]
    assert (int(health["runs"]), int(health["succeeded"]), int(health["failed"])) == (214, 210, 3)
    assert float(health["success_rate"]) == pytest.approx(210 / 214)
    assert float(health["duration_p95_s"]) == 95.5
    assert rows[blank + 1] == ["service", "objective", "kind", "runbooks", "target", "actual", "unit", "met",
                               "budget_remaining", "burn_rate", "good", "total"]
    objectives = [dict(zip(rows[blank + 1], r, strict=True)) for r in rows[blank + 2:]]
    assert len(objectives) == 6
    breached = next(o for o in objectives if o["objective"] == "route change succeeds")
    assert breached["service"] == "network" and breached["runbooks"] == "router-static-route"
    assert breached["met"] == "false" and float(breached["burn_rate"]) == 3.7 and float(breached["target"]) == 0.95
    assert (int(breached["good"]), int(breached["total"])) == (31, 38)
    shared = next(o for o in objectives if o["objective"] == "availability")
    assert shared["runbooks"] == "server-health cert-renew" and shared["met"] == "true"
    quiet = next(o for o in objectives if o["objective"] == "drills on time")
    assert quiet["actual"] == "" and quiet["runbooks"] == ""


def test_csv_empty_and_hostile() -> None:
    rows = list(csv.reader(io.StringIO(render_csv(empty_report()))))
    assert len(rows) == 3 and rows[1] == [] and rows[2][0] == "service"
    text = render_csv(hostile_report())
    assert HOSTILE in text  # CSV is not HTML: the name stays as it is, quoted by the csv module where needed
    sample = sample_report()
    sample["runbooks"][0]["name"] = "=cmd|' /C calc'!A0"
    first = list(csv.reader(io.StringIO(render_csv(sample))))[1]
    assert first[0] == "'=cmd|' /C calc'!A0"


def test_terminal_tables_align_and_strip_controls() -> None:
    out = render_terminal(sample_report())
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.strip().startswith("Runbook  "))
    widths = {len(lines[i].rstrip()) for i in range(head, head + 6)}
    assert len(widths) == 1, lines[head:head + 6]  # right-aligned last column: same line lengths
    assert "Success rate: 95.9%" in out and "OVERDUE" in out
    hostile = render_terminal(hostile_report())
    assert "\x1b" not in hostile and "\\x1b[2J" in hostile
    assert render_terminal(empty_report()).count("no data in this period") == 12
