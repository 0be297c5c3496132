"""11. Dispatch: the fan-out of b_fanout through Celery workers (1, 2, 4 worker processes) against in-process.

One `command: [true]` step on the bench's largest server count. In-process is `opsflow run`; dispatched
is `opsflow run --dispatch celery` with the hosts spread round-robin over k queues (``opsflow_queue``),
one `opsflow worker` process per queue, the same total parallelism (each unit runs concurrency/k hosts
at once), RabbitMQ (``OPSFLOW_BENCH_BROKER``) and one SQLite store. Measured per round: wall time of the
dispatching CLI, controller CPU (the CLI's tree plus the workers' CPU over the round), and dispatch
latency — from the run's record (written just before the messages go) to its first step started on a host.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import yaml

from bench.core import Figure, Sample, Stats, check_target, figure, interleave, measured, run_ok, run_record
from bench.env import BenchEnv

NAME = "dispatch"
WORKERS = (1, 2, 4)
BROKER = os.environ.get("OPSFLOW_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _inventory(env: BenchEnv, n: int, queues: int, tag: str) -> Path:
    doc = yaml.safe_load(env.inventory("servers", n).read_text())
    hosts = doc["all"]["children"]["servers"]["hosts"]
    for i, host in enumerate(sorted(hosts, key=lambda h: (len(h), h))):
        hosts[host]["opsflow_queue"] = f"bench-{tag}-{i % queues}"
    path = env.work / f"inv-dispatch-{n}-{queues}.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _latency(db: Path, run_id: str) -> float:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT MIN(r.started_at) - u.started_at FROM results r JOIN runs u ON u.id = r.run_id "
                           "WHERE r.run_id = ?", (run_id,)).fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


class _Workers:
    def __init__(self, env: BenchEnv, db: Path, queues: list[str]) -> None:
        os_env = env.env(OPSFLOW_DB=str(db), OPSFLOW_BROKER=BROKER, OPSFLOW_PROJECT="none")
        self.procs = [subprocess.Popen(env.opsflow("worker", "-Q", q, "-c", "2", "-n", q, "-l", "WARNING"),
                                       env=os_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for q in queues]
        self.queues, self.db = queues, db
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.up():
            time.sleep(0.2)

    def up(self) -> bool:
        try:
            with sqlite3.connect(self.db) as conn:
                names = {r[0] for r in conn.execute("SELECT name FROM workers WHERE state = 'running'")}
        except sqlite3.Error:
            return False
        return names >= set(self.queues)

    def cpu(self) -> float:
        return sum(_cpu(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def run(env: BenchEnv) -> list[Figure]:
    size = env.size
    n = max(size.fanout)
    par = min(size.concurrency, n)
    tag = f"{os.getpid()}"
    db = env.db(f"dispatch-{n}")
    db.parent.mkdir(parents=True, exist_ok=True)
    local_env = env.env()
    figs: list[Figure] = []
    pools: dict[int, _Workers] = {}
    try:
        env.say(f"  {n} servers, {par} in parallel; workers 1, 2, 4 on {BROKER.split('@')[-1]}")
        subprocess.run(env.opsflow("db", "upgrade", "--db", str(db)), env=local_env, capture_output=True, check=False)
        for k in WORKERS:
            pools[k] = _Workers(env, db, [f"bench-{tag}-{i}" for i in range(k)])

        def local() -> Sample:
            rb = env.write(f"dispatch-local-{par}.yaml", _runbook(par))
            p = measured(env.opsflow("run", str(rb), "-i", str(env.inventory("servers", n)), "--json", "-q",
                                     "--db", str(db)), env=local_env)
            rec = run_record(p)
            return Sample(wall=p.wall, cpu=p.cpu, ok=run_ok(p, rec, n), detail=f"rc {p.rc} {p.stderr[-300:]}",
                          extra={"latency": _latency(db, rec.get("id", ""))})

        def dispatched(k: int) -> Sample:
            rb = env.write(f"dispatch-{k}.yaml", _runbook(max(1, par // k)))
            inv = _inventory(env, n, k, tag)
            before = pools[k].cpu()
            p = measured(env.opsflow("run", str(rb), "-i", str(inv), "--json", "-q", "--db", str(db),
                                     "--dispatch", "celery", "--broker", BROKER), env=local_env)
            rec = run_record(p)
            return Sample(wall=p.wall, cpu=p.cpu + pools[k].cpu() - before, ok=run_ok(p, rec, n),
                          detail=f"rc {p.rc} {p.stderr[-300:]}", extra={"latency": _latency(db, rec.get("id", ""))})

        samples = interleave({"local": local, **{f"celery-{k}": (lambda k=k: dispatched(k)) for k in WORKERS}},
                             size.fanout_rounds, size.warmup, env.say)
    finally:
        for pool in pools.values():
            pool.stop()

    def rate(s: Sample) -> float:
        return n / s.wall

    for k in WORKERS:
        fig = figure(NAME, f"{n} servers: throughput through {k} worker(s)", samples, f"celery-{k}", "local", rate,
                     "hosts/s", higher_is_better=True, baseline_label="in-process `opsflow run`")
        if n >= 200:
            fig.target = "≥ 0.8×"  # issue 15: dispatching costs under 20% of in-process throughput at 200 hosts
            check_target(fig, min_ratio=0.8)
        figs.append(fig)
        figs.append(figure(NAME, f"{n} servers: controller CPU, {k} worker(s)", samples, f"celery-{k}", "local",
                           lambda s: s.cpu, "CPU-s", baseline_label="in-process `opsflow run`",
                           note="the dispatching CLI's process tree plus the workers' CPU during the round"))
    lat = figure(NAME, "dispatch latency: run recorded → first step started (1 worker)", samples, "celery-1", "local",
                 lambda s: s.extra["latency"] * 1000, "ms", baseline_label="in-process `opsflow run`")
    stats = Stats.of([s.extra["latency"] * 1000 for s in samples["celery-1"] if s.ok], "ms")
    if stats:
        lat.note = f"dispatched p50 {stats.p50:.0f} ms, p99 {stats.p99:.0f} ms over {stats.n} runs"
    figs.append(lat)
    return figs


def _runbook(concurrency: int) -> str:
    return f"""\
        name: bench-dispatch
        targets: servers
        concurrency: {concurrency}
        steps:
          - name: t
            command: ["true"]
        """
