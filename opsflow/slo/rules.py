"""Prometheus recording and alerting rules of the service levels (``opsflow slo rules``).

Ratio objectives get the multi-window, multi-burn-rate alerts of the SRE workbook: the error ratio
is recorded over 5m, 30m, 1h, 2h, 6h, 1d, 3d and the objective's window, and two alerts fire on the
budget burning fast:

====================  ===========  ===========  ===============
alert                 long window  short window burn-rate factor
====================  ===========  ===========  ===============
page (severity=page)  1h           5m           14.4
page (severity=page)  6h           30m          6
ticket                1d           2h           3
ticket                3d           6h           1
====================  ===========  ===========  ===============

Threshold and backup objectives get one alert each on the gauge or histogram they read. The rules
read the metrics that ``opsflow metrics`` and the daemon's ``/metrics`` expose; Prometheus has no
operational-hours clock, so the rules measure wall time (the reports measure the hours).
"""

from __future__ import annotations

from typing import Any

import yaml

from opsflow.slo.loader import ServiceSet
from opsflow.slo.models import Objective, ServiceSpec

WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
BURN = (("page", "1h", "5m", 14.4), ("page", "6h", "30m", 6.0), ("ticket", "1d", "2h", 3.0), ("ticket", "3d", "6h", 1.0))
FAILED = "partial|failed|abandoned|crashed"
FINISHED = "succeeded|" + FAILED + "|canceled"


def prom_duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _escape(name: str) -> str:
    """A literal for an RE2 regex inside a PromQL double-quoted string (its backslashes doubled)."""
    return "".join(c if c.isalnum() or c in "_-:/ " else "\\\\" + c for c in name)


def _regex(names: list[str]) -> str:
    return "|".join(_escape(n) for n in names) or "^$"


def _bound(seconds: float) -> str:
    return f"{seconds:g}" if seconds != int(seconds) else f"{int(seconds)}.0"


def _glob(pattern: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else _escape(c) for c in pattern)


def _entries(services: ServiceSet, service: ServiceSpec, obj: Objective, entries: dict[str, str]) -> str:
    runbooks = set(services.runbooks_of(service, obj))
    names = service.schedules or sorted(e for e, rb in entries.items() if rb in runbooks)
    return _regex(list(names))


def members_regex(service: ServiceSpec) -> str:
    """The hosts and devices of a service's groups: inventory groups expanded, else name patterns."""
    from opsflow.reports.objectives import inventory_group

    names: list[str] = []
    for group in service.groups:
        found = sorted(inventory_group(group))
        names += [_escape(n) for n in found] or [_glob(group)]
    return "|".join(names) or "^$"


def sli(services: ServiceSet, service: ServiceSpec, obj: Objective,
        entries: dict[str, str] | None = None) -> tuple[str, str] | None:
    """(errors, total) PromQL selectors of a ratio objective's events (each inside ``rate(...[w])``)."""
    runbooks = _regex(services.runbooks_of(service, obj))
    if obj.kind == "success_rate":
        return (f'opsflow_runs_total{{runbook=~"{runbooks}",status=~"{FAILED}"}}',
                f'opsflow_runs_total{{runbook=~"{runbooks}",status=~"{FINISHED}"}}')
    if obj.kind == "duration":
        total = f'opsflow_run_duration_seconds_count{{runbook=~"{runbooks}",status="succeeded"}}'
        good = f'opsflow_run_duration_seconds_bucket{{runbook=~"{runbooks}",status="succeeded",le="{_bound(obj.max or 0)}"}}'
        return f"__MINUS__{good}", total
    if obj.kind == "auto_remediation":
        rules = _regex(service.rules)
        return (f'opsflow_remediations_total{{rule=~"{rules}",outcome!="remediated"}}',
                f'opsflow_remediations_total{{rule=~"{rules}"}}')
    if obj.kind == "schedule_adherence":
        names = _entries(services, service, obj, entries or {})
        return (f'opsflow_schedule_slots_total{{entry=~"{names}",decision!="fired"}}',
                f'opsflow_schedule_slots_total{{entry=~"{names}"}}')
    return None


def _ratio(errors: str, total: str, window: str) -> str:
    if errors.startswith("__MINUS__"):
        good = errors.removeprefix("__MINUS__")
        return (f"(sum(rate({total}[{window}])) - sum(rate({good}[{window}])))\n"
                f"/\nsum(rate({total}[{window}]))")
    return f"sum(rate({errors}[{window}]))\n/\nsum(rate({total}[{window}]))"


def _labels(service: ServiceSpec, obj: Objective) -> dict[str, str]:
    return {"slo_service": service.name, "slo_name": obj.name, "slo_kind": obj.kind}


def _ratio_groups(services: ServiceSet, service: ServiceSpec, obj: Objective,
                  entries: dict[str, str]) -> list[dict[str, Any]]:
    pair = sli(services, service, obj, entries)
    assert pair is not None and obj.ratio is not None
    labels = _labels(service, obj)
    period = prom_duration(obj.window)
    windows = list(WINDOWS) + ([period] if period not in WINDOWS else [])
    sel = f'slo_service="{service.name}",slo_name="{obj.name}"'
    budget = round(1 - obj.ratio, 10)
    recording = [{"record": f"opsflow:slo_errors:ratio_rate{w}", "expr": _ratio(*pair, w), "labels": labels}
                 for w in windows]
    recording += [
        {"record": "opsflow:slo_objective:ratio", "expr": f"vector({obj.ratio})", "labels": labels},
        {"record": "opsflow:slo_error_budget:ratio", "expr": f"vector({budget})", "labels": labels},
        {"record": "opsflow:slo_error_budget_remaining:ratio",
         "expr": f"1 - (opsflow:slo_errors:ratio_rate{period}{{{sel}}} / {budget})", "labels": labels},
    ]
    alerts = []
    for severity in ("page", "ticket"):
        parts = [f"(opsflow:slo_errors:ratio_rate{long}{{{sel}}} > ({factor} * {budget})\n"
                 f"and opsflow:slo_errors:ratio_rate{short}{{{sel}}} > ({factor} * {budget}))"
                 for sev, long, short, factor in BURN if sev == severity]
        alerts.append({
            "alert": f"OpsflowSLOBurn{'Page' if severity == 'page' else 'Ticket'}",
            "expr": "\nor\n".join(parts),
            "labels": {**labels, "severity": severity},
            "annotations": {"summary": f"{service.name}/{obj.name}: error budget burning "
                                       f"{'fast' if severity == 'page' else 'steadily'}",
                            "description": f"{obj.describe()}; budget {budget:.4%} of events. "
                                           "See `opsflow slo status` and `opsflow report`."}})
    return [{"name": f"opsflow-slo-{service.name}-{obj.name}-recordings", "rules": recording},
            {"name": f"opsflow-slo-{service.name}-{obj.name}-alerts", "rules": alerts}]


def _threshold_alert(services: ServiceSet, service: ServiceSpec, obj: Objective) -> dict[str, Any]:
    labels = {**_labels(service, obj), "severity": "ticket"}
    members = members_regex(service)
    if obj.kind == "time_to_start":
        expr = (f"histogram_quantile(0.95, sum by (le) (rate(opsflow_event_to_start_seconds_bucket[1h]))) "
                f"> {obj.max}")
    elif obj.kind == "mttr":
        expr = (f"sum(rate(opsflow_event_to_end_seconds_sum[1d])) / sum(rate(opsflow_event_to_end_seconds_count[1d])) "
                f"> {obj.max}")
    elif obj.kind == "backup_age":
        expr = f'opsflow_backup_age_seconds{{name=~"{members}"}} > {obj.rpo}'
    else:
        expr = (f'opsflow_backup_drill_age_seconds{{name=~"{members}"}} > {obj.max_age}\n'
                f'or opsflow_backup_drill_rto_seconds{{name=~"{members}"}} > {obj.rto}')
    return {"alert": "OpsflowSLOThreshold", "expr": expr, "for": "15m", "labels": labels,
            "annotations": {"summary": f"{service.name}/{obj.name}: {obj.describe()} is not met"}}


def rules(services: ServiceSet, service: str | None = None, entries: dict[str, str] | None = None) -> dict[str, Any]:
    """The rules file (``groups:``) for every service, or one; ``entries``: schedule entry → runbook."""
    chosen = [services.service(service)] if service else list(services.services.values())
    groups: list[dict[str, Any]] = []
    for s in chosen:
        thresholds = []
        for obj in s.objectives:
            if sli(services, s, obj, entries) is not None:
                groups += _ratio_groups(services, s, obj, entries or {})
            else:
                thresholds.append(_threshold_alert(services, s, obj))
        if thresholds:
            groups.append({"name": f"opsflow-slo-{s.name}-thresholds", "rules": thresholds})
    return {"groups": groups}


class _Literal(str):
    pass


def _literal(dumper: yaml.SafeDumper, data: _Literal) -> Any:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")


def dump(doc: dict[str, Any]) -> str:
    """YAML with multi-line expressions as block scalars, as people write rules files."""
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return _Literal(node) if isinstance(node, str) and "\n" in node else node

    yaml.SafeDumper.add_representer(_Literal, _literal)
    header = "# Generated by `opsflow slo rules` from the services directory: edit the services, not this file.\n"
    return header + yaml.safe_dump(walk(doc), sort_keys=False, width=200)


__all__ = ["BURN", "WINDOWS", "dump", "prom_duration", "rules", "sli"]
