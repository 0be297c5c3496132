"""The library face: `opsflow.__all__` is exactly what works, and the API runs a runbook end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import opsflow
from tests.helpers import ROOT

EXPECTED = {"__version__", "run", "plan", "execute", "request", "open_store", "RunRequest", "Plan", "RunResult",
            "StepResult", "HostStatus", "RunStatus", "ErrorKind", "Executor", "Observer", "NullObserver", "Store",
            "OpsflowError", "UsageError", "RunbookError", "InventoryError", "RunFailed", "Settings"}


def test_all_is_the_documented_surface_and_every_name_resolves() -> None:
    assert set(opsflow.__all__) == EXPECTED
    for name in opsflow.__all__:
        assert getattr(opsflow, name) is not None, name
    with pytest.raises(AttributeError):
        opsflow.nosuch  # noqa: B018


def test_import_opsflow_is_light() -> None:
    code = "import sys, opsflow; print(sorted(m for m in ('pydantic', 'jinja2', 'yaml', 'rich') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_run_plan_and_raise_on_error(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    a: {ansible_host: 127.0.0.1}\n    b: {ansible_host: 127.0.0.1}\n")
    rb = tmp_path / "rb.yaml"
    rb.write_text("name: api\ntargets: all\nsteps:\n  - name: only a\n    local: [test, '{{ inventory_hostname }}', '=', a]\n")
    store = opsflow.open_store(str(tmp_path / "s.db"))
    plan = opsflow.plan(rb, inventory=inv)
    assert plan.targets == ["a", "b"] and [ps.step.name for ps in plan.steps] == ["only a"]
    result = opsflow.run(rb, inventory=inv, store=store, started_by="tester")
    assert result.status == opsflow.RunStatus.PARTIAL and result.failed_hosts == ["b"]
    assert store.get_run(result.run_id)["trigger"] == "api"  # type: ignore[index]
    with pytest.raises(opsflow.RunFailed, match="failed hosts: b"):
        result.raise_on_error()
    ok = opsflow.run(rb, inventory=inv, store=store, limit="a")
    ok.raise_on_error()
    assert ok.status == opsflow.RunStatus.SUCCEEDED
    with pytest.raises(opsflow.UsageError):
        opsflow.plan(tmp_path / "missing.yaml", inventory=inv)
