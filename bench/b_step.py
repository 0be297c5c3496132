"""1. Per-step overhead: a `command: [true]` step on one server against `ssh srv1 true`.

* the CLI (`opsflow run`, one step, fresh connection) and an in-process run of one
  step against `ssh` with a fresh connection;
* the cost of each further step inside one run of N steps (the run's multiplexed
  connection is reused) against `ssh` through an open ControlMaster — the target.
  Each of those steps is also split into the ssh process itself and opsflow's own time.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from bench.core import Figure, Sample, Stats, check_target, figure, interleave, measured, run_record, timed
from bench.env import BenchEnv

NAME = "step"


class StepClock:
    """An executor observer that timestamps each step's end and keeps each host's ssh duration."""

    def __init__(self) -> None:
        self.done: list[float] = []
        self.connector: list[float] = []
        self.statuses: list[str] = []
        self.t0 = 0.0

    def run_started(self, run_id: str, plan: Any) -> None:
        self.t0 = time.perf_counter()

    def step_started(self, step: Any, hosts: list[str]) -> None:
        pass

    def host_done(self, result: Any) -> None:
        self.connector.append(float(result.ended_at - result.started_at))
        self.statuses.append(str(result.status))

    def step_done(self, step: Any) -> None:
        self.done.append(time.perf_counter())

    def run_done(self, result: Any) -> None:
        pass


def runbook(env: BenchEnv, steps: int) -> Path:
    body = "".join(f"  - name: t{i}\n    command: [\"true\"]\n" for i in range(1, steps + 1))
    return env.write(f"step-{steps}.yaml", f"name: bench-step-{steps}\ntargets: srv1\nsteps:\n{body}")


def run(env: BenchEnv) -> list[Figure]:
    from opsflow.executor import Executor
    from opsflow.planning import RunRequest, build_plan
    from opsflow.store import open_store

    size = env.size
    inv = env.inventory("servers", 1)
    one, long_rb = runbook(env, 1), runbook(env, size.step_long)
    db = env.db("step")
    db.parent.mkdir(parents=True, exist_ok=True)
    cfg = str(env.ssh_config)
    os_env = env.env()

    # -- single step: CLI and in-process, against a fresh ssh connection -------------------
    def cli() -> Sample:
        p = measured(env.opsflow("run", str(one), "-i", str(inv), "--json", "-q", "--db", str(db)), env=os_env)
        ok = p.rc == 0 and run_record(p).get("status") == "succeeded"
        return Sample(wall=p.wall, cpu=p.cpu, ok=ok, detail=p.stderr[-300:])

    store = open_store(str(db))

    def inproc() -> Sample:
        plan = build_plan(RunRequest(runbook=str(one), inventory=str(inv)))
        t0 = time.perf_counter()
        result = Executor(store).execute(plan)
        wall = time.perf_counter() - t0
        return Sample(wall=wall, ok=str(result.status) == "succeeded", detail=str(result.error))

    def fresh() -> Sample:
        return timed(["ssh", "-F", cfg, "srv1", "true"])

    env.say("  single step (CLI, in-process) vs ssh with a fresh connection")
    s1 = interleave({"cli": cli, "inproc": inproc, "ssh-fresh": fresh}, size.step_rounds, size.warmup, env.say)
    ms = 1000.0
    cli_fig = figure(NAME, "1 step, 1 server: `opsflow run` (CLI, fresh connection)", s1, "cli", "ssh-fresh",
                     lambda s: s.wall * ms, "ms", baseline_label="`ssh srv1 true`, fresh connection",
                     note="whole CLI process: interpreter, imports, plan, store, run")
    cli_fig.target = "≤ 1.5× (issue 16)"
    figs = [
        check_target(cli_fig, max_ratio=1.5),
        figure(NAME, "1 step, 1 server: in-process run (fresh connection)", s1, "inproc", "ssh-fresh",
               lambda s: s.wall * ms, "ms", baseline_label="`ssh srv1 true`, fresh connection",
               note="Executor.execute only: store records, ssh master, close"),
    ]

    # -- steps inside one run, against ssh over an open ControlMaster ----------------------
    control = env.tmpdir("cm-") / "cm"
    mux = ["ssh", "-F", cfg, "-o", "ControlMaster=auto", "-o", f"ControlPath={control}",
           "-o", "ControlPersist=120"]
    subprocess.run([*mux, "srv1", "true"], check=True, capture_output=True, timeout=30)
    per_step: list[Sample] = []
    reused: list[Sample] = []

    def long_run() -> Sample:
        plan = build_plan(RunRequest(runbook=str(long_rb), inventory=str(inv)))
        clock = StepClock()
        t0 = time.perf_counter()
        result = Executor(store, clock).execute(plan)  # type: ignore[arg-type]
        wall = time.perf_counter() - t0
        ok = str(result.status) == "succeeded" and len(clock.done) == size.step_long
        if ok:  # step 1 opens the connection; steps 2..N reuse it
            for i in range(1, len(clock.done)):
                step_wall = clock.done[i] - clock.done[i - 1]
                ssh = clock.connector[i]
                per_step.append(Sample(wall=step_wall, extra={"ssh": ssh, "own": step_wall - ssh}))
        return Sample(wall=wall, ok=ok, detail=str(result.error))

    def ssh_reused() -> Sample:
        for _ in range(size.step_long - 1):
            reused.append(timed([*mux, "srv1", "true"]))
        return Sample(wall=0.0)

    env.say(f"  steps inside a run of {size.step_long} vs ssh over a ControlMaster")
    rounds = size.step_long_rounds
    interleave({"long": long_run, "reused": ssh_reused}, rounds, size.warmup, env.say)
    per_step = per_step[-rounds * (size.step_long - 1):]
    reused = reused[-rounds * (size.step_long - 1):]
    subprocess.run([*mux, "-O", "exit", "srv1"], capture_output=True, timeout=30)
    store.close()

    samples = {"step": per_step, "reused": reused}
    fig = figure(NAME, f"per step inside one run of {size.step_long} steps (connection reused)", samples,
                 "step", "reused", lambda s: s.wall * ms, "ms",
                 baseline_label="`ssh srv1 true` over an open ControlMaster")
    ssh_part = Stats.of([s.extra["ssh"] * ms for s in per_step], "ms")
    own_part = Stats.of([s.extra["own"] * ms for s in per_step], "ms")
    if ssh_part and own_part:
        fig.note = (f"of which the ssh client process p50 {ssh_part.p50:.1f} ms, opsflow's own time "
                    f"(render, validate, record, dispatch) p50 {own_part.p50:.1f} / p95 {own_part.p95:.1f} ms")
    figs.append(check_target(fig, max_ratio=1.2))
    figs[-1].target = "≤ 1.2×"
    return figs
