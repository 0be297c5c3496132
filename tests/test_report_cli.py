"""`opsflow report` and `opsflow slo status` end to end: real runs of `local` steps by the real CLI,
then the report in every format, written atomically, and clear errors for bad input."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import Cli, write_runbook

INVENTORY = "all:\n  hosts:\n    h1: {ansible_host: 127.0.0.1}\n    h2: {ansible_host: 127.0.0.1}\n"
GOOD = """\
    name: tidy
    targets: all
    steps:
      - name: tidy up
        local: ['true']
"""
FLAKY = """\
    name: flaky
    targets: all
    steps:
      - name: only h1 works
        local: [test, '{{ inventory_hostname }}', '=', h1]
"""
SERVICES = """\
services:
  - name: house
    runbooks: [tidy, flaky]
    objectives:
      - {name: ok, kind: success_rate, target: 75%}
      - {name: quick, kind: duration, percentile: 95, max: 1m}
"""


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    write_runbook(tmp_path / "runbooks", "tidy", GOOD)
    write_runbook(tmp_path / "runbooks", "flaky", FLAKY)
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "house.yaml").write_text(SERVICES)
    monkeypatch.setenv("OPSFLOW_RUNBOOKS", str(tmp_path / "runbooks"))
    monkeypatch.setenv("OPSFLOW_SERVICES", str(tmp_path / "services"))
    return Cli(home=tmp_path / "home", inventory=tmp_path / "inventory.yml")


@pytest.fixture
def cli(bare: Cli, tmp_path: Path) -> Cli:
    c = bare
    for _ in range(3):
        c.run_json(str(tmp_path / "runbooks" / "tidy.yaml"))
    c.run_json(str(tmp_path / "runbooks" / "flaky.yaml"), rc=1)
    c.run_json(str(tmp_path / "runbooks" / "tidy.yaml"), "--check")
    return c


def test_report_of_real_runs_in_every_format(cli: Cli, tmp_path: Path) -> None:
    proc = cli.run("report", "--since", "1d", "--format", "json", check_rc=0)
    report = json.loads(proc.stdout)
    rows = {r["name"]: r for r in report["runbooks"]}
    with sqlite3.connect(cli.db) as db:
        durations = [d for (d,) in db.execute("SELECT duration FROM runs WHERE runbook = 'tidy' AND check_mode = 0")]
    assert (rows["tidy"]["runs"], rows["tidy"]["succeeded"], rows["tidy"]["check_runs"]) == (3, 3, 1)
    assert (rows["flaky"]["runs"], rows["flaky"]["failed"], rows["flaky"]["success_rate"]) == (1, 1, 0.0)
    expected = float(np.percentile(durations, 95, method="lower"))
    assert rows["tidy"]["duration_p95_s"] == pytest.approx(expected, rel=0.011, abs=0.0006)  # ms, within 1%
    house = report["services"][0]
    ok = next(o for o in house["objectives"] if o["name"] == "ok")
    assert (ok["good"], ok["total"], ok["actual"], ok["met"]) == (3, 4, 0.75, True)
    assert report["totals"]["runs"] == 4 and report["totals"]["objectives"] == 2
    assert report["heatmap"]["hosts"] == ["h2"]
    assert any(p["runs_started"] == 5 for p in report["operators"])  # the dry run was started by a person too

    out = {}
    for fmt in ("terminal", "markdown", "csv", "html"):
        target = tmp_path / f"report.{fmt}"
        proc = cli.run("report", "--since", "1d", "--format", fmt, "-o", str(target), check_rc=0)
        assert f"report written to {target}" in proc.stderr
        out[fmt] = target.read_text()
        assert not list(tmp_path.glob(f".report.{fmt}.*"))  # no temporary file left behind
    assert "tidy" in out["terminal"] and "75%" in out["terminal"]
    assert "| tidy |" in out["markdown"].replace("  ", " ")
    table = list(csv.reader(io.StringIO(out["csv"])))
    assert any(row[:2] == ["tidy", "3"] for row in table)
    assert out["html"].lstrip().lower().startswith("<!doctype html") and "<svg" in out["html"]


def test_slo_status_exit_code_says_whether_objectives_are_met(cli: Cli, tmp_path: Path) -> None:
    rows = json.loads(cli.run("slo", "status", "--json", check_rc=0).stdout)
    assert {(r["name"], r["met"]) for r in rows} == {("ok", True), ("quick", True)}
    for _ in range(2):
        cli.run_json(str(tmp_path / "runbooks" / "flaky.yaml"), rc=1)
    proc = cli.run("slo", "status")
    assert proc.returncode == 1  # 3 of 6 succeeded: under 75%
    assert "house/ok" in proc.stdout and "breached" in proc.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--since", "last week"), "--since 'last week': expected a span like 7d"),
    (("--until", "2026-13-01"), "--until '2026-13-01': expected a span"),
    (("--since", "2d", "--until", "2020-01-01"), "must be after --since"),
    (("--hours", "office-hours"), "--hours 'office-hours': no such calendar"),
    (("--service", "hous"), "no service 'hous'; did you mean 'house'?"),
    (("--format", "pdf"), "Invalid value for '--format'"),
])
def test_bad_input_is_a_clear_error(bare: Cli, args: tuple[str, ...], message: str) -> None:
    proc = bare.run("report", *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_breached_objective_is_due_for_a_review_until_one_is_opened(cli: Cli, tmp_path: Path) -> None:
    runs = [cli.run_json(str(tmp_path / "runbooks" / "flaky.yaml"), rc=1)["id"] for _ in range(2)]
    due = json.loads(cli.run("review", "list", "--due", "--json", check_rc=0).stdout)
    breaches = [d for d in due if d["kind"] == "breach"]
    assert [(d["service"], d["objective"], d["runbook"]) for d in breaches] == [("house", "ok", "flaky")]
    report = json.loads(cli.run("report", "--format", "json", check_rc=0).stdout)
    assert [d["objective"] for d in report["reviews_due"] if d["kind"] == "breach"] == ["ok"]
    review = cli.run("review", "new", runs[-1], "--title", "flaky fails on h2", "--by", "alice", check_rc=0).stdout.strip()
    cli.run("review", "edit", review, "--action", "fix h2", "--owner", "bob", "--due", "2027-01-10", check_rc=0)
    due = json.loads(cli.run("review", "list", "--due", "--json", check_rc=0).stdout)
    assert not [d for d in due if d["kind"] == "breach"]
    report = json.loads(cli.run("report", "--format", "json", check_rc=0).stdout)
    flaky = next(r for r in report["runbooks"] if r["name"] == "flaky")
    assert flaky["lessons"] == {"open_reviews": 1, "open_actions": 1}
    assert [r["id"] for r in report["reviews"]] == [review]
