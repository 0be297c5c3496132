"""The shipped Grafana dashboard: valid dashboard JSON whose every query names metrics and labels opsflow
exports (the daemon's registry and the store collector, as they describe themselves), and PromQL that
promtool parses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.metrics_core import Metric

from opsflow.events import metrics as daemon_metrics
from opsflow.events.metrics import Metrics
from opsflow.reports import metrics as store_metrics
from opsflow.reports.metrics import StoreCollector
from opsflow.store.sql import SqlStore

SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",)}
GRAFANA_VARIABLES = re.compile(r"\$(__rate_interval|__interval|__range|window)\b")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    text = (resources.files("opsflow.reports") / "grafana-dashboard.json").read_text(encoding="utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Series name → label names, of every family the daemon's registry and the store collector describe
    (label names as the modules declare them)."""
    store = SqlStore.connect(str(tmp_path_factory.mktemp("grafana") / "s.db"))
    try:
        families: list[Metric] = [*Metrics().registry.collect(), *StoreCollector(store).describe()]
    finally:
        store.close()
    declared = {**daemon_metrics.LABELS, **store_metrics.LABELS}
    out: dict[str, set[str]] = {}
    for family in families:
        exposed = family.name + ("_total" if family.type == "counter" else "")  # prometheus_client drops _total
        labels = set(declared.get(exposed, ())) | ({"le"} if family.type == "histogram" else set())
        for sample in family.samples:
            labels |= set(sample.labels)
        for suffix in SUFFIXES.get(family.type, ("",)):
            out.setdefault(family.name + suffix, set()).update(labels)
    return out


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_dashboard_is_grafana_json(dashboard: dict[str, Any]) -> None:
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert dashboard["title"] and dashboard["uid"] and len(dashboard["uid"]) <= 40
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len(panels) >= 10
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        assert p["type"] in {"timeseries", "bargauge", "stat", "table", "gauge"} and p["title"], p
        assert {"x", "y", "w", "h"} <= set(p["gridPos"]) and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24, p
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(set(ref_ids)) == len(ref_ids)
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}" and t["expr"].strip(), p["title"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for wanted in ("runs by status", "success rate", "p95", "objective", "budget", "backup age", "rto",
                   "schedule", "remediations", "latency"):
        assert wanted in titles, wanted


def test_every_metric_and_label_queried_is_exported(dashboard: dict[str, Any], exported: dict[str, set[str]]) -> None:
    used: set[str] = set()
    for expr in exprs(dashboard):
        names = set(re.findall(r"\bopsflow_[a-z_]+", expr))
        assert names, expr
        used |= names
        unknown = names - set(exported)
        assert not unknown, f"{expr}: not exported: {sorted(unknown)}"
        labels = {lb.strip() for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr)
                  for lb in group.split(",") if lb.strip()}
        labels |= set(re.findall(r"([a-z_]+)\s*(?:=~|!=|!~|=)\s*\"", expr))
        known = set().union(*(exported[n] for n in names))
        assert labels <= known, f"{expr}: labels {sorted(labels - known)} not on {sorted(names)}"
    for family in ("opsflow_runs_total", "opsflow_run_duration_seconds_bucket", "opsflow_objective_attainment",
                   "opsflow_objective_target", "opsflow_objective_budget_remaining", "opsflow_backup_age_seconds",
                   "opsflow_backup_drill_rto_seconds", "opsflow_schedule_slots_total",
                   "opsflow_remediations_total", "opsflow_event_to_start_seconds_bucket"):
        assert family in used, family


def test_promql_parses(dashboard: dict[str, Any], tmp_path: Path) -> None:
    if not shutil.which("promtool"):
        pytest.skip("promtool (Debian package prometheus) is not installed")
    rules: dict[str, Any] = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"opsflow:dashboard:{i}", "expr": GRAFANA_VARIABLES.sub("5m", e)}
        for i, e in enumerate(exprs(dashboard))]}]}
    assert not any("$" in r["expr"] for r in rules["groups"][0]["rules"])  # every variable replaced
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    check = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
