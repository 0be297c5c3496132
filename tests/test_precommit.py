"""opsflow in CI: the `opsflow-validate` pre-commit hook run by the real `pre-commit`, and the README's CI examples.

pre-commit clones this repository at its committed HEAD and builds the hook's Python environment
(``pip install`` of opsflow and its dependencies: about 40 s with pip's cache warm); the tests share
one scratch repository and one ``PRE_COMMIT_HOME``, so it is built once. (`pre-commit try-repo`
would build it again on every call: it keeps no store.)
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
import yaml

from opsflow.cli import main
from tests.helpers import ROOT

pytestmark = pytest.mark.timeout(300)

OK = """\
name: ok
targets: all
steps:
  - name: hello
    local: [echo, hi]
"""
BAD = """\
name: bad
targets: all
steps:
  - name: hello
    local: [echo, hi]
    retries: many
"""
BAD_AT = "runbooks/bad.yaml:6:5: steps.0.retries:"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: pre-commit installs hooks from a git repository")
    cache = tmp_path_factory.mktemp("pre-commit-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSFLOW_", "GIT_", "PRE_COMMIT"))}
    env.update(PRE_COMMIT_HOME=str(cache), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1",
               GIT_CONFIG_GLOBAL=os.devnull)  # no user git config (signing, hooks path, templates) gets in
    return env


@pytest.fixture(scope="module")
def rev(env: dict[str, str]) -> str:
    """The committed HEAD, which pre-commit clones; it must hold the hook definition."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    shown = subprocess.run(["git", "cat-file", "-e", "HEAD:.pre-commit-hooks.yaml"], cwd=ROOT, env=env)
    assert shown.returncode == 0, ".pre-commit-hooks.yaml is not committed: pre-commit only sees commits"
    return head.stdout.strip()


def _run(args: list[str], repo: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=240)


def _pre_commit(*args: str) -> list[str]:
    return [sys.executable, "-m", "pre_commit", *args]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str], rev: str) -> Path:
    """A repository of runbooks as a user has it: .pre-commit-config.yaml naming opsflow, `pre-commit install`."""
    repo = tmp_path_factory.mktemp("ops")
    (repo / "runbooks").mkdir()
    (repo / "runbooks" / "ok.yaml").write_text(OK)
    (repo / "runbooks" / "bad.yaml").write_text(BAD)
    (repo / "inventory.yml").write_text("all:\n  hosts:\n    web1: {}\n")  # YAML, but no runbook
    (repo / ".pre-commit-config.yaml").write_text(textwrap.dedent(f"""\
        repos:
          - repo: {ROOT}
            rev: {rev}
            hooks:
              - id: opsflow-validate
    """))
    _run(["git", "init", "-q", "-b", "main"], repo, env).check_returncode()
    _run(_pre_commit("install"), repo, env).check_returncode()
    _run(_pre_commit("install-hooks"), repo, env).check_returncode()  # builds the hook's environment once
    return repo


def test_commit_of_an_invalid_runbook_is_refused(repo: Path, env: dict[str, str]) -> None:
    _run(["git", "add", ".pre-commit-config.yaml", "runbooks/ok.yaml", "inventory.yml"], repo, env).check_returncode()
    first = _run(["git", "commit", "-q", "-m", "valid runbook"], repo, env)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out
    assert "opsflow validate" in out and "Passed" in out

    _run(["git", "add", "runbooks/bad.yaml"], repo, env).check_returncode()
    second = _run(["git", "commit", "-q", "-m", "invalid runbook"], repo, env)
    out = second.stdout + second.stderr
    assert second.returncode != 0, out
    assert "Failed" in out and BAD_AT in out
    log = _run(["git", "log", "--format=%s"], repo, env).stdout.splitlines()
    assert log == ["valid runbook"]  # the invalid runbook was not committed


def test_only_runbooks_are_checked(repo: Path, env: dict[str, str]) -> None:
    other = _run(_pre_commit("run", "--files", "inventory.yml", ".pre-commit-config.yaml"), repo, env)
    assert other.returncode == 0 and "(no files to check)Skipped" in other.stdout, other.stdout + other.stderr
    both = _run(_pre_commit("run", "--files", "runbooks/ok.yaml", "runbooks/bad.yaml", "inventory.yml"), repo, env)
    assert both.returncode == 1, both.stdout + both.stderr
    assert BAD_AT in both.stdout and "ok  runbooks/ok.yaml" in both.stdout
    assert "inventory.yml" not in both.stdout  # not under runbooks/: never given to the hook


def _ci_examples() -> list[object]:
    """The YAML blocks of the README's "In CI" section, parsed: GitHub Actions, GitLab CI, pre-commit."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## In CI\n", 1)[1].split("\n## ", 1)[0]
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.S)]


def _opsflow_argv(line: str) -> list[str] | None:
    words = shlex.split(line)
    return words[words.index("opsflow") + 1:] if "opsflow" in words else None


def _check_parses(argv: list[str]) -> None:
    """The command line is one the real CLI accepts: known command, known options, allowed values."""
    cmd: click.Command = main
    args = list(argv)
    name = "opsflow"
    while isinstance(cmd, click.Group):
        name = args.pop(0)
        sub = cmd.get_command(click.Context(cmd), name)
        assert sub is not None, f"no command {name!r} in {argv}"
        cmd = sub
    cmd.make_context(name, args)  # raises a click.UsageError on an unknown option or a bad value


def _check_pipeline(lines: list[str], junit_glob: str) -> None:
    commands = [argv for argv in map(_opsflow_argv, lines) if argv]
    for argv in commands:
        _check_parses(argv)
    assert any(argv[0] == "validate" for argv in commands)
    assert next(argv[:2] for argv in commands if argv[0] == "lab") == ["lab", "up"]
    runs = [argv for argv in commands if argv[0] == "run"]
    assert runs and all("--check" in argv and "--junit" in argv for argv in runs)
    for argv in runs:
        assert fnmatch.fnmatch(argv[argv.index("--junit") + 1], junit_glob), (argv, junit_glob)


def test_readme_ci_examples() -> None:
    github, gitlab, pre_commit = _ci_examples()
    assert isinstance(github, dict) and isinstance(gitlab, dict) and isinstance(pre_commit, dict)

    (job,) = github["jobs"].values()
    steps = job["steps"]
    published = [s for s in steps if str(s.get("uses", "")).startswith(("actions/upload-artifact",
                                                                           "mikepenz/action-junit-report"))]
    assert len(published) == 2 and all(s.get("if") == "always()" for s in published)
    _check_pipeline([s["run"] for s in steps if "run" in s], published[1]["with"]["report_paths"])

    (gl_job,) = gitlab.values()
    assert gl_job["artifacts"]["when"] == "always"
    _check_pipeline(gl_job["script"], gl_job["artifacts"]["reports"]["junit"])
    assert [_opsflow_argv(line) for line in gl_job["after_script"]] == [["lab", "down", "--state-dir", ".lab"]]

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (repo,) = pre_commit["repos"]
    assert {h["id"] for h in repo["hooks"]} <= {h["id"] for h in hooks} == {"opsflow-validate"}
