"""Typed, strict models of a services file (``services/*.yaml``): services and their objectives.

A *service* is a named set of runbooks (and inventory groups, for backups) with service-level
objectives. Kinds of objective, and what each measures (the SLI):

=====================  ============================================================  ==========
kind                   measures                                                      target
=====================  ============================================================  ==========
``success_rate``       succeeded ÷ finished runs (check-mode runs excluded)          a ratio
``duration``           share of finished runs that took ≤ ``max`` (p``percentile``)  a ratio
``auto_remediation``   share of matched events remediated by a run that succeeded    a ratio
``schedule_adherence`` share of scheduled slots that ran in their slot              a ratio
``time_to_start``      p95 seconds from an event's receipt to its run's start        ``max``
``mttr``               mean seconds from an event's receipt to the successful end    ``max``
``backup_age``         age of the last good backup of each host/device ≤ ``rpo``     a ratio
``restore_drill``      last restore drill took ≤ ``rto`` and is younger than ``max_age``  a ratio
=====================  ============================================================  ==========

Ratio objectives have an error budget of ``1 - target`` (a target of 100% leaves none, and is
refused); threshold objectives (``time_to_start``, ``mttr``) burn their threshold instead. A
``duration`` threshold is one of the bounds of the run-duration histogram (:data:`DURATION_BOUNDS`),
as Pyrra and Sloth require of latency objectives, so the Prometheus rules and the reports count the
same runs exactly.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from opsflow.events.models import Duration
from opsflow.runbook import schemadecl as js

# seconds: the run-duration histogram's bounds (Prometheus buckets; duration objective thresholds)
DURATION_BOUNDS = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1200.0, 1800.0,
                   2700.0, 3600.0, 5400.0, 7200.0, 10800.0, 14400.0, 21600.0, 43200.0, 86400.0)
RATIO_KINDS = ("success_rate", "duration", "auto_remediation", "schedule_adherence", "backup_age", "restore_drill")
THRESHOLD_KINDS = ("time_to_start", "mttr")
KINDS = RATIO_KINDS + THRESHOLD_KINDS
NAME_TEXT = r"[a-z0-9][a-z0-9_-]{0,62}"
PERCENT_TEXT = r"[0-9]+(?:\.[0-9]+)?%"


def parse_ratio(value: Any) -> float:
    """0.99, 99% or "99.9%" → a ratio in (0, 1]."""
    if isinstance(value, bool):
        raise ValueError("expected a ratio like 0.99 or '99%'")
    if isinstance(value, str) and re.fullmatch(PERCENT_TEXT, value.strip()):
        value = float(value.strip()[:-1]) / 100
    if not isinstance(value, int | float):
        raise ValueError(f"expected a ratio like 0.99 or '99%', got {value!r}")
    if not 0 < value <= 1:
        raise ValueError(f"a ratio is more than 0 and at most 1 (or 100%), got {value!r}")
    return float(value)


Ratio = Annotated[float, BeforeValidator(parse_ratio), WithJsonSchema(
    {"anyOf": [{"type": "number", "exclusiveMinimum": 0, "maximum": 1}, js.text(PERCENT_TEXT)],
     "description": "a ratio: 0.99 or '99%'"})]
Name = Annotated[str, Field(pattern=f"^{NAME_TEXT}$")]


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Objective(_Model):
    name: Name = Field(description="unique within its service; lowercase letters, digits, - and _")
    kind: Literal["success_rate", "duration", "auto_remediation", "schedule_adherence", "backup_age",
                  "restore_drill", "time_to_start", "mttr"]
    description: str = ""
    target: Ratio | None = Field(None, description="ratio objectives: the share that must be good")
    window: Duration = Field(30 * 86400, description="rolling window the objective is measured over")
    runbooks: list[str] | None = Field(None, description="only these of the service's runbooks")
    percentile: float | None = Field(None, description="duration: the percentile that must stay under max (95)")
    max: Duration | None = Field(None, description="duration, time_to_start, mttr: the threshold in seconds")
    rpo: Duration | None = Field(None, description="backup_age: the oldest a last good backup may be")
    rto: Duration | None = Field(None, description="restore_drill: the longest a drill may take")
    max_age: Duration | None = Field(None, description="restore_drill: the oldest the last drill may be")

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Objective:
        need: dict[str, tuple[str, ...]] = {
            "success_rate": ("target",), "duration": ("max",), "auto_remediation": ("target",),
            "schedule_adherence": ("target",), "backup_age": ("rpo",), "restore_drill": ("rto", "max_age"),
            "time_to_start": ("max",), "mttr": ("max",)}
        allowed = set(need[self.kind]) | {"target", "percentile"} if self.kind == "duration" else set(need[self.kind])
        if self.kind in ("backup_age", "restore_drill"):
            allowed |= {"target"}
        for key in need[self.kind]:
            if getattr(self, key) is None:
                raise ValueError(f"a {self.kind} objective needs {key!r}")
        for key in ("target", "percentile", "max", "rpo", "rto", "max_age"):
            if getattr(self, key) is not None and key not in allowed:
                raise ValueError(f"{key!r} does not apply to a {self.kind} objective (it takes "
                                 f"{', '.join(sorted(allowed))})")
        if self.kind == "duration":
            if self.percentile is not None and self.target is not None:
                raise ValueError("give either percentile (95) or target (0.95) for a duration objective, not both")
            if self.percentile is not None and not 0 < self.percentile < 100:
                raise ValueError("percentile is more than 0 and less than 100")
            assert self.max is not None
            if self.max not in DURATION_BOUNDS:
                close = min(DURATION_BOUNDS, key=lambda b: abs(b - (self.max or 0)))
                raise ValueError(f"max {_seconds(self.max)} is not a bound of the run-duration histogram; use "
                                 f"{_seconds(close)} (bounds: {', '.join(_seconds(b) for b in DURATION_BOUNDS)})")
        if self.ratio is not None and self.ratio >= 1:
            raise ValueError("a target of 100% leaves no error budget: use 99.9% or the like")
        if self.window < 3600:
            raise ValueError("window is at least 1h")
        return self

    @property
    def ratio(self) -> float | None:
        """The share of good events the objective asks for; None for threshold objectives."""
        if self.kind in THRESHOLD_KINDS:
            return None
        if self.kind == "duration" and self.target is None:
            return (self.percentile or 95.0) / 100
        if self.kind in ("backup_age", "restore_drill") and self.target is None:
            return 0.999  # every host: one miss in a thousand breaches it
        return self.target

    @property
    def threshold(self) -> float | None:
        return self.max if self.kind in THRESHOLD_KINDS else None

    def describe(self) -> str:
        if self.description:
            return self.description
        pct = f"{(self.ratio or 0) * 100:g}%"
        return {
            "success_rate": f"{pct} of runs succeed",
            "duration": f"{pct} of runs finish within {_seconds(self.max or 0)}",
            "auto_remediation": f"{pct} of matched events are remediated automatically",
            "schedule_adherence": f"{pct} of scheduled slots run in their slot",
            "backup_age": f"{pct} of hosts have a good backup younger than {_seconds(self.rpo or 0)}",
            "restore_drill": f"{pct} of hosts had a drill within {_seconds(self.max_age or 0)} that took at most "
                             f"{_seconds(self.rto or 0)}",
            "time_to_start": f"p95 event → run start within {_seconds(self.max or 0)}",
            "mttr": f"mean event → successful remediation within {_seconds(self.max or 0)}",
        }[self.kind] + f" over {_seconds(self.window)}"


class ServiceSpec(_Model):
    name: Name
    description: str = ""
    runbooks: list[str] = Field(default_factory=list, description="runbook names (fnmatch patterns allowed)")
    groups: list[str] = Field(default_factory=list, description="inventory groups or hosts (backups, drills)")
    rules: list[str] = Field(default_factory=list,
                             description="event rules whose events the service remediates (besides runs of its runbooks)")
    schedules: list[str] = Field(default_factory=list,
                                 description="schedule entries (default: those that run the service's runbooks)")
    hours: str | None = Field(None, description="calendar of operational hours: objectives count only inside it")
    corrections: list[str] = Field(default_factory=list,
                                   description="calendars (maintenance windows) excluded from the error budget")
    outlier_factor: float = Field(3.0, gt=1, description="a run this many times its median is flagged")
    owner: str = ""
    objectives: list[Objective] = Field(default_factory=list)


class ServicesFile(_Model):
    services: list[ServiceSpec] = Field(default_factory=list)


__all__ = ["DURATION_BOUNDS", "KINDS", "RATIO_KINDS", "THRESHOLD_KINDS", "Objective", "ServiceSpec",
           "ServicesFile", "parse_ratio"]
