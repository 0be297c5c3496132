"""Crash tests: ``opsflow run`` SIGKILLed at seeded random moments leaves nothing behind.

Each iteration starts a real run against the lab (a host lock, a secret param, a remote
command, an ansible step whose extra vars hold the secret, a local step), kills it
outright at a random moment, then lets the next opsflow command start. After that start:
no run is left ``running`` or ``waiting``, no lock is held, the killed process's work
directory is gone, the store is consistent, and the secret is nowhere on disk.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import Cli, write_runbook

pytestmark = pytest.mark.lab

ITERATIONS = int(os.environ.get("OPSFLOW_CRASH_ITERATIONS", "24"))
SEED = int(os.environ.get("OPSFLOW_CRASH_SEED", "20261202"))


def test_sigkilled_runs_leave_nothing_behind(cli: Cli, tmp_path: Path) -> None:
    canary = "CRASH-" + secrets.token_hex(8)
    (tmp_path / "slow.yml").write_text("""\
- hosts: all
  gather_facts: false
  tasks:
    - name: use the secret
      ansible.builtin.command: "sh -c 'sleep 0.3; echo {{ token | length }}'"
""")
    rb = write_runbook(tmp_path, "crashy", """\
        name: crashy
        targets: srv1:srv2
        lock: {scope: host, wait: 30}
        params:
          token: {type: str, secret: true}
        steps:
          - name: remote
            command: [sh, -c, 'sleep 0.2; echo "$0" > /dev/null', "{{ token }}"]
          - name: playbook
            ansible: {playbook: slow.yml, extra_vars: {token: "{{ token }}"}}
          - name: local
            local: [sh, -c, 'sleep 0.2']
    """)
    rng = random.Random(SEED)
    killed_at: list[float] = []
    outcomes: dict[str, int] = {}
    pids: list[int] = []
    for i in range(ITERATIONS):
        proc = cli.popen("run", str(rb), "-e", f"token={canary}", "-q")
        delay = rng.uniform(0.05, 4.0)
        try:
            proc.wait(timeout=delay)
        except Exception:  # noqa: BLE001 - still running: kill it where it stands
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_at.append(delay)
        pid = proc.pid
        assert proc.stdout is not None and proc.stderr is not None
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        assert "Traceback" not in err, err
        cli.run("history", "--json", check_rc=0)  # the next start reaps what the kill left
        rows = cli.query("SELECT status, COUNT(*) FROM runs GROUP BY status")
        stuck = {s: n for s, n in rows if s in ("running", "waiting")}
        assert not stuck, f"iteration {i}: runs left {stuck}"
        assert cli.query("SELECT resource, run_id FROM locks") == [], f"iteration {i}: a lock is left"
        pids.append(pid)
        for s, n in rows:
            outcomes[s] = n
    assert killed_at, "no run was killed: the delays never fell inside a run"
    # a run killed before it was recorded leaves no row: nothing else may be missing or stuck
    assert outcomes.get("abandoned", 0) >= 1 and sum(outcomes.values()) <= ITERATIONS, outcomes
    with sqlite3.connect(cli.db) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        orphans = db.execute("SELECT COUNT(*) FROM results WHERE run_id NOT IN (SELECT id FROM runs)").fetchone()
        assert orphans == (0,)
    # a child of a killed run (ansible-playbook, hung up when its parent died) may still write for a
    # moment after the start that reaped its directory; the next start removes what it wrote
    time.sleep(1.0)
    cli.run("history", check_rc=0)
    left = [d for pid in pids for d in Path(tempfile.gettempdir()).glob(f"ofr-{pid}-*")]
    assert not left, f"work directories left: {left}"
    leaks = [p for root in (cli.home, Path(tempfile.gettempdir())) for p in _secret_files(root, canary)]
    assert not leaks, f"secret on disk: {leaks}"


def _secret_files(root: Path, canary: str) -> list[Path]:
    """Files under ``root`` that hold the canary (the temporary directory: only opsflow's work dirs)."""
    if root == Path(tempfile.gettempdir()):
        candidates = [p for d in root.glob("ofr-*") for p in d.rglob("*")]
    else:
        candidates = list(root.rglob("*"))
    found = []
    for path in candidates:
        try:
            if path.is_file() and not path.is_symlink() and canary.encode() in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found
