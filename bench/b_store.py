"""5. Store: step records written per second to SQLite; history and a KPI query over many runs.

* write rate: `store.add_result` (one committed row per call, as the executor records
  each host's result the moment it finishes) against raw `sqlite3` inserting the same
  row into a table of the same shape with the same pragmas, one commit per row;
* recording whole runs (create_run + one result + finish_run) while filling the store
  with Size.store_runs runs over 90 days, 20 runbooks, 3 hosts each;
* reads over that store: `opsflow history` (CLI, table and --json, filtered) against a
  fresh interpreter running the same query with raw sqlite3; `store.history()` in-process
  against the raw query; a KPI query (per-runbook success rate and mean duration over
  30 days, per-host failures from the results) — opsflow has no KPI API yet, so it
  runs on the store's schema and has no baseline.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path
from typing import Any

from bench.core import Figure, Sample, figure, interleave, measured
from bench.env import BenchEnv

NAME = "store"
RESULT_COLS = 18
STDOUT = "Linux srv1 6.1.0 x86_64 GNU/Linux\n" * 6
DATA = {"outputs": {"uname -a": STDOUT[:60]}, "checks": [{"name": "disk_free /", "passed": True}]}

HISTORY_SQL = ("SELECT id, runbook, runbook_path, runbook_hash, params, trigger, started_by, status, check_mode, "
               "started_at, ended_at, duration, pid, pid_start, node, error, hosts, parent_run, inventory FROM runs "
               "{where} ORDER BY started_at DESC LIMIT 50")
KPI_SQL = [
    "SELECT runbook, COUNT(*), AVG(status = 'succeeded'), AVG(duration), MAX(duration) FROM runs "
    "WHERE started_at >= ? GROUP BY runbook ORDER BY runbook",
    "SELECT r.host, COUNT(*) FROM results r JOIN runs u ON u.id = r.run_id WHERE u.started_at >= ? "
    "AND r.status IN ('failed', 'unreachable', 'timeout') GROUP BY r.host ORDER BY 2 DESC",
]


def _result(i: int) -> Any:
    from opsflow.results import HostStatus, StepResult

    now = time.time()
    return StepResult(step="uptime", host=f"srv{i % 200 + 1}", status=HostStatus.OK, step_index=0, action="command",
                      rc=0, stdout=STDOUT, data=DATA, started_at=now - 0.2, ended_at=now)


def _raw_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    cols = ", ".join(f"c{i} TEXT" for i in range(RESULT_COLS))
    conn.execute(f"CREATE TABLE IF NOT EXISTS results (id INTEGER PRIMARY KEY AUTOINCREMENT, {cols})")
    conn.execute("CREATE INDEX IF NOT EXISTS results_run ON results (c0, c1)")
    return conn


def _record(i: int, started: float) -> Any:
    from opsflow.store.base import RunRecord

    return RunRecord(id=f"bench-{i:07d}", runbook=f"runbook-{i % 20:02d}", runbook_path="/srv/runbooks/x.yaml",
                     runbook_hash="0" * 64, params={"keep": 3}, trigger="event" if i % 3 else "cli",
                     started_by="bench@vm", started_at=started, hosts={"srv1": "pending", "srv2": "pending",
                                                                       "srv3": "pending"})


def fill(db: Path, runs: int) -> tuple[float, int]:
    """Record `runs` whole runs through the store API; returns (seconds, runs)."""
    from opsflow.results import HostStatus, RunStatus, StepResult
    from opsflow.store import open_store

    rng = random.Random(7)
    store = open_store(str(db), reap=False)
    now = time.time()
    t0 = time.perf_counter()
    for i in range(runs):
        started = now - rng.uniform(0, 90 * 86400)
        failed = rng.random() < 0.07
        store.create_run(_record(i, started))
        host = f"srv{rng.randint(1, 200)}"
        status = HostStatus.FAILED if failed else HostStatus.OK
        store.add_result(f"bench-{i:07d}", StepResult(step="uptime", host=host, status=status, action="command",
                                                      rc=1 if failed else 0, stdout=STDOUT[:80], started_at=started,
                                                      ended_at=started + 0.3))
        store.finish_run(f"bench-{i:07d}", RunStatus.FAILED if failed else RunStatus.SUCCEEDED, started + 0.4,
                         {host: str(status)}, None)
    took = time.perf_counter() - t0
    store.close()
    return took, runs


def run(env: BenchEnv) -> list[Figure]:
    from opsflow.store import open_store

    size = env.size
    ms = 1000.0
    figs: list[Figure] = []
    batch = 2000 if size.name == "full" else 200

    # -- write rate ------------------------------------------------------------------------
    wdb, rdb = env.db("store-write"), env.db("store-raw")
    wdb.parent.mkdir(parents=True, exist_ok=True)
    store = open_store(str(wdb), reap=False)
    store.create_run(_record(0, time.time()))
    raw = _raw_db(rdb)
    marks = ", ".join("?" for _ in range(RESULT_COLS))
    import json

    def opsflow_write() -> Sample:
        rows = [_result(i) for i in range(batch)]
        t0 = time.perf_counter()
        for r in rows:
            store.add_result("bench-0000000", r)
        return Sample(wall=time.perf_counter() - t0)

    def raw_write() -> Sample:
        rows = [_result(i) for i in range(batch)]
        t0 = time.perf_counter()
        for r in rows:
            raw.execute(f"INSERT INTO results (c{', c'.join(str(i) for i in range(RESULT_COLS))}) VALUES ({marks})",
                        ("bench-0000000", r.step_index, r.step, r.action, r.host, r.phase, str(r.status),
                         int(r.changed), r.rc, r.started_at, r.ended_at, r.duration, r.attempts, r.stdout, r.stderr,
                         json.dumps(r.data), r.error_class, r.error))
        return Sample(wall=time.perf_counter() - t0)

    env.say(f"  write rate: batches of {batch} step records")
    s = interleave({"opsflow": opsflow_write, "raw": raw_write}, size.store_rounds, size.warmup, env.say)
    store.close()
    raw.close()
    figs.append(figure(NAME, "step records written, one commit each", s, "opsflow", "raw", lambda x: batch / x.wall,
                       "rows/s", higher_is_better=True,
                       baseline_label="raw sqlite3 INSERT, same row and pragmas, one commit each"))

    # -- fill -----------------------------------------------------------------------------
    db = env.db("store-history")
    env.say(f"  recording {size.store_runs:,} runs through the store API")
    took, runs = fill(db, size.store_runs)
    figs.append(Figure(bench=NAME, name=f"whole runs recorded (create + 1 result + finish), {runs:,} runs",
                       unit="runs/s", opsflow=_one(runs / took, "runs/s"), baseline_name="—", baseline=None,
                       higher_is_better=True, note=f"{took:.1f} s to record {runs:,} runs"))

    # -- reads over the filled store -------------------------------------------------------
    os_env = env.env()
    since = time.time() - 7 * 86400

    def cli(*args: str) -> Sample:
        p = measured(env.opsflow("history", "--db", str(db), *args), env=os_env)
        return Sample(wall=p.wall, cpu=p.cpu, ok=p.rc == 0 and bool(p.stdout.strip()), detail=p.stderr[-300:])

    def raw_cli(where: str) -> Sample:
        code = ("import sqlite3,json,sys; c=sqlite3.connect(sys.argv[1]); "
                f"print(json.dumps(c.execute({HISTORY_SQL.format(where=where)!r}).fetchall()))")
        p = measured([env.python, "-c", code, str(db)], env=os_env)
        return Sample(wall=p.wall, cpu=p.cpu, ok=p.rc == 0, detail=p.stderr[-300:])

    filt = f"WHERE runbook = 'runbook-07' AND status = 'failed' AND started_at >= {since}"
    env.say(f"  opsflow history over {runs:,} runs")
    h = interleave({
        "table": lambda: cli(),
        "json": lambda: cli("--json"),
        "filtered": lambda: cli("--json", "--runbook", "runbook-07", "--status", "failed", "--since", "7d"),
        "raw": lambda: raw_cli(""),
        "raw-filtered": lambda: raw_cli(filt),
    }, size.cli_rounds // 3 or 1, size.warmup, env.say)
    raw_label = "`python -c` with sqlite3, same query"
    figs += [
        figure(NAME, f"`opsflow history` (table, last 50) over {runs:,} runs", h, "table", "raw",
               lambda x: x.wall * ms, "ms", baseline_label=raw_label),
        figure(NAME, f"`opsflow history --json` over {runs:,} runs", h, "json", "raw",
               lambda x: x.wall * ms, "ms", baseline_label=raw_label),
        figure(NAME, "`opsflow history --json --runbook --status --since 7d`", h, "filtered", "raw-filtered",
               lambda x: x.wall * ms, "ms", baseline_label=raw_label),
    ]

    st = open_store(str(db), reap=False)
    conn = sqlite3.connect(str(db))
    month = time.time() - 30 * 86400

    def timed_call(fn: Any) -> Sample:
        t0 = time.perf_counter()
        out = fn()
        return Sample(wall=time.perf_counter() - t0, ok=bool(out))

    q = interleave({
        "history": lambda: timed_call(lambda: st.history(limit=50)),
        "raw": lambda: timed_call(lambda: conn.execute(HISTORY_SQL.format(where="")).fetchall()),
        "kpi": lambda: timed_call(lambda: [conn.execute(sql, (month,)).fetchall() for sql in KPI_SQL]),
    }, max(size.store_rounds * 4, 3), size.warmup, env.say)
    st.close()
    conn.close()
    figs.append(figure(NAME, f"store.history(limit=50), in-process, {runs:,} runs", q, "history", "raw",
                       lambda x: x.wall * ms, "ms", baseline_label="raw sqlite3, same query"))
    kpi = Figure(bench=NAME, name=f"KPI query (30 days: per-runbook success rate + mean duration; per-host "
                                  f"failures), {runs:,} runs", unit="ms",
                 opsflow=_stats([x.wall * ms for x in q["kpi"] if x.ok], "ms"), baseline_name="—", baseline=None,
                 note="SQL on the store's schema (no KPI API in opsflow yet)")
    figs.append(kpi)
    return figs


def _stats(values: list[float], unit: str) -> Any:
    from bench.core import Stats

    return Stats.of(values, unit)


def _one(value: float, unit: str) -> Any:
    return _stats([value], unit)
