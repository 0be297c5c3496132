"""The `opsflow-validate` pre-commit hook (.pre-commit-hooks.yaml), run by the real `pre-commit`.

pre-commit clones this repository at its committed HEAD and builds the hook's Python environment
(``pip install`` of opsflow and its dependencies: about 40 s with pip's cache warm); the tests share
one scratch repository and one ``PRE_COMMIT_HOME``, so it is built once. (`pre-commit try-repo`
would build it again on every call: it keeps no store.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

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
