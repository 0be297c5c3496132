"""The caches of validated runbooks and of scoped calendars: same verdicts as without them, never trusted blindly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsflow import diskcache
from opsflow.errors import RunbookError
from opsflow.inventory import load_inventory
from opsflow.planning import _CALENDARS, scoped_calendars
from opsflow.runbook import cache
from opsflow.runbook.validate import load_runbook
from tests.helpers import ROOT

RUNBOOK = """\
name: cached
targets: web
params:
  who: {default: ops}
steps:
  - name: greet
    command: ["echo", "{{ who }} {{ motd_text }}"]
    register: greeting
  - name: again
    when: "{{ greeting.rc == 0 }}"
    command: ["echo", "{{ greeting.stdout }}"]
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _inventory(tmp_path: Path, name: str, variables: str) -> Path:
    path = tmp_path / name
    path.write_text(f"all:\n  children:\n    web:\n      hosts:\n        w1: {{ansible_connection: local{variables}}}\n")
    return path


def _diagnostics(rb: Path, inv: Path | None) -> list[str]:
    try:
        load_runbook(rb, load_inventory(inv) if inv else None)
    except RunbookError as exc:
        return [str(d) for d in exc.diagnostics]
    return []


def test_a_cached_runbook_gets_the_verdicts_of_a_fresh_one(tmp_path: Path, home: Path) -> None:
    rb = tmp_path / "rb.yaml"
    rb.write_text(RUNBOOK)
    with_var, without = _inventory(tmp_path, "a.yml", ", motd_text: hi"), _inventory(tmp_path, "b.yml", "")
    assert _diagnostics(rb, with_var) == []  # validated: now in the cache
    assert cache.get(RUNBOOK) is not None
    cached_verdict = _diagnostics(rb, without)  # from the cache: the inventory's variables checked again
    assert cached_verdict == [f"{rb}:7:23: undefined template variable 'motd_text': not a param, registered "
                              "result or inventory variable (declare it under params:)"]
    for entry in (home / "cache" / "runbooks").iterdir():
        entry.unlink()
    assert _diagnostics(rb, without) == cached_verdict  # the same without the cache
    assert load_runbook(rb).runbook == load_runbook(rb).runbook


def test_only_private_intact_entries_are_read(tmp_path: Path, home: Path) -> None:
    rb = tmp_path / "rb.yaml"
    rb.write_text(RUNBOOK)
    load_runbook(rb)
    (entry,) = (home / "cache" / "runbooks").iterdir()
    assert entry.stat().st_mode & 0o777 == 0o600 and entry.parent.stat().st_mode & 0o777 == 0o700
    entry.chmod(0o666)  # another user could have written it: a pickle is code, so it is not read
    assert cache.get(RUNBOOK) is None
    entry.chmod(0o600)
    assert cache.get(RUNBOOK) is not None
    entry.write_bytes(entry.read_bytes()[:40])  # truncated: a miss, and the file validates again
    assert cache.get(RUNBOOK) is None
    assert load_runbook(rb).runbook.name == "cached"
    rb.write_text(RUNBOOK.replace("ops}", "sre}"))  # another text is another entry
    assert load_runbook(rb).runbook.params["who"].default == "sre"


def test_invalid_runbooks_are_not_kept(tmp_path: Path, home: Path) -> None:
    rb = tmp_path / "rb.yaml"
    rb.write_text(RUNBOOK.replace("{{ who }}", "{{ who | nosuchfilter }}"))
    assert "No filter named 'nosuchfilter'" in " ".join(_diagnostics(rb, None))
    assert not (home / "cache" / "runbooks").exists() or not any((home / "cache" / "runbooks").iterdir())


def test_scoped_calendars_are_read_back_from_disk(tmp_path: Path, home: Path) -> None:
    schedules = tmp_path / "schedules"
    schedules.mkdir()
    (schedules / "cal.yaml").write_text("calendars:\n  - name: freeze\n    mode: blackout\n    scope: all\n"
                                        "    dates: ['2031-12-24']\n")
    first = scoped_calendars(str(schedules), str(tmp_path / "runbooks"))
    _CALENDARS.clear()  # as a new process: from the disk cache
    again = scoped_calendars(str(schedules), str(tmp_path / "runbooks"))
    assert [c.name for c in first] == [c.name for c in again] == ["freeze"] and again is not first
    (schedules / "cal.yaml").write_text("calendars: []\n")
    assert scoped_calendars(str(schedules), str(tmp_path / "runbooks")) == []


def test_a_runbook_from_the_cache_needs_no_parser_no_jinja_no_model_building(tmp_path: Path, home: Path) -> None:
    rb = tmp_path / "rb.yaml"
    rb.write_text(RUNBOOK)
    load_runbook(rb)
    code = ("import sys\nfrom opsflow.runbook.validate import load_runbook\nfrom opsflow.runbook import models\n"
            f"assert load_runbook({str(rb)!r}).runbook.name == 'cached'\n"
            "print(sorted(m for m in ('yaml', 'jinja2', 'opsflow.events.models') if m in sys.modules), "
            "models.Runbook.__pydantic_complete__)")
    env = dict(os.environ, OPSFLOW_HOME=str(home), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[] False", out.stdout


def test_digest_names_every_part() -> None:
    assert diskcache.digest(("a", 1)) != diskcache.digest(("a", 2)) != diskcache.digest(("a",))
