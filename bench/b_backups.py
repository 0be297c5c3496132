"""8. Device backups: `runbooks/nightly-config-backup.yaml` (`network.backup`) on 20 FRR routers.

Two cases, each its own set of interleaved rounds:

- **first backup**: every round into a new, empty repository, so every device gets a new
  version (a file written and a git commit per device);
- **unchanged re-run**: every round into a repository that already holds the same configs
  (the one the same tool filled in its last first backup), so no device gets a new version.

Baselines do the same work with plain tools: a Netmiko thread pool, and Nornir +
nornir-netmiko, each connecting with host keys checked against the lab's known_hosts,
running `show running-config`, writing `<device>.cfg` and committing each changed device
(`git add`, `git diff --cached --quiet`, `git commit`, one device at a time)
(bench/drivers.py). Same parallelism as the runbook gives (all 20 at once). A round counts
only when every device was backed up and the repository holds exactly one commit per
device afterwards (first) or gained none (re-run). Devices per minute = devices ÷ wall
time of the whole process (CLI start-up included) × 60.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.core import ROOT, Figure, Sample, Stats, figure, interleave, measured, run_ok, run_record
from bench.env import BenchEnv

NAME = "backups"
RUNBOOK = ROOT / "runbooks" / "nightly-config-backup.yaml"
COMMAND = "show running-config"


def commits(repo: Path) -> int:
    """Commits in a repository (0 when it has none or is not one)."""
    proc = subprocess.run(["git", "-C", str(repo), "rev-list", "--count", "HEAD"], capture_output=True, text=True)
    return int(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip().isdigit() else 0


def run(env: BenchEnv) -> list[Figure]:
    size = env.size
    figs = run_size(env, size.backup_routers, size.backup_rounds, size.backup_warmup, rerun=True)
    routers = len(env.lab_inventory()["all"]["children"]["routers"]["hosts"])
    if size.backup_big and routers >= size.backup_big:
        figs += run_size(env, size.backup_big, size.backup_big_rounds, 0, rerun=False)
    elif size.backup_big:
        env.say(f"  {size.backup_big}-router size left out: the lab has {routers} routers (run backups alone)")
    if size.backup_sims:
        figs += run_mixed(env, size.backup_sims, size.backup_routers, size.backup_big_rounds)
    return figs


def run_size(env: BenchEnv, n: int, rounds: int, warmup: int, rerun: bool) -> list[Figure]:
    """First backup (and, with rerun, the unchanged re-run) of n routers, all n in parallel."""
    inv, hosts = env.inventory("routers", n), env.hosts_file("routers", n)
    par = min(n, 30)  # as the runbook's concurrency
    db = env.db("backups")
    db.parent.mkdir(parents=True, exist_ok=True)
    repos = env.tmpdir("backups-")
    common = ["--hosts", str(hosts), "--user", "admin", "--key", str(env.private_key),
              "--known-hosts", str(env.known_hosts), "-P", str(par), "--cmd", COMMAND]

    def new_repo(tag: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=repos))

    # opsflow keeps its repository in $OPSFLOW_BACKUPS/network; a baseline in the directory given
    def opsflow(home: Path, first: bool, inv: Path = inv, n: int = n) -> Sample:
        repo = home / "network"
        before = commits(repo)
        p = measured(env.opsflow("run", str(RUNBOOK), "-i", str(inv), "--json", "-q", "--db", str(db)),
                     env=env.env(OPSFLOW_BACKUPS=str(home)))
        rec = run_record(p)
        results = rec.get("results", [])
        changed = sum(1 for r in results if r.get("changed"))
        after = commits(repo)
        ok = (run_ok(p, rec, n)
              and changed == (n if first else 0) and after == (n if first else before))
        return Sample(wall=p.wall, cpu=p.cpu, ok=ok,
                      detail=f"rc {p.rc} status {rec.get('status')} results {len(results)} changed {changed} "
                             f"commits {before}->{after} {p.stderr[-300:]}",
                      extra={"run": float(rec.get("duration") or 0.0)})

    def driver(kind: str, repo: Path, first: bool) -> Sample:
        before = commits(repo)
        p = measured(env.driver(kind, *common, "--repo", str(repo)), env=env.env())
        try:
            out = json.loads(p.stdout.strip().splitlines()[-1]) if p.stdout.strip() else {}
        except ValueError:
            out = {}
        after = commits(repo)
        ok = (p.rc == 0 and out.get("ok") == n and out.get("changed") == (n if first else 0)
              and after == (n if first else before))
        return Sample(wall=p.wall, cpu=p.cpu, ok=ok,
                      detail=f"rc {p.rc} {p.stdout[-200:]} commits {before}->{after} {p.stderr[-300:]}")

    labels = {"netmiko": f"Netmiko thread pool of {par} + git commit per changed device",
              "nornir": f"Nornir + nornir-netmiko, {par} workers + git commit per changed device"}
    kinds = {"netmiko": "netmiko-backup", "nornir": "nornir-backup"}

    # first backup: a new repository every round; the last good one of each tool is kept for the re-run
    homes: dict[str, Path] = {}

    def first_backup(k: str) -> Sample:
        repo = new_repo(k)
        s = opsflow(repo, True) if k == "opsflow" else driver(kinds[k], repo, True)
        if s.ok:
            homes[k] = repo
        return s

    env.say(f"  first backup of {n} routers (new versions), {par} in parallel")
    first = interleave({k: (lambda k=k: first_backup(k)) for k in ("opsflow", *kinds)}, rounds, warmup, env.say)
    cases = [(f"first backup of {n} routers (new versions)", first)]
    if n > 1 and not rerun:  # the cost of scale: one router's backup, the same way
        one_inv = env.inventory("routers", 1)
        one = interleave({"opsflow": lambda: opsflow(new_repo("one"), True, one_inv, 1)}, rounds, 1, env.say)
        walls = Stats.of([s.wall for s in one["opsflow"] if s.ok], "s")
        big = Stats.of([s.wall for s in first["opsflow"] if s.ok], "s")
        scale = f"; wall of {n} vs 1 router p50 {big.p50:.2f} s / {walls.p50:.2f} s = " \
                f"{big.p50 / walls.p50:.2f}× (target ≤ 3×)" if walls and big else ""
    else:
        scale = ""

    # unchanged re-run: into the repository the tool itself filled in its last good first backup
    if rerun:
        for k in ("opsflow", *kinds):
            if k not in homes:
                raise RuntimeError(f"backups: no first backup of {k} succeeded, nothing to re-run on")
        env.say(f"  unchanged re-run of {n} routers (no new version)")
        cases.append((f"unchanged re-run on {n} routers (no new version)", interleave({
            "opsflow": lambda: opsflow(homes["opsflow"], False),
            **{k: (lambda k=k: driver(kinds[k], homes[k], False)) for k in kinds},
        }, rounds, warmup, env.say)))

    def per_min(s: Sample) -> float:
        return n / s.wall * 60 if s.wall > 0 else 0.0

    figs: list[Figure] = []
    for case, samples in cases:
        inner = Stats.of([s.extra["run"] for s in samples["opsflow"] if s.ok and s.extra.get("run")], "s")
        wall = Stats.of([s.wall for s in samples["opsflow"] if s.ok], "s")
        for k, label in labels.items():
            fig = figure(NAME, f"{case}: devices/min", samples, "opsflow", k, per_min, "devices/min",
                         higher_is_better=True, baseline_label=label)
            if k == "netmiko" and inner and wall:
                fig.note = (f"opsflow wall p50 {wall.p50:.2f} s, of which the run itself (as recorded) p50 "
                            f"{inner.p50:.2f} s = {n / inner.p50 * 60:.0f} devices/min; the rest is CLI start-up{scale}")
            figs.append(fig)
        figs.append(figure(NAME, f"{case}: controller CPU", samples, "opsflow", "nornir", lambda s: s.cpu, "CPU-s",
                           baseline_label=labels["nornir"], note="user+system of the whole process tree, git included"))
    return figs


# ---- issue 17: simulated devices of ten platforms plus the FRR routers, in one run -------------------

SIM_DATA = ROOT / "tests" / "data" / "platforms"


def sim_platforms() -> list[str]:
    return sorted(p.stem for p in SIM_DATA.glob("*.txt") if p.stem != "frr")


def start_sims(env: BenchEnv, per_platform: int, tries: int = 3) -> tuple[Path, list[dict[str, Any]], Any]:
    """The lab's device simulator with per_platform devices of each platform (the lab's client key
    accepted); returns (state dir, devices, the process). A port taken meanwhile: again on new ports."""
    from tests.helpers import free_port

    for attempt in range(tries):
        base = env.tmpdir("sims-")
        devices = [{"name": f"{p.split('_')[-1]}{i}", "platform": p, "port": free_port(),
                    "config": str(SIM_DATA / f"{p}.txt")} for p in sim_platforms() for i in range(1, per_platform + 1)]
        spec = {"authorized_keys": f"{env.private_key}.pub", "listen": "127.0.0.1", "devices": devices}
        (base / "devices.yaml").write_text(yaml.safe_dump(spec))
        state = base / "state"
        with (base / "simulator.log").open("w") as log:
            proc = subprocess.Popen([env.python, "-W", "ignore", "-m", "opsflow.lab.simulator",
                                     str(base / "devices.yaml"), str(state)], stdout=log, stderr=subprocess.STDOUT,
                                    cwd=ROOT, env=env.env())
        deadline = time.time() + 60
        while not (state / "ready").exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        if (state / "ready").exists() and proc.poll() is None:
            return state, devices, proc
        proc.kill()
        proc.wait(10)
        env.say(f"  the device simulator did not start (attempt {attempt + 1}): "
                f"{(base / 'simulator.log').read_text()[-300:]}")
    raise RuntimeError("the device simulator did not start")


def mixed_inventory(env: BenchEnv, state: Path, devices: list[dict[str, Any]], routers: int) -> Path:
    lab = env.lab_inventory()
    frr = lab["all"]["children"]["routers"]
    doc = {"all": {"vars": lab["all"]["vars"], "children": {
        "routers": {"vars": frr["vars"], "hosts": {h: {"ansible_host": a} for h, a in env.hosts("routers", routers)}},
        "sims": {"vars": {"ansible_user": "admin", "opsflow_known_hosts": str(state / "known_hosts")},
                 "hosts": {d["name"]: {"ansible_host": "127.0.0.1", "ansible_port": d["port"],
                                       "platform": d["platform"]} for d in devices}}}}}
    path = env.work / f"inv-mixed-{len(devices)}-{routers}.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def mixed_hosts(env: BenchEnv, state: Path, devices: list[dict[str, Any]], routers: int) -> Path:
    """The same devices for the Nornir baseline: name, address, port, Netmiko device_type, known_hosts."""
    rows = [{"name": h, "host": a, "port": 22, "platform": "cisco_ios", "show": COMMAND,
             "known_hosts": str(env.known_hosts)} for h, a in env.hosts("routers", routers)]
    from opsflow.platforms import get

    rows += [{"name": d["name"], "host": "127.0.0.1", "port": d["port"], "platform": d["platform"],
              "show": get(d["platform"]).show_config, "known_hosts": str(state / "known_hosts")} for d in devices]
    path = env.work / f"hosts-mixed-{len(devices)}-{routers}.json"
    path.write_text(json.dumps(rows))
    return path


def run_mixed(env: BenchEnv, per_platform: int, routers: int, rounds: int) -> list[Figure]:
    """First backup of 10 × per_platform simulated devices + `routers` FRR routers, opsflow vs Nornir."""
    state, devices, sim = start_sims(env, per_platform)
    n = len(devices) + routers
    par = 20
    try:
        inv = mixed_inventory(env, state, devices, routers)
        hosts = mixed_hosts(env, state, devices, routers)
        rb = env.write(f"backup-mixed-{n}.yaml", f"""\
            name: backup-mixed
            targets: routers:sims
            concurrency: {par}
            steps:
              - name: backup
                network.backup:
            """)
        db = env.db(f"backups-mixed-{n}")
        repos = env.tmpdir("mixed-")

        def opsflow() -> Sample:
            home = Path(tempfile.mkdtemp(prefix="opsflow-", dir=repos))
            p = measured(env.opsflow("run", str(rb), "-i", str(inv), "--json", "-q", "--db", str(db)),
                         env=env.env(OPSFLOW_BACKUPS=str(home)))
            rec = run_record(p)
            changed = sum(1 for r in rec.get("results", []) if r.get("changed"))
            ok = run_ok(p, rec, n) and changed == n and commits(home / "network") == n
            return Sample(wall=p.wall, cpu=p.cpu, ok=ok, detail=f"rc {p.rc} changed {changed} {p.stderr[-300:]}",
                          extra={"run": float(rec.get("duration") or 0.0)})

        def nornir() -> Sample:
            repo = Path(tempfile.mkdtemp(prefix="nornir-", dir=repos))
            p = measured([env.python, "-m", "bench.b_backups", str(hosts), str(repo), str(env.private_key), str(par)],
                         env=env.env())
            ok = p.rc == 0 and commits(repo) == n
            return Sample(wall=p.wall, cpu=p.cpu, ok=ok, detail=f"rc {p.rc} {p.stdout[-300:]} {p.stderr[-300:]}")

        env.say(f"  first backup of {len(devices)} simulated devices ({per_platform} of each of "
                f"{len(sim_platforms())} platforms) + {routers} FRR routers, {par} in parallel")
        samples = interleave({"opsflow": opsflow, "nornir": nornir}, rounds, 1, env.say)
    finally:
        sim.terminate()
        sim.wait(10)

    case = f"first backup of {len(devices)} simulated devices of {len(sim_platforms())} platforms + {routers} routers"
    inner = Stats.of([s.extra["run"] for s in samples["opsflow"] if s.ok and s.extra.get("run")], "s")
    label = f"Nornir + nornir-netmiko, {par} workers + git commit per device"
    note = f"the run itself p50 {inner.p50:.2f} s = {n / inner.p50 * 60:.0f} devices/min" if inner else ""
    return [figure(NAME, f"{case}: devices/min", samples, "opsflow", "nornir", lambda s: n / s.wall * 60 if s.wall else 0,
                   "devices/min", higher_is_better=True, baseline_label=label, note=note),
            figure(NAME, f"{case}: controller CPU", samples, "opsflow", "nornir", lambda s: s.cpu, "CPU-s",
                   baseline_label=label, note="user+system of the whole process tree, git included")]


def nornir_mixed(hosts_file: str, repo: str, key: str, parallel: int) -> int:
    """The baseline of the mixed size: Nornir + nornir-netmiko, each device's own device_type and show
    command, `<device>.cfg` written and committed (bench.drivers.save_config without its IOS checks)."""
    from nornir.core import Nornir
    from nornir.core.inventory import ConnectionOptions, Defaults, Groups, Host, Hosts, Inventory
    from nornir.core.plugins.connections import ConnectionPluginRegister
    from nornir.core.task import Result, Task
    from nornir.plugins.runners import ThreadedRunner
    from nornir_netmiko.connections import Netmiko
    from nornir_netmiko.tasks import netmiko_send_command

    from bench.drivers import _git, _init_repo

    if "netmiko" not in ConnectionPluginRegister.available:
        ConnectionPluginRegister.register("netmiko", Netmiko)
    _init_repo(repo)
    rows = json.loads(Path(hosts_file).read_text())
    show = {r["name"]: r["show"] for r in rows}
    nh = Hosts()
    for r in rows:
        extras = {"ssh_strict": True, "system_host_keys": False, "alt_host_keys": True, "alt_key_file": r["known_hosts"],
                  "use_keys": True, "key_file": key, "allow_agent": False}
        nh[r["name"]] = Host(name=r["name"], hostname=r["host"], port=r["port"], username="admin",
                             platform=r["platform"], connection_options={"netmiko": ConnectionOptions(extras=extras)})
    nr = Nornir(inventory=Inventory(hosts=nh, groups=Groups(), defaults=Defaults()),
                runner=ThreadedRunner(num_workers=parallel))
    nr.config.ssh.config_file = "/dev/null"
    import threading

    lock = threading.Lock()

    def backup(t: Task) -> Result:
        out = str(t.run(task=netmiko_send_command, command_string=show[t.host.name]).result)
        with lock:
            (Path(repo) / f"{t.host.name}.cfg").write_text(out)
            _git(repo, "add", "--", f"{t.host.name}.cfg")
            if _git(repo, "diff", "--cached", "--quiet", "--", f"{t.host.name}.cfg").returncode != 0:
                _git(repo, "commit", "-q", "-m", f"{t.host.name}: backup", "--", f"{t.host.name}.cfg")
        return Result(host=t.host, result=None)

    try:
        result = nr.run(task=backup)
    finally:
        nr.close_connections()
    failed = {h: str(r.exception)[:200] for h, r in result.items() if r.failed}
    print(json.dumps({"ok": len(rows) - len(failed), "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    import sys

    sys.exit(nornir_mixed(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
