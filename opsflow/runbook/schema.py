"""The JSON Schema of a runbook (``opsflow schema``), for editors and CI: Draft 2020-12, from the models.

The models declare what their validators accept — each shorthand (``command: "uptime"``, ``lock: true``,
``cooldown: 15m`` …) as an ``anyOf`` alternative, "exactly one action per step" and "exactly one kind per
check" as ``oneOf``, bounds, enums and the patterns the validators themselves match with — through the
helpers of :mod:`opsflow.runbook.schemadecl`. The schema is built only when :func:`runbook_schema` is
called: importing the models costs nothing more.

A runbook the schema accepts is structurally one ``opsflow validate`` accepts, and the other way round
(tests/unit/test_schema.py holds both to the same verdicts). What needs more than the shape of the
file is left to ``opsflow validate``; the schema's ``$comment`` lists it.
"""

from __future__ import annotations

from typing import Any

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://opsflow.dev/schema/runbook.json"
NOT_CHECKED = (
    "Checked by `opsflow validate`, not by this schema: Jinja2 templates (syntax, undefined variables), "
    "playbook and sub-runbook paths, targets and hosts against the inventory, regular expressions in "
    "triggers (they compile, and cannot backtrack exponentially), trigger params being params of the "
    "runbook, unique trigger names, shell quoting of a command given as a string, secret params without "
    "a default, and the size limits of the loader."
)


def schema_document(model: Any, schema_id: str, title: str, comment: str) -> dict[str, Any]:
    """A pydantic model's JSON Schema as a Draft 2020-12 document of its own: ``$schema``, ``$id``, title, and
    a ``$comment`` saying what only ``opsflow validate`` checks."""
    body = model.model_json_schema(by_alias=True)
    body.pop("title", None)
    return {"$schema": DRAFT, "$id": schema_id, "title": title, "$comment": comment, **body}


def runbook_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of a runbook file, as ``opsflow schema`` prints it."""
    from opsflow.runbook.models import Runbook

    return schema_document(Runbook, SCHEMA_ID, "opsflow runbook", NOT_CHECKED)
