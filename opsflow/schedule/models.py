"""Typed, strict models of a schedules file (``schedules/*.yaml``): calendars and schedule entries.

The minimal shape of the issue is accepted exactly as written; everything else has a default. The
JSON Schema (:func:`opsflow.schedule.schema.schedule_schema`) is generated from these models.
Cross-references (calendar names, runbooks, ``after`` entries, cycles, ``.ics`` files) are checked
by :mod:`opsflow.schedule.loader`.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from opsflow.events.models import Duration, Whole
from opsflow.runbook import schemadecl as js
from opsflow.schedule import intervals, triggers
from opsflow.schedule import tz as tzmod

NAME_TEXT = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}"
DATE_TEXT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
LOCAL_TEXT = r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2})?)?"
NotifyEvent = Literal["started", "succeeded", "failed", "skipped", "deferred", "misfired", "window_closed", "any"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _name(value: str) -> str:
    if not re.fullmatch(NAME_TEXT, value):
        raise ValueError(f"{value!r} is not a valid name (letters, digits, '_', '.', '-'; starts with a letter or digit)")
    return value


Name = Annotated[str, AfterValidator(_name), WithJsonSchema(js.text(NAME_TEXT))]


def _zone(value: str) -> str:
    try:
        return tzmod.check_zone(value)
    except tzmod.UnknownZone as exc:
        raise ValueError(str(exc)) from None


Zone = Annotated[str, AfterValidator(_zone), WithJsonSchema(
    {"type": "string", "minLength": 1, "description": "an IANA time zone, e.g. Europe/Berlin (or UTC)"})]


def _date_text(value: Any) -> Any:
    """YAML reads 2027-12-20 as a date: take it as its text, as a quoted one."""
    if isinstance(value, datetime):
        raise ValueError(f"expected a date (YYYY-MM-DD), got a date-time {value.isoformat()!r}")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _check_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}") from None
    if not re.fullmatch(DATE_TEXT, value):
        raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}")
    return value


DateText = Annotated[str, BeforeValidator(_date_text), AfterValidator(_check_date), WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date"}, js.text(DATE_TEXT)]})]


def _local_text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat()
    return _date_text(value)


def _check_local(value: str) -> str:
    if not re.fullmatch(LOCAL_TEXT, value):
        raise ValueError(f"expected a local date-time YYYY-MM-DDTHH:MM[:SS] (no offset), got {value!r}")
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r}: {exc}") from None
    return value


LocalText = Annotated[str, BeforeValidator(_local_text), AfterValidator(_check_local), WithJsonSchema(
    js.text(LOCAL_TEXT, "a local date-time, in the calendar's or entry's zone"))]


def _interval(value: Any) -> Any:
    problems = intervals.interval_problems(value)
    if problems:
        raise ValueError("; ".join(f"{'.'.join(str(p) for p in loc)}: {message}" if loc else message
                                   for loc, message in problems))
    return value


_RANGE_ITEMS = {"type": "array", "items": {"type": ["string", "integer"]}}
_INTERVAL_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "description": "Prometheus Alertmanager's time_intervals grammar, verbatim",
    "properties": {
        "times": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["start_time", "end_time"],
            "properties": {"start_time": js.text(intervals.TIME_TEXT), "end_time": js.text(intervals.TIME_TEXT)}}},
        "weekdays": {"type": "array", "items": {"type": "string"}},
        "days_of_month": _RANGE_ITEMS, "months": _RANGE_ITEMS, "years": _RANGE_ITEMS,
        "location": {"type": "string"},
    },
}
TimeIntervalSpec = Annotated[dict[str, Any], BeforeValidator(_interval), WithJsonSchema(_INTERVAL_SCHEMA)]


class DateSpan(_Model):
    model_config = ConfigDict(populate_by_name=False)
    from_: DateText = Field(alias="from")
    to: DateText

    @model_validator(mode="after")
    def _order(self) -> DateSpan:
        if self.to < self.from_:
            raise ValueError(f"to {self.to} is before from {self.from_}")
        return self


class RecurrenceSpec(_Model):
    rrule: str = Field(description="RFC 5545 RRULE, e.g. FREQ=MONTHLY;BYDAY=1SA")
    start: LocalText = Field(description="first occurrence (DTSTART), local")
    duration: Duration = Field(description="how long each occurrence lasts")
    exdates: list[LocalText] = Field(default_factory=list, description="occurrences left out (EXDATE), local")
    name: str = ""

    @model_validator(mode="after")
    def _rule(self) -> RecurrenceSpec:
        triggers.check_rrule(self.rrule)
        if self.duration <= 0:
            raise ValueError("duration must be more than 0")
        return self


class ScopeSpec(_Model):
    runbooks: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)


_SOURCES: dict[str, Any] = {"anyOf": [{"required": [k], "properties": {k: {"type": "array", "minItems": 1}}}
                                      for k in ("time_intervals", "dates", "recurrences")]
                            + [{"required": ["ics"], "properties": {"ics": {"anyOf": [
                                {"type": "string", "minLength": 1}, {"type": "array", "minItems": 1}]}}}]}


class CalendarSpec(_Model):
    model_config = ConfigDict(json_schema_extra=_SOURCES)
    name: Name
    mode: Literal["allowed", "blackout"]
    description: str = ""
    location: Zone | None = Field(None, description="zone of dates, recurrences and intervals without one (UTC)")
    scope: Literal["all"] | ScopeSpec | None = Field(
        None, description="entries it applies to without being listed; none: only those that list it")
    time_intervals: list[TimeIntervalSpec] = Field(default_factory=list)
    dates: list[DateText | DateSpan] = Field(default_factory=list, description="whole days, inclusive")
    recurrences: list[RecurrenceSpec] = Field(default_factory=list)
    ics: str | list[str] | None = Field(None, description=".ics file(s), relative to this file")

    @model_validator(mode="after")
    def _some_source(self) -> CalendarSpec:
        if not (self.time_intervals or self.dates or self.recurrences or self.ics):
            raise ValueError(f"calendar {self.name!r} has no time_intervals, dates, recurrences or ics")
        return self


class Misfire(_Model):
    grace: Duration = Field(1800, description="a missed fire older than this is not run")
    catchup: Literal["none", "latest", "all"] = "latest"


class After(_Model):
    entry: Name
    within: Duration | None = Field(None, description="how recent the dependency's run must be; "
                                                      "default: the same local day")
    on_failure: Literal["skip", "run", "wait"] = "skip"
    on_missing: Literal["skip", "run", "wait"] = "wait"
    wait: Duration = Field(3600, description="how long 'wait' waits before skipping")


class Notify(_Model):
    to: str = Field(min_length=1, description="an Apprise URL, or a name resolved by the service")
    on: list[NotifyEvent] = Field(default_factory=lambda: list[NotifyEvent](["failed"]))


ReportFormat = Literal["html", "markdown", "csv", "json"]
REPORT_SUFFIX: dict[str, str] = {"html": "html", "markdown": "md", "csv": "csv", "json": "json"}
RUNBOOK_ONLY = ("params", "limit", "on_window_close")  # refused on a report entry: they mean nothing there


class ReportSpec(_Model):
    """A KPI report (``opsflow report``) over [slot − since, slot), sent to the entry's notify targets."""

    since: Duration = Field(7 * 86400, description="the span reported, before the slot: 7d, 24h …")
    service: str | None = Field(None, min_length=1, description="only this service (default: all)")
    hours: Name | None = Field(None, description="measured within this calendar's open hours only")
    format: ReportFormat = Field("html", description="the attached file: report.html, .md, .csv or .json")
    title: str = Field("", description="the notification's title (default: 'opsflow report: ENTRY')")

    @model_validator(mode="after")
    def _span(self) -> ReportSpec:
        if self.since <= 0:
            raise ValueError("since must be more than 0")
        return self


def _entry_schema(schema: dict[str, Any], cls: type[Any]) -> None:
    """Exactly one trigger and exactly one of runbook, report; a report entry has no runbook-only key."""
    js.exactly_one(("cron", "rrule", "every"), null_is_absent=True, strip_null=True)(schema, cls)
    when = schema.pop("oneOf")
    js.exactly_one(("runbook", "report"), null_is_absent=True, strip_null=True)(schema, cls)
    what = schema.pop("oneOf")
    for branch in what:
        if branch["required"] == ["report"]:
            branch["not"] = {"anyOf": [{"required": [k]} for k in RUNBOOK_ONLY]}
    schema["allOf"] = [{"oneOf": when}, {"oneOf": what}]


class EntrySpec(_Model):
    """A schedule entry: a runbook run, or a KPI report sent (``report:``) at each slot.

    A report entry takes the trigger, calendars, priority, misfire, concurrency, on_blackout, cutoff,
    retry_in/retries, after and notify keys as a runbook entry does (its notify targets that hear of
    ``succeeded`` receive the report); ``params``, ``limit`` and ``on_window_close`` are refused.
    """

    model_config = ConfigDict(json_schema_extra=_entry_schema)
    name: Name
    runbook: str | None = Field(None, min_length=1, description="a runbook name or path")
    report: ReportSpec | None = Field(None, description="instead of a runbook: a KPI report, sent to the notify "
                                                        "targets that hear of succeeded")
    description: str = ""
    enabled: bool = True
    cron: str | None = Field(None, description="5 fields: minute hour day-of-month month day-of-week")
    rrule: str | None = Field(None, description="RFC 5545 RRULE, e.g. FREQ=WEEKLY;BYDAY=SU;BYHOUR=3")
    every: Duration | None = Field(None, description="real elapsed time, e.g. 15m")
    start: LocalText | None = Field(None, description="DTSTART of an rrule, anchor of every (local)")
    timezone: Zone = "UTC"
    calendars: list[Name] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    limit: str | None = Field(None, description="an inventory pattern, as --limit")
    priority: Whole = Field(0, description="higher goes first when entries compete")
    misfire: Misfire = Misfire()
    concurrency: Literal["forbid", "queue", "replace", "allow"] = "forbid"
    on_blackout: Literal["skip", "next_window"] = "skip"
    cutoff: Duration = Field(0, description="no start later than the window's end minus this")
    on_window_close: Literal["finish_step", "continue", "rollback"] = "finish_step"
    retry_in: Duration | None = Field(None, description="after a failed run, try again this much later, in an "
                                                        "allowed slot (rescheduled per the calendars)")
    retries: Whole = Field(1, description="with retry_in: how many times a failed slot is tried again")
    after: list[After] = Field(default_factory=list)
    notify: list[Notify] = Field(default_factory=list)

    @model_validator(mode="after")
    def _when(self) -> EntrySpec:
        given = [k for k in ("cron", "rrule", "every") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of cron, rrule, every" + (f" (got {', '.join(given)})" if given else ""))
        if (self.runbook is None) == (self.report is None):
            raise ValueError("give exactly one of runbook, report" + (" (got both)" if self.runbook else ""))
        if self.report is not None:
            refused = [k for k in RUNBOOK_ONLY if k in self.model_fields_set]
            if refused:
                raise ValueError(f"a report entry takes no {', '.join(refused)} (runbook entries only)")
        if self.cron is not None:
            triggers.check_cron(self.cron)
        if self.rrule is not None:
            triggers.check_rrule(self.rrule)
        if self.every is not None and self.every <= 0:
            raise ValueError("every must be more than 0")
        return self


class ScheduleFile(_Model):
    calendars: list[CalendarSpec] = Field(default_factory=list)
    schedules: list[EntrySpec] = Field(default_factory=list)


__all__ = ["REPORT_SUFFIX", "RUNBOOK_ONLY", "After", "CalendarSpec", "DateSpan", "EntrySpec", "Misfire", "Notify",
           "RecurrenceSpec", "ReportSpec", "ScheduleFile", "ScopeSpec"]
