"""The JSON Schema of a services file (Draft 2020-12), generated from :mod:`opsflow.slo.models`."""

from __future__ import annotations

from typing import Any

SCHEMA_ID = "https://opsflow.dev/schema/service.json"
NOT_CHECKED = (
    "Checked by `opsflow validate`, not by this schema: the fields each objective kind needs and allows, "
    "duration thresholds being bounds of the run-duration histogram, targets under 100%, runbook names and "
    "patterns matching runbooks, hours: and corrections: naming calendars of the schedules directory, "
    "schedule entries existing, unique service names across the directory and objective names in a service."
)


def service_schema() -> dict[str, Any]:
    """The JSON Schema of a services file, as ``opsflow schema --kind service`` prints it."""
    from opsflow.runbook.schema import schema_document
    from opsflow.slo.models import ServicesFile

    return schema_document(ServicesFile, SCHEMA_ID, "opsflow services", NOT_CHECKED)
