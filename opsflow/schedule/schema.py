"""The JSON Schema of a schedules file (Draft 2020-12), generated from :mod:`opsflow.schedule.models`."""

from __future__ import annotations

from typing import Any

SCHEMA_ID = "https://opsflow.dev/schema/schedule.json"
NOT_CHECKED = (
    "Checked by `opsflow validate`, not by this schema: Alertmanager's rules inside time_intervals (ranges "
    "in order, days of month in range, times HH:MM with start before end, IANA locations), cron and RRULE "
    "expressions, IANA zones, dates being real dates, calendar names an entry lists, runbooks being found "
    "and their params, after: entries existing without cycles, unique names across the directory, and "
    ".ics files being readable."
)


def schedule_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of a schedules file, as ``opsflow schema --kind schedule`` prints it."""
    from opsflow.runbook.schema import schema_document
    from opsflow.schedule.models import ScheduleFile

    return schema_document(ScheduleFile, SCHEMA_ID, "opsflow schedules", NOT_CHECKED)
