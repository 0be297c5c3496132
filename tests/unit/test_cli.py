"""The CLI's front door: every listed command resolves, start-up imports stay light."""

from __future__ import annotations

import subprocess
import sys

import click

from opsflow.cli import COMMANDS, main


def test_every_listed_command_resolves() -> None:
    ctx = click.Context(main)
    for name in COMMANDS:
        cmd = main.get_command(ctx, name)
        assert isinstance(cmd, click.Command), name


def test_help_does_not_import_heavy_modules() -> None:
    code = ("import sys; from opsflow.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('ansible', 'ansible_runner', 'nornir', 'netmiko', 'paramiko', 'pydantic', "
            "'jinja2', 'rich', 'opsflow.lab', 'testinfra', 'sqlalchemy', 'alembic') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out, out
