"""/metrics evaluates service levels at every scrape, but reads the services (and the schedules and runbooks
they name) again only when one of their files changed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opsflow.errors import OpsflowError
from opsflow.reports.metrics import configured_services, service_levels
from opsflow.store import open_store

SERVICES = """services:
  - name: app
    runbooks: [deploy]
    objectives:
      - {name: ok, kind: success_rate, target: 0.9}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, sub in (("SERVICES", "services"), ("RUNBOOKS", "runbooks"), ("SCHEDULES", "schedules")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(f"OPSFLOW_{key}", str(tmp_path / sub))
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPSFLOW_PROJECT", "none")
    (tmp_path / "runbooks" / "deploy.yaml").write_text("name: deploy\nsteps:\n  - name: x\n    local: [true]\n")
    (tmp_path / "services" / "app.yaml").write_text(SERVICES)
    return tmp_path


def _later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_services_are_read_again_only_when_a_file_changes(project: Path) -> None:
    first = configured_services()
    assert list(first.services) == ["app"]
    assert configured_services() is first  # a scrape without a change: nothing parsed again
    store = open_store(str(project / "opsflow.db"), reap=False)
    try:
        rows = service_levels(store)
        assert [(r["service"], r["objective"]) for r in rows] == [("app", "ok")]
        assert configured_services() is first

        (project / "services" / "app.yaml").write_text(SERVICES.replace("0.9}", "0.95}"))
        _later(project / "services" / "app.yaml")
        second = configured_services()
        assert second is not first
        assert [r["target"] for r in service_levels(store)] == [0.95]

        _later(project / "runbooks" / "deploy.yaml")  # a runbook it names changed: read again
        assert configured_services() is not second
        third = configured_services()
        (project / "schedules" / "calendars.yaml").write_text("calendars: []\n")  # a file added
        assert configured_services() is not third

        (project / "services" / "app.yaml").write_text("services: [oops\n")  # broken: an error, every time
        for _ in range(2):
            with pytest.raises(OpsflowError):
                configured_services()
    finally:
        store.close()
