"""Every example runbook in runbooks/ runs, and succeeds, on a fresh lab of its own.

The shipped runbooks are documentation a new user copies: each one must work on a lab
just brought up (the lab's servers carry a demo application for them: config, data,
logs). The order is the one a user would follow: health, changes, backups, then the
restores that need a backup first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsflow.lab import Lab
from tests.conftest import lab_unavailable
from tests.helpers import ROOT, Cli

pytestmark = pytest.mark.lab

# runbook → params; in the order they run (restores after the backups they need)
EXAMPLES: list[tuple[str, list[str]]] = [
    ("server-health", []),
    ("deploy-motd", []),
    ("rotate-app-logs", []),
    ("remediate-disk-full", []),
    ("server-backup", []),
    ("restore-drill", ["-e", "source=srv1"]),
    ("nightly-config-backup", []),
    ("router-static-route", ["-e", "prefix=192.0.2.0/24"]),
    ("router-restore", []),
    ("remediate-ospf-neighbor", []),
]


@pytest.fixture(scope="module")
def fresh_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    lab = Lab(tmp_path_factory.mktemp("fresh"), name=f"ex{os.getpid() % 100000}")
    try:
        lab.up(servers=2, routers=2)
        yield lab
    finally:
        lab.down()


def test_every_example_is_exercised() -> None:
    assert sorted(name for name, _ in EXAMPLES) == sorted(p.stem for p in (ROOT / "runbooks").glob("*.yaml"))


def test_every_example_runbook_succeeds_on_a_fresh_lab(fresh_lab: Lab, tmp_path: Path) -> None:
    cli = Cli(home=tmp_path / "home", inventory=fresh_lab.inventory_path)
    failures = []
    for name, params in EXAMPLES:
        run = cli.run_json(str(ROOT / "runbooks" / f"{name}.yaml"), *params, rc=None)
        if run["status"] != "succeeded":
            failures.append((name, run["status"], [(r["step"], r["host"], r["error"]) for r in run["results"]
                                                   if r["status"] in ("failed", "unreachable", "timeout")]))
    assert not failures
    restored = fresh_lab.exec("srv2", ["find", "/srv/restore-drill/srv1", "-name", "app.conf"]).stdout
    assert "etc/demoapp/app.conf" in restored
