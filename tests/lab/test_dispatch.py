"""Scale-out on Celery against the lab: real workers (subprocesses), RabbitMQ and Redis, a PostgreSQL store.

- a run whose hosts sit on two queues runs on both queues' workers and is one run with one status;
- SIGKILL of the worker holding a unit mid-step: another worker of its queue takes the unit over and the run
  completes; on the hosts (counted by appending to a file there) each completed step ran once, an idempotent
  step in flight ran again, a step that is not idempotent never twice;
- a step that is not idempotent in flight on the killed worker: that host ends ``interrupted``, the run waits
  for a person, who abandons it (audited);
- the dispatching CLI SIGKILLed: the run goes on and is recorded; its Ctrl-C cancels the run on the workers;
- the worker AND the dispatching CLI SIGKILLed: after the lease ttl, `opsflow history` / `show` find the run
  `interrupted` (with why), nothing runs its step again by itself, and `opsflow resume --dispatch celery` with a
  new worker completes it (the broker's redelivery of the old unit is dropped by its lost lease);
- Ctrl-C of a run whose queue no worker serves ends it canceled at once (its units never claimed);
- Redis delivers a unit again when its visibility timeout passes (here 1 s) while a live worker still runs it:
  the lease drops the second delivery, the step runs once.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for, write_runbook
from tests.lab.dispatch_site import TTL, Site, holder_of, run_status, site

__all__ = ["site"]  # the fixture
pytestmark = pytest.mark.lab


@pytest.mark.parametrize("site", ["rabbitmq", "redis"], indirect=True)
def test_a_run_on_two_queues_is_one_run_and_survives_a_killed_worker(site: Site, lab: Any, tmp_path: Path) -> None:
    for name, queue in (("a1", site.qa), ("a2", site.qa), ("b1", site.qb)):
        site.start(name, queue)
    rb = write_runbook(tmp_path, "spread", f"""\
        name: spread
        targets: srv1:srv2:srv3:srv4
        steps:
          - name: first
            command: [sh, -c, 'echo first >> {site.mark}']
            idempotent: true
          - name: slow
            command: [sh, -c, 'sleep 2.5; echo slow >> {site.mark}']
            idempotent: true
          - name: change
            command: [sh, -c, 'echo change >> {site.mark}']
    """)
    site.ready()
    proc = site.run("run", str(rb), "-i", str(site.inventory()), "--dispatch", "celery", "-q")
    holder = holder_of(site, site.qa)
    wait_for(lambda: site.query("SELECT 1 FROM inflight WHERE queue = %s AND step = 'slow'", (site.qa,)),
             timeout=30, what="step slow in flight on queue a")
    site.kill(holder)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    runs = site.query("SELECT id, status, hosts FROM runs")
    assert len(runs) == 1 and runs[0][1] == "succeeded", runs  # one run, one status, across both queues
    run_id = runs[0][0]
    qa = site.lease(site.qa)
    assert qa is not None and qa[1] != holder and qa[2] == "done" and qa[4] >= 2  # taken over by the other worker
    assert site.lease(site.qb)[1] == "b1"  # type: ignore[index]
    for host in ("srv1", "srv2"):  # the killed worker's hosts
        counts = site.counts(lab, host)
        assert counts["first"] == 1 and counts["change"] == 1, counts  # completed before, not run again
        assert counts["slow"] in (1, 2), counts  # idempotent and in flight: run again (the first may have finished)
    for host in ("srv3", "srv4"):
        assert site.counts(lab, host) == {"first": 1, "slow": 1, "change": 1}
    rows = site.query("SELECT host, step, status FROM results WHERE run_id = %s AND step = 'change'", (run_id,))
    assert sorted(r[0] for r in rows) == ["srv1", "srv2", "srv3", "srv4"]  # each recorded once: fenced, not doubled


def test_a_step_not_idempotent_in_flight_interrupts_its_hosts_until_a_person_decides(site: Site, lab: Any,
                                                                                    tmp_path: Path) -> None:
    for name in ("a1", "a2"):
        site.start(name, site.qa)
    rb = write_runbook(tmp_path, "risky", f"""\
        name: risky
        targets: srv1:srv2
        steps:
          - name: migrate
            command: [sh, -c, 'sleep 2; echo migrate >> {site.mark}']
          - name: after
            command: [sh, -c, 'echo after >> {site.mark}']
    """)
    site.ready()
    proc = site.run("run", str(rb), "-i", str(site.inventory()), "--dispatch", "celery", "-q")
    holder = holder_of(site, site.qa)
    wait_for(lambda: site.query("SELECT 1 FROM inflight WHERE queue = %s", (site.qa,)), timeout=30,
             what="step migrate in flight")
    site.kill(holder)
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    ((run_id, status, hosts),) = site.query("SELECT id, status, hosts FROM runs")
    assert status == "interrupted" and '"srv1": "interrupted"' in hosts, hosts
    for host in ("srv1", "srv2"):
        assert site.counts(lab, host).get("after", 0) == 0  # nothing after the interrupted step ran
        assert site.counts(lab, host).get("migrate", 0) <= 1  # never twice
    out = site.opsflow("abandon", run_id, "--reason", "migrated by hand")
    assert out.returncode == 0, out.stderr
    assert run_status(site, run_id) == "abandoned"
    assert site.query("SELECT actor, detail FROM audit WHERE action = 'abandon' AND target = %s", (run_id,))


def test_the_dispatching_cli_killed_the_run_goes_on_ctrl_c_cancels_on_workers_and_workers_are_listed(site: Site, lab: Any,
                                                                                   tmp_path: Path) -> None:
    site.start("a1", site.qa)
    rb = write_runbook(tmp_path, "long", f"""\
        name: long
        targets: srv1:srv2
        steps:
          - name: wait
            command: [sh, -c, 'sleep 1.5; echo wait >> {site.mark}']
          - name: then
            command: [sh, -c, 'echo then >> {site.mark}']
    """)
    inventory = str(site.inventory())
    site.ready()
    proc = site.run("run", str(rb), "-i", inventory, "--dispatch", "celery", "-q")
    holder_of(site, site.qa)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_id,) = wait_for(lambda: site.query("SELECT id FROM runs WHERE status = 'succeeded'"), timeout=30,
                         what="the run of the killed CLI to succeed")[0]
    assert site.counts(lab, "srv1") == {"wait": 1, "then": 1}
    proc = site.run("run", str(rb), "-i", inventory, "--dispatch", "celery", "-q")
    holder_of(site, site.qa)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    ((second, status),) = site.query("SELECT id, status FROM runs WHERE id != %s", (run_id,))
    assert status == "canceled"
    assert site.query("SELECT 1 FROM audit WHERE action = 'cancel' AND target = %s", (second,))
    rows = site.query("SELECT status FROM results WHERE run_id = %s AND step = 'then'", (second,))
    assert rows and all(r[0] == "skipped" for r in rows)  # the workers started no step after the cancel
    assert site.counts(lab, "srv1")["then"] == 1  # only the first run's
    listing = json.loads(site.opsflow("workers", "--json").stdout)
    assert [(w["name"], w["queues"], w["status"]) for w in listing] == [("a1", [site.qa], "running")]
    site.kill("a1")
    time.sleep(float(TTL) + 0.3)
    assert [w["status"] for w in json.loads(site.opsflow("workers", "--json").stdout)] == ["gone"]


def test_the_worker_and_the_dispatching_cli_killed_the_run_turns_interrupted_and_resumes_on_a_new_worker(
        site: Site, lab: Any, tmp_path: Path) -> None:
    site.start("a1", site.qa)
    rb = write_runbook(tmp_path, "orphan", f"""\
        name: orphan
        targets: srv1:srv2
        steps:
          - name: first
            command: [sh, -c, 'echo first >> {site.mark}']
          - name: change
            command: [sh, -c, 'sleep 1.5; echo change >> {site.mark}']
          - name: last
            command: [sh, -c, 'echo last >> {site.mark}']
    """)
    inventory = str(site.inventory())
    site.ready()
    proc = site.run("run", str(rb), "-i", inventory, "--dispatch", "celery", "-q")
    wait_for(lambda: site.query("SELECT 1 FROM inflight WHERE queue = %s AND step = 'change'", (site.qa,)),
             timeout=30, what="step change in flight")
    site.kill("a1")
    proc.send_signal(signal.SIGKILL)  # nobody is left to follow the run or to take its unit over
    proc.wait()
    ((run_id,),) = site.query("SELECT id FROM runs")
    assert run_status(site, run_id) == "running"
    time.sleep(float(TTL) + 0.2)  # the lease expires; nothing sweeps until someone looks
    listed = site.opsflow("history", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["status"]) for r in json.loads(listed.stdout)] == [(run_id, "interrupted")]
    assert "went silent" in listed.stderr and f"no live worker serves queue {site.qa}" in listed.stderr
    shown = site.opsflow("show", run_id, "--json")
    detail = json.loads(shown.stdout)
    assert detail["hosts"] == {"srv1": "interrupted", "srv2": "interrupted"}, detail
    assert "worker a1 went silent" in detail["error"] and f"opsflow resume {run_id}" in detail["error"]
    for host in ("srv1", "srv2"):
        counts = site.counts(lab, host)
        assert counts["first"] == 1 and counts.get("change", 0) <= 1 and "last" not in counts, counts
    site.start("a2", site.qa)  # the broker redelivers a1's unit to a2 at once: its lost lease drops it
    site.ready()
    resumed = site.opsflow("resume", run_id, "--dispatch", "celery", "-q", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    for host in ("srv1", "srv2"):
        counts = site.counts(lab, host)
        assert counts["first"] == 1 and counts["last"] == 1, counts  # completed steps were not run again
        assert 1 <= counts["change"] <= 2, counts  # once by the resume a person asked for (plus a1's, if it ended)
    assert "duplicate delivery dropped" in (tmp_path / "a2.log").read_text()


@pytest.mark.parametrize("site", ["redis"], indirect=True)
def test_a_redis_redelivery_of_a_unit_a_live_worker_holds_is_dropped(site: Site, tmp_path: Path) -> None:
    from opsflow.dispatch.client import dispatch
    from opsflow.planning import RunRequest, build_plan
    from opsflow.store import open_store

    site.start("r1", site.qa, OPSFLOW_VISIBILITY_TIMEOUT="1")  # Redis redelivers what is not acked within 1 s
    mark = tmp_path / "ran"
    rb = write_runbook(tmp_path, "long", f"""\
        name: long
        targets: srv1
        queue: {site.qa}
        steps:
          - name: long
            local: [sh, -c, 'sleep 2.5; echo long >> {mark}']
    """)
    plan = build_plan(RunRequest(runbook=str(rb), inventory=str(site.cli.inventory)))
    store = open_store(site.store_url)
    site.ready()
    try:  # dispatched from here, not by a CLI: its start-up would double this test's time
        run_id = dispatch(plan, store, site.broker)  # type: ignore[arg-type]
    finally:
        store.close()
    wait_for(lambda: run_status(site, run_id) == "succeeded", timeout=30, what="the run to succeed")
    assert "duplicate delivery dropped" in (tmp_path / "r1.log").read_text()  # the second delivery: no claim
    assert site.lease(site.qa)[2:] == ("done", 1, 1)  # type: ignore[index]  # one claim, one token, never taken over
    assert mark.read_text() == "long\n"  # the step ran once


def test_ctrl_c_of_a_run_no_worker_took_ends_it_canceled_at_once(site: Site, tmp_path: Path) -> None:
    rb = write_runbook(tmp_path, "nobody", f"""\
        name: nobody
        targets: srv1
        queue: {site.qb}
        steps:
          - name: never
            local: ["true"]
    """)
    proc = site.run("run", str(rb), "-i", str(site.cli.inventory), "--dispatch", "celery", "-q")
    wait_for(lambda: site.lease(site.qb), timeout=30, what="the run dispatched")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)  # not left waiting for a worker that never comes
    assert proc.returncode == 1, err
    assert site.lease(site.qb)[2] == "done"  # type: ignore[index]  # a delivery to a worker started later: dropped
    (run_id,) = site.query("SELECT id FROM runs")[0]
    assert run_status(site, run_id) == "canceled"
