"""The Jinja2 sandbox behind :mod:`opsflow.runbook.render`: compiling, rendering and checking templates.

``render`` imports this module on the first template it meets: a run whose runbook holds none never
imports Jinja2.
"""

from __future__ import annotations

import operator
import re
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, UndefinedError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from opsflow.errors import TemplateError

MAX_TEMPLATE_CHARS = 64 * 1024  # one template string
MAX_TEMPLATE_DEPTH = 32  # brackets and block tags ({% if %}, {% for %} …) inside each other
MAX_RESULT_ITEMS = 1_000_000  # characters or items of a string/list made by *
MAX_POWER_BITS = 100_000  # bits of an integer made by **

_OPENING_TAGS = frozenset({"if", "for", "macro", "call", "filter", "with", "block", "autoescape", "trans", "raw"})


class _Env(ImmutableSandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` bounded (they can build gigabytes from a few characters)."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "**":
            if (isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1
                    and right * left.bit_length() > MAX_POWER_BITS):
                raise SecurityError(f"{left} ** {right} is too large (more than {MAX_POWER_BITS} bits)")
            return operator.pow(left, right)
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int) and times * len(seq) > MAX_RESULT_ITEMS:
                raise SecurityError(f"repeating a {type(seq).__name__} {times} times is too large "
                                    f"(more than {MAX_RESULT_ITEMS} items)")
        return operator.mul(left, right)


_ENV = _Env(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_SINGLE = re.compile(r"^\{\{(?P<expr>(?:(?!\}\}|\{\{|\{%).)*)\}\}$", re.S)


@lru_cache(maxsize=4096)
def _template(source: str) -> Any:
    return _ENV.from_string(source)


@lru_cache(maxsize=4096)
def _expression(source: str) -> Any:
    return _ENV.compile_expression(source, undefined_to_none=False)


def _compiled(text: str, expression: bool) -> tuple[Any, bool]:
    """(compiled template or expression, is an expression) — the one way both validation and runs compile."""
    single = _SINGLE.match(text.strip())
    if expression:
        return _expression(single["expr"] if single else text.strip()), True
    if single:
        return _expression(single["expr"]), True
    return _template(text), False


def _explain(exc: BaseException, source: str) -> TemplateError:
    shown = source if len(source) <= 200 else source[:200] + "…"
    if isinstance(exc, UndefinedError):
        return TemplateError(f"undefined variable in {shown!r}: {exc.message}")
    if isinstance(exc, SecurityError):
        return TemplateError(f"unsafe template {shown!r} refused by the sandbox: {exc}")
    if isinstance(exc, TemplateSyntaxError):
        return TemplateError(f"template syntax error in {shown!r}: {exc.message}")
    if isinstance(exc, RecursionError):
        return TemplateError(f"cannot render {shown!r}: nested too deeply")
    return TemplateError(f"cannot render {shown!r}: {type(exc).__name__}: {exc}")


def _defined(value: Any, depth: int = 0) -> Any:
    """A native result must not hold an undefined value: it would fail later, far from its template."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # raises UndefinedError naming the variable
    if depth < 16:
        if isinstance(value, dict):
            for k, v in value.items():
                _defined(k, depth + 1)
                _defined(v, depth + 1)
        elif isinstance(value, list | tuple | set | frozenset):
            for v in value:
                _defined(v, depth + 1)
    return value


def render_template(value: str, ctx: dict[str, Any]) -> Any:
    """Render one template string (a lone ``{{ expr }}`` keeps its native type)."""
    try:
        compiled, native = _compiled(value, expression=False)
        return _defined(compiled(**ctx)) if native else compiled.render(**ctx)
    except Exception as exc:  # noqa: BLE001 - every Jinja failure becomes a TemplateError
        raise _explain(exc, value) from exc


def evaluate(expr: str, ctx: dict[str, Any]) -> bool:
    """Evaluate a condition expression."""
    try:
        compiled, _ = _compiled(expr, expression=True)
        return bool(compiled(**ctx))
    except Exception as exc:  # noqa: BLE001
        raise _explain(exc, expr) from exc


def _nesting(source: str) -> int:
    """How deep brackets and block tags go in a template (by its tokens: no recursion)."""
    depth = deepest = 0
    after_block_begin = False
    for _, kind, value in _ENV.lex(source):
        if kind == "whitespace":
            continue
        if kind == "operator" and value in "([{":
            depth += 1
        elif kind == "operator" and value in ")]}":
            depth = max(depth - 1, 0)
        elif kind == "name" and after_block_begin:
            if value in _OPENING_TAGS:
                depth += 1
            elif value.startswith("end"):
                depth = max(depth - 1, 0)
        deepest = max(deepest, depth)
        after_block_begin = kind == "block_begin"
    return deepest


@lru_cache(maxsize=4096)
def check(text: str, expression: bool) -> tuple[str | None, frozenset[str]]:
    if len(text) > MAX_TEMPLATE_CHARS:
        return f"template of {len(text)} characters; the limit is {MAX_TEMPLATE_CHARS}", frozenset()
    source = text
    if expression:
        single = _SINGLE.match(text.strip())
        source = "{{ " + (single["expr"] if single else text) + " }}"
    try:
        depth = _nesting(source)
        if depth > MAX_TEMPLATE_DEPTH:
            return (f"template nested {depth} levels deep (brackets, {{% if %}}, {{% for %}} …); the limit is "
                    f"{MAX_TEMPLATE_DEPTH}: split it, or compute the value in steps"), frozenset()
        _compiled(text, expression)  # compile exactly as a run will: unknown filters and tests fail here
        ast = _ENV.parse(source)
        names = meta.find_undeclared_variables(ast)
        # loop variables and set targets are declared inside the template
        declared = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    except TemplateSyntaxError as exc:  # TemplateAssertionError too: an unknown filter or test
        return f"template syntax error: {exc.message}", frozenset()
    except SecurityError as exc:
        return f"template refused by the sandbox: {exc}", frozenset()
    except RecursionError:
        return "template nested too deeply to compile; split it, or compute the value in steps", frozenset()
    except Exception as exc:  # noqa: BLE001 - MemoryError, a Python SyntaxError of the generated code …
        return f"template cannot be compiled: {type(exc).__name__}: {exc}", frozenset()
    return None, frozenset(set(names) - declared)
