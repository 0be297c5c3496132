"""The benchmark environment: sizes, the lab, per-size inventories, runbooks, commands to run."""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.core import ROOT


@dataclass(frozen=True)
class Size:
    """How big each benchmark is. FULL follows issue 7; QUICK only proves the suite runs."""

    name: str
    step_rounds: int  # per-step: rounds of single runs (≥ 30 in full)
    step_long: int  # steps in the long run (per-step cost inside one run)
    step_long_rounds: int
    fanout: tuple[int, ...]
    fanout_rounds: int
    concurrency: int  # parallel hosts for every contender of fan-out and the ansible step
    ansible_hosts: tuple[int, ...]
    ansible_rounds: int
    routers: tuple[int, ...]
    network_rounds: int
    store_runs: int  # runs recorded before history / KPI queries
    store_rounds: int
    cli_rounds: int
    warmup: int = 1
    # 8. backups: nightly-config-backup on this many routers, first backup and unchanged re-run
    backup_routers: int = 20
    backup_rounds: int = 5
    backup_warmup: int = 1
    # 8. backups at scale (issues 16, 17): first backup of this many routers (0: none) and of 10 simulated
    # devices of each of ten platforms × backup_sims plus backup_routers routers (0: none)
    # 100 FRR routers cost ~1.7 GiB (PSS; 20 measured 345 MiB) but did not come up on this 2-core machine under
    # other load (rtr1's sshd gave no banner within the lab's 10 s while 400 FRR daemons started): off until then
    backup_big: int = 0
    backup_big_rounds: int = 3
    backup_sims: int = 10
    # 7. events: offered rates (events/s) and, per rate, seconds per round and rounds per contender
    event_rates: tuple[int, ...] = (1, 100, 1000)
    event_seconds: tuple[float, ...] = (60.0, 5.0, 3.0)
    event_rounds: tuple[int, ...] = (1, 3, 3)
    event_capacity_seconds: float = 5.0  # closed-loop intake, per round
    event_capacity_rounds: int = 3
    event_connections: int = 8  # keep-alive HTTP connections of the sender (both contenders)
    event_hosts: int = 200  # inventory hosts the events are about (round robin), like the lab's 200 servers
    event_warmup: int = 30  # events sent to each contender before measuring (imports, first runs)

    @property
    def servers_needed(self) -> int:
        return max((*self.fanout, *self.ansible_hosts, 1))

    def routers_for(self, benches: list[str]) -> int:
        """Routers the lab needs for these benchmarks (network and backups)."""
        need = [*(self.routers if "network" in benches else ()),
                *((self.backup_routers, self.backup_big) if "backups" in benches else ())]
        # the lab's /24 holds servers + routers ≤ 240: with the server benchmarks the 100-router size is left out
        servers = self.servers_needed if {"step", "fanout", "dispatch", "ansible"} & set(benches) else 0
        return min(max((*need, 0)), 240 - servers)


FULL = Size(name="full", step_rounds=30, step_long=21, step_long_rounds=3, fanout=(10, 50, 200), fanout_rounds=5,
            concurrency=50, ansible_hosts=(1, 10), ansible_rounds=8, routers=(2, 20), network_rounds=5,
            store_runs=100_000, store_rounds=5, cli_rounds=30)
QUICK = Size(name="quick", step_rounds=3, step_long=4, step_long_rounds=1, fanout=(3,), fanout_rounds=2,
             concurrency=3, ansible_hosts=(1,), ansible_rounds=1, routers=(2,), network_rounds=1,
             store_runs=500, store_rounds=2, cli_rounds=3,
             backup_routers=2, backup_rounds=1, backup_warmup=0, backup_big=3, backup_big_rounds=1, backup_sims=1,
             event_rates=(1, 100, 1000), event_seconds=(2.0, 0.5, 0.3), event_rounds=(1, 1, 1),
             event_capacity_seconds=0.5, event_capacity_rounds=1, event_connections=4, event_hosts=20,
             event_warmup=5)


@dataclass
class BenchEnv:
    """Everything a benchmark needs: the work dir, the lab's files, how to start opsflow."""

    size: Size
    work: Path
    lab: Any = None  # opsflow.lab.Lab when a lab is up
    say_fn: Any = None
    _inventory: dict[str, Any] | None = field(default=None, repr=False)

    # ---- output ------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        if self.say_fn:
            self.say_fn(msg)

    # ---- processes ---------------------------------------------------------------------
    @property
    def python(self) -> str:
        return sys.executable

    @property
    def bindir(self) -> Path:
        return Path(sys.executable).parent

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for every measured process: this venv first, opsflow from this tree."""
        # PYTHONDONTWRITEBYTECODE: measured processes run as an installed opsflow does, its bytecode cached
        # (pip compiles it at install; the warm-up round writes it here), not compiled again on every start
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPSFLOW_", "ANSIBLE_")) and k not in ("CI", "PYTHONDONTWRITEBYTECODE")}
        env["PATH"] = f"{self.bindir}:{env.get('PATH', '/usr/bin:/bin')}"
        env["PYTHONPATH"] = str(ROOT)
        env["OPSFLOW_HOME"] = str(self.work / "home")
        env["COLUMNS"] = "160"
        env.update(extra)
        return env

    def opsflow(self, *args: str) -> list[str]:
        return [self.python, "-m", "opsflow", *args]

    def driver(self, *args: str) -> list[str]:
        return [self.python, "-m", "bench.drivers", *args]

    # ---- the lab -----------------------------------------------------------------------
    def lab_inventory(self) -> dict[str, Any]:
        if self._inventory is None:
            if self.lab is None:
                raise RuntimeError("this benchmark needs the lab")
            self._inventory = yaml.safe_load(Path(self.lab.inventory_path).read_text())
        return self._inventory

    def hosts(self, group: str, n: int) -> list[tuple[str, str]]:
        """The first n hosts of a lab group as (name, address), in numeric order."""
        hosts = self.lab_inventory()["all"]["children"][group]["hosts"]
        names = sorted(hosts, key=lambda h: (len(h), h))[:n]
        if len(names) < n:
            raise RuntimeError(f"the lab has {len(names)} {group}, the benchmark needs {n}")
        return [(h, hosts[h]["ansible_host"]) for h in names]

    def inventory(self, group: str, n: int) -> Path:
        """An inventory holding only the first n hosts of `group` (same vars as the lab's)."""
        path = self.work / f"inv-{group}-{n}.yml"
        if not path.exists():
            inv = self.lab_inventory()
            grp = inv["all"]["children"][group]
            keep = dict(self.hosts(group, n))
            doc = {"all": {"vars": inv["all"]["vars"], "children": {
                group: {"vars": grp["vars"], "hosts": {h: {"ansible_host": a} for h, a in keep.items()}}}}}
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def hosts_file(self, group: str, n: int) -> Path:
        """One line per host, 'name address' (for xargs and the driver scripts)."""
        path = self.work / f"hosts-{group}-{n}.txt"
        if not path.exists():
            path.write_text("".join(f"{h} {a}\n" for h, a in self.hosts(group, n)))
        return path

    def names_file(self, group: str, n: int) -> Path:
        """One host name per line (for xargs)."""
        path = self.work / f"names-{group}-{n}.txt"
        if not path.exists():
            path.write_text("".join(f"{h}\n" for h, _ in self.hosts(group, n)))
        return path

    @property
    def ssh_config(self) -> Path:
        return Path(self.lab.ssh_config)

    @property
    def known_hosts(self) -> Path:
        return Path(self.lab.known_hosts)

    @property
    def private_key(self) -> Path:
        return Path(self.lab.private_key)

    # ---- files -------------------------------------------------------------------------
    def write(self, name: str, text: str) -> Path:
        path = self.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def tmpdir(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.work))

    def db(self, name: str) -> Path:
        return self.work / "db" / f"{name}.db"


def bring_up_lab(state_dir: Path, name: str, servers: int, routers: int, say: Any) -> Any:
    """The bench lab at exactly the size needed (an older bench lab of another size is rebuilt)."""
    from opsflow.errors import LabError
    from opsflow.lab import Lab

    lab = Lab(state_dir, name=name)
    try:
        lab.up(servers=servers, routers=routers, progress=say)
    except LabError as exc:
        if "already up" not in str(exc):
            raise
        say(f"rebuilding: {exc}")
        lab.down()
        lab.up(servers=servers, routers=routers, progress=say)
    return lab
