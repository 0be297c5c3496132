"""OpenSLO v1: services and objectives out (``opsflow slo export``) and back in (``opsflow slo import``).

Each service becomes a ``kind: Service`` document and each objective a ``kind: SLO`` with its
indicator inline: ratio objectives a ``ratioMetric`` (``bad``/``total`` Prometheus queries over the
metrics opsflow exports, budgeting method ``Occurrences``), threshold objectives a
``thresholdMetric`` with ``op: lte`` and the threshold as ``value``. What OpenSLO has no field for —
the opsflow kind, the runbooks, operational hours, corrections, groups — rides in
``metadata.annotations`` under ``opsflow.io/``, so an export imports back to the same services. An
SLO without those annotations cannot be measured by opsflow (its queries are another system's):
import says so, with the document and the missing annotation.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from opsflow.errors import UsageError
from opsflow.slo.loader import ServiceSet
from opsflow.slo.models import Objective, ServiceSpec
from opsflow.slo.rules import prom_duration, sli

API = "openslo/v1"
PREFIX = "opsflow.io/"


def _list(values: list[str]) -> str:
    return ",".join(values)


def _unlist(text: Any) -> list[str]:
    return [v.strip() for v in str(text or "").split(",") if v.strip()]


def _source(query: str) -> dict[str, Any]:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}


def _slo(services: ServiceSet, service: ServiceSpec, obj: Objective, entries: dict[str, str]) -> dict[str, Any]:
    annotations = {f"{PREFIX}kind": obj.kind, f"{PREFIX}objective": obj.name}
    for key, value in (("runbooks", obj.runbooks), ("percentile", obj.percentile), ("rpo", obj.rpo), ("rto", obj.rto),
                       ("max-age", obj.max_age), ("max", obj.max)):
        if value:
            annotations[PREFIX + key] = _list(value) if isinstance(value, list) else f"{value:g}"
    pair = sli(services, service, obj, entries)
    if pair is not None and obj.ratio is not None:
        bad, total = pair
        if bad.startswith("__MINUS__"):  # duration: the good ones are counted, not the bad
            indicator = {"ratioMetric": {"counter": True, "good": _source(f"sum({bad.removeprefix('__MINUS__')})"),
                                         "total": _source(f"sum({total})")}}
        else:
            indicator = {"ratioMetric": {"counter": True, "bad": _source(f"sum({bad})"),
                                         "total": _source(f"sum({total})")}}
        objectives: list[dict[str, Any]] = [{"displayName": obj.name, "target": obj.ratio}]
        if obj.kind == "duration":
            objectives[0].update(op="lte", value=obj.max)
        method = "Occurrences"
    else:
        metric = {"time_to_start": "histogram_quantile(0.95, sum by (le) (rate(opsflow_event_to_start_seconds_bucket[1h])))",
                  "mttr": "sum(rate(opsflow_event_to_end_seconds_sum[1d])) / sum(rate(opsflow_event_to_end_seconds_count[1d]))",
                  "backup_age": "max(opsflow_backup_age_seconds)",
                  "restore_drill": "max(opsflow_backup_drill_rto_seconds)"}[obj.kind]
        value = obj.max if obj.kind in ("time_to_start", "mttr") else obj.rpo if obj.kind == "backup_age" else obj.rto
        indicator = {"thresholdMetric": _source(metric)}
        objectives = [{"displayName": obj.name, "op": "lte", "value": value, "target": obj.ratio or 0.99,
                       "timeSliceTarget": 1.0, "timeSliceWindow": "5m"}]
        method = "Timeslices"
    name = f"{service.name}-{obj.name}"[:63].rstrip("-_").replace("_", "-")
    return {"apiVersion": API, "kind": "SLO",
            "metadata": {"name": name, "displayName": f"{service.name}: {obj.name}", "annotations": annotations},
            "spec": {"description": obj.describe()[:1050], "service": service.name,
                     "indicator": {"metadata": {"name": f"{name}-sli"[:63]}, "spec": indicator},
                     "timeWindow": [{"duration": prom_duration(obj.window), "isRolling": True}],
                     "budgetingMethod": method, "objectives": objectives}}


def export(services: ServiceSet, service: str | None = None, entries: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The OpenSLO documents of every service, or one."""
    chosen = [services.service(service)] if service else list(services.services.values())
    docs: list[dict[str, Any]] = []
    for s in chosen:
        annotations = {f"{PREFIX}runbooks": _list(s.runbooks)}
        for key, values in (("groups", s.groups), ("rules", s.rules), ("schedules", s.schedules),
                            ("corrections", s.corrections)):
            if values:
                annotations[PREFIX + key] = _list(values)
        if s.hours:
            annotations[f"{PREFIX}hours"] = s.hours
        if s.owner:
            annotations[f"{PREFIX}owner"] = s.owner
        if s.outlier_factor != 3.0:
            annotations[f"{PREFIX}outlier-factor"] = f"{s.outlier_factor:g}"
        docs.append({"apiVersion": API, "kind": "Service",
                     "metadata": {"name": s.name, "displayName": s.name, "annotations": annotations},
                     "spec": {"description": s.description[:1050]}})
        docs += [_slo(services, s, o, entries or {}) for o in s.objectives]
    return docs


def dumps(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, width=200, explicit_start=True)


_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _seconds(text: str, where: str) -> float:
    text = str(text)
    if text[-1:] in _DURATION_UNITS and text[:-1].isdigit():
        return int(text[:-1]) * _DURATION_UNITS[text[-1]]
    raise UsageError(f"{where}: timeWindow duration {text!r} is not one opsflow measures (use m, h, d or w)")


def import_docs(text: str, filename: str) -> list[dict[str, Any]]:
    """OpenSLO documents → the ``services:`` of a services file (checked by the services models)."""
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise UsageError(f"{filename}: not YAML: {exc}") from exc
    services: dict[str, dict[str, Any]] = {}
    slos: list[tuple[int, dict[str, Any]]] = []
    for i, doc in enumerate(docs, 1):
        where = f"{filename}: document {i}"
        if not isinstance(doc, dict) or doc.get("apiVersion") != API:
            raise UsageError(f"{where}: not an OpenSLO v1 document (apiVersion: {API})")
        meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
        ann = meta.get("annotations") or {}
        if doc.get("kind") == "Service":
            entry: dict[str, Any] = {"name": meta.get("name"), "description": spec.get("description", ""),
                                     "runbooks": _unlist(ann.get(f"{PREFIX}runbooks"))}
            for key in ("groups", "rules", "schedules", "corrections"):
                if ann.get(PREFIX + key):
                    entry[key] = _unlist(ann[PREFIX + key])
            for key, field in (("hours", "hours"), ("owner", "owner")):
                if ann.get(PREFIX + key):
                    entry[field] = ann[PREFIX + key]
            if ann.get(f"{PREFIX}outlier-factor"):
                entry["outlier_factor"] = float(ann[f"{PREFIX}outlier-factor"])
            entry["objectives"] = []
            services[str(meta.get("name"))] = entry
        elif doc.get("kind") == "SLO":
            slos.append((i, doc))
        # other kinds (SLI, DataSource, AlertPolicy …) carry nothing opsflow measures
    for i, doc in slos:
        where = f"{filename}: document {i} (SLO {doc.get('metadata', {}).get('name')!r})"
        meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
        ann = meta.get("annotations") or {}
        kind = ann.get(f"{PREFIX}kind")
        if not kind:
            raise UsageError(f"{where}: no annotation {PREFIX}kind — opsflow measures its own runs, events, "
                             "backups and slots; add the kind (success_rate, duration, …) and "
                             f"{PREFIX}runbooks to import it")
        service = str(spec.get("service") or "")
        if not service:
            raise UsageError(f"{where}: spec.service is missing (the service the SLO belongs to)")
        if service not in services:
            services[service] = {"name": service, "runbooks": _unlist(ann.get(f"{PREFIX}runbooks")), "objectives": []}
        objectives = spec.get("objectives") or [{}]
        target = objectives[0].get("target")
        if target is None and objectives[0].get("targetPercent") is not None:
            target = objectives[0]["targetPercent"] / 100
        obj: dict[str, Any] = {"name": ann.get(f"{PREFIX}objective") or meta.get("name"), "kind": kind}
        if spec.get("description"):
            obj["description"] = spec["description"]
        windows = spec.get("timeWindow") or []
        if windows:
            obj["window"] = _seconds(windows[0].get("duration", "30d"), where)
        if target is not None and (kind in ("success_rate", "duration", "auto_remediation", "schedule_adherence")
                                   or (kind in ("backup_age", "restore_drill") and target != 0.999)):
            obj["target"] = target
        for key, field in (("percentile", "percentile"), ("rpo", "rpo"), ("rto", "rto"), ("max-age", "max_age"),
                           ("max", "max")):
            if ann.get(PREFIX + key):
                obj[field] = float(ann[PREFIX + key])
        if ann.get(f"{PREFIX}runbooks"):
            obj["runbooks"] = _unlist(ann[f"{PREFIX}runbooks"])
        if kind == "duration" and "percentile" in obj:
            obj.pop("target", None)
        services[service]["objectives"].append(obj)
    out = list(services.values())
    for entry in out:
        try:
            ServiceSpec.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise UsageError(f"{filename}: service {entry.get('name')!r}: {'.'.join(map(str, first['loc']))}: "
                             f"{first['msg']}") from exc
    return out


__all__ = ["dumps", "export", "import_docs"]
