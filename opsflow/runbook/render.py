"""Sandboxed Jinja2 rendering of runbook parameters.

Only strings written in the runbook are templates. Values in the context — params,
inventory vars, registered results, event data — are data: Jinja2 inserts them as
text and never renders them again, so a payload holding ``{{ 7*7 }}`` stays literal.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from opsflow.errors import TemplateError

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_SINGLE = re.compile(r"^\{\{(?P<expr>(?:(?!\}\}|\{\{|\{%).)*)\}\}$", re.S)

BUILTINS = frozenset({"host", "params", "facts", "inventory_hostname", "run", "range", "dict", "lipsum",
                      "cycler", "joiner", "namespace", "true", "false", "none", "True", "False", "None"})


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@lru_cache(maxsize=4096)
def _template(source: str) -> Any:
    return _ENV.from_string(source)


@lru_cache(maxsize=4096)
def _expression(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


def _explain(exc: Exception, source: str) -> TemplateError:
    if isinstance(exc, UndefinedError):
        return TemplateError(f"undefined variable in {source!r}: {exc.message}")
    if isinstance(exc, SecurityError):
        return TemplateError(f"unsafe template {source!r} refused by the sandbox: {exc}")
    if isinstance(exc, TemplateSyntaxError):
        return TemplateError(f"template syntax error in {source!r}: {exc.message}")
    return TemplateError(f"cannot render {source!r}: {type(exc).__name__}: {exc}")


def render(value: Any, ctx: dict[str, Any]) -> Any:
    """Render every string of a (nested) runbook value. A lone ``{{ expr }}`` keeps its native type."""
    if isinstance(value, str):
        if not is_template(value):
            return value
        try:
            single = _SINGLE.match(value.strip())
            if single:
                return _expression(single["expr"])(**ctx)
            return _template(value).render(**ctx)
        except Exception as exc:  # noqa: BLE001 - every Jinja failure becomes a TemplateError
            raise _explain(exc, value) from exc
    if isinstance(value, list | tuple):
        return [render(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: render(v, ctx) for k, v in value.items()}
    return value


def evaluate(expr: str | bool, ctx: dict[str, Any]) -> bool:
    """Evaluate a condition (``when``, ``changed_when``, ``failed_when``)."""
    if isinstance(expr, bool):
        return expr
    source = expr.strip()
    single = _SINGLE.match(source)
    if single:
        source = single["expr"]
    try:
        return bool(_expression(source)(**ctx))
    except Exception as exc:  # noqa: BLE001
        raise _explain(exc, expr) from exc


def check_syntax(text: str, expression: bool = False) -> tuple[str | None, set[str]]:
    """Return (error message or None, undeclared top-level variable names)."""
    source = text
    if expression:
        single = _SINGLE.match(text.strip())
        source = "{{ " + (single["expr"] if single else text) + " }}"
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message}", set()
    names = meta.find_undeclared_variables(ast)
    # loop variables and set targets are declared inside the template
    declared = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    return None, set(names) - declared - BUILTINS
