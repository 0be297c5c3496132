"""Settings: defaults → project file → environment → command line, one order, tested key by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsflow.errors import UsageError
from opsflow.settings import resolve


def test_defaults(tmp_path: Path) -> None:
    s = resolve(cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert s.project_file is None
    assert s.db == str(Path.home() / ".opsflow" / "opsflow.db") and s.inventory == "inventory"
    assert set(s.sources.values()) == {"default"}


def test_each_layer_overrides_the_one_before(tmp_path: Path) -> None:
    (tmp_path / "opsflow.toml").write_text('home = "state"\ninventory = "inv/hosts.yml"\ndb = "from-file.db"\n'
                                           'runbooks = "rb"\n[daemon]\nlisten = "127.0.0.1:9999"\n')
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    s = resolve(cwd=sub, env={})
    assert s.project_file == tmp_path / "opsflow.toml"
    assert s.home == tmp_path / "state" and s.inventory == str(tmp_path / "inv/hosts.yml")
    assert s.db == "from-file.db" and s.runbooks == str(tmp_path / "rb")
    assert s.backups == tmp_path / "state" / "backups"  # derived from home when not set
    assert s.daemon == {"listen": "127.0.0.1:9999"}
    env = {"OPSFLOW_DB": "postgresql://u:pw@db/ops", "OPSFLOW_INVENTORY": "/etc/ansible/hosts"}
    s = resolve(cwd=sub, env=env)
    assert s.db == env["OPSFLOW_DB"] and s.sources["db"] == "OPSFLOW_DB"
    assert s.inventory == "/etc/ansible/hosts" and s.sources["runbooks"] == str(tmp_path / "opsflow.toml")
    assert "pw" not in str(s.as_dict())
    s = resolve({"db": "cli.db", "inventory": None}, cwd=sub, env=env)
    assert s.db == "cli.db" and s.sources["db"] == "command line"
    assert s.inventory == "/etc/ansible/hosts"  # an option not given leaves the layer below


def test_pyproject_tool_table_and_explicit_project(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.opsflow]\ninventory = "hosts.ini"\n')
    assert resolve(cwd=tmp_path, env={}).inventory == str(tmp_path / "hosts.ini")
    other = tmp_path / "elsewhere.toml"
    other.write_text('inventory = "other.yml"\n')
    assert resolve(cwd=tmp_path, env={"OPSFLOW_PROJECT": str(other)}).inventory == str(tmp_path / "other.yml")
    assert resolve(cwd=tmp_path, env={"OPSFLOW_PROJECT": "none"}).project_file is None


def test_project_file_without_opsflow_table_is_passed_over(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert resolve(cwd=tmp_path, env={}).project_file is None


@pytest.mark.parametrize("text, message", [
    ("inventroy = 'x'\n", "unknown setting(s) inventroy"),
    ("db = 5\n", "'db' must be a string"),
    ("daemon = 'x'\n", "[daemon] must be a table"),
    ("db = \n", "opsflow.toml"),
])
def test_bad_project_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "opsflow.toml").write_text(text)
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        resolve(cwd=tmp_path, env={})


def test_project_file_gives_the_daemon_its_defaults_below_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.helpers import ROOT

    (tmp_path / "opsflow.toml").write_text('runbooks = "rb"\n[daemon]\nworkers = 7\n')
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}

    def opsflow(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsflow", *args], capture_output=True, text=True,
                              cwd=tmp_path, env={**env, "COLUMNS": "200"})

    for command in ("daemon", "serve"):  # [daemon] sets up both
        shown = "".join(opsflow(command, "--help").stdout.split())  # help text wraps: compare without spaces
        assert "[default:7;1<=x<=256]" in shown and f"[default:{tmp_path / 'rb'}]" in shown, command
    (tmp_path / "opsflow.toml").write_text("[daemon]\nwrokers = 7\n")
    bad = opsflow("daemon", "--help")
    assert bad.returncode == 2 and "unknown setting(s) wrokers" in bad.stderr and "Traceback" not in bad.stderr


def test_notify_table_is_read_and_never_shown_with_its_urls(tmp_path: Path) -> None:
    (tmp_path / "opsflow.toml").write_text('[notify]\ncontacts = {ops = ["mailtos://u:S3cret@mail.example.com"]}\n'
                                           'routes = [{to = "ops", on = ["run_failed", "missed"]}]\n')
    s = resolve(cwd=tmp_path, env={})
    assert s.notify["routes"] == [{"to": "ops", "on": ["run_failed", "missed"]}]
    assert s.notify["contacts"]["ops"] == ["mailtos://u:S3cret@mail.example.com"]
    assert "S3cret" not in str(s.as_dict()) and s.as_dict()["notify"] == {"contacts": ["ops"], "routes": 1}
