"""2. Fan-out: one `command: [true]` step on 10, 50 and 200 servers, every tool from a cold start.

Contenders, all with the same parallelism (Size.concurrency) and fresh connections:
`opsflow run` (the CLI); raw OpenSSH through `xargs -P`; a minimal asyncssh script;
a minimal paramiko thread-pool script; plain Nornir (ThreadedRunner, a paramiko task,
no Netmiko). Each is a separate process, started and measured the same way (bench/cpuwrap.py):
wall time until it exits, and controller CPU-seconds of its whole process tree.
"""

from __future__ import annotations

from bench.core import Figure, Sample, Stats, check_target, figure, interleave, measured, run_ok, run_record
from bench.env import BenchEnv

NAME = "fanout"


def runbook(env: BenchEnv, parallel: int) -> str:
    return str(env.write(f"fanout-{parallel}.yaml", f"""\
        name: bench-fanout
        targets: servers
        concurrency: {parallel}
        steps:
          - name: t
            command: ["true"]
        """))


def run(env: BenchEnv) -> list[Figure]:
    size = env.size
    figs: list[Figure] = []
    os_env = env.env()
    for n in size.fanout:
        par = min(size.concurrency, n)
        inv, hosts, names = env.inventory("servers", n), env.hosts_file("servers", n), env.names_file("servers", n)
        rb = runbook(env, par)
        db = env.db(f"fanout-{n}")
        db.parent.mkdir(parents=True, exist_ok=True)
        common = ["--hosts", str(hosts), "--user", "root", "--key", str(env.private_key),
                  "--known-hosts", str(env.known_hosts), "-P", str(par), "--cmd", "true"]

        def opsflow(n: int = n, inv: object = inv, rb: str = rb, db: object = db) -> Sample:
            p = measured(env.opsflow("run", rb, "-i", str(inv), "--json", "-q", "--db", str(db)), env=os_env)
            rec = run_record(p)
            ok = run_ok(p, rec, n)
            return Sample(wall=p.wall, cpu=p.cpu, ok=ok, detail=f"rc {p.rc} {p.stderr[-300:]}",
                          extra={"run": float(rec.get("duration") or 0.0)})

        def xargs(names: object = names, par: int = par) -> Sample:
            p = measured(["sh", "-c", f"xargs -P {par} -I{{}} ssh -n -F '{env.ssh_config}' {{}} true < '{names}'"],
                         env=os_env)
            return Sample(wall=p.wall, cpu=p.cpu, ok=p.rc == 0, detail=f"rc {p.rc} {p.stderr[-300:]}")

        def driver(kind: str, common: list[str] = common) -> Sample:
            p = measured(env.driver(kind, *common), env=os_env)
            return Sample(wall=p.wall, cpu=p.cpu, ok=p.rc == 0, detail=f"rc {p.rc} {p.stdout[-200:]} {p.stderr[-300:]}")

        env.say(f"  {n} servers, {par} in parallel")
        samples = interleave({
            "opsflow": opsflow,
            "xargs": xargs,
            "asyncssh": lambda: driver("asyncssh"),
            "paramiko": lambda: driver("paramiko"),
            "nornir": lambda: driver("nornir-paramiko"),
        }, size.fanout_rounds, size.warmup, env.say)

        def rate(s: Sample, n: int = n) -> float:
            return n / s.wall

        labels = {
            "xargs": f"`xargs -P {par}` over `ssh`",
            "asyncssh": "asyncssh script",
            "paramiko": "paramiko thread pool",
            "nornir": "plain Nornir (ThreadedRunner, paramiko task)",
        }
        big = n == max(size.fanout)
        inner = Stats.of([s.extra["run"] for s in samples["opsflow"] if s.ok and s.extra.get("run")], "s")
        for base, label in labels.items():
            fig = figure(NAME, f"{n} servers: throughput", samples, "opsflow", base, rate, "hosts/s",
                         higher_is_better=True, baseline_label=label)
            if base == "xargs" and inner:
                wall = Stats.of([s.wall for s in samples["opsflow"] if s.ok], "s")
                fig.note = (f"opsflow wall p50 {wall.p50 if wall else 0:.2f} s, of which the run itself "
                            f"(as recorded) p50 {inner.p50:.2f} s = {n / inner.p50:.0f} hosts/s; "
                            "the rest is CLI start-up, plan and closing the connections")
            if big and base in ("xargs", "asyncssh"):
                fig.target = "≥ 0.8×"
                check_target(fig, min_ratio=0.8)
            elif big and base == "nornir":
                fig.target = "> 1.0×"
                fig.target_ok = fig.ratio is not None and fig.ratio > 1.0
            figs.append(fig)
        for base in ("xargs", "nornir"):
            figs.append(figure(NAME, f"{n} servers: controller CPU", samples, "opsflow", base,
                               lambda s: s.cpu, "CPU-s", baseline_label=labels[base],
                               note="user+system of the whole process tree, ssh masters included"))
    return figs
