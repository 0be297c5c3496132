"""SIGKILL of the real daemon during a burst of events, then a restart, a few times (seeded).

Runs are quick `local` runbooks on a local inventory (no lab needed). Afterwards (once the final daemon
has decided and run what the killed ones left): every event the daemon acknowledged (200) is recorded
exactly once, no run is left `running`/`waiting`, no lock is
left, no work directory of a killed daemon remains, and a canary secret is nowhere on disk.
``OPSFLOW_CRASH_SEED`` picks another seed.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from tests.helpers import Cli, wait_for, write_runbook
from tests.lab.test_daemon import TOKEN, Daemon, local_setup

SEED = int(os.environ.get("OPSFLOW_CRASH_SEED", "20261202"))
ITERATIONS = 4
CANARY = "canary-" + uuid.uuid4().hex  # a secret param's value


class _SecretCli(Cli):
    def env(self) -> dict[str, str]:
        return {**super().env(), "OPSFLOW_PARAM_TOKEN": CANARY}


class Burst(threading.Thread):
    """Posts requests of 1–3 events (each with a unique id) until the daemon stops answering."""

    def __init__(self, port: int, rng: random.Random, hosts: int) -> None:
        super().__init__(daemon=True)
        self.port, self.rng, self.hosts = port, rng, hosts
        self.acked: list[str] = []  # ids of events answered 200
        self.sent = 0
        self.refused: Counter[int] = Counter()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while True:
            ids = [uuid.uuid4().hex for _ in range(self.rng.randint(1, 3))]
            doc = [{"name": "QuickCrash", "id": i, "labels": {"instance": f"h{self.rng.randint(1, self.hosts)}"},
                    "message": "burst"} for i in ids]
            try:
                conn.request("POST", "/hooks/event", json.dumps(doc).encode(),
                             {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                return  # killed: whatever was not answered is not acknowledged
            self.sent += len(ids)
            if resp.status == 200:
                self.acked += ids
            else:
                self.refused[resp.status] += 1


def test_sigkill_during_a_burst_loses_and_leaks_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    hosts = 8
    base, _ = local_setup(tmp_path, hosts)
    cli = _SecretCli(base.home, base.inventory)
    rb = tmp_path / "rb-crash"
    write_runbook(rb, "quick", """\
        name: quick
        targets: servers
        lock: true
        params:
          token: {type: str, secret: true}
        triggers:
          events:
            - name: quick
              match: {name: QuickCrash}
              host: labels.instance
              cooldown: 0
        steps:
          - name: remediate
            local: [sh, -c, 'echo "using $1"; sleep 0.4', x, "{{ token }}"]
    """)
    args = ("--workers", "4", "--queue", "50", "--budget", "100000/1h")
    acked: list[str] = []
    killed: list[int] = []
    started = time.time()
    logs = []
    left_by_kill = 0
    for i in range(ITERATIONS):
        d = Daemon(cli, rb, *args)
        logs.append(d.log)
        burst = Burst(d.port, random.Random(rng.random()), hosts)
        burst.start()
        time.sleep(rng.uniform(0.3, 1.5))
        killed.append(d.proc.pid)
        d.proc.send_signal(signal.SIGKILL)
        assert d.proc.wait(10) == -signal.SIGKILL
        left_by_kill += len(list(Path("/tmp").glob(f"ofr-{d.proc.pid}-*")))  # reaped by the next start
        burst.join(15)
        assert not burst.is_alive()
        assert not burst.refused, burst.refused  # nothing but 200 until the kill
        print(f"iteration {i}: {burst.sent} events sent, {len(burst.acked)} acknowledged before the kill")
        acked += burst.acked
    final = Daemon(cli, rb, *args)  # its start settles what the killed ones left
    logs.append(final.log)
    try:
        assert final.request("GET", "/healthz", token=None)[0] == 200
        # what the killed daemons recorded and did not decide, or queued and did not start, it decides and runs
        wait_for(lambda: (lambda h: h["undecided"] == h["queued"] == h["running"] == 0)(
            final.request("GET", "/healthz", token=None)[1]), 60, "the final daemon to settle")
        statuses = Counter(r[0] for r in cli.query("SELECT status FROM runs"))
        assert not statuses["running"] and not statuses["waiting"], statuses
        assert not cli.query("SELECT resource, run_id FROM locks")
        leftovers = [p for pid in killed for p in Path("/tmp").glob(f"ofr-{pid}-*")]
        assert not leftovers, leftovers
        assert not [a for a in cli.query("SELECT id FROM event_actions WHERE outcome IN ('queued', 'started')")]
    finally:
        assert final.stop() == 0
    recorded = Counter(r[0] for r in cli.query("SELECT fingerprint FROM events"))
    assert acked and all(recorded[i] == 1 for i in acked), [i for i in acked if recorded[i] != 1][:5]
    assert max(recorded.values()) == 1  # nothing recorded twice, acknowledged or not
    assert statuses["abandoned"] >= 1 and statuses["succeeded"] >= 1, statuses  # the kills did hit runs
    assert left_by_kill >= 1  # and left work directories behind, which the restarts removed
    def content(path: Path) -> bytes:  # a store's -wal file goes when its last connection is collected
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return b""

    for path in [p for p in cli.home.rglob("*") if p.is_file()] + logs:
        assert CANARY.encode() not in content(path), path
    assert "Traceback" not in "".join(p.read_text() for p in logs)
    print(f"crash: {ITERATIONS} kills (seed {SEED}), {len(acked)} events acknowledged, {len(recorded)} recorded, "
          f"runs {dict(statuses)}, {left_by_kill} work directories reaped, {time.time() - started:.1f} s")
