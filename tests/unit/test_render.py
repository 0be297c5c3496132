from __future__ import annotations

import pytest

from opsflow.errors import TemplateError
from opsflow.redact import MASK, Redactor
from opsflow.runbook import render


def test_values_are_data_not_templates() -> None:
    ctx = {"msg": "{{ 7*7 }} $(id) `id`; rm -rf /"}
    assert render.render("echo {{ msg }}", ctx) == "echo {{ 7*7 }} $(id) `id`; rm -rf /"
    assert render.render(["{{ msg }}"], ctx) == ["{{ 7*7 }} $(id) `id`; rm -rf /"]


def test_single_expression_keeps_type() -> None:
    assert render.render("{{ n }}", {"n": 5}) == 5
    assert render.render("n={{ n }}", {"n": 5}) == "n=5"


def test_undefined_variable_names_it() -> None:
    with pytest.raises(TemplateError, match="'missing' is undefined"):
        render.render("x {{ missing }}", {})


def test_sandbox_refuses_escape() -> None:
    with pytest.raises(TemplateError, match="sandbox|unsafe"):
        render.render("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})


def test_conditions() -> None:
    assert render.evaluate("x > 2", {"x": 3}) is True
    assert render.evaluate("{{ x > 2 }}", {"x": 1}) is False
    assert render.evaluate(False, {}) is False


def test_check_syntax_reports_names() -> None:
    err, names = render.check_syntax("{% for i in items %}{{ i }}{{ y }}{% endfor %}")
    assert err is None and names == {"items", "y"}
    err, _ = render.check_syntax("{{ x ")
    assert err and "syntax" in err


def test_redactor() -> None:
    r = Redactor(["s3cret-value", "ab"])
    assert r.text("token=s3cret-value!") == f"token={MASK}!"
    assert r.value({"a": ["s3cret-value"]}) == {"a": [MASK]}
    assert r.text("ab stays") == "ab stays"  # too short to mask safely


def test_command_strings_keep_each_template_in_one_argument() -> None:
    from opsflow.runbook.models import split_command

    assert split_command("printf %s {{ value }}") == ["printf", "%s", "{{ value }}"]
    assert split_command('a "b c" x{{ v | default("q r") }}y') == ["a", "b c", 'x{{ v | default("q r") }}y']


def test_lone_undefined_is_a_template_error_in_conditions_too() -> None:
    with pytest.raises(TemplateError, match="nosuch"):
        render.evaluate("{{ host.nosuch }}", {"host": {}})
    with pytest.raises(TemplateError, match="nosuch"):
        render.render(["{{ host.nosuch }}"], {"host": {}})


def test_validation_compiles_like_a_run() -> None:
    assert render.check_syntax("{{ x | nosuch }}") == ("template syntax error: No filter named 'nosuch'.", set())
    assert render.check_syntax("x is nosuch", expression=True)[0] == "template syntax error: No test named 'nosuch'."
    loops = "{% for a in x %}" * 25 + "{% endfor %}" * 25
    problem, _ = render.check_syntax(loops)
    assert problem is not None and "too many statically nested blocks" in problem
    assert render.check_syntax("{{ a }} {% for b in c %}{{ b }}{% endfor %}") == (None, {"a", "c"})
