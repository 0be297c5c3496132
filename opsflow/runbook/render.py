"""Sandboxed Jinja2 rendering of runbook parameters.

Only strings written in the runbook are templates. Values in the context — params,
inventory vars, registered results, event data — are data: Jinja2 inserts them as
text and never renders them again, so a payload holding ``{{ 7*7 }}`` stays literal.

Templates are bounded before they are compiled (``sandbox.MAX_TEMPLATE_CHARS``,
``sandbox.MAX_TEMPLATE_DEPTH``), and ``*``/``**`` refuse results that would not fit in
memory (also when Jinja folds constants while compiling). Validation compiles each
template exactly as a run will; any Jinja failure at run time — an undefined value
too, also one returned by a lone ``{{ expr }}`` — is a :class:`TemplateError`.

Jinja2 itself (:mod:`opsflow.runbook.sandbox`) is imported on the first template met: values
without one render to themselves, so a run of a runbook without templates never imports it.
"""

from __future__ import annotations

from typing import Any

BUILTINS = frozenset({"host", "params", "facts", "inventory_hostname", "run", "range", "dict", "lipsum",
                      "cycler", "joiner", "namespace", "true", "false", "none", "True", "False", "None"})


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def render(value: Any, ctx: dict[str, Any]) -> Any:
    """Render every string of a (nested) runbook value. A lone ``{{ expr }}`` keeps its native type."""
    if isinstance(value, str):
        if not is_template(value):
            return value
        from opsflow.runbook import sandbox

        return sandbox.render_template(value, ctx)
    if isinstance(value, list | tuple):
        return [render(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: render(v, ctx) for k, v in value.items()}
    return value


def has_template(value: Any) -> bool:
    """Whether a (nested) runbook value — a model of one too — holds a template string anywhere: else it
    renders to itself."""
    if isinstance(value, str):
        return is_template(value)
    if hasattr(value, "__pydantic_fields_set__"):  # a model: its fields
        return has_template(value.__dict__)
    if isinstance(value, list | tuple):
        return any(has_template(v) for v in value)
    if isinstance(value, dict):
        return any(has_template(k) or has_template(v) for k, v in value.items())
    return False


def evaluate(expr: str | bool, ctx: dict[str, Any]) -> bool:
    """Evaluate a condition (``when``, ``changed_when``, ``failed_when``)."""
    if isinstance(expr, bool):
        return expr
    from opsflow.runbook import sandbox

    return sandbox.evaluate(expr, ctx)


def check_syntax(text: str, expression: bool = False) -> tuple[str | None, set[str]]:
    """Return (error message or None, undeclared top-level variable names)."""
    from opsflow.runbook import sandbox

    problem, names = sandbox.check(text, expression)
    return problem, set(names) - BUILTINS
