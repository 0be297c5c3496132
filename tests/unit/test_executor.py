"""The engine itself, fast: plan → executor → store on `local` steps and a temporary SQLite store.

No lab, no SSH: every behaviour of the executor that does not depend on a connector —
retries, rollback, rolling batches, resume, cancellation, conditions, redaction, check
mode — is exercised here in well under a second per test (`make test-unit`).
"""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from opsflow.errors import UsageError
from opsflow.executor import Executor, NullObserver
from opsflow.planning import PlannedStep, RunRequest, build_plan, check_support
from opsflow.results import HostStatus, RunError, RunStatus, StepResult
from opsflow.store import open_store
from opsflow.store.base import Store
from tests.helpers import wait_for

INVENTORY = """\
all:
  children:
    servers:
      hosts:
        h1: {ansible_host: 127.0.0.1}
        h2: {ansible_host: 127.0.0.1}
        h3: {ansible_host: 127.0.0.1}
        h4: {ansible_host: 127.0.0.1}
"""


class Engine:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.inventory = root / "inventory.yml"
        self.inventory.write_text(INVENTORY)
        self.store: Store = open_store(str(root / "store.db"))
        self.n = 0

    def runbook(self, text: str) -> Path:
        self.n += 1
        path = self.root / f"rb{self.n}.yaml"
        path.write_text(textwrap.dedent(text))
        return path

    def run(self, runbook: Path, executor: Executor | None = None, **kw: Any) -> Any:
        plan = build_plan(RunRequest(runbook=str(runbook), inventory=str(self.inventory), **kw))
        return (executor or Executor(self.store)).execute(plan)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(tmp_path)


def statuses(result: Any, step: str) -> dict[str, str]:
    return {r.host: str(r.status) for r in result.steps if r.step == step}


def test_retries_until_success_then_records_attempts(engine: Engine, tmp_path: Path) -> None:
    rb = engine.runbook(f"""\
        name: flaky
        targets: h1
        steps:
          - name: third time lucky
            local: [sh, -c, 'n=$(cat {tmp_path}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > {tmp_path}/n; test $n -ge 3']
            retries: 3
            delay: 0.01
    """)
    result = engine.run(rb)
    assert result.status == RunStatus.SUCCEEDED
    (only,) = [r for r in result.steps if r.step == "third time lucky"]
    assert only.attempts == 3 and only.status == HostStatus.CHANGED


def test_retry_on_limits_what_is_retried(engine: Engine, tmp_path: Path) -> None:
    rb = engine.runbook(f"""\
        name: retry-on
        targets: h1
        steps:
          - name: rc 3 is not retried
            local: [sh, -c, 'echo x >> {tmp_path}/tries; exit 3']
            retries: 4
            delay: 0.01
            retry_on: [75]
    """)
    result = engine.run(rb)
    assert result.status == RunStatus.FAILED
    assert (tmp_path / "tries").read_text().count("x") == 1


def test_rollback_only_on_hosts_that_completed_the_step(engine: Engine, tmp_path: Path) -> None:
    rb = engine.runbook(f"""\
        name: rb
        targets: h1:h2:h3
        steps:
          - name: change
            when: inventory_hostname != 'h3'
            local: [touch, '{tmp_path}/changed-{{{{ inventory_hostname }}}}']
            rollback:
              - name: undo
                local: [rm, '{tmp_path}/changed-{{{{ inventory_hostname }}}}']
          - name: health
            local: [test, '{{{{ inventory_hostname }}}}', '=', h1]
    """)
    result = engine.run(rb)
    assert result.status == RunStatus.PARTIAL
    assert sorted(p.name for p in tmp_path.glob("changed-*")) == ["changed-h1"]
    assert [(r.host, r.step) for r in result.steps if r.phase == "rollback"] == [("h2", "undo")]
    assert result.failed_hosts == ["h2", "h3"]  # h3 skipped the change (when), then failed health



def test_batches_stop_past_max_fail_percentage(engine: Engine) -> None:
    rb = engine.runbook("""\
        name: roll
        targets: servers
        serial: 1
        max_fail_percentage: 0
        steps:
          - name: go
            local: [test, '{{ inventory_hostname }}', '!=', h2]
    """)
    result = engine.run(rb)
    assert result.status == RunStatus.FAILED
    assert "batch 2 of 4" in (result.error or "") and "not started: h3, h4" in (result.error or "")
    assert {h: str(s) for h, s in result.hosts.items()} == {"h1": "changed", "h2": "failed", "h3": "skipped",
                                                             "h4": "skipped"}


def test_resume_skips_what_completed_and_follows_the_chain(engine: Engine, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    rb = engine.runbook(f"""\
        name: res
        targets: h1:h2
        steps:
          - name: one
            local: [sh, -c, 'echo one-$0 >> {tmp_path}/log', '{{{{ inventory_hostname }}}}']
          - name: two
            local: [sh, -c, 'test $0 = h1 || test -e {gate}', '{{{{ inventory_hostname }}}}']
    """)
    first = engine.run(rb)
    assert first.status == RunStatus.PARTIAL
    gate.touch()
    second = engine.run(rb, resume_of=first.run_id, parent_run=first.run_id)
    assert second.status == RunStatus.SUCCEEDED
    skipped = {(r.step, r.host): r.data.get("done_in") for r in second.steps if r.status == HostStatus.SKIPPED}
    assert skipped == {("one", "h1"): first.run_id, ("one", "h2"): first.run_id, ("two", "h1"): first.run_id}
    assert sorted((tmp_path / "log").read_text().split()) == ["one-h1", "one-h2"]  # step one ran once per host


def test_cancel_stops_in_flight_work_and_skips_the_rest(engine: Engine, tmp_path: Path) -> None:
    rb = engine.runbook(f"""\
        name: long
        targets: h1
        steps:
          - name: sleep
            local: [sleep, "30"]
          - name: after
            local: [touch, '{tmp_path}/after']
    """)
    executor = Executor(engine.store, grace=0.2)
    threading.Timer(0.3, executor.request_cancel, ("stop for the test",)).start()
    started = time.monotonic()
    result = engine.run(rb, executor)
    assert time.monotonic() - started < 5
    assert result.status == RunStatus.CANCELED and result.error == "stop for the test"
    assert statuses(result, "after") == {"h1": "skipped"} and not (tmp_path / "after").exists()
    assert engine.store.get_run(result.run_id)["status"] == "canceled"  # type: ignore[index]


def test_conditions_and_registered_results(engine: Engine) -> None:
    rb = engine.runbook("""\
        name: cond
        targets: h1
        steps:
          - name: probe
            local: [echo, "42"]
            register: probe
            changed_when: false
          - name: only when 42
            when: "probe.stdout | trim == '42'"
            local: [echo, "{{ probe.stdout | trim }}"]
            failed_when: "'42' not in stdout"
          - name: never
            when: "probe.stdout | trim == '7'"
            local: ["false"]
    """)
    result = engine.run(rb)
    assert result.status == RunStatus.SUCCEEDED
    assert statuses(result, "probe") == {"h1": "ok"}
    assert statuses(result, "only when 42") == {"h1": "changed"}
    assert statuses(result, "never") == {"h1": "skipped"}


def test_secret_redacted_in_errors_output_and_store(engine: Engine) -> None:
    canary = "unit-canary-31337"
    rb = engine.runbook("""\
        name: sec
        targets: h1
        params:
          token: {type: str, secret: true}
        steps:
          - name: print it
            local: [sh, -c, 'echo "$0"; echo "$0" >&2; exit 1', "{{ token }}"]
            ignore_errors: true
          - name: template error names it
            when: "host.vars[token]"
            local: ["true"]
    """)
    result = engine.run(rb, params={"token": canary})
    texts = [str(r.to_dict()) for r in result.steps] + [str(engine.store.results(result.run_id)),
                                                          str(engine.store.get_run(result.run_id))]
    assert not [t for t in texts if canary in t]
    assert any("********" in r.stdout for r in result.steps)
    assert any(r.error and "********" in r.error for r in result.steps if r.step == "template error names it")


def test_check_mode_support_comes_from_the_action_registry(engine: Engine) -> None:
    rb = engine.runbook("""\
        name: chk
        targets: h1
        steps:
          - name: local thing
            local: ["true"]
          - name: read
            verify:
              - file: /etc/hostname
                exists: true
    """)
    plan = build_plan(RunRequest(runbook=str(rb), inventory=str(engine.inventory), check=True))
    assert [check_support(ps.step)[0] for ps in plan.steps] == [False, True]
    with pytest.raises(UsageError, match="cannot be checked"):
        build_plan(RunRequest(runbook=str(rb), inventory=str(engine.inventory), check=True, strict=True))
    result = Executor(engine.store).execute(plan)
    (local,) = [r for r in result.steps if r.step == "local thing"]
    assert local.status == HostStatus.SKIPPED and local.data.get("not_checked") is True


def test_observer_sees_every_result_as_it_happens(engine: Engine) -> None:
    seen: list[tuple[str, str]] = []

    class Watch(NullObserver):
        def host_done(self, result: StepResult) -> None:
            seen.append((result.step, result.host))

        def step_started(self, step: PlannedStep, hosts: list[str]) -> None:
            seen.append((step.step.name, "*"))

    rb = engine.runbook("""\
        name: obs
        targets: h1:h2
        steps:
          - name: a
            local: ["true"]
    """)
    engine.run(rb, Executor(engine.store, Watch()))
    assert seen[0] == ("a", "*") and sorted(seen[1:]) == [("a", "h1"), ("a", "h2")]


def test_a_failure_of_opsflow_is_crashed_not_failed(engine: Engine) -> None:
    class Broken(NullObserver):
        def step_started(self, step: PlannedStep, hosts: list[str]) -> None:
            raise RuntimeError("observer bug")

    rb = engine.runbook("""\
        name: crash
        targets: h1
        steps:
          - name: a
            local: ["true"]
    """)
    result = engine.run(rb, Executor(engine.store, Broken()))
    assert result.status == RunStatus.CRASHED and result.error_kind == RunError.INTERNAL
    record = engine.store.get_run(result.run_id)
    assert record is not None and (record["status"], record["error_kind"]) == ("crashed", "internal")
    assert "observer bug" in (result.error or "")


def test_runbook_timeout_is_a_failed_run_of_kind_timeout(engine: Engine) -> None:
    rb = engine.runbook("""\
        name: slow
        targets: h1
        timeout: 0.3
        steps:
          - name: sleep
            local: [sleep, "20"]
    """)
    result = engine.run(rb)
    assert result.status == RunStatus.FAILED and result.error_kind == RunError.TIMEOUT
    assert "timeout" in (result.error or "")


def test_a_window_closing_with_rollback_undoes_what_completed(engine: Engine, tmp_path: Path) -> None:
    rb = engine.runbook(f"""\
        name: patching
        targets: h1:h2
        steps:
          - name: change
            local: [touch, '{tmp_path}/changed-{{{{ inventory_hostname }}}}']
            rollback:
              - name: undo
                local: [rm, '{tmp_path}/changed-{{{{ inventory_hostname }}}}']
          - name: slow
            local: [sh, -c, 'touch {tmp_path}/slow-{{{{ inventory_hostname }}}}; sleep 1']
          - name: never
            local: [touch, '{tmp_path}/never']
    """)
    executor = Executor(engine.store, grace=300)

    def close_the_window() -> None:  # while the slow step is in flight on both hosts, however loaded the machine
        wait_for(lambda: len(list(tmp_path.glob("slow-*"))) == 2, 30, "the slow step to start")
        executor.request_cancel("window closed at 05:00", False, RunError.WINDOW_CLOSED, True)

    threading.Thread(target=close_the_window, daemon=True).start()
    result = engine.run(rb, executor)
    assert result.status == RunStatus.CANCELED and result.error_kind == RunError.WINDOW_CLOSED
    assert statuses(result, "slow") == {"h1": "changed", "h2": "changed"}  # the step in flight finished
    assert statuses(result, "never") == {"h1": "skipped", "h2": "skipped"} and not (tmp_path / "never").exists()
    assert statuses(result, "undo") == {"h1": "changed", "h2": "changed"}
    assert not list(tmp_path.glob("changed-*"))  # rolled back on both hosts
