"""The benchmark suite runs end to end at --quick size (it measures; this test asserts no time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.lab

BENCHES = {"step", "fanout", "ansible", "network", "store", "cli", "events", "backups", "schedule", "reports", "dispatch"}


def _lab_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the benchmark lab needs root (Linux namespaces)"
    from opsflow.errors import EnvironmentProblem
    from opsflow.lab import preflight

    try:
        preflight.check()
    except EnvironmentProblem as exc:
        return f"lab unavailable: {exc}"
    return None


def test_suite_runs_end_to_end_quick(tmp_path: Path) -> None:
    reason = _lab_unavailable()
    if reason:
        pytest.skip(reason)
    out, readme = tmp_path / "results", tmp_path / "README.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_")}
    env["PYTHONPATH"] = str(ROOT)
    # its own lab name and state dir: a full bench lab left up with --keep-lab is not touched
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out), "--readme", str(readme),
         "--lab-name", "bench-quick", "--state-dir", str(tmp_path / "lab")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"rc {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    records = list(out.glob("*-quick.json"))
    assert len(records) == 1
    doc = json.loads(records[0].read_text())
    assert doc["size"] == "quick" and not doc["errors"]
    assert {"cores", "memory_gib", "versions"} <= set(doc["machine"])
    assert {f["bench"] for f in doc["figures"]} == BENCHES
    assert all(f["opsflow"] is not None for f in doc["figures"])
    assert doc["pending"] == []

    table_head = "| # | figure | opsflow p50 (tail) | baseline |"
    assert table_head in proc.stdout
    text = readme.read_text()
    assert table_head in text and "<!-- bench:table:start -->" in text
