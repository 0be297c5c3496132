"""What the models say about themselves in JSON Schema, beyond what pydantic derives from the types.

Each model whose ``mode="before"`` validator takes short forms declares them with :func:`shorthand`; a rule
"exactly one of these keys" is :func:`exactly_one`; a string a validator fullmatches against a regex is
:func:`text` of that same regex. These are declarations only: the callables run when
:func:`opsflow.runbook.schema.runbook_schema` builds the schema, never at import. No opsflow imports here
(the models import this module; ``opsflow.runbook.schema`` imports the models).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

JsonDict = dict[str, Any]
Extra = Callable[[JsonDict, type[Any]], None]


def text(pattern: str, description: str | None = None) -> JsonDict:
    """A string the whole of which matches ``pattern`` (the regex a validator fullmatches)."""
    out: JsonDict = {"type": "string", "pattern": f"^(?:{pattern})$"}
    if description:
        out["description"] = description
    return out


def shorthand(*alternatives: JsonDict) -> Extra:
    """``json_schema_extra`` of a model whose ``mode="before"`` validator also takes these short forms."""

    def extra(schema: JsonDict, cls: type[Any]) -> None:
        full = {k: schema.pop(k) for k in list(schema) if k not in ("title", "description")}
        flat = [alt for a in alternatives for alt in (a["anyOf"] if list(a) == ["anyOf"] else [a])]
        schema["anyOf"] = [*copy.deepcopy(flat), full]

    return extra


def exactly_one(keys: Iterable[str], *, null_is_absent: bool, strip_null: bool = False) -> Extra:
    """``json_schema_extra``: exactly one of ``keys`` is given (and, with ``null_is_absent``, not null).

    ``strip_null`` removes the ``null`` alternative pydantic adds to those keys' optional fields: a
    step's action given as null is an error, unless its own schema says null is a short form.
    """
    keys = tuple(keys)

    def extra(schema: JsonDict, cls: type[Any]) -> None:
        props = schema.get("properties", {})
        branches = []
        for key in keys:
            branch: JsonDict = {"required": [key]}
            if null_is_absent:
                branch["properties"] = {key: {"not": {"type": "null"}}}
            branches.append(branch)
            if strip_null and key in props:
                props[key] = _without_null(props[key])
        schema["oneOf"] = branches

    return extra


def _without_null(prop: JsonDict) -> JsonDict:
    alts = [a for a in prop.get("anyOf", []) if a != {"type": "null"}]
    if len(alts) != 1:
        return prop
    rest = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    return {**alts[0], **rest}
