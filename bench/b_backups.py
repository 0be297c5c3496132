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
from pathlib import Path

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
    n = size.backup_routers
    inv, hosts = env.inventory("routers", n), env.hosts_file("routers", n)
    db = env.db("backups")
    db.parent.mkdir(parents=True, exist_ok=True)
    repos = env.tmpdir("backups-")
    common = ["--hosts", str(hosts), "--user", "admin", "--key", str(env.private_key),
              "--known-hosts", str(env.known_hosts), "-P", str(n), "--cmd", COMMAND]

    def new_repo(tag: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=repos))

    # opsflow keeps its repository in $OPSFLOW_BACKUPS/network; a baseline in the directory given
    def opsflow(home: Path, first: bool) -> Sample:
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

    labels = {"netmiko": f"Netmiko thread pool of {n} + git commit per changed device",
              "nornir": f"Nornir + nornir-netmiko, {n} workers + git commit per changed device"}
    kinds = {"netmiko": "netmiko-backup", "nornir": "nornir-backup"}

    # first backup: a new repository every round; the last good one of each tool is kept for the re-run
    homes: dict[str, Path] = {}

    def first_backup(k: str) -> Sample:
        repo = new_repo(k)
        s = opsflow(repo, True) if k == "opsflow" else driver(kinds[k], repo, True)
        if s.ok:
            homes[k] = repo
        return s

    env.say(f"  first backup of {n} routers (new versions), {n} in parallel")
    first = interleave({k: (lambda k=k: first_backup(k)) for k in ("opsflow", *kinds)},
                       size.backup_rounds, size.backup_warmup, env.say)

    # unchanged re-run: into the repository the tool itself filled in its last good first backup
    for k in ("opsflow", *kinds):
        if k not in homes:
            raise RuntimeError(f"backups: no first backup of {k} succeeded, nothing to re-run on")
    env.say(f"  unchanged re-run of {n} routers (no new version)")
    rerun = interleave({
        "opsflow": lambda: opsflow(homes["opsflow"], False),
        **{k: (lambda k=k: driver(kinds[k], homes[k], False)) for k in kinds},
    }, size.backup_rounds, size.backup_warmup, env.say)

    def per_min(s: Sample) -> float:
        return n / s.wall * 60 if s.wall > 0 else 0.0

    figs: list[Figure] = []
    for case, samples in ((f"first backup of {n} routers (new versions)", first),
                          (f"unchanged re-run on {n} routers (no new version)", rerun)):
        inner = Stats.of([s.extra["run"] for s in samples["opsflow"] if s.ok and s.extra.get("run")], "s")
        wall = Stats.of([s.wall for s in samples["opsflow"] if s.ok], "s")
        for k, label in labels.items():
            fig = figure(NAME, f"{case}: devices/min", samples, "opsflow", k, per_min, "devices/min",
                         higher_is_better=True, baseline_label=label)
            if k == "netmiko" and inner and wall:
                fig.note = (f"opsflow wall p50 {wall.p50:.2f} s, of which the run itself (as recorded) p50 "
                            f"{inner.p50:.2f} s = {n / inner.p50 * 60:.0f} devices/min; the rest is CLI start-up")
            figs.append(fig)
        figs.append(figure(NAME, f"{case}: controller CPU", samples, "opsflow", "nornir", lambda s: s.cpu, "CPU-s",
                           baseline_label=labels["nornir"], note="user+system of the whole process tree, git included"))
    return figs
