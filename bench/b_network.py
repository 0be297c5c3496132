"""4. Network devices: `network.command: [show version]` on 2 and 20 FRR routers (Netmiko cisco_ios).

Baselines: a plain sequential Netmiko loop (what a quick script does), the same with a
thread pool, and plain Nornir + nornir-netmiko (`netmiko_send_command`), all with host
keys checked against the lab's known_hosts and the same parallelism as opsflow.
"""

from __future__ import annotations

from pathlib import Path

from bench.core import Figure, Sample, Stats, figure, interleave, measured, run_ok, run_record
from bench.env import BenchEnv

NAME = "network"
COMMAND = "show version"


def run(env: BenchEnv) -> list[Figure]:
    size = env.size
    figs: list[Figure] = []
    os_env = env.env()
    for n in size.routers:
        par = n  # every router at once (at most 20), as opsflow's default concurrency of 20 would
        inv, hosts = env.inventory("routers", n), env.hosts_file("routers", n)
        rb = env.write(f"network-{n}.yaml", f"""\
            name: bench-network
            targets: routers
            concurrency: {par}
            steps:
              - name: show
                network.command: [{COMMAND}]
            """)
        db = env.db(f"network-{n}")
        db.parent.mkdir(parents=True, exist_ok=True)
        common = ["--hosts", str(hosts), "--user", "admin", "--key", str(env.private_key),
                  "--known-hosts", str(env.known_hosts), "-P", str(par), "--cmd", COMMAND]

        def opsflow(n: int = n, rb: Path = rb, inv: Path = inv, db: Path = db) -> Sample:
            p = measured(env.opsflow("run", str(rb), "-i", str(inv), "--json", "-q", "--db", str(db)), env=os_env)
            rec = run_record(p)
            ok = run_ok(p, rec, n)
            return Sample(wall=p.wall, cpu=p.cpu, ok=ok, detail=f"rc {p.rc} {p.stderr[-300:]}",
                          extra={"run": float(rec.get("duration") or 0.0)})

        def driver(kind: str, common: list[str] = common) -> Sample:
            p = measured(env.driver(kind, *common), env=os_env)
            return Sample(wall=p.wall, cpu=p.cpu, ok=p.rc == 0, detail=f"rc {p.rc} {p.stdout[-200:]} {p.stderr[-300:]}")

        env.say(f"  {n} routers, {par} in parallel")
        samples = interleave({
            "opsflow": opsflow,
            "netmiko-loop": lambda: driver("netmiko-loop"),
            "netmiko-pool": lambda: driver("netmiko-pool"),
            "nornir-netmiko": lambda: driver("nornir-netmiko"),
        }, size.network_rounds, size.warmup, env.say)
        labels = {"netmiko-loop": "plain Netmiko loop (sequential)",
                  "netmiko-pool": f"Netmiko, thread pool of {par}",
                  "nornir-netmiko": f"Nornir + nornir-netmiko, {par} workers"}
        inner = Stats.of([s.extra["run"] for s in samples["opsflow"] if s.ok and s.extra.get("run")], "s")
        for base, label in labels.items():
            fig = figure(NAME, f"{COMMAND}, {n} routers: wall", samples, "opsflow", base, lambda s: s.wall, "s",
                         baseline_label=label)
            if base == "netmiko-loop" and inner:
                fig.note = f"the run itself (as recorded) p50 {inner.p50:.2f} s; the rest is CLI start-up"
            figs.append(fig)
        figs.append(figure(NAME, f"{COMMAND}, {n} routers: controller CPU", samples, "opsflow", "nornir-netmiko",
                           lambda s: s.cpu, "CPU-s", baseline_label=labels["nornir-netmiko"]))
    return figs
