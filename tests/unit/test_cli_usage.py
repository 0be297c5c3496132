"""Mistakes on the command line are exit 2 with what was meant: allowed values, the closest command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from opsflow.cli import COMMANDS, main

ENUMERATED = {"status", "trigger", "format", "mode", "phase", "kind"}  # options whose values are a fixed set


def _invoke(tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"OPSFLOW_HOME": str(tmp_path), "OPSFLOW_DB": None,
                                                      "CI": None})
    return result.exit_code, result.output


def test_unknown_status_lists_the_allowed_values(tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "history", "--status", "bogus")
    assert code == 2, out
    assert "'bogus' is not one of" in out
    for status in ("running", "waiting", "succeeded", "partial", "failed", "canceled", "abandoned"):
        assert f"'{status}'" in out


def test_values_are_case_sensitive(tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "history", "--status", "Failed")
    assert code == 2 and "'Failed' is not one of" in out, out


def test_a_known_status_filters(tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "history", "--status", "failed", "--json")
    assert (code, out.strip()) == (0, "[]")


@pytest.mark.parametrize(("args", "bad"), [
    (["run", "x.yaml", "--trigger", "cron"], "'cron' is not one of 'cli', 'ci', 'event', 'schedule', 'api'"),
    (["lab", "fault", "srv1", "sideways"], "'sideways' is not one of 'down', 'drop', 'reject', 'up'"),
    (["history", "--since", "yesterday"], "--since 'yesterday': expected a duration like 30m"),
])
def test_other_bad_values_are_exit_2(tmp_path: Path, args: list[str], bad: str) -> None:
    code, out = _invoke(tmp_path, *args)
    assert code == 2 and bad in out, out


def _options(cmd: click.Command, path: str) -> list[tuple[str, click.Parameter]]:
    found = [(f"{path} {p.name}", p) for p in cmd.params]
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            found += _options(sub, f"{path} {name}")
    return found


def test_every_enumerated_option_is_a_case_sensitive_choice() -> None:
    ctx = click.Context(main)
    params = [op for name in COMMANDS for op in _options(main.get_command(ctx, name) or main, name)]
    enumerated = [(where, p) for where, p in params if p.name in ENUMERATED]
    assert {where for where, _ in enumerated} >= {"run trigger", "history status", "lab fault mode"}
    loose = [where for where, p in enumerated if not (isinstance(p.type, click.Choice) and p.type.case_sensitive)]
    assert not loose, f"free-text options with a fixed set of values: {loose}"


@pytest.mark.parametrize(("args", "typo", "meant"), [
    (["hisotry"], "hisotry", "history"),
    (["valdiate", "runbooks/"], "valdiate", "validate"),
    (["lab", "dwon"], "dwon", "down"),
])
def test_a_mistyped_command_gets_a_did_you_mean(tmp_path: Path, args: list[str], typo: str, meant: str) -> None:
    code, out = _invoke(tmp_path, *args)
    assert code == 2, out
    assert f"No such command '{typo}'; did you mean '{meant}'?" in out


def test_an_unknown_command_lists_the_commands(tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "frobnicate")
    assert code == 2 and "No such command 'frobnicate'." in out and "did you mean" not in out, out
    assert f"(commands: {', '.join(sorted(COMMANDS))})" in out


def test_an_unknown_command_is_escaped_for_the_terminal(tmp_path: Path) -> None:
    code, out = _invoke(tmp_path, "\x1b]0;pwned\x07")
    assert code == 2 and "\x1b" not in out and "\x07" not in out and "\\x1b]0;pwned\\x07" in out, out


def test_a_mistyped_command_imports_no_command_module() -> None:
    code = ("import sys; from opsflow.cli import main\n"
            "try:\n    main(['hisotry'])\nexcept SystemExit as e:\n    print('RC', e.code)\n"
            "print('LOADED', sorted(m for m in sys.modules if m.startswith('opsflow.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "RC 2" in out.stdout and "LOADED []" in out.stdout, out.stdout + out.stderr
    assert "did you mean 'history'?" in out.stderr
