"""7. Events: `opsflow serve` intake and event → run start latency, against the floor of HTTP intake.

The service (the real CLI, `opsflow serve`, its own process, default 4 workers — each a worker process
that runs the remediations, so runs do not share intake's interpreter — and a queue of 100;
the budget raised so that it does not stop the benchmark) loads one runbook from a temporary
directory: a trigger on `BenchEvent` (any source), `cooldown: 0`, `breaker: 0`, dedup on the
fingerprint (unique per event), one cheap step (`local: ["true"]`) on the host the event names.
The inventory holds Size.event_hosts hosts (200, like the lab's servers); events go to them round
robin. Requests carry a bearer token, over Size.event_connections keep-alive connections from
threads of this process (loopback only): `POST /hooks/event` with one event each, or (the batch
figures) `POST /hooks/alertmanager` with BATCH alerts each, as Alertmanager groups a storm's alerts
into one notification. Rates count events (alerts), not requests.

Baseline: `bench/evserver.py`, a bare ASGI app on uvicorn (the same event loop and HTTP parser as
`opsflow serve`) that reads each POST and replies 200: the floor of intake on this stack, so the
ratio is what the service's authentication, parsing, durable recording, rules and runs cost.

- **Offered rates** (1, 100, 1,000 events/s, one event per request, open loop: each event has a
  send time; its latency counts from that time, so a sender that falls behind is not hidden):
  POST → 200 as the client sees it, both contenders; event received → run started as the service
  recorded it (`event_actions.start_latency`, read from the store after the queue drained), and how
  many events started a run, with the reasons the others did not. At 1/s the two contenders'
  events alternate every half second in one phase; above, each round is one phase per contender,
  the order rotating. Controller CPU (user + system of the server process, its worker processes and
  their reaped children) per
  event, over the phase and the service's settling after it.
- **Highest sustained intake with nothing lost**: closed loop (every connection sends its next
  request as soon as the last is acknowledged) for Size.event_capacity_seconds; events/s
  acknowledged, with and without a matching rule, one event per request and BATCH per request.
  A round counts only when every request sent was acknowledged 200 and (opsflow) every event of
  it is in the store's events record, decided (none left `pending`).
"""

from __future__ import annotations

import dataclasses
import http.client
import itertools
import json
import os
import re
import secrets
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core import Figure, Sample, Stats, figure, interleave
from bench.env import BenchEnv
from bench.evsend import Item, Rec, Target, send

NAME = "events"
BASELINE = "bare ASGI app on uvicorn that only acknowledges"
BATCH = 20  # alerts per Alertmanager notification in the batch figures
TARGET_MS = 50.0  # issue 7: p99 < 50 ms at 100 events/s; issue 14: the same at 1,000 events/s (POST → 200 too)
TARGET_RULE = 3000.0  # issue 14: events/s sustained with a matching rule, every acknowledged event recorded
TARGET_RECORD = 10000.0  # issue 14: events/s sustained recording only (no rule matches)
TICK = os.sysconf("SC_CLK_TCK")


# ---- the servers ------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, its live descendants (`opsflow serve`'s worker processes) and the
    children each has reaped (the runs' `true` steps)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime
    return own + sum(cpu_seconds(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def get_json(target: Target, path: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection(target.host, target.port, timeout=10)
    try:
        conn.request("GET", path)
        return json.loads(conn.getresponse().read() or b"{}")
    finally:
        conn.close()


def wait_for_line(proc: subprocess.Popen[bytes], log: Path, pattern: str, timeout: float) -> re.Match[str]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(pattern, log.read_text(errors="replace")) if log.exists() else None
        if m:
            return m
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{str(proc.args)[:200]} did not start (rc {proc.poll()}): {log.read_text(errors='replace')[-2000:]}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@dataclass
class Servers:
    env: BenchEnv
    daemon: subprocess.Popen[bytes]
    base: subprocess.Popen[bytes]
    targets: dict[str, Target]
    db: Path
    hosts: int
    log: Path
    serial: itertools.count[int] = field(default_factory=itertools.count)

    def pid(self, name: str) -> int:
        return (self.daemon if name == "opsflow" else self.base).pid

    def body(self, name: str = "BenchEvent", batch: int = 1) -> bytes:
        """One event (POST /hooks/event), or an Alertmanager notification of `batch` alerts."""
        if batch == 1:
            i = next(self.serial)
            return json.dumps({"name": name, "host": f"h{i % self.hosts + 1}", "severity": "critical",
                               "fingerprint": f"bench-{i}-{secrets.token_hex(4)}",
                               "message": f"bench event {i}"}).encode()
        alerts = []
        for i in (next(self.serial) for _ in range(batch)):
            alerts.append({"status": "firing", "labels": {"alertname": name, "instance": f"h{i % self.hosts + 1}",
                                                          "severity": "critical", "job": "node"},
                           "annotations": {"summary": f"bench alert {i}"}, "startsAt": "2026-01-01T00:00:00Z",
                           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph",
                           "fingerprint": f"bench-{i}-{secrets.token_hex(4)}"})
        return json.dumps({"version": "4", "receiver": "opsflow", "status": "firing", "groupKey": "{}:{}",
                           "groupLabels": {"alertname": name}, "commonLabels": {"alertname": name},
                           "commonAnnotations": {}, "externalURL": "http://alertmanager", "alerts": alerts}).encode()

    def settle(self, timeout: float) -> bool:
        """Wait until the service has nothing undecided, queued or running."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                h = get_json(self.targets["opsflow"], "/healthz")
            except (OSError, ValueError, http.client.HTTPException):
                h = {}
            if h.get("undecided") == 0 and h.get("queued") == 0 and h.get("running") == 0:
                return True
            time.sleep(0.05)
        return False

    def records(self, ids: set[str], since: float) -> dict[str, dict[str, Any]]:
        """The store's records of these events (with their actions), by id."""
        from opsflow.store.sql import SqlStore

        store = SqlStore.connect(str(self.db))
        try:
            rows = store.events(since=since, limit=len(ids) + 1000)
        finally:
            store.close()
        return {e["id"]: e for e in rows if e["id"] in ids}


def start_servers(env: BenchEnv) -> Servers:
    size = env.size
    d = env.tmpdir("events-")
    hosts = "".join(f"        h{i}: {{ansible_host: 127.0.{i // 250}.{i % 250 + 1}}}\n"
                    for i in range(1, size.event_hosts + 1))
    inv = env.write(f"{d.name}/inventory.yml", "all:\n  children:\n    servers:\n      vars: {platform: linux}\n"
                                               "      hosts:\n" + hosts)
    env.write(f"{d.name}/runbooks/bench-event.yaml", """\
        name: bench-event
        description: A cheap remediation started by every BenchEvent (benchmark 7).
        targets: servers
        triggers:
          events:
            - name: bench-event
              match: {name: BenchEvent}
              dedup: {key: [fingerprint]}
              cooldown: 0
              breaker: 0
        steps:
          - name: nothing
            local: ["true"]
        """)
    token = secrets.token_hex(24)
    tok = d / "token"
    tok.write_text(token + "\n")
    tok.chmod(0o600)
    db = d / "events.db"
    log = d / "daemon.log"
    budget = 10_000_000  # runs per hour: the default 20/1h would suppress all but the first 20
    with open(log, "wb") as fh:
        daemon = subprocess.Popen(env.opsflow("serve", "--listen", "127.0.0.1:0", "--runbooks", str(d / "runbooks"),
                                              "-i", str(inv), "--db", str(db), "--token-file", str(tok),
                                              "--budget", f"{budget}/1h", "--drain-timeout", "5", "--no-schedule"),
                                  env=env.env(), stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    blog = d / "baseline.log"
    with open(blog, "wb") as fh:
        base = subprocess.Popen([env.python, "-m", "bench.evserver", "--listen", "127.0.0.1:0"], env=env.env(),
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        m = wait_for_line(daemon, log, r"listening on http://([\d.]+):(\d+)", 60)
        b = wait_for_line(base, blog, r"listening on http://([\d.]+):(\d+)", 30)
    except Exception:
        stop(daemon)
        stop(base)
        raise
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    return Servers(env=env, daemon=daemon, base=base, db=db, hosts=size.event_hosts, log=log, targets={
        "opsflow": Target("opsflow", m[1], int(m[2]), headers),
        "baseline": Target("baseline", b[1], int(b[2]), headers)})


# ---- one phase --------------------------------------------------------------------------

@dataclass
class Phase:
    """What one contender did in one phase."""

    target: str
    recs: list[Rec]
    cpu: float  # CPU-seconds of the server over the phase (and the service's settling)
    elapsed: float  # first due → last acknowledgement
    batch: int = 1  # events per request
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # opsflow: the store's records

    @property
    def events(self) -> int:
        """Events acknowledged."""
        return len(self.acked) * self.batch

    def pending(self) -> int:
        """Recorded events not decided."""
        return sum(1 for e in self.records.values() if e.get("outcome") == "pending")

    @property
    def acked(self) -> list[Rec]:
        return [r for r in self.recs if r.status == 200]

    def ids(self) -> list[str]:
        out = []
        for r in self.acked:
            try:
                out += [e["id"] for e in json.loads(r.body).get("events", [])]
            except (ValueError, AttributeError):
                pass
        return out

    def started(self) -> list[dict[str, Any]]:
        return [a for e in self.records.values() for a in e.get("actions", []) if a.get("run_id")]

    def not_started(self) -> Counter[str]:
        c: Counter[str] = Counter()
        for e in self.records.values():
            acts = e.get("actions") or []
            if not acts:
                c[e.get("outcome") or "no action"] += 1
            for a in acts:
                if not a.get("run_id"):
                    c[a.get("reason") or a.get("outcome") or "?"] += 1
        return c


def phase(servers: Servers, rate: float, seconds: float, names: list[str], closed: bool = False,
          event: str = "BenchEvent", batch: int = 1) -> dict[str, Phase]:
    """One phase: `names` share it, their requests alternating (open loop at `rate` each), or
    closed loop (one name); `batch` > 1: Alertmanager notifications of that many alerts. The
    service's records are read after it decided and ran what it queued."""
    size = servers.env.size
    k = len(names)
    count = max(1, round(rate * seconds)) * k
    if closed:
        count = max(1000, int(50_000 * seconds))  # bounded: more than loopback HTTP in Python can take

    def make(i: int) -> Item:
        who = names[i % k]
        offset = 0.0 if closed else (i // k) / rate + (i % k) / (rate * k)
        target = servers.targets[who]
        if batch > 1:
            target = dataclasses.replace(target, path="/hooks/alertmanager")
        return offset, target, servers.body(event, batch)

    cpu0 = {n: cpu_seconds(servers.pid(n)) for n in names}
    wall0 = time.time()
    recs = send(count, make, size.event_connections, stop_after=seconds if closed else seconds + max(5.0, seconds))
    settled = "opsflow" not in names or servers.settle(60 if size.name == "full" else 20)
    out: dict[str, Phase] = {}
    for n in names:
        mine = [r for r in recs if r.target == n]
        t_first = min((r.scheduled for r in mine), default=0.0)
        t_last = max((r.acked for r in mine), default=t_first)
        out[n] = Phase(n, mine, cpu_seconds(servers.pid(n)) - cpu0[n], max(1e-9, t_last - t_first), batch)
    if "opsflow" in out:
        p = out["opsflow"]
        p.records = servers.records(set(p.ids()), wall0 - 5)
        if not settled:
            servers.env.say(f"    events: the service did not settle after the phase at {rate:g}/s")
    return out


# ---- the benchmark ----------------------------------------------------------------------

def run(env: BenchEnv) -> list[Figure]:
    servers = start_servers(env)
    try:
        return _measure(env, servers)
    finally:
        stop(servers.daemon)
        stop(servers.base)


def _measure(env: BenchEnv, servers: Servers) -> list[Figure]:
    size = env.size
    conns = size.event_connections
    env.say(f"  opsflow serve on :{servers.targets['opsflow'].port} (4 workers, queue 100), baseline on "
            f":{servers.targets['baseline'].port}; {size.event_hosts} hosts, {conns} connections")
    # warm-up: imports, first plans and runs, connections
    if size.event_warmup:
        phase(servers, 20, size.event_warmup / 20, ["opsflow", "baseline"])
    figs: list[Figure] = []
    for rate, seconds, rounds in zip(size.event_rates, size.event_seconds, size.event_rounds, strict=True):
        env.say(f"  {rate:,}/s offered: {rounds} round(s) of {seconds:g} s per contender")
        got: dict[str, list[Phase]] = {"opsflow": [], "baseline": []}
        if rate <= 10:  # slow: both in one phase, alternating every half period
            for _ in range(rounds):
                for n, p in phase(servers, rate, seconds, ["opsflow", "baseline"]).items():
                    got[n].append(p)
        else:
            order = ["opsflow", "baseline"]
            for i in range(rounds):
                for n in order[i % 2:] + order[:i % 2]:
                    got[n] += phase(servers, rate, seconds, [n]).values()
        figs += _rate_figures(rate, seconds, got, size.event_hosts)
    figs += _capacity(env, servers)
    return figs


_CAPACITY = (  # (key, event, batch, what the figure says, target)
    ("", "BenchEvent", 1, "1 event per request", TARGET_RULE),
    ("-no-rule", "OtherEvent", 1, "events that match no rule (recording only), 1 event per request", TARGET_RECORD),
    ("-batch", "BenchEvent", BATCH, f"Alertmanager notifications of {BATCH} alerts", TARGET_RULE),
    ("-batch-no-rule", "OtherEvent", BATCH, f"events that match no rule (recording only), Alertmanager "
     f"notifications of {BATCH} alerts", TARGET_RECORD),
)


def _capacity(env: BenchEnv, servers: Servers) -> list[Figure]:
    """Highest sustained intake with nothing lost: closed loop, per kind of request, both contenders."""
    size, conns = env.size, env.size.event_connections
    env.say(f"  intake capacity: closed loop, {conns} connections, {size.event_capacity_seconds:g} s per round")
    last: dict[str, Phase] = {}

    def capacity(name: str, key: str, event: str, batch: int) -> Callable[[], Sample]:
        def one() -> Sample:
            p = phase(servers, 0, size.event_capacity_seconds, [name], closed=True, event=event, batch=batch)[name]
            last[name + key] = p
            sent, events = len(p.recs), p.events
            recorded = len(p.records) if name == "opsflow" else events
            ids = len(p.ids()) if name == "opsflow" else events
            ok = sent > 0 and len(p.acked) == sent and recorded == ids == events and not p.pending()
            return Sample(wall=p.elapsed, cpu=p.cpu, ok=ok,
                          detail=f"sent {sent} requests, acked {len(p.acked)}, events {events}, recorded {recorded}, "
                                 f"undecided {p.pending()}",
                          extra={"rate": events / p.elapsed, "sent": events, "started": len(p.started()),
                                 "cpu_per_event": p.cpu / max(1, events)})
        return one

    runs = {name + key: capacity(name, key, event, batch) for key, event, batch, _, _ in _CAPACITY
            for name in ("opsflow", "baseline")}
    samples = interleave(runs, size.event_capacity_rounds, 0, env.say)
    figs = []
    for key, event, _, what, target in _CAPACITY:
        fig = figure(NAME, f"highest sustained intake, nothing lost, {what} (closed loop, {conns} connections, "
                           f"{size.event_capacity_seconds:g} s)", samples, "opsflow" + key, "baseline" + key,
                     lambda s: s.extra["rate"], "events/s", higher_is_better=True, baseline_label=BASELINE)
        good = [s for s in samples["opsflow" + key] if s.ok]
        cpu = (f"service CPU {1000 * _mean([s.extra['cpu_per_event'] for s in good]):.3f} ms per event, baseline "
               f"{1000 * _mean([s.extra['cpu_per_event'] for s in samples['baseline' + key] if s.ok]):.3f} ms")
        if good and event == "BenchEvent":
            sent = sum(s.extra["sent"] for s in good)
            started = sum(s.extra["started"] for s in good)
            reasons = last["opsflow" + key].not_started() if "opsflow" + key in last else Counter[str]()
            fig.note = (f"every event sent was acknowledged 200, recorded and decided in every counted round "
                        f"({int(sent):,} events); runs started meanwhile: {int(started):,} "
                        f"({started / max(1, sent):.0%}; last round not started: {_reasons(reasons)}); {cpu}")
        elif good:
            fig.note = (f"every event acknowledged, recorded and decided (outcome no_rule), "
                        f"{int(sum(s.extra['sent'] for s in good)):,} events; {cpu}")
        fig.target = f"≥ {target:,.0f}/s (issue 14)"
        fig.target_ok = (fig.opsflow is not None and len(good) == len(samples["opsflow" + key])
                         and fig.opsflow.p50 >= target)
        figs.append(fig)
    return figs


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _reasons(c: Counter[str]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in c.most_common()) or "none"


def _rate_figures(rate: int, seconds: float, got: dict[str, list[Phase]], hosts: int) -> list[Figure]:
    ms = 1000.0
    label = f"{rate:,}/s offered"
    ops, base = got["opsflow"], got["baseline"]
    o_lat = [r.latency * ms for p in ops for r in p.acked]
    b_lat = [r.latency * ms for p in base for r in p.acked]
    offered = round(rate * seconds) * len(ops)
    sent = sum(len(p.recs) for p in ops)
    acked = sum(len(p.acked) for p in ops)
    recorded = sum(len(p.records) for p in ops)
    failed = sum(len(p.recs) - len(p.acked) for p in ops + base)
    achieved = [len(p.acked) / p.elapsed for p in ops]
    b_achieved = [len(p.acked) / p.elapsed for p in base]
    ack = Figure(bench=NAME, name=f"{label}, 1 event per request: POST → 200 (client side, from when the event was due)", unit="ms",
                 opsflow=Stats.of(o_lat, "ms"), baseline_name=BASELINE, baseline=Stats.of(b_lat, "ms"),
                 tail="p99", samples="events", failures=failed,
                 note=(f"achieved {_mean(achieved):,.1f}/s to opsflow, {_mean(b_achieved):,.1f}/s to the baseline "
                       f"(offered {rate:,}/s for {seconds:g} s per round); of {offered:,} events offered to opsflow "
                       f"{sent:,} were sent within the time bound, {acked:,} acknowledged 200, {recorded:,} are in "
                       f"its store"))
    started = [a for p in ops for a in p.started()]
    lat = [float(a["start_latency"]) * ms for a in started if a.get("start_latency") is not None]
    reasons: Counter[str] = Counter()
    for p in ops:
        reasons.update(p.not_started())
    start = Figure(bench=NAME, name=f"{label}: event received → run started (service's record)", unit="ms",
                   opsflow=Stats.of(lat, "ms"), baseline_name="—", baseline=None, tail="p99", samples="runs",
                   note=(f"{len(started):,} of {recorded:,} recorded events started a run"
                         + (f"; the others were not started: {_reasons(reasons)}" if reasons else "")
                         + f"; {hosts} hosts round robin, local `true` step, 4 workers, queue 100"))
    if rate == 1000:  # issue 14: the runs that did start, started quickly; every 200 came quickly
        start.target = ack.target = f"p99 < {TARGET_MS:g} ms (issue 14)"
        start.target_ok = start.opsflow is not None and start.opsflow.p99 < TARGET_MS
        ack.target_ok = ack.opsflow is not None and ack.opsflow.p99 < TARGET_MS and acked == sent == recorded
    if rate == 100:
        start.target = f"p99 < {TARGET_MS:g} ms"
        stats = start.opsflow
        start.target_ok = stats is not None and stats.p99 < TARGET_MS and len(started) == recorded == sent
        if stats is not None and len(started) != sent:
            start.note += " (the target counts as missed when not every event started a run)"
    o_cpu = [p.cpu / max(1, len(p.acked)) * ms for p in ops]
    b_cpu = [p.cpu / max(1, len(p.acked)) * ms for p in base]
    cpu = Figure(bench=NAME, name=f"{label}: server CPU per event", unit="ms", opsflow=Stats.of(o_cpu, "ms"),
                 baseline_name=BASELINE, baseline=Stats.of(b_cpu, "ms"),
                 note="CPU-ms (user + system) of the server process, its worker processes and their children per "
                      "acknowledged event, over the phase and the service's draining after it; opsflow's includes "
                      "the runs it started")
    return [ack, start, cpu]
