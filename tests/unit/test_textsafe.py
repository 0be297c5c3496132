"""Text from targets shown safely: control characters escaped, markup never interpreted, XML well-formed."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from opsflow.cli.render import junit, show_run
from opsflow.textsafe import for_terminal, for_xml, markup_literal
from tests.helpers import Cli, write_runbook

HOSTILE = "\x1b]0;pwned\x07\x1b[2J[link=http://evil]x[/link]"
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_terminal_text_shows_controls_as_escapes() -> None:
    assert for_terminal(HOSTILE) == "\\x1b]0;pwned\\x07\\x1b[2J[link=http://evil]x[/link]"
    assert for_terminal("a\x00b\x7fc\x9bd\x1b") == "a\\x00b\\x7fc\\x9bd\\x1b"
    assert for_terminal("line 1\r\nline\t2\n") == "line 1\nline\t2\n"  # CRLF is a line end, tabs stay
    assert for_terminal("rm -rf /\rls") == "rm -rf /\nls"  # a lone CR cannot hide what came before it
    assert for_terminal("plain ünïcode → ok") == "plain ünïcode → ok"
    assert for_terminal(42) == "42"


@given(st.text())
def test_terminal_text_never_holds_a_control_character(text: str) -> None:
    out = for_terminal(text)
    assert not RAW_CONTROL.search(out)
    if not RAW_CONTROL.search(text):
        assert out == text  # clean text is untouched


@given(st.text())
def test_xml_text_is_always_well_formed(text: str) -> None:
    el = ET.Element("x", attr=for_xml(text))
    el.text = for_xml(text)
    parsed = ET.fromstring(ET.tostring(el))
    assert not RAW_CONTROL.search(parsed.text or "") and not RAW_CONTROL.search(parsed.get("attr") or "")


def _render(markup: str) -> str:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system=None, emoji=False).print(markup)
    return out.getvalue()


def test_markup_in_data_stays_text() -> None:
    shown = _render(f"[bold]output:[/] {markup_literal(HOSTILE)}")
    assert "[link=http://evil]x[/link]" in shown
    assert "\x1b]8;" not in shown  # no hyperlink
    assert "\x07" not in shown and "\x1b]0;" not in shown and "\x1b[2J" not in shown
    assert _render(markup_literal("[bold]x[/bold] \\[y]")).strip() == "[bold]x[/bold] \\[y]"


def _run_with_output(stdout: str, error: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    record = {"id": "20250101-000000-abcdef", "runbook": "rb[link=http://evil]", "status": "failed",
              "trigger": "cli", "started_by": "me\x1b[2J", "duration": 1.0, "runbook_hash": "0" * 64,
              "started_at": 0.0, "params": {"p": HOSTILE}, "error": error}
    results = [{"step": "s\x07", "host": "srv1", "step_index": 0, "phase": "main", "status": "failed", "rc": 1,
                "duration": 0.5, "stdout": stdout, "stderr": "\x00err", "error": error, "error_class": "CommandFailed",
                "data": {}}]
    return record, results


def test_junit_is_well_formed_with_control_characters_in_output() -> None:
    record, results = _run_with_output("red \x1b[31mtext\x00 bell\x07 \ud800 end", "bad \x1b[2J")
    root = ET.fromstring(junit(record, results))
    texts = [t for el in root.iter() for t in (el.text or "", *el.attrib.values())]
    assert not any(RAW_CONTROL.search(t) for t in texts)
    case = root.find("testsuite/testcase")
    assert case is not None and "red \\x1b[31mtext\\x00 bell\\x07" in (case.findtext("system-out") or "")


def test_show_writes_no_control_character_and_no_markup() -> None:
    record, results = _run_with_output(HOSTILE, HOSTILE)
    out = io.StringIO()
    show_run(out, record, results, verbose=True)
    text = out.getvalue()
    assert not RAW_CONTROL.search(text.replace("\n", "")), text
    assert "[link=http://evil]x[/link]" in text and "rb[link=http://evil]" in text


def test_hostile_output_of_a_local_step_reaches_no_terminal(tmp_path: Path) -> None:
    """The real CLI: a step prints a title-setting, screen-clearing, hyperlinking text."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    web1: {ansible_host: 127.0.0.1}\n")
    rb = write_runbook(tmp_path, "hostile", r"""
        name: hostile
        targets: web1
        steps:
          - name: print [link=http://evil]x[/link]
            local: [printf, "%s", "\e]0;pwned\a\e[2J[link=http://evil]x[/link]"]
    """)
    cli = Cli(home=tmp_path / "home", inventory=inventory)
    junit_file = tmp_path / "junit.xml"
    ran = cli.run("run", str(rb), "--junit", str(junit_file), check_rc=0)
    run_id = cli.history()[0]["id"]
    record = json.loads(cli.run("show", run_id, "--json", check_rc=0).stdout)
    assert record["results"][0]["stdout"] == HOSTILE  # the record keeps the data as it was

    shown = cli.run("show", run_id, check_rc=0).stdout
    verbose = cli.run("show", run_id, "-v", check_rc=0).stdout
    history = cli.run("history", check_rc=0).stdout
    for name, out in (("run", ran.stdout + ran.stderr), ("show", shown), ("show -v", verbose),
                      ("history", history)):
        assert "\x1b" not in out and "\x07" not in out, f"{name}: {out!r}"
    for name, out in (("run", ran.stderr), ("show", shown), ("show -v", verbose)):
        assert "[link=http://evil]" in out, f"{name}: {out!r}"
    assert "\\x1b]0;pwned\\x07\\x1b[2J[link=http://evil]x[/link]" in verbose
    case = ET.fromstring(junit_file.read_bytes()).find("testsuite/testcase")
    assert case is not None and "\\x1b[2J[link=http://evil]" in (case.findtext("system-out") or "")
