"""Measuring: samples, figures, interleaved rounds, measured subprocesses, the machine."""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CPUWRAP = BENCH_DIR / "cpuwrap.py"


@dataclass
class Sample:
    """One round of one contender."""

    wall: float  # seconds
    cpu: float = 0.0  # controller CPU-seconds (user + system, whole process tree)
    ok: bool = True
    detail: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Stats:
    """Summary of one metric over the rounds of one contender."""

    unit: str
    n: int
    p5: float
    p50: float
    p95: float
    mean: float
    min: float
    max: float
    stdev: float
    p1: float = 0.0
    p99: float = 0.0

    @classmethod
    def of(cls, values: list[float], unit: str) -> Stats | None:
        if not values:
            return None
        return cls(unit=unit, n=len(values), p5=percentile(values, 5), p50=percentile(values, 50), p95=percentile(values, 95),
                   mean=statistics.fmean(values), min=min(values), max=max(values),
                   stdev=statistics.stdev(values) if len(values) > 1 else 0.0,
                   p1=percentile(values, 1), p99=percentile(values, 99))

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Stats | None:
        """A Stats read back from a JSON record (older records have no p1/p99)."""
        if not d:
            return None
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Figure:
    """One row of the table: opsflow against one baseline on one metric."""

    bench: str
    name: str
    unit: str  # "ms", "s", "hosts/s", "rows/s", "CPU-s"
    opsflow: Stats | None
    baseline_name: str
    baseline: Stats | None
    higher_is_better: bool = False
    target: str = ""  # e.g. "≤ 1.2×"; "" = no target in the issue
    target_ok: bool | None = None
    failures: int = 0  # rounds that did not do the work (excluded from the figures)
    note: str = ""
    tail: str = ""  # "p99": the tail shown is p99 of a time (p1 of a rate) instead of p95 (p5)
    samples: str = ""  # what the count column counts when not rounds (e.g. "events")

    @property
    def ratio(self) -> float | None:
        """opsflow ÷ baseline of the p50 of the metric shown."""
        if self.opsflow is None or self.baseline is None or self.baseline.p50 == 0:
            return None
        return self.opsflow.p50 / self.baseline.p50

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Figure:
        """A Figure read back from a JSON record (to keep the rows of benchmarks a partial run did not run)."""
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        kw["opsflow"], kw["baseline"] = Stats.from_dict(d.get("opsflow")), Stats.from_dict(d.get("baseline"))
        return cls(**kw)


def check_target(fig: Figure, max_ratio: float | None = None, min_ratio: float | None = None,
                 max_abs: float | None = None) -> Figure:
    """Fill target_ok from a ratio bound or an absolute bound on opsflow's p50."""
    if max_abs is not None:
        fig.target_ok = fig.opsflow is not None and fig.opsflow.p50 < max_abs
        return fig
    r = fig.ratio
    if r is None:
        fig.target_ok = None
    elif max_ratio is not None:
        fig.target_ok = r <= max_ratio
    elif min_ratio is not None:
        fig.target_ok = r >= min_ratio
    return fig


Contender = Callable[[], Sample]


def interleave(contenders: dict[str, Contender], rounds: int, warmup: int = 1,
               say: Callable[[str], None] | None = None) -> dict[str, list[Sample]]:
    """Run every contender `warmup` + `rounds` times, rotating the order each round.

    On a shared machine the load drifts; rotating A B C / B C A / C A B spreads the
    drift over all contenders instead of biasing the one that always runs last.
    """
    names = list(contenders)
    out: dict[str, list[Sample]] = {n: [] for n in names}
    for i in range(warmup + rounds):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            sample = contenders[name]()
            if i >= warmup:
                out[name].append(sample)
            if say and not sample.ok:
                say(f"    {name}: round {i + 1} failed: {sample.detail[:300]}")
    return out


def figure(bench: str, name: str, samples: dict[str, list[Sample]], opsflow: str, baseline: str,
           metric: Callable[[Sample], float], unit: str, higher_is_better: bool = False,
           baseline_label: str | None = None, note: str = "") -> Figure:
    good_o = [metric(s) for s in samples[opsflow] if s.ok]
    good_b = [metric(s) for s in samples[baseline] if s.ok]
    failures = sum(1 for s in samples[opsflow] + samples[baseline] if not s.ok)
    return Figure(bench=bench, name=name, unit=unit, opsflow=Stats.of(good_o, unit),
                  baseline_name=baseline_label or baseline, baseline=Stats.of(good_b, unit),
                  higher_is_better=higher_is_better, failures=failures, note=note)


# ---- measured subprocesses -------------------------------------------------------------

@dataclass
class Proc:
    rc: int
    wall: float
    cpu: float
    maxrss_kib: int
    stdout: str
    stderr: str


def measured(argv: list[str], env: dict[str, str] | None = None, cwd: Path | str | None = None,
             timeout: float = 600, grace: float = 0.5) -> Proc:
    """Run argv under cpuwrap: wall time of argv alone, CPU of its whole tree (leftovers included)."""
    with tempfile.NamedTemporaryFile(suffix=".json", prefix="bench-") as tmp:
        full_env = dict(env if env is not None else os.environ)
        full_env["BENCH_LEFTOVER_GRACE"] = str(grace)
        proc = subprocess.run([sys.executable, "-S", str(CPUWRAP), tmp.name, "--", *argv], env=full_env,
                              cwd=str(cwd or ROOT), capture_output=True, text=True, timeout=timeout)
        try:
            data = json.loads(Path(tmp.name).read_text() or "{}")
        except ValueError:
            data = {}
    if not data:
        return Proc(rc=proc.returncode or 1, wall=0.0, cpu=0.0, maxrss_kib=0, stdout=proc.stdout,
                    stderr=proc.stderr or "cpuwrap wrote nothing")
    return Proc(rc=int(data["rc"]), wall=float(data["wall"]), cpu=float(data["cpu_user"]) + float(data["cpu_sys"]),
                maxrss_kib=int(data["maxrss_kib"]), stdout=proc.stdout, stderr=proc.stderr)


def run_record(p: Proc) -> dict[str, Any]:
    """The run record that `opsflow run --json` printed (empty when it printed none)."""
    try:
        rec = json.loads(p.stdout or "{}")
    except ValueError:
        return {}
    return rec if isinstance(rec, dict) else {}


def run_ok(p: Proc, rec: dict[str, Any], hosts: int) -> bool:
    """The run exited 0, succeeded and recorded a result for every host."""
    return p.rc == 0 and rec.get("status") == "succeeded" and len(rec.get("results", [])) == hosts


def timed(argv: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> Sample:
    """A short command timed from this process (for millisecond figures: no wrapper in the path)."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    ok = proc.returncode == 0
    return Sample(wall=wall, ok=ok, detail="" if ok else f"rc {proc.returncode}: {proc.stderr.strip()[-300:]}")


# ---- the machine -----------------------------------------------------------------------

def _version(argv: list[str], pattern: str) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    m = re.search(pattern, proc.stdout + proc.stderr)
    return m.group(1) if m else "unknown"


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _opsflow_version() -> str:
    """The version of the opsflow tree measured, with its git commit (and whether it had local changes)."""
    try:
        import opsflow

        version = str(getattr(opsflow, "__version__", "unknown"))
    except ImportError:
        return "not importable"
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "opsflow"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return version
    return f"{version} ({head}{' + local changes' if dirty else ''})" if head else version


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    mem_kib = 0
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu_model = ""
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    os_name = ""
    try:
        os_name = dict(line.strip().split("=", 1) for line in Path("/etc/os-release").read_text().splitlines()
                       if "=" in line).get("PRETTY_NAME", "").strip('"')
    except OSError:
        pass
    return {
        "hostname": platform.node(), "os": os_name, "kernel": platform.release(), "cpu_model": cpu_model,
        "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kib / 1024 / 1024, 1), "loadavg_at_start": loadavg(),
        "versions": {
            "python": platform.python_version(),
            "opsflow": _opsflow_version(),
            "ansible-core": _dist_version("ansible-core"),
            "ansible-runner": _dist_version("ansible-runner"),
            "netmiko": _dist_version("netmiko"),
            "nornir": _dist_version("nornir"),
            "nornir-netmiko": _dist_version("nornir-netmiko"),
            "paramiko": _dist_version("paramiko"),
            "asyncssh": _dist_version("asyncssh"),
            "openssh": _version(["ssh", "-V"], r"OpenSSH_([\w.]+)"),
            "sshd (lab)": _version(["/usr/sbin/sshd", "-V"], r"OpenSSH_([\w.]+)"),
            "frr (lab)": _version(["/usr/lib/frr/zebra", "--version"], r"version ([\w.-]+)"),
            "sqlite": __import__("sqlite3").sqlite_version,
        },
    }
