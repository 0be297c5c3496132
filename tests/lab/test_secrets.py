"""Secret canaries: every action kind, passing and failing, real and --check, never leaks a secret.

A canary secret param (and an inventory password) flows into every action kind and
into every failure path known to have leaked before: verify details, template errors in
``when`` / ``changed_when`` / ``failed_when``, type and ``choices`` errors of a secret
param, device CLI errors echoing the command, ansible extra vars, a sub-runbook that does
not declare its param secret, an approval message. Then the store (with its WAL), all of
``$OPSFLOW_HOME``, the temporary work directories, every output and the JUnit files are
searched for the canaries.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Cli, write_runbook

pytestmark = pytest.mark.lab


def _files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def _leaks(canaries: list[str], paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found += [f"{path}: {c}" for c in canaries if c.encode() in data]
    return found


@pytest.fixture
def canary_inventory(tmp_path: Path, lab_inventory: Path) -> tuple[Path, str]:
    """The lab inventory with a become password: an inventory secret, masked like a secret param."""
    password = "INVPW-" + secrets.token_hex(8)
    inv = yaml.safe_load(lab_inventory.read_text())
    inv["all"]["vars"]["ansible_become_password"] = password
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inv))
    return path, password


def _leaky_runbook(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "leak.yml").write_text("""\
- hosts: all
  gather_facts: false
  tasks:
    - name: print the secret and fail
      ansible.builtin.shell: "echo {{ canary }}; echo {{ canary }} >&2; exit 3"
""")
    write_runbook(directory, "child", """\
        name: child
        targets: all
        params:
          value: {type: str}
        steps:
          - name: echo the value and fail
            local: [sh, -c, 'echo "child got $0"; exit 1', "{{ value }}"]
    """)
    return write_runbook(directory, "leak", """\
        name: leak
        targets: srv1:rtr1
        params:
          canary: {type: str, secret: true}
        steps:
          - name: local prints it
            hosts: srv1
            local: [sh, -c, 'echo "local $0"; echo "local err $0" >&2; exit 1', "{{ canary }}"]
            ignore_errors: true
          - name: command prints it
            hosts: srv1
            command: [sh, -c, 'echo "remote $0"; echo "remote err $0" >&2; exit 1', "{{ canary }}"]
            ignore_errors: true
          - name: when names it
            hosts: srv1
            when: "host.vars[canary]"
            command: ["true"]
            ignore_errors: true
          - name: failed_when names it
            hosts: srv1
            command: ["true"]
            failed_when: "result[canary] == 1"
            ignore_errors: true
          - name: changed_when names it
            hosts: srv1
            command: ["true"]
            changed_when: "result[canary]"
            ignore_errors: true
          - name: verify on a server
            hosts: srv1
            verify:
              - file: "/nonexistent/{{ canary }}"
                exists: true
              - command: "echo {{ canary }}; exit 4"
                rc: 0
            ignore_errors: true
          - name: ansible prints it
            hosts: srv1
            ansible: {playbook: leak.yml, extra_vars: {canary: "{{ canary }}"}}
            ignore_errors: true
          - name: backup of a path naming it
            hosts: srv1
            backup: {paths: ["/nonexistent/{{ canary }}"]}
            ignore_errors: true
          - name: restore of a version naming it
            hosts: srv1
            restore: {version: "{{ canary }}"}
            ignore_errors: true
          - name: device command naming it
            hosts: rtr1
            network.command: {commands: ["show {{ canary }}"]}
            ignore_errors: true
          - name: device config naming it
            hosts: rtr1
            network.config: {lines: ["no-such-command {{ canary }}"]}
            ignore_errors: true
          - name: device verify naming it
            hosts: rtr1
            verify:
              - show: "show {{ canary }}"
                contains: "{{ canary }}"
            ignore_errors: true
          - name: device backup
            hosts: rtr1
            network.backup: {}
            ignore_errors: true
          - name: device restore of a version naming it
            hosts: rtr1
            network.restore: {version: "{{ canary }}"}
            ignore_errors: true
          - name: sub-runbook that does not know it is secret
            hosts: srv1
            runbook: {path: child.yaml, params: {value: "{{ canary }}"}}
            ignore_errors: true
          - name: approval naming it
            hosts: srv1
            approve: {message: "go ahead with {{ canary }}?", timeout: 1}
    """)


def test_no_secret_leaves_any_action(cli: Cli, tmp_path: Path, canary_inventory: tuple[Path, str]) -> None:
    inventory, password = canary_inventory
    canary = "CANARY-" + secrets.token_hex(8)
    canaries = [canary, password]
    rb = _leaky_runbook(tmp_path / "rb")
    outputs: list[str] = []
    runs: list[dict[str, Any]] = []
    for mode in ([], ["--check"]):
        junit = tmp_path / f"junit{len(runs)}.xml"
        proc = cli.run("run", str(rb), "-i", str(inventory), "-e", f"canary={canary}", *mode, "--json",
                       "--junit", str(junit))
        assert proc.returncode == 1, proc.stderr
        outputs += [proc.stdout, proc.stderr, junit.read_text()]
        runs.append(json.loads(proc.stdout))
        progress = cli.run("run", str(rb), "-i", str(inventory), "-e", f"canary={canary}", *mode)
        outputs += [progress.stdout, progress.stderr]
    real = runs[0]
    failed = {r["step"] for r in real["results"] if r["status"] == "failed"}
    # every failure path was really taken: the canary would have been there to leak
    for step in ("local prints it", "command prints it", "when names it", "failed_when names it",
                 "changed_when names it", "verify on a server", "ansible prints it", "backup of a path naming it",
                 "restore of a version naming it", "device command naming it", "device config naming it",
                 "device verify naming it", "device restore of a version naming it",
                 "sub-runbook that does not know it is secret", "approval naming it"):
        assert step in failed, (step, [(r["step"], r["status"], r["error"]) for r in real["results"]])
    assert "********" in json.dumps(real)
    for run in runs:
        for args in (("show", run["id"], "-v"), ("show", run["id"], "--json")):
            shown = cli.run(*args, check_rc=0)
            outputs += [shown.stdout, shown.stderr]
    history = cli.run("history", "--json", check_rc=0)
    outputs.append(history.stdout)
    # secret params with a bad type or a value outside their choices
    bad = write_runbook(tmp_path / "rb", "typed", """\
        name: typed
        targets: srv1
        params:
          pin: {type: int, secret: true}
          word: {type: str, secret: true, choices: [alpha, beta]}
        steps:
          - name: nothing
            command: ["true"]
    """)
    typed = cli.run("run", str(bad), "-e", f"pin={canary}", "-e", f"word={canary}")
    assert typed.returncode == 2 and "secret, not shown" in typed.stderr, typed.stderr
    outputs += [typed.stdout, typed.stderr]

    leaks = [text[max(0, text.find(c) - 300):text.find(c) + 60] for c in canaries for text in outputs if c in text]
    assert not leaks, f"canary in an output: {leaks}"
    assert not _leaks(canaries, _files_under(cli.home)), "canary under OPSFLOW_HOME (store, WAL, backups)"
    workdirs = [p for d in Path(tempfile.gettempdir()).glob("ofr-*") for p in _files_under(d)]
    assert not _leaks(canaries, workdirs), "canary in a work directory"
    assert list(cli.home.glob("opsflow.db*")), "the store was written"
