"""Pydantic validation errors as ``file:line:col`` diagnostics, for the YAML files opsflow reads
(schedules, services): one problem per place, unknown keys with a "did you mean", missing keys named.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from opsflow.errors import Diagnostic
from opsflow.yamlpos import position


def diagnostics(exc: ValidationError, tree: Any, filename: str, *, model_at: Callable[[tuple[Any, ...]], type[BaseModel] | None],
                noise: Callable[[str], bool] = lambda part: False,
                special: Callable[[dict[str, Any], tuple[Any, ...]], str | None] = lambda err, loc: None,
                ) -> list[Diagnostic]:
    """``model_at(loc)``: the model of the mapping at ``loc`` (for the keys an unknown one is compared
    with); ``noise(part)``: a part of pydantic's location that is not in the file (a union member, a
    validator); ``special(err, loc)``: a message of the caller's own for an error, or None."""
    out: list[Diagnostic] = []
    seen: set[tuple[Any, ...]] = set()
    for err in exc.errors():  # pydantic lists a union's own alternatives' errors last
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and noise(p)))
        if loc in seen:  # one problem per place: a union's other alternatives add only noise
            continue
        seen.add(loc)
        line, col = position(tree, loc)
        msg = special(dict(err), loc)
        if msg is not None:
            pass
        elif err["type"] == "extra_forbidden":
            model = model_at(loc[:-1])
            hint = ""
            if model is not None:
                allowed = [f.alias or n for n, f in model.model_fields.items()]
                close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(allowed)}"
            msg = f"unknown key {str(loc[-1])!r}{hint}"
        elif err["type"] == "missing":
            msg = f"missing required key {str(loc[-1])!r}"
        else:
            where = ".".join(str(p) for p in loc) or "file"
            msg = f"{where}: {err['msg'].removeprefix('Value error, ')}"
        out.append(Diagnostic(filename, line, col, msg))
    return out


__all__ = ["diagnostics"]
