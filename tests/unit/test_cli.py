"""The CLI's front door: every listed command resolves, start-up imports stay light."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from opsflow.cli import COMMANDS, main
from tests.helpers import ROOT


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


# what a second `opsflow run` of an unchanged runbook without templates never imports: the caches of
# validated runbooks and resolved inventories serve it (issue 16: start-up of a run ~ the ssh it wraps)
RUN_NEVER = ("ansible", "ansible_runner", "nornir", "netmiko", "paramiko", "jinja2", "yaml", "rich", "testinfra",
             "sqlalchemy", "alembic", "icalendar", "croniter", "psycopg", "apprise", "xml.etree.ElementTree",
             "opsflow.events.models", "opsflow.schedule.loader", "opsflow.schedule.models", "opsflow.notify",
             "opsflow.approvals_notify", "opsflow.reviews.render", "opsflow.lab", "opsflow.runbook.sandbox")


def test_a_cached_run_imports_little_and_builds_no_model(tmp_path: Path) -> None:
    (tmp_path / "inv.yml").write_text("all:\n  hosts:\n    h1:\n      ansible_connection: local\n")
    (tmp_path / "rb.yaml").write_text("name: budget\ntargets: all\nsteps:\n  - name: t\n    local: [\"true\"]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSFLOW_", "ANSIBLE_")) and k != "CI"}
    env.update(OPSFLOW_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    argv = ["run", "rb.yaml", "-i", "inv.yml", "-q"]
    first = subprocess.run([sys.executable, "-m", "opsflow", *argv], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=120)
    assert first.returncode == 0, first.stderr  # fills the caches
    code = ("import sys\nfrom opsflow.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "from opsflow.runbook import models\n"
            f"print('HEAVY', sorted(m for m in {RUN_NEVER!r} if m in sys.modules))\n"
            "print('BUILT', sorted(n for n, c in vars(models).items() if isinstance(c, type) and "
            "issubclass(c, models._Model) and c.__pydantic_complete__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout and "BUILT []" in out.stdout, out.stdout
