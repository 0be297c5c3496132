"""Service levels out to the tools that own the formats: Prometheus rules checked and unit-tested by
the real ``promtool``; OpenSLO v1 documents checked against the spec's rules and imported back."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Cli

ROOT = Path(__file__).resolve().parents[1]
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None and not __import__("os").environ.get("CI"),
                                    reason="promtool (Debian's prometheus package) is not installed")

SERVICES = """
services:
  - name: app
    runbooks: [deploy]
    objectives:
      - {name: ok, kind: success_rate, target: 99%}
      - {name: fast, kind: duration, percentile: 90, max: 2m, window: 7d}
      - {name: mttr, kind: mttr, max: 10m}
"""


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("OPSFLOW_RUNBOOKS", str(tmp_path / "runbooks"))
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "deploy.yaml").write_text("name: deploy\ntargets: localhost\nsteps: []\n")
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "app.yaml").write_text(SERVICES)
    c = Cli(home=tmp_path / "home", inventory=tmp_path / "no-inventory")
    c.home.mkdir()
    return c


def rules_of(cli: Cli, tmp_path: Path, services: Path | None = None) -> str:
    env_services = str(services or tmp_path / "services")
    proc = cli.run("slo", "rules", "--services", env_services, "-o", str(tmp_path / "rules.yml"),
                   check_rc=0)
    assert "written to" in proc.stderr
    return (tmp_path / "rules.yml").read_text()


@needs_promtool
def test_rules_of_the_shipped_services_pass_promtool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSFLOW_SCHEDULES", str(ROOT / "schedules"))
    out = tmp_path / "rules.yml"
    c = Cli(home=tmp_path, inventory=ROOT / "inventory")
    c.run("slo", "rules", "--services", str(ROOT / "services"), "-o", str(out), check_rc=0)
    proc = subprocess.run([PROMTOOL or "promtool", "check", "rules", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    doc = yaml.safe_load(out.read_text())
    exprs = "\n".join(r["expr"] for g in doc["groups"] for r in g["rules"])
    for long, short, factor in (("1h", "5m", 14.4), ("6h", "30m", 6.0), ("1d", "2h", 3.0), ("3d", "6h", 1.0)):
        assert re.search(rf"ratio_rate{long}\{{[^}}]*\}} > \({factor} \* ", exprs), (long, factor)
        assert re.search(rf"ratio_rate{short}\{{[^}}]*\}} > \({factor} \* ", exprs), (short, factor)


def _alert(doc: dict[str, Any], name: str, slo: str) -> dict[str, Any]:
    return next(r for g in doc["groups"] for r in g["rules"]
                if r.get("alert") == name and r["labels"]["slo_name"] == slo)


@needs_promtool
def test_burn_rate_alerts_fire_as_promtool_evaluates_them(cli: Cli, tmp_path: Path) -> None:
    """promtool test rules: 50% of runs failing pages within the hour; 0.5% (half the budget) pages nobody."""
    text = rules_of(cli, tmp_path)
    doc = yaml.safe_load(text)
    page = _alert(doc, "OpsflowSLOBurnPage", "ok")
    slow = _alert(doc, "OpsflowSLOBurnPage", "fast")
    labels = {k: v for k, v in page["labels"].items()}

    def series(runbook: str, ok_per_min: int, failed_per_min: int) -> list[dict[str, str]]:
        return [{"series": f'opsflow_runs_total{{runbook="{runbook}",status="succeeded",trigger="schedule"}}',
                 "values": f"0+{ok_per_min}x200"},
                {"series": f'opsflow_runs_total{{runbook="{runbook}",status="failed",trigger="schedule"}}',
                 "values": f"0+{failed_per_min}x200"}]

    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [
        {"interval": "1m", "input_series": series("deploy", 100, 100),
         "promql_exp_test": [],
         "alert_rule_test": [{"eval_time": "70m", "alertname": "OpsflowSLOBurnPage",
                              "exp_alerts": [{"exp_labels": labels, "exp_annotations": page["annotations"]}]}]},
        {"interval": "1m", "input_series": series("deploy", 995, 5),  # 0.5% errors: burn 0.5×
         "alert_rule_test": [{"eval_time": "70m", "alertname": "OpsflowSLOBurnPage", "exp_alerts": []},
                             {"eval_time": "190m", "alertname": "OpsflowSLOBurnTicket", "exp_alerts": []}]},
        {"interval": "1m", "input_series": series("other", 100, 100),  # another runbook's failures
         "alert_rule_test": [{"eval_time": "70m", "alertname": "OpsflowSLOBurnPage", "exp_alerts": []}]},
        {"interval": "1m", "input_series": [  # durations: 90% over 2 minutes against 90% within — burn 9×:
            # more than the 6× of the 6 h / 30 m pair, less than the 14.4× of 1 h / 5 m
            {"series": 'opsflow_run_duration_seconds_bucket{runbook="deploy",status="succeeded",le="120.0"}',
             "values": "0+2x200"},
            {"series": 'opsflow_run_duration_seconds_count{runbook="deploy",status="succeeded"}',
             "values": "0+20x200"}],
         "alert_rule_test": [{"eval_time": "70m", "alertname": "OpsflowSLOBurnPage",
                              "exp_alerts": [{"exp_labels": slow["labels"], "exp_annotations": slow["annotations"]}]}]},
    ]}
    tests["tests"][0].pop("promql_exp_test")
    tests["tests"][0]["promql_expr_test"] = [{
        "expr": 'opsflow:slo_errors:ratio_rate1h{slo_service="app",slo_name="ok"}', "eval_time": "70m",
        "exp_samples": [{"labels": 'opsflow:slo_errors:ratio_rate1h{slo_kind="success_rate",slo_name="ok",'
                                   'slo_service="app"}', "value": 0.5}]}]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    proc = subprocess.run([PROMTOOL or "promtool", "test", "rules", "tests.yml"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # OpenSLO: DNS-1123 label, at most 63
DURATION = re.compile(r"^[0-9]+[mhdwMQY]$")


def _check_openslo(doc: dict[str, Any]) -> None:
    """The rules of the OpenSLO v1 spec that an exporter can break."""
    assert doc["apiVersion"] == "openslo/v1"
    assert doc["kind"] in ("Service", "SLO")
    assert NAME.match(doc["metadata"]["name"]), doc["metadata"]["name"]
    assert all(isinstance(v, str) for v in doc["metadata"].get("annotations", {}).values())
    spec = doc["spec"]
    assert len(spec.get("description", "")) <= 1050
    if doc["kind"] == "Service":
        return
    assert NAME.match(spec["service"])
    assert ("indicator" in spec) != ("indicatorRef" in spec)
    sli = spec["indicator"]["spec"]
    assert ("ratioMetric" in sli) != ("thresholdMetric" in sli)
    if "ratioMetric" in sli:
        ratio = sli["ratioMetric"]
        assert ("good" in ratio) != ("bad" in ratio) and "total" in ratio
        for part in ("good", "bad", "total"):
            if part in ratio:
                assert ratio[part]["metricSource"]["spec"]["query"]
    assert spec["budgetingMethod"] in ("Occurrences", "Timeslices", "RatioTimeslices")
    for window in spec["timeWindow"]:
        assert DURATION.match(window["duration"]) and isinstance(window["isRolling"], bool)
    assert spec["objectives"]
    for objective in spec["objectives"]:
        assert 0 <= objective["target"] < 1
        if "thresholdMetric" in sli:
            assert objective["op"] in ("lte", "gte", "lt", "gt") and isinstance(objective["value"], int | float)
        if spec["budgetingMethod"] == "Timeslices":
            assert 0 < objective["timeSliceTarget"] <= 1 and DURATION.match(objective["timeSliceWindow"])


def test_openslo_export_follows_the_spec_and_imports_back_to_the_same_services(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSFLOW_SCHEDULES", str(ROOT / "schedules"))
    c = Cli(home=tmp_path, inventory=ROOT / "inventory")
    exported = tmp_path / "openslo.yaml"
    c.run("slo", "export", "--services", str(ROOT / "services"), "-o", str(exported), check_rc=0)
    docs = list(yaml.safe_load_all(exported.read_text()))
    for doc in docs:
        _check_openslo(doc)
    ours = yaml.safe_load((ROOT / "services" / "operations.yaml").read_text())["services"]
    assert sum(d["kind"] == "SLO" for d in docs) == sum(len(s["objectives"]) for s in ours)
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Service"} == {s["name"] for s in ours}
    back = tmp_path / "services"
    back.mkdir()
    c.run("slo", "import", str(exported), "-o", str(back / "imported.yaml"), check_rc=0)
    listed = [json.loads(c.run("slo", "list", "--json", "--services", str(d), check_rc=0).stdout)
              for d in (ROOT / "services", back)]
    # the same services and objectives, measured the same way (YAML order aside)
    def key(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted((r["service"], r["objective"], r["kind"], r["target"], r["window_s"], tuple(r["runbooks"]),
                       r["hours"], tuple(r["corrections"])) for r in rows)
    assert key(listed[0]) == key(listed[1])


def test_import_refuses_what_opsflow_cannot_measure(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.yaml"
    foreign.write_text("""apiVersion: openslo/v1
kind: SLO
metadata: {name: api-availability}
spec:
  service: api
  indicator:
    metadata: {name: api-errors}
    spec:
      ratioMetric:
        counter: true
        bad: {metricSource: {type: Prometheus, spec: {query: 'sum(http_requests_total{code=~"5.."})'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'sum(http_requests_total)'}}}
  timeWindow: [{duration: 28d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.999}]
""")
    c = Cli(home=tmp_path, inventory=ROOT / "inventory")
    proc = c.run("slo", "import", str(foreign))
    assert proc.returncode == 2
    assert "document 1 (SLO 'api-availability'): no annotation opsflow.io/kind" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_validate_and_schema_cover_services_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jsonschema

    monkeypatch.setenv("OPSFLOW_SCHEDULES", str(ROOT / "schedules"))
    c = Cli(home=tmp_path, inventory=ROOT / "inventory")
    proc = c.run("validate", str(ROOT / "services"), check_rc=0)
    assert f"ok  {ROOT / 'services' / 'operations.yaml'}" in proc.stdout
    bad = tmp_path / "bad" / "levels.yaml"
    bad.parent.mkdir()
    bad.write_text("services:\n  - name: x\n    runbooks: [server-helth]\n    objectives:\n"
                   "      - {name: ok, kind: success_rate, target: 100%}\n")
    proc = c.run("validate", str(bad))
    assert proc.returncode == 2
    assert f"{bad}:5:9: services.0.objectives.0: a target of 100% leaves no error budget" in proc.stderr
    assert "1 of 1 file(s) invalid" in proc.stderr
    schema = json.loads(c.run("schema", "--kind", "service", check_rc=0).stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(yaml.safe_load((ROOT / "services" / "operations.yaml").read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"services": [{"name": "x", "objectives": [{"name": "y", "kind": "uptime"}]}]}, schema)
