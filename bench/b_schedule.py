"""9. Schedule: the next slots of 10,000 entries over a year with windows; fire → run start with 1,000 entries.

* next slots: a schedules directory of 10,000 cron entries (varied minutes, hours, weekdays, days of
  month), two thirds of them under maintenance windows and blackouts (an Alertmanager
  ``time_intervals`` weeknight window, a monthly RRULE window, a dates blackout, a business-hours
  blackout), loaded once; each round computes every entry's next slot (run, or the deferral a window
  forces, looking up to a year ahead and beyond) with :func:`opsflow.schedule.slots.next_slots`, its
  caches emptied first (cold). Baseline: plain ``croniter`` iteration of the same expressions (the
  next fire only: no zone conversion, no windows);
* fire → run start: the scheduler of ``opsflow daemon`` (in-process, real clock, a real SQLite store)
  with 1,000 ``every: 60s`` entries spread over the minute (about 17 fires a second, in bursts at
  each second), each a one-step ``local: [true]`` runbook: the delay from a slot to its run's record
  (``runs.started_at`` − slot), p50/p99. No raw tool compares.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.core import Figure, Sample, Stats, figure, interleave
from bench.env import BenchEnv

NAME = "schedule"

CALENDARS = """\
calendars:
  - name: weeknights
    mode: allowed
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: '01:00', end_time: '05:00'}]
        location: Europe/Berlin
  - name: monthly
    mode: allowed
    location: Europe/Berlin
    recurrences: [{rrule: 'FREQ=MONTHLY;BYDAY=1SA', start: '2025-01-04T22:00', duration: 6h}]
  - name: freeze
    mode: blackout
    location: Europe/Berlin
    dates: [{from: '2026-12-20', to: '2027-01-02'}, '2027-05-01', '2027-10-03']
  - name: business
    mode: blackout
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: '08:00', end_time: '18:00'}]
        location: Europe/Berlin
"""


def _cron(rng: random.Random) -> str:
    minute, hour = rng.randrange(60), rng.randrange(24)
    kind = rng.randrange(4)
    if kind == 0:
        return f"{minute} {hour} * * *"
    if kind == 1:
        return f"{minute} {hour} * * {rng.randrange(7)}"
    if kind == 2:
        return f"{minute} {hour} {rng.randrange(1, 29)} * *"
    return f"{minute} */{rng.choice((2, 3, 4, 6))} * * *"


def write_schedules(directory: Path, n: int) -> list[str]:
    """n cron entries, 2/3 of them under windows or blackouts; returns the cron expressions."""
    rng = random.Random(9)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "runbooks").mkdir(exist_ok=True)
    (directory / "runbooks" / "noop.yaml").write_text("name: noop\ntargets: all\nsteps:\n  - {name: n, local: ['true']}\n")
    (directory / "schedules").mkdir(exist_ok=True)
    (directory / "schedules" / "calendars.yaml").write_text(CALENDARS)
    crons: list[str] = []
    cal_sets: list[list[str]] = [[], ["weeknights"], ["monthly", "freeze"], ["freeze", "business"],
                                 ["weeknights", "freeze"], []]
    for part in range(0, n, 1000):  # files of 1,000 entries (a schedules file is at most 1 MB)
        lines = ["schedules:"]
        for i in range(part, min(n, part + 1000)):
            cron = _cron(rng)
            crons.append(cron)
            cals = cal_sets[i % len(cal_sets)]
            policy = ", on_blackout: next_window" if i % 2 else ""
            lines.append(f"  - {{name: e{i}, runbook: noop, cron: '{cron}', timezone: Europe/Berlin, "
                         f"calendars: [{', '.join(cals)}]{policy}}}")
        (directory / "schedules" / f"s{part // 1000:02d}.yaml").write_text("\n".join(lines) + "\n")
    return crons


def _next_slots(n: int, env: BenchEnv, rounds: int, warmup: int) -> list[Figure]:
    from croniter import croniter

    from opsflow.schedule import slots, triggers
    from opsflow.schedule.loader import load_schedules

    base = env.work / "schedule-slots"
    crons = write_schedules(base, n)
    t0 = time.perf_counter()
    sset = load_schedules(base / "schedules", base / "runbooks", check_runbooks=False)
    loaded = time.perf_counter() - t0
    entries = list(sset.entries.values())
    start = datetime(2026, 12, 1, tzinfo=UTC)
    found: dict[str, int] = {}

    def opsflow_next() -> Sample:
        triggers._MEMO.clear()  # cold: no fire times or open periods computed before
        slots._OPEN.clear()
        t = time.perf_counter()
        out = [slots.next_slots(e, start=start, count=1) for e in entries]
        took = time.perf_counter() - t
        found["deferred"] = sum(1 for s in out if s and s[0].action == "defer")
        found["far"] = sum(1 for s in out if s and s[0].start and s[0].start - start > timedelta(days=300))
        return Sample(wall=took, ok=all(len(s) == 1 for s in out))

    def croniter_next() -> Sample:
        t = time.perf_counter()
        out = [croniter(c, start).get_next(datetime) for c in crons]
        return Sample(wall=time.perf_counter() - t, ok=len(out) == len(crons))

    env.say(f"  next slot of {n:,} entries (loaded in {loaded:.1f} s)")
    s = interleave({"opsflow": opsflow_next, "croniter": croniter_next}, rounds, warmup, env.say)
    fig = figure(NAME, f"next slot of {n:,} entries (2/3 under windows and blackouts, a year ahead), cold",
                 s, "opsflow", "croniter", lambda x: x.wall * 1000, "ms",
                 baseline_label="plain croniter get_next of the same crons (no zones, no windows)",
                 note=f"{found.get('deferred', 0):,} slots deferred by a window, {found.get('far', 0):,} more than "
                      f"300 days out; loading the {n:,}-entry file: {loaded:.1f} s")
    fig.target = "< 1 s"
    fig.target_ok = fig.opsflow is not None and fig.opsflow.p50 < 1000
    return [fig]


def _fire_latency(n: int, env: BenchEnv, seconds: float) -> list[Figure]:
    from opsflow.schedule.loader import load_schedules
    from opsflow.service.notifications import Notices
    from opsflow.service.runs import RunConfig
    from opsflow.service.scheduler import Scheduler
    from opsflow.store import open_store

    base = env.work / "schedule-fire"
    (base / "runbooks").mkdir(parents=True, exist_ok=True)
    (base / "schedules").mkdir(exist_ok=True)
    (base / "runbooks" / "noop.yaml").write_text("name: noop\ntargets: all\nsteps:\n  - {name: n, local: ['true']}\n")
    inv = base / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    a: {ansible_host: 127.0.0.1}\n")
    lines = ["schedules:"] + [f"  - {{name: f{i}, runbook: noop, every: 60s, start: '2026-01-01T00:00:{i % 60:02d}', "
                              "concurrency: allow}" for i in range(n)]
    (base / "schedules" / "s.yaml").write_text("\n".join(lines) + "\n")
    sset = load_schedules(base / "schedules", base / "runbooks")
    store = open_store(str(base / "s.db"))
    sched = Scheduler(sset, store, RunConfig(inventory=str(inv)), Notices())
    env.say(f"  fire → run start: {n:,} entries, {seconds:g} s")
    began = time.time()
    sched.start()
    time.sleep(seconds)
    sched.stop(timeout=60)
    fires = [r for r in store.fires(since=began, limit=1_000_000) if r["decision"] == "fired" and r["run_id"]]
    delays: list[float] = []
    for r in fires:
        run: Any = store.get_run(r["run_id"])
        if run is not None:
            delays.append(float(run["started_at"]) - float(r["slot"]))
    decided = store.fires(since=began, limit=1_000_000)
    store.close()
    without = Counter(str(r["outcome"] if r["decision"] == "fired" else r["decision"]) for r in decided
                      if not (r["decision"] == "fired" and r["run_id"]))
    stats = Stats.of([d * 1000 for d in delays], "ms")
    fig = Figure(bench=NAME, name=f"slot → run started, {n:,} entries loaded (~{n / 60:.0f} fires/s)", unit="ms",
                 opsflow=stats, baseline_name="—", baseline=None, tail="p99", samples="fires",
                 note=f"{len(delays):,} runs in {seconds:g} s; slots without a run: "
                      + (", ".join(f"{n} {what}" for what, n in sorted(without.items())) or "none"))
    fig.target = "p99 < 1 s"
    fig.target_ok = stats is not None and stats.p99 < 1000
    return [fig]


def run(env: BenchEnv) -> list[Figure]:
    quick = env.size.name == "quick"
    figs = _next_slots(1000 if quick else 10_000, env, 1 if quick else 5, 0 if quick else 1)
    figs += _fire_latency(100 if quick else 1000, env, 5.0 if quick else 60.0)
    return figs
