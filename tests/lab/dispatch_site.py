"""Shared by the scale-out lab tests (test_dispatch, test_dispatch_triggers): a store, a broker, queues of one
test, workers started and killed by pid, and the `site` fixture (RabbitMQ unless parametrized ``redis``)."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, Cli, pg_store_url, wait_for

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

    def start(self, name: str, queue: str, **env: str) -> None:
        log = open(self.tmp / f"{name}.log", "w")  # noqa: SIM115 - the worker writes it until it ends
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "opsflow", "worker", "-Q", queue, "-c", "2", "-n", name, "--lease-ttl", TTL,
             "-l", "INFO"], stdout=log, stderr=subprocess.STDOUT, text=True, env={**self.env(), **env}, cwd=ROOT)

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


def holder_of(site: Site, queue: str) -> str:
    lease = wait_for(lambda: (row := site.lease(queue)) and row[2] == "running" and row, timeout=30,
                     what=f"a worker holding queue {queue}")
    return str(lease[1])


def run_status(site: Site, run_id: str) -> str:
    return str(site.query("SELECT status FROM runs WHERE id = %s", (run_id,))[0][0])
