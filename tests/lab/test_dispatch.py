"""Scale-out on Celery against the lab: real workers (subprocesses), RabbitMQ and Redis, a PostgreSQL store.

- a run whose hosts sit on two queues runs on both queues' workers and is one run with one status;
- SIGKILL of the worker holding a unit mid-step: another worker of its queue takes the unit over and the run
  completes; on the hosts (counted by appending to a file there) each completed step ran once, an idempotent
  step in flight ran again, a step that is not idempotent never twice;
- a step that is not idempotent in flight on the killed worker: that host ends ``interrupted``, the run waits
  for a person, who abandons it (audited);
- the dispatching CLI SIGKILLed: the run goes on and is recorded; its Ctrl-C cancels the run on the workers.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, Cli, pg_store_url, wait_for, write_runbook

pytestmark = pytest.mark.lab
BROKERS = {"rabbitmq": "amqp://guest:guest@127.0.0.1:5672//", "redis": "redis://127.0.0.1:6379/0"}
TTL = "2"


class Site:
    """A store, a broker, queues named for this test only, workers started and killed by pid."""

    def __init__(self, cli: Cli, store: str, broker: str, tmp: Path) -> None:
        self.cli, self.store_url, self.broker, self.tmp = cli, store, broker, tmp
        tag = secrets.token_hex(3)
        self.qa, self.qb = f"qa-{tag}", f"qb-{tag}"
        self.workers: dict[str, subprocess.Popen[str]] = {}
        self.mark = f"/tmp/opsflow-dispatch-{tag}"

    def env(self) -> dict[str, str]:
        return {**self.cli.env(), "OPSFLOW_DB": self.store_url, "OPSFLOW_BROKER": self.broker,
                "OPSFLOW_LEASE_TTL": TTL, "OPSFLOW_PROJECT": "none"}

    def inventory(self) -> Path:
        doc = yaml.safe_load(self.cli.inventory.read_text())
        hosts = doc["all"]["children"]["servers"]["hosts"]
        for name in ("srv1", "srv2"):
            hosts[name]["opsflow_queue"] = self.qa
        for name in ("srv3", "srv4"):
            hosts[name]["opsflow_queue"] = self.qb
        path = self.tmp / "inventory.yml"
        path.write_text(yaml.safe_dump(doc))
        return path

    def start(self, name: str, queue: str) -> None:
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 - the worker writes it until it ends
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "opsflow", "worker", "-Q", queue, "-c", "2", "-n", name, "--lease-ttl", TTL,
             "-l", "INFO"], stdout=log, stderr=subprocess.STDOUT, text=True, env=self.env(), cwd=ROOT)

    def ready(self) -> None:
        def up() -> bool:
            rows = self.query("SELECT name FROM workers WHERE state = 'running'")
            return {r[0] for r in rows} >= set(self.workers)
        wait_for(up, timeout=60, what="workers up")

    def kill(self, name: str) -> None:
        self.workers[name].send_signal(signal.SIGKILL)
        self.workers[name].wait()

    def stop(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)  # test workers: no need to wait for a warm shutdown
        for proc in self.workers.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.store_url, autocommit=True) as conn:
            return conn.execute(sql, args).fetchall()

    def run(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "opsflow", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env(), cwd=ROOT)

    def opsflow(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsflow", *args], capture_output=True, text=True,
                              env=self.env(), cwd=ROOT, timeout=60)

    def lease(self, queue: str) -> tuple[Any, ...] | None:
        rows = self.query("SELECT run_id, worker, state, token, deliveries FROM leases WHERE queue = %s "
                          "ORDER BY state = 'running' DESC, heartbeat DESC", (queue,))
        return rows[0] if rows else None

    def counts(self, lab: Any, host: str) -> dict[str, int]:
        lines = lab.exec(host, ["sh", "-c", f"cat {self.mark} 2>/dev/null"]).stdout.split()
        return {word: lines.count(word) for word in set(lines)}


@pytest.fixture
def site(cli: Cli, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Site]:
    broker = BROKERS[getattr(request, "param", "rabbitmq")]
    from opsflow.store import open_store

    with pg_store_url() as url:
        open_store(url).close()  # created at head once, before workers and CLIs open it
        s = Site(cli, url, broker, tmp_path)
        try:
            yield s
        finally:
            s.stop()


def _holder(site: Site, queue: str) -> str:
    lease = wait_for(lambda: (row := site.lease(queue)) and row[2] == "running" and row, timeout=30,
                     what=f"a worker holding queue {queue}")
    return str(lease[1])


def _status(site: Site, run_id: str) -> str:
    return str(site.query("SELECT status FROM runs WHERE id = %s", (run_id,))[0][0])


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
    holder = _holder(site, site.qa)
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
    holder = _holder(site, site.qa)
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
    assert _status(site, run_id) == "abandoned"
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
    _holder(site, site.qa)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run_id,) = wait_for(lambda: site.query("SELECT id FROM runs WHERE status = 'succeeded'"), timeout=30,
                         what="the run of the killed CLI to succeed")[0]
    assert site.counts(lab, "srv1") == {"wait": 1, "then": 1}
    proc = site.run("run", str(rb), "-i", inventory, "--dispatch", "celery", "-q")
    _holder(site, site.qa)
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
