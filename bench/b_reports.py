"""10. Reports: KPI report and history over a store of 1,000,000 runs (10 M step results).

* the store: N runs (full 1,000,000; quick 20,000) over the 365 days before now — 12 runbooks with
  lognormal durations, ~5 % failed, 1–4 hosts per run (``runs.hosts``), triggers cli / schedule /
  event / ci, two versions (runbook hashes) per runbook, 10 step results per run — plus 50,000
  events with their rule actions and 20,000 schedule fires (scaled down with N). Made by SQL
  straight into a store created at head by ``SqlStore.connect`` (same columns as the store writes),
  cached under ``/tmp/opsflow-bench/`` by N and format version;
* every command cold, as its own process: ``opsflow report --format json --since 365d`` the first
  time (it builds the daily roll-ups of ~365 days: each round starts with the roll-ups deleted),
  then with the roll-ups present (365 d and 30 d), ``--hours business-hours`` (reads the runs
  themselves), ``opsflow history`` and ``opsflow history --runbook``; baselines: the plain
  ``sqlite3`` CLI running the equivalent query (the report's counts; the last 50 runs);
* PostgreSQL: the same rows copied (COPY) into a database of its own, the same commands with
  ``--db postgresql://…``, baselines ``psql -c`` with the same queries.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.core import Figure, Sample, figure, interleave, measured
from bench.env import BenchEnv

NAME = "reports"
FORMAT = 2  # bump when the generated data changes: cached stores of another format are made again
CACHE = Path("/tmp/opsflow-bench")
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_DB = "opsflow_bench_reports"
DAY = 86400.0
RESULTS_PER_RUN = 10

# name, median duration (s), lognormal sigma, hosts are routers
RUNBOOKS = [
    ("server-health", 20.0, 0.35, False), ("rotate-app-logs", 45.0, 0.5, False), ("deploy-motd", 12.0, 0.3, False),
    ("remediate-disk-full", 90.0, 0.7, False), ("server-backup", 420.0, 0.45, False),
    ("nightly-config-backup", 150.0, 0.4, True), ("restore-drill", 300.0, 0.5, False),
    ("router-restore", 240.0, 0.6, True), ("patch-servers", 900.0, 0.6, False), ("cert-renew", 30.0, 0.4, False),
    ("db-vacuum", 600.0, 0.8, False), ("dns-check", 8.0, 0.3, False),
]
WEIGHTS = [0.22, 0.08, 0.04, 0.06, 0.08, 0.08, 0.02, 0.02, 0.04, 0.04, 0.04, 0.28]
TRIGGERS = ["schedule", "event", "cli", "ci"]
TRIGGER_P = [0.5, 0.2, 0.2, 0.1]
PEOPLE = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
BACKUP_ACTION = {"server-backup": "backup", "nightly-config-backup": "network.backup", "restore-drill": "restore",
                 "router-restore": "network.restore"}

SERVICES = """\
services:
  - name: server-operations
    description: Routine care of the application servers.
    owner: ops-team
    runbooks: [server-health, rotate-app-logs, patch-servers, remediate-disk-full]
    rules: [disk-full]
    objectives:
      - {name: runs-succeed, kind: success_rate, target: 95%}
      - {name: health-check-fast, kind: duration, runbooks: [server-health], percentile: 95, max: 2m}
      - {name: disk-full-remediated, kind: auto_remediation, target: 90%}
      - {name: routine-on-time, kind: schedule_adherence, target: 95%}
  - name: backup-and-recovery
    description: Server archives and router configurations.
    owner: ops-team
    runbooks: [server-backup, nightly-config-backup, restore-drill]
    objectives:
      - {name: backups-succeed, kind: success_rate, target: 99%}
      - {name: backup-window, kind: duration, runbooks: [server-backup, nightly-config-backup], percentile: 95, max: 15m}
      - {name: nightly-on-time, kind: schedule_adherence, target: 99%}
"""
CALENDARS = """\
calendars:
  - name: business-hours
    mode: allowed
    description: Monday to Friday 08:00-18:00 Paris time.
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: '08:00', end_time: '18:00'}]
        location: Europe/Paris
"""
SCHEDULE_ENTRIES = [("health-hourly", "server-health", "0 * * * *"), ("logs-nightly", "rotate-app-logs", "0 3 * * *"),
                    ("backup-nightly", "server-backup", "0 2 * * *"),
                    ("config-backup-nightly", "nightly-config-backup", "30 2 * * *")]

# the raw baselines: what a user would type at the sqlite3 / psql prompt for the same answers
RAW_REPORT = ("SELECT runbook, status, COUNT(*), AVG(duration), MAX(duration) FROM runs WHERE started_at >= {since} "
              "AND check_mode = 0 GROUP BY runbook, status ORDER BY runbook, status")
RAW_HISTORY = ("SELECT id, runbook, status, trigger, started_at, duration, hosts FROM runs {where}"
               "ORDER BY started_at DESC LIMIT 50")


# ---- the store --------------------------------------------------------------------------------

def cached_path(n: int) -> Path:
    return CACHE / f"reports-{n}-v{FORMAT}.db"


def _hash(rb: str, version: int) -> str:
    return hashlib.sha256(f"{rb}@{version}".encode()).hexdigest()


def generate(path: Path, n: int, now: float, say: Callable[[str], None]) -> None:
    """Fill a new store at ``path`` with n runs ending at ``now`` (see the module docstring)."""
    import numpy as np

    from opsflow.store import SqlStore

    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        p.unlink(missing_ok=True)
    SqlStore.connect(str(path)).close()  # the schema at head
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-400000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("CREATE TEMP TABLE g (id TEXT, rb TEXT, net INTEGER, h0 INTEGER, k INTEGER, failed INTEGER, "
                 "st REAL, dur REAL, action TEXT)")
    rng = np.random.default_rng(20261124)
    start = now - 365 * DAY
    starts = np.sort(rng.uniform(start, now - 120, n))
    rbi = rng.choice(len(RUNBOOKS), size=n, p=WEIGHTS)
    mu = np.log([r[1] for r in RUNBOOKS])[rbi]
    sigma = np.array([r[2] for r in RUNBOOKS])[rbi]
    durs = np.exp(mu + sigma * rng.standard_normal(n))
    u = rng.random(n)
    status = np.where(u < 0.035, "failed", np.where(u < 0.045, "partial", np.where(
        u < 0.048, "canceled", np.where(u < 0.05, "abandoned", "succeeded"))))
    check = rng.random(n) < 0.02
    trig = rng.choice(len(TRIGGERS), size=n, p=TRIGGER_P)
    ks = rng.integers(1, 5, n)
    h0 = rng.integers(0, 200, n)
    who = rng.integers(0, len(PEOPLE), n)
    change_at = {rb: start + 365 * DAY * (0.4 + 0.02 * j) for j, (rb, *_) in enumerate(RUNBOOKS)}
    running = set(range(max(0, n - 3), n))  # the newest runs are still going (on another node)
    cols = ("id, runbook, runbook_path, runbook_hash, params, trigger, started_by, status, check_mode, started_at, "
            "ended_at, duration, pid, pid_start, node, error, hosts, parent_run, inventory, error_kind")
    run_sql = f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * 20)})"
    chunk = 100_000
    event_runs: list[tuple[str, float, float, str, str, str]] = []
    conn.execute("BEGIN")
    for lo in range(0, n, chunk):
        runs, gen = [], []
        for i in range(lo, min(n, lo + chunk)):
            rb, _med, _sig, net = RUNBOOKS[rbi[i]]
            st = float(starts[i])
            trigger = TRIGGERS[trig[i]]
            rid = time.strftime("%Y%m%d-%H%M%S", time.gmtime(st)) + f"-{i:06x}"[-7:]
            k = int(ks[i])
            names = [f"r{(h0[i] + j) % 20 + 1}" if net else f"srv{(h0[i] + j) % 200 + 1}" for j in range(k)]
            s = str(status[i])
            dur = float(durs[i])
            if i in running:
                s, hosts, ended, duration = "running", {h: "pending" for h in names}, None, None
            else:
                ended, duration = st + dur, dur
                hosts = {h: "ok" for h in names}
                if s in ("failed", "partial"):
                    hosts[names[(RESULTS_PER_RUN - 1) % k]] = "failed" if s == "failed" else "unreachable"
            by = {"schedule": "scheduler", "event": "opsflow-daemon", "ci": "ci@gitlab"}.get(trigger) \
                or f"{PEOPLE[who[i]]}@ops"
            failed = s in ("failed", "partial")
            runs.append((rid, rb, f"/srv/opsflow/runbooks/{rb}.yaml", _hash(rb, 1 if st < change_at[rb] else 2),
                         '{"keep": 3}' if i % 4 == 0 else "{}", trigger, by, s, int(check[i]), st, ended, duration,
                         1000 + i % 30000, "123456", "bench-node",
                         f"step 'step-9' failed on {names[(RESULTS_PER_RUN - 1) % k]}" if failed else None,
                         json.dumps(hosts), None, "inventory/hosts.yml", "step_failed" if failed else None))
            gen.append((rid, rb, int(net), int(h0[i]), k, int(failed), st, dur, BACKUP_ACTION.get(rb)))
            if trigger == "event" and s != "running":
                event_runs.append((rid, st, dur, s, rb, names[0]))
        conn.executemany(run_sql, runs)
        conn.execute("DELETE FROM g")
        conn.executemany("INSERT INTO g VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", gen)
        conn.execute(f"""
            INSERT INTO results (run_id, step_index, step, action, host, phase, status, changed, rc, started_at,
                                 ended_at, duration, attempts, stdout, stderr, data, error_class, error)
            WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {RESULTS_PER_RUN - 1}),
            x AS (SELECT g.*, s.i AS i, CASE WHEN g.net THEN 'r' || ((g.h0 + s.i % g.k) % 20 + 1)
                                        ELSE 'srv' || ((g.h0 + s.i % g.k) % 200 + 1) END AS host,
                         (g.failed AND s.i = {RESULTS_PER_RUN - 1}) AS bad
                  FROM g CROSS JOIN s)
            SELECT id, i, 'step-' || i, CASE WHEN i = 4 AND action IS NOT NULL THEN action ELSE 'command' END, host,
                   'main', CASE WHEN bad THEN 'failed' WHEN i % 3 = 0 THEN 'changed' ELSE 'ok' END, i % 3 = 0,
                   CASE WHEN bad THEN 1 ELSE 0 END, st + dur * i / {RESULTS_PER_RUN}.0,
                   st + dur * (i + 1) / {RESULTS_PER_RUN}.0, dur / {RESULTS_PER_RUN}.0, 1,
                   printf('%s on %s: done in %.2fs', 'step-' || i, host, dur / {RESULTS_PER_RUN}.0), '',
                   CASE WHEN i = 4 AND action IN ('restore', 'network.restore')
                        THEN json_object('source', host, 'rto_seconds', round(dur / 2, 1), 'rpo_seconds', 86400)
                        ELSE '{{}}' END,
                   CASE WHEN bad THEN 'StepFailed' END, CASE WHEN bad THEN 'exit status 1' END
            FROM x ORDER BY id, i""")
        say(f"    {min(n, lo + chunk):,} runs")
    _events_and_fires(conn, rng, event_runs, n, start, now)
    conn.execute("COMMIT")
    conn.execute("DROP TABLE g")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode=WAL")  # as the store keeps it
    conn.close()


def _events_and_fires(conn: sqlite3.Connection, rng: Any, event_runs: list[tuple[str, float, float, str, str, str]],
                      n: int, start: float, now: float) -> None:
    n_events = max(1000, min(50_000, n // 20))
    n_fires = max(500, min(20_000, n // 50))
    pick = rng.choice(len(event_runs), size=min(len(event_runs), int(n_events * 0.6)), replace=False) \
        if event_runs else []
    started = {int(j) for j in pick}
    events, actions = [], []
    times = sorted(float(t) for t in rng.uniform(start, now - 600, n_events - len(started)))
    others = iter(times)
    for j, (rid, st, dur, status, rb, host) in enumerate(event_runs):
        if j not in started:
            continue
        received = st - float(rng.uniform(0.05, 2.0))
        eid = f"ev-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(received))}-{j:08x}"
        events.append((eid, received, "alertmanager", "DiskFull" if rb == "remediate-disk-full" else "ServiceDown",
                       "firing", host, "critical", "disk / above 95%", f"fp{j % 5000}", None, "127.0.0.1", "{}",
                       '["disk-full"]', "matched", 0))
        actions.append((f"ac-{j:08x}", eid, "disk-full", host, f"disk-full:{host}", None, "finished", None, None, rid,
                        status, "bench-node", received, received + 0.01, st, st + dur, st - received,
                        st + dur - received))
    for j, received in enumerate(others):
        eid = f"ev-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(received))}-x{j:07x}"
        host = f"srv{j % 200 + 1}"
        matched = j % 3 != 0
        events.append((eid, received, "alertmanager", "DiskFull", "firing", host, "warning", "disk / above 90%",
                       f"fp{j % 5000}", None, "127.0.0.1", "{}", '["disk-full"]' if matched else "[]",
                       "matched" if matched else "no_rule", 0))
        if matched:
            reason = ("duplicate", "cooldown", "breaker_open", "locked")[j % 4]
            actions.append((f"ax-{j:08x}", eid, "disk-full", host, f"disk-full:{host}", None,
                            "suppressed" if reason in ("duplicate", "cooldown") else "canceled", reason, None, None,
                            None, "bench-node", received, None, None, None, None, None))
    conn.executemany(f"INSERT INTO events VALUES ({', '.join('?' * 15)})", events)
    conn.executemany("INSERT INTO event_actions (id, event_id, rule, host, dedup_key, occurrence, outcome, reason, "
                     "detail, run_id, run_status, daemon, received_at, queued_at, started_at, ended_at, start_latency, "
                     f"end_latency) VALUES ({', '.join('?' * 18)})", actions)
    fires = []
    per = n_fires // len(SCHEDULE_ENTRIES)
    for entry, _rb, cron in SCHEDULE_ENTRIES:
        step = 3600.0 if cron.startswith("0 *") else DAY
        first = now - per * step
        for j in range(per):
            slot = first + j * step
            u = rng.random()
            decision = "fired" if u < 0.95 else "deferred" if u < 0.98 else "missed"
            fires.append((entry, slot, decision, None if decision == "fired" else "blackout", None, None,
                          "succeeded" if decision == "fired" else None, slot + 0.2, "bench-node"))
    conn.executemany("INSERT INTO schedule_fires (entry, slot, decision, reason, deferred_to, run_id, outcome, "
                     "decided_at, scheduler) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", fires)


def ensure_store(n: int, say: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """The cached store of n runs (made when missing, of another format, or older than a day)."""
    path, meta_path = cached_path(n), cached_path(n).with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
        if path.exists() and time.time() - meta["now"] < DAY:
            meta["cached"] = True
            return path, meta
    except (OSError, ValueError, KeyError):
        pass
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.db")
    now = time.time()
    say(f"  generating a store of {n:,} runs ({n * RESULTS_PER_RUN:,} results) in {tmp}")
    t0 = time.perf_counter()
    generate(tmp, n, now, lambda m: say(m))
    took = time.perf_counter() - t0
    os.replace(tmp, path)
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    meta = {"n": n, "now": now, "generate_s": round(took, 1), "bytes": path.stat().st_size, "format": FORMAT}
    meta_path.write_text(json.dumps(meta))
    say(f"  generated in {took:.1f} s ({path.stat().st_size / 2**30:.2f} GiB)")
    meta["cached"] = False
    return path, meta


ROLLUP_RESET = ("DELETE FROM rollup_days; DELETE FROM run_rollups; DELETE FROM host_rollups; DELETE FROM rollup_weeks; "
                "DELETE FROM week_rollups; DELETE FROM host_week_rollups; DELETE FROM people_week_rollups")


def reset_rollups(db: str) -> None:
    """Delete the daily and weekly roll-ups (the next report builds them again)."""
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db, autocommit=True) as c:
            c.execute(ROLLUP_RESET)
        return
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(f"BEGIN; {ROLLUP_RESET}; COMMIT;")
    conn.close()


# ---- PostgreSQL ---------------------------------------------------------------------------------

TABLES = {
    "runs": ("id, runbook, runbook_path, runbook_hash, params, trigger, started_by, status, check_mode, started_at, "
             "ended_at, duration, pid, pid_start, node, error, hosts, parent_run, inventory, error_kind"),
    "results": ("run_id, step_index, step, action, host, phase, status, changed, rc, started_at, ended_at, duration, "
                "attempts, stdout, stderr, data, error_class, error"),
    "events": ("id, received_at, source, name, status, host, severity, message, fingerprint, occurrence, peer, "
               "payload, rules, outcome, check_mode"),
    "event_actions": ("id, event_id, rule, host, dedup_key, occurrence, outcome, reason, detail, run_id, run_status, "
                      "daemon, received_at, queued_at, started_at, ended_at, start_latency, end_latency"),
    "schedule_fires": "entry, slot, decision, reason, deferred_to, run_id, outcome, decided_at, scheduler",
}


def pg_url() -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + PG_DB


def pg_load(sqlite_path: Path, say: Callable[[str], None]) -> float:
    """A fresh database PG_DB holding the store's rows (schema by SqlStore.connect, rows by COPY)."""
    import psycopg

    from opsflow.store import SqlStore

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {PG_DB}")
    t0 = time.perf_counter()
    SqlStore.connect(pg_url()).close()
    with psycopg.connect(pg_url(), autocommit=True) as c:
        idx = c.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = ANY(%s) "
                        "AND indexname NOT LIKE '%%_pkey'", (list(TABLES),)).fetchall()
        for name, _ in idx:  # load first, index after: the same indexes, built once
            c.execute(f"DROP INDEX {name}")
        for table, cols in TABLES.items():
            t1 = time.perf_counter()
            # the sqlite3 CLI writes CSV (NULL as an empty unquoted field, which COPY reads as NULL)
            proc = subprocess.Popen(["sqlite3", "-csv", str(sqlite_path), f"SELECT {cols} FROM {table}"],
                                    stdout=subprocess.PIPE)
            assert proc.stdout is not None
            with c.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                while block := proc.stdout.read(1 << 20):
                    copy.write(block)
            if proc.wait() != 0:
                raise RuntimeError(f"sqlite3 -csv of {table} failed")
            say(f"    {table}: copied in {time.perf_counter() - t1:.1f} s")
        t1 = time.perf_counter()
        for _, ddl in idx:
            c.execute(ddl)
        c.execute("VACUUM ANALYZE")
        say(f"    indexes and ANALYZE: {time.perf_counter() - t1:.1f} s")
    return time.perf_counter() - t0


def pg_drop() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


def pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as c:
            c.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any reason PostgreSQL is not there is reported
        return f"PostgreSQL at {PG_ADMIN} unavailable: {exc}"
    return None if shutil.which("psql") else "no psql"


# ---- measuring ----------------------------------------------------------------------------------

def project(work: Path) -> Path:
    """A project dir: the runbooks, services with objectives for them, schedules with business-hours."""
    base = work / "reports-project"
    (base / "services").mkdir(parents=True, exist_ok=True)
    (base / "schedules").mkdir(parents=True, exist_ok=True)
    (base / "runbooks").mkdir(parents=True, exist_ok=True)
    for rb, *_ in RUNBOOKS:
        (base / "runbooks" / f"{rb}.yaml").write_text(f"name: {rb}\ntargets: all\nsteps:\n  - {{name: s, local: ['true']}}\n")
    (base / "services" / "bench.yaml").write_text(SERVICES)
    (base / "schedules" / "calendars.yaml").write_text(CALENDARS)
    (base / "schedules" / "entries.yaml").write_text(
        "schedules:\n" + "".join(f"  - {{name: {e}, runbook: {rb}, cron: '{c}', timezone: UTC}}\n"
                                 for e, rb, c in SCHEDULE_ENTRIES))
    return base


def _measure(db: str, n: int, env: BenchEnv, label: str, raw: Callable[[str], list[str]], rounds: int,
             first_rounds: int, raw_name: str) -> tuple[list[Figure], dict[str, Any]]:
    base = project(env.work)
    os_env = env.env(OPSFLOW_SERVICES=str(base / "services"), OPSFLOW_SCHEDULES=str(base / "schedules"),
                     OPSFLOW_RUNBOOKS=str(base / "runbooks"),
                     OPSFLOW_PROJECT="none")
    info: dict[str, Any] = {}

    def cli(*args: str, check: Callable[[str], bool] | None = None) -> Sample:
        p = measured(env.opsflow(*args, "--db", db), env=os_env, cwd=base)
        ok = p.rc == 0 and bool(p.stdout.strip()) and (check is None or check(p.stdout))
        return Sample(wall=p.wall, cpu=p.cpu, ok=ok, detail=(p.stderr or p.stdout)[-300:])

    def report(since: str, *extra: str) -> Sample:
        def check(out: str) -> bool:
            doc = json.loads(out)
            info[f"{since}{extra}"] = {"runs": doc["totals"]["runs"], **doc["store"]}
            return doc["totals"]["runs"] > 0
        return cli("report", "--format", "json", "--since", since, *extra, check=check)

    def tool(sql: str) -> Sample:
        p = measured(raw(sql), env=os_env)
        return Sample(wall=p.wall, cpu=p.cpu, ok=p.rc == 0 and bool(p.stdout.strip()), detail=p.stderr[-300:])

    now = time.time()
    s365, s30 = now - 365 * DAY - 3600, now - 30 * DAY
    sizes = f"{n:,} runs, {n * RESULTS_PER_RUN / 1e6:g} M results"

    env.say(f"  {label}: first report (builds the roll-ups), {first_rounds} rounds")
    firsts: list[Sample] = []
    for _ in range(first_rounds):
        reset_rollups(db)
        firsts.append(report("365d"))
    first = {"first": firsts}
    env.say(f"  {label}: reports, hours report, history, raw baselines, {rounds} rounds")
    s = interleave({
        "report365": lambda: report("365d"),
        "report30": lambda: report("30d"),
        "hours": lambda: report("365d", "--hours", "business-hours"),
        "history": lambda: cli("history"),
        "history-json": lambda: cli("history", "--json"),
        "history-rb": lambda: cli("history", "--runbook", "patch-servers"),
        "raw365": lambda: tool(RAW_REPORT.format(since=s365)),
        "raw30": lambda: tool(RAW_REPORT.format(since=s30)),
        "raw-history": lambda: tool(RAW_HISTORY.format(where="")),
        "raw-history-rb": lambda: tool(RAW_HISTORY.format(where="WHERE runbook = 'patch-servers' ")),
    }, rounds, 1 if rounds > 2 else 0, env.say)
    s.update(first)
    ms = 1000.0
    rolled = info.get("365d()", {})
    figs = [
        figure(NAME, f"{label}: first `opsflow report --format json --since 365d`: builds roll-ups, {sizes}",
               s, "first", "raw365", lambda x: x.wall * ms, "ms", baseline_label=raw_name,
               note=f"every round starts with the roll-ups deleted; {first_rounds} rounds"),
        figure(NAME, f"{label}: `opsflow report --format json --since 365d`, roll-ups present, {sizes}", s,
               "report365", "raw365", lambda x: x.wall * ms, "ms", baseline_label=raw_name,
               note=f"{rolled.get('rolled_days', '?')} days from roll-ups, {rolled.get('runs_read', '?'):,} runs read"
               if isinstance(rolled.get("runs_read"), int) else ""),
        figure(NAME, f"{label}: `opsflow report --format json --since 30d`, roll-ups present", s, "report30", "raw30",
               lambda x: x.wall * ms, "ms", baseline_label=raw_name),
        figure(NAME, f"{label}: `opsflow report --format json --since 365d --hours business-hours` (reads every run)",
               s, "hours", "raw365", lambda x: x.wall * ms, "ms", baseline_label=raw_name),
        figure(NAME, f"{label}: `opsflow history` (table, last 50), {n:,} runs", s, "history", "raw-history",
               lambda x: x.wall * ms, "ms", baseline_label=raw_name.replace("counts per runbook", "last 50")),
        figure(NAME, f"{label}: `opsflow history --json`", s, "history-json", "raw-history",
               lambda x: x.wall * ms, "ms", baseline_label=raw_name.replace("counts per runbook", "last 50")),
        figure(NAME, f"{label}: `opsflow history --runbook patch-servers`", s, "history-rb", "raw-history-rb",
               lambda x: x.wall * ms, "ms", baseline_label=raw_name.replace("counts per runbook", "last 50 of a runbook")),
    ]
    for f in figs[1:2]:
        f.target = "< 1 s"
        f.target_ok = f.opsflow is not None and f.opsflow.p50 < 1000
    for f in figs[4:5]:
        f.target = "< 150 ms"
        f.target_ok = f.opsflow is not None and f.opsflow.p50 < 150
    return figs, info


def run(env: BenchEnv) -> list[Figure]:
    quick = env.size.name == "quick"
    n = int(os.environ.get("BENCH_REPORTS_RUNS", 20_000 if quick else 1_000_000))
    rounds, first_rounds = (2, 1) if quick else (7, 3)
    path, meta = ensure_store(n, env.say)
    env.say(f"  store {path}: {n:,} runs, " + ("cached" if meta["cached"] else f"generated in {meta['generate_s']} s"))
    work_db = env.work / "reports.db"
    shutil.copyfile(path, work_db)  # measured on a copy: the cached store stays without roll-ups
    figs, _ = _measure(str(work_db), n, env, "SQLite",
                       lambda sql: ["sqlite3", str(work_db), sql], rounds, first_rounds,
                       "`sqlite3` CLI, counts per runbook")
    gen_note = (f"generated in {meta['generate_s']} s" + (" (cached)" if meta["cached"] else "")
                + f", {meta['bytes'] / 2**30:.2f} GiB")
    figs[0].note += f"; store {gen_note}"
    problem = pg_available()
    if problem:
        env.say(f"  PostgreSQL skipped: {problem}")
        return figs
    pn = n
    env.say(f"  PostgreSQL: loading {pn:,} runs into {PG_DB} (COPY)")
    try:
        took = pg_load(work_db, env.say)
        env.say(f"  PostgreSQL loaded in {took:.1f} s")
        url = pg_url()
        pfigs, _ = _measure(url, pn, env, "PostgreSQL", lambda sql: ["psql", url, "-X", "-q", "-A", "-c", sql],
                            rounds, first_rounds, "`psql -c`, counts per runbook")
        pfigs[0].note += f"; loaded by COPY in {took:.0f} s"
        figs += pfigs
    finally:
        pg_drop()
    return figs
