"""Shared fixtures: the local lab (real OpenSSH servers and FRR routers), brought up once per session.

Tests that use ``lab`` or ``lab_inventory`` are skipped (with the reason) when the
machine cannot run the lab: not root, or openssh-server / frr / iproute2 / nftables
missing. The lab is named "test", so a demo lab (named "lab") can run alongside. A
"test" lab left running by a killed session is taken down first; when another live
session (or someone by hand) runs a "test" lab, this session uses "test-<pid>".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsflow.errors import EnvironmentProblem
from opsflow.lab import Lab, preflight
from opsflow.lab.net import Net
from opsflow.lab.proc import alive
from tests.helpers import Cli

LAB_SERVERS = 4
LAB_ROUTERS = 2
LAB_NAME = "test"
SESSION_MARK = ".pytest-session"  # in the lab's state dir: the pid of the pytest that owns it


def lab_unavailable() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    try:
        preflight.check()
    except EnvironmentProblem as exc:
        return f"lab unavailable: {exc}"
    return None


def _lab_name() -> str:
    owner = Net(preflight.check()).bridge_owner(LAB_NAME)
    if not owner:
        return LAB_NAME
    mark = Path(owner) / SESSION_MARK
    try:
        pid = int(mark.read_text())
    except (OSError, ValueError):
        pid = None
    if pid is not None and not alive(pid):
        Lab(owner, LAB_NAME).down()  # left behind by a pytest session that was killed
        mark.unlink(missing_ok=True)
        return LAB_NAME
    return f"{LAB_NAME}-{os.getpid()}"


@pytest.fixture(scope="session", autouse=True)
def no_schedules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The repository's example schedules/ govern no test run (their blackouts follow the calendar date):
    a test that wants maintenance windows points OPSFLOW_SCHEDULES at its own directory. The same for
    the example services/ (their operational hours are calendars of schedules/): OPSFLOW_SERVICES."""
    old = {k: os.environ.get(k) for k in ("OPSFLOW_SCHEDULES", "OPSFLOW_SERVICES")}
    os.environ["OPSFLOW_SCHEDULES"] = str(tmp_path_factory.mktemp("no-schedules") / "none")
    os.environ["OPSFLOW_SERVICES"] = str(tmp_path_factory.mktemp("no-services") / "none")
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """A running lab: srv1..srv4 and rtr1..rtr2, torn down at the end of the session."""
    reason = lab_unavailable()
    if reason:
        pytest.skip(reason)
    the_lab = Lab(tmp_path_factory.mktemp("lab"), name=_lab_name())
    mark = the_lab.state_dir / SESSION_MARK
    mark.write_text(f"{os.getpid()}\n")
    try:
        the_lab.up(servers=LAB_SERVERS, routers=LAB_ROUTERS)
        yield the_lab
    finally:
        mark.unlink(missing_ok=True)
        the_lab.down()


@pytest.fixture(scope="session")
def lab_inventory(lab: Lab) -> Path:
    """The lab's inventory file (groups `servers` and `routers`)."""
    return lab.inventory_path


@pytest.fixture
def cli(tmp_path: Path, lab_inventory: Path) -> Cli:
    """The real opsflow CLI, with its own OPSFLOW_HOME (store, backups) and the lab's inventory."""
    return Cli(home=tmp_path / "home", inventory=lab_inventory)


@pytest.fixture(params=["sqlite", "postgres"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A fresh store on SQLite, and the same on PostgreSQL (skipped without OPSFLOW_TEST_PG)."""
    from opsflow.store import SqlStore
    from tests.helpers import pg_store_url

    if request.param == "sqlite":
        s = SqlStore.connect(str(tmp_path / "store.db"))
        yield s
        s.close()
        return
    with pg_store_url() as url:
        s = SqlStore.connect(url)
        yield s
        s.close()
