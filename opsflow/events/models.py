"""What the daemon receives (``Event``) and what a runbook declares to be started by one (``triggers``).

The trigger models are part of the runbook schema (``opsflow schema``), validated like any runbook key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from opsflow.runbook import schemadecl as js
from opsflow.runbook.limits import check_regex

SOURCES = ("alertmanager", "webhook", "cloudevents", "syslog")
FIELD_ROOTS = ("name", "status", "host", "severity", "message", "source", "fingerprint", "labels",
               "annotations", "data")
REASONS = ("duplicate", "cooldown", "locked", "budget", "breaker_open", "no_rule", "queue_full", "resolved",
           "unknown_host", "invalid", "shutdown", "daemon_stopped")


@dataclass
class Event:
    """One event, whatever its source: an Alertmanager alert, a JSON or CloudEvents event, a syslog line."""

    source: str
    name: str
    status: str = "firing"  # firing | resolved
    host: str = ""  # what the sender says the event is about (resolved against the inventory by a rule)
    severity: str = ""
    message: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""  # identity of the alert/event, the default deduplication key
    occurrence: str = ""  # Alertmanager startsAt: a new firing of the same alert has a new one
    received_at: float = 0.0
    peer: str = ""  # the sender's address
    id: str = ""

    def get(self, path: str) -> Any:
        """A field by path: ``host``, ``labels.instance``, ``data.disk.mount``; None when absent."""
        root, _, rest = path.partition(".")
        value: Any = getattr(self, root, None) if root in FIELD_ROOTS else None
        for part in rest.split(".") if rest else []:
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("id", "source", "name", "status", "host", "severity", "message",
                                             "labels", "annotations", "data", "fingerprint", "occurrence",
                                             "received_at", "peer")}


# ---- durations -----------------------------------------------------------------------
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_TEXT = r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*"


def parse_duration(value: Any) -> float:
    """Seconds from 90, 90.5, "90s", "10m", "1h", "2d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 600, '10m' or '1h'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    m = re.fullmatch(DURATION_TEXT, value) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"expected a duration like 600, '10m' or '1h', got {value!r}")
    return float(m[1]) * _UNITS[m[2] or "s"]


Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(
    {"anyOf": [{"type": "number", "minimum": 0}, js.text(DURATION_TEXT)],
     "description": "seconds, or a number with a unit: 90s, 15m, 1h, 2d"})]


def whole(value: Any) -> Any:
    """A float without a fraction is a whole number (JSON Schema's ``integer`` says the same): 3.0 -> 3."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# models are strict: YAML gives real types, so no "3" for 3, no 1 for true, no true for 1 (as the schema)
Whole = Annotated[int, BeforeValidator(whole)]


# ---- trigger models ------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


FIELD_PATH_TEXT = rf"(?:{'|'.join(FIELD_ROOTS)})(?:\.[^.]+)*"


def _check_path(path: str) -> str:
    if not re.fullmatch(FIELD_PATH_TEXT, path):
        raise ValueError(f"field {path!r}: expected one of {', '.join(FIELD_ROOTS)} "
                         "(labels, annotations and data take a key: labels.instance)")
    return path


def _check_regex(text: str) -> str:
    """Compiles, and cannot backtrack exponentially on what an event sends (see opsflow.runbook.limits)."""
    return check_regex(text)


FIELD_PATH = js.text(FIELD_PATH_TEXT, "an event field: name, host, labels.instance, data.x.y …")
FieldPath = Annotated[str, AfterValidator(_check_path), WithJsonSchema(FIELD_PATH)]


class FieldRef(_Model):
    """Where a value comes from in the event: a field path, optionally narrowed by a regex (its first group)."""

    model_config = ConfigDict(json_schema_extra=js.shorthand(FIELD_PATH))
    field: FieldPath
    regex: Annotated[str, AfterValidator(_check_regex)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {"field": value} if isinstance(value, str) else value


Pattern = str | list[str]  # exact value(s); a value starting with ~ is a regular expression (full match)


def _check_pattern(value: Pattern) -> Pattern:
    for item in value if isinstance(value, list) else [value]:
        if item.startswith("~"):
            _check_regex(item[1:])
    return value


def _scalar_text(value: Any) -> Any:
    """YAML scalars in match patterns are compared as text (severity: 1 matches "1")."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return [_scalar_text(v) for v in value]
    return value


_SCALAR = {"type": ["string", "number", "boolean"]}
# the type is checked first (str or list of str), then the regular expressions
PatternField = Annotated[Pattern, BeforeValidator(_scalar_text), AfterValidator(_check_pattern), WithJsonSchema(
    {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}],
     "description": "an exact value or a list of them; one starting with ~ is a regular expression"})]


class Match(_Model):
    """What an event must carry for the trigger to fire; every key given must match."""

    name: PatternField | None = Field(None, description="alertname, CloudEvents type, syslog app name")
    labels: dict[str, PatternField] = {}
    annotations: dict[str, PatternField] = {}
    severity: PatternField | None = None
    host: PatternField | None = Field(None, description="the event's host, before inventory resolution")
    message: Annotated[str, AfterValidator(_check_regex)] | None = Field(
        None, description="regular expression searched in the message")
    data: dict[str, PatternField] = Field({}, description="data fields by path (data.x.y → 'x.y')")


class Dedup(_Model):
    model_config = ConfigDict(json_schema_extra=js.shorthand(FIELD_PATH, {"type": "array", "items": FIELD_PATH}))
    key: list[FieldPath] = Field(
        ["fingerprint"], description="fields whose values identify the same event")
    window: Duration = Field(3600, description="a repeat within this time is a duplicate")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"key": [value]}
        if isinstance(value, list):
            return {"key": value}
        return value


class EventTrigger(_Model):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
                             description="rule name (default: the runbook name, or name.N with several)")
    source: Literal["any", "alertmanager", "webhook", "cloudevents", "syslog"] = "any"
    status: Literal["firing", "resolved", "any"] = Field(
        "firing", description="which events start a run; resolved events always cancel a queued run")
    match: Match = Match()
    host: FieldRef = Field(FieldRef(field="host"), description="the inventory host the event is about")
    params: dict[str, FieldRef] = Field({}, description="runbook param ← event field (passed as a value)")
    dedup: Dedup = Dedup()
    cooldown: Duration = Field(600, description="after a run for (rule, host), later events wait this long")
    breaker: Whole = Field(3, ge=0, description="consecutive failed runs that open the circuit (0: never)")
    emergency: bool = Field(False, description="remediate even in a blackout or outside the maintenance window "
                                               "(recorded as a window override by this rule)")


class Triggers(_Model):
    events: list[EventTrigger] = Field(min_length=1)

    @field_validator("events")
    @classmethod
    def _unique(cls, value: list[EventTrigger]) -> list[EventTrigger]:
        names = [t.name for t in value if t.name]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"trigger name(s) used twice: {', '.join(dupes)}")
        return value

    def check_params(self, declared: set[str]) -> None:
        for i, trigger in enumerate(self.events):
            unknown = sorted(set(trigger.params) - declared)
            if unknown:
                raise ValueError(f"triggers.events.{i}.params: {', '.join(map(repr, unknown))} "
                                 f"not a param of this runbook (params: {', '.join(sorted(declared)) or 'none'})")
