"""Nothing acknowledged is lost (issue 14): SIGKILL `opsflow serve` in the middle of a burst, start it again.

Real processes, a real port, a SQLite store: six client threads post Alertmanager notifications (1-4
alerts each, every alert a unique fingerprint; half of them match a rule whose run is a `local` step,
the others match nothing) as fast as the service acknowledges them, and the service is killed
(SIGKILL, no drain) once a few hundred are acknowledged. Every event of every 200 must be in the
store, under the id of its receipt and with its fingerprint; after the restart every one of them is
decided (none left ``pending``: the new service decides what the killed one had recorded and not
decided), and each that matched the rule either started a run or is recorded as not started with the
reason of its decision (a run the killed service had queued is queued again by the new one and runs).
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

from tests.helpers import ROOT, wait_for

TOKEN = "crash-token-" + uuid.uuid4().hex
HOSTS = 40
RUNBOOK = """\
name: crash-fix
targets: servers
triggers:
  events:
    - name: crash-fix
      match: {name: CrashDown}
      host: labels.instance
      dedup: {key: [fingerprint]}
      cooldown: 0
      breaker: 0
steps:
  - name: remediate
    local: ["true"]
"""


def _start(home: Path, db: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    log = home / f"serve-{uuid.uuid4().hex[:6]}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSFLOW_") and k != "CI"}
    env.update(OPSFLOW_HOME=str(home), OPSFLOW_PROJECT="none", PYTHONPATH=str(ROOT))
    argv = [sys.executable, "-m", "opsflow", "serve", "--listen", "127.0.0.1:0", "--runbooks", str(home / "rb"),
            "-i", str(home / "hosts.yml"), "--db", str(db), "--token-file", str(home / "token"), "--no-schedule",
            "--budget", "1000000/1h", "--drain-timeout", "5", "--grace", "1"]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)

    def ready() -> str | None:
        text = log.read_text()
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}:\n{text}")
        return next((ln for ln in text.splitlines() if "listening on http://" in ln), None)

    line = wait_for(ready, 60, "opsflow serve to listen")
    return proc, int(line.split("listening on http://127.0.0.1:")[1].split(" ")[0]), log


def _health(port: int) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        return dict(json.loads(conn.getresponse().read()))
    finally:
        conn.close()


def _burst(port: int, threads: int, kill_after: int, proc: subprocess.Popen[bytes]) -> dict[str, str]:
    """Post until the service dies (SIGKILL once ``kill_after`` events are acknowledged); event id → fingerprint
    of every event of every request answered 200."""
    acked: dict[str, str] = {}
    lock = threading.Lock()
    serial = itertools.count()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            i = next(serial)
            alerts = [{"status": "firing", "startsAt": "2026-01-01T00:00:00Z", "annotations": {"summary": "burst"},
                       "labels": {"alertname": "CrashDown" if (i + k) % 2 else "CrashNoise",
                                  "instance": f"h{(i * 4 + k) % HOSTS + 1}"},
                       "fingerprint": f"fp-{i}-{k}-{uuid.uuid4().hex[:8]}"} for k in range(1 + i % 4)]
            body = json.dumps({"version": "4", "receiver": "opsflow", "status": "firing", "alerts": alerts})
            try:
                conn.request("POST", "/hooks/alertmanager", body, headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                return  # the service is gone: what was not answered 200 is the sender's to retry
            assert resp.status == 200, (resp.status, data)
            receipts = json.loads(data)["events"]
            assert len(receipts) == len(alerts)
            with lock:
                acked.update((str(r["id"]), str(a["fingerprint"])) for r, a in zip(receipts, alerts, strict=True))
                if len(acked) >= kill_after and proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    return acked


def test_sigkill_in_a_burst_loses_no_acknowledged_event(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "rb").mkdir(parents=True)
    (home / "rb" / "crash-fix.yaml").write_text(RUNBOOK)
    hosts = "".join(f"        h{i}: {{ansible_host: 192.0.2.{i}}}\n" for i in range(1, HOSTS + 1))
    (home / "hosts.yml").write_text("all:\n  children:\n    servers:\n      hosts:\n" + hosts)
    (home / "token").write_text(TOKEN + "\n")
    (home / "token").chmod(0o600)
    db = home / "opsflow.db"

    proc, port, _ = _start(home, db)
    acked = _burst(port, threads=6, kill_after=400, proc=proc)
    assert proc.wait(10) == -signal.SIGKILL
    assert len(acked) >= 400

    def rows(sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute(sql).fetchall()

    stored = dict(rows("SELECT id, fingerprint FROM events"))
    lost = {i: fp for i, fp in acked.items() if stored.get(i) != fp}
    assert not lost, f"{len(lost)} acknowledged event(s) not in the store: {list(lost.items())[:5]}"
    left = dict(rows("SELECT outcome, COUNT(*) FROM events GROUP BY outcome"))
    print(f"\nkilled after {len(acked)} acknowledged events ({len(stored)} recorded); at the kill: {left}, actions "
          f"{dict(rows('SELECT outcome, COUNT(*) FROM event_actions GROUP BY outcome'))}")

    again, port, log = _start(home, db)  # the next start decides what the killed one had not
    try:
        wait_for(lambda: (lambda h: h["undecided"] == h["queued"] == h["running"] == 0)(_health(port)), 30,
                 "the restarted service to decide and run what was left")
        assert not rows("SELECT id FROM events WHERE outcome = 'pending'")
        matched = {str(r[0]) for r in rows("SELECT id FROM events WHERE name = 'CrashDown'")}
        assert matched and all(dict(rows("SELECT id, outcome FROM events"))[i] == "matched" for i in matched)
        actions = rows("SELECT event_id, outcome, reason, run_id FROM event_actions")
        assert {a[0] for a in actions} == matched  # every matched event has its decision, nothing else has one
        for event_id, outcome, reason, run_id in actions:  # a run, or not started with a reason
            assert (run_id and outcome == "finished") or (outcome in ("suppressed", "canceled") and reason), \
                (event_id, outcome, reason, run_id)
        assert rows("SELECT COUNT(*) FROM runs WHERE status IN ('running', 'waiting')") == [(0,)]
        assert not rows("SELECT id FROM event_actions WHERE reason = 'daemon_stopped'")  # queued again, not dropped
        print(f"after the restart: {len(matched)} matched events ({left.get('pending', 0)} events were decided by "
              f"the new service), {sum(1 for a in actions if a[3])} started a run, the others not: "
              f"{dict(rows('SELECT reason, COUNT(*) FROM event_actions WHERE run_id IS NULL GROUP BY reason'))}")
    finally:
        again.send_signal(signal.SIGTERM)
        assert again.wait(30) == 0
    assert "Traceback" not in log.read_text()
