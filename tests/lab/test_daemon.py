"""opsflow daemon against real peers: the lab's hosts, a real Prometheus Alertmanager, logger(1), promtool.

Each test starts the real daemon (``python -m opsflow daemon``) on loopback with a store of its
own, posts to it or lets Alertmanager / logger do so, and checks the hosts and the records.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsflow.errors import StoreError
from opsflow.events.models import Event
from opsflow.store.sql import SqlStore
from tests.helpers import ROOT, Cli, pg_store_url, wait_for, write_runbook

pytestmark = pytest.mark.lab

TOKEN = "test-token-" + uuid.uuid4().hex
HMAC_SECRET = "test-hmac-" + uuid.uuid4().hex
INJECTION = "{{ 7*7 }} $(id) `id` ; touch /tmp/pwned-TOKEN && echo {% raw %}x{% endraw %} | sh"



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """The real daemon in a subprocess, its log in a file."""

    def __init__(self, cli: Cli, runbooks: Path, *args: str, syslog: bool = False) -> None:
        self.cli, self.log = cli, cli.home / f"daemon-{uuid.uuid4().hex[:6]}.log"
        cli.home.mkdir(parents=True, exist_ok=True)
        token_file = cli.home / "token"
        token_file.write_text(TOKEN + "\n")
        token_file.chmod(0o600)
        argv = [sys.executable, "-m", "opsflow", "daemon", "--listen", "127.0.0.1:0", "--runbooks", str(runbooks),
                "--token-file", str(token_file), *(["--syslog", "127.0.0.1:0"] if syslog else []), *args]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=cli.env(), cwd=ROOT)
        line = wait_for(self._ready, 60, "the daemon to listen")
        self.port = int(line.split("http://127.0.0.1:")[1].split(",")[0].split(" ")[0])
        self.syslog_port = int(line.split("udp://127.0.0.1:")[1].split(" ")[0]) if syslog else 0
        self._conn: http.client.HTTPConnection | None = None

    def _ready(self) -> str | None:
        text = self.log.read_text()
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{text}")
        return next((ln for ln in text.splitlines() if "listening on http://" in ln), None)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                token: str | None = TOKEN) -> tuple[int, dict[str, Any], dict[str, str]]:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        for attempt in range(2):  # the server may close a kept-alive connection after a refusal
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            try:
                self._conn.request(method, path, body=body, headers=hdrs)
                resp = self._conn.getresponse()
                data = resp.read()
            except (ConnectionError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if attempt:
                    raise
                continue
            if resp.getheader("Connection", "").lower() == "close":
                self._conn.close()
                self._conn = None
            parsed = json.loads(data) if resp.getheader("Content-Type", "").startswith("application/json") else {
                "text": data.decode()}
            return resp.status, parsed, {k.lower(): v for k, v in resp.getheaders()}
        raise AssertionError("unreachable")

    def post(self, path: str, doc: Any, **kw: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
        return self.request("POST", path, json.dumps(doc).encode(), **kw)

    def alerts(self, *alerts: dict[str, Any]) -> dict[str, Any]:
        status, body, _ = self.post("/hooks/alertmanager", am_payload(list(alerts)))
        assert status == 200, body
        return body

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self._conn is not None:
            self._conn.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"daemon did not stop within {timeout:g} s:\n{self.log.read_text()[-3000:]}") from None


def am_alert(name: str, status: str = "firing", starts: str = "2026-01-01T00:00:00Z", **labels: str) -> dict[str, Any]:
    labels = {"alertname": name, **labels}
    summary = labels.pop("summary", f"{name} on {labels.get('instance')}")
    fingerprint = hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]
    return {"status": status, "labels": labels, "annotations": {"summary": summary}, "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-01T00:05:00Z",
            "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint}


def am_payload(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": "4", "receiver": "opsflow", "status": alerts[0]["status"] if alerts else "firing",
            "groupKey": "{}:{}", "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager", "alerts": alerts}


def actions(cli: Cli) -> list[dict[str, Any]]:
    cols = ("event_id", "rule", "host", "outcome", "reason", "run_id", "run_status", "start_latency", "detail")
    return [dict(zip(cols, r, strict=True)) for r in cli.query(f"SELECT {', '.join(cols)} FROM event_actions ORDER BY id")]


def decision(cli: Cli, body: dict[str, Any]) -> dict[str, Any]:
    """The decision on the first event of a hook's receipt (taken after the 200, off the request path):
    outcome ``queued`` when it was queued (whatever became of it since), else the action's outcome and reason."""
    event_id = body["events"][0]["id"]
    rows = wait_for(lambda: cli.query("SELECT outcome, reason, queued_at, detail FROM event_actions WHERE event_id = "
                                      f"'{event_id}'"), 30, f"the decision on event {event_id}")
    outcome, reason, queued_at, detail = rows[0]
    return {"outcome": "queued", "reason": None} if queued_at is not None else {"outcome": outcome, "reason": reason,
                                                                                  "detail": detail}


def runs(cli: Cli) -> list[dict[str, Any]]:
    cols = ("id", "status", "trigger", "started_by", "hosts", "check_mode", "params")
    return [dict(zip(cols, r, strict=True)) for r in cli.query(f"SELECT {', '.join(cols)} FROM runs ORDER BY started_at")]


def finished(cli: Cli, n: int = 1) -> list[dict[str, Any]]:
    """Actions whose run has ended, once there are at least n."""
    done = [a for a in actions(cli) if a["outcome"] == "finished"]
    return done if len(done) >= n else []


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        if d.proc.poll() is None:
            d.stop(signal.SIGKILL, 10)


def shipped_runbooks(tmp_path: Path, *names: str) -> Path:
    """The project's remediation runbooks, alone in a directory (other runbooks do not matter here)."""
    d = tmp_path / "shipped"
    d.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(ROOT / "runbooks" / f"{name}.yaml", d)
    return d


def probe_runbook(tmp_path: Path, token: str, *, cooldown: str = "10m", breaker: int = 3, script: str = "",
                  targets: str = "servers") -> Path:
    """A remediation that appends one line per run to a file on the host (so runs can be counted there)."""
    script = script or f'echo "$1" >> /tmp/probe-{token}'
    write_runbook(tmp_path / "rb", "probe", f"""\
        name: probe
        targets: {targets}
        lock: true
        params:
          text: {{type: str, default: none}}
        triggers:
          events:
            - name: probe
              match:
                name: ~Probe.*
              host: labels.instance
              params:
                text: annotations.summary
              cooldown: {cooldown}
              breaker: {breaker}
        steps:
          - name: remediate
            command: [sh, -c, '{script}', probe, "{{{{ text }}}}"]
    """)
    return tmp_path / "rb"


# ---- Alertmanager -> daemon -> lab ----------------------------------------------------------------------------
@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Any]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not binary or not shutil.which("amtool"):
        pytest.skip("Prometheus Alertmanager is not installed (`make setup` installs prometheus-alertmanager)")
    procs: list[subprocess.Popen[bytes]] = []

    def start(webhook: str) -> str:
        config = tmp_path / "alertmanager.yml"
        config.write_text(json.dumps({
            "route": {"receiver": "opsflow", "group_by": ["alertname", "instance"], "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "opsflow", "webhook_configs": [{
                "url": webhook, "send_resolved": True,
                "http_config": {"authorization": {"credentials": TOKEN}}}]}]}))
        for _ in range(3):  # a free port may be taken between the probe and the bind
            port = free_port()
            log = (tmp_path / "alertmanager.log").open("w")
            proc = subprocess.Popen([binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                                     "--cluster.listen-address=", f"--storage.path={tmp_path / 'am-data'}"],
                                    stdout=log, stderr=subprocess.STDOUT)
            procs.append(proc)
            url = f"http://127.0.0.1:{port}"

            def ready(url: str = url, proc: subprocess.Popen[bytes] = proc) -> bool:
                if proc.poll() is not None:
                    return True
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=2)
                    conn.request("GET", "/-/ready")
                    return conn.getresponse().status == 200
                except OSError:
                    return False

            wait_for(ready, 30, "Alertmanager to be ready")
            if proc.poll() is None:
                return url
        raise AssertionError(f"Alertmanager did not start:\n{(tmp_path / 'alertmanager.log').read_text()}")

    yield start
    for p in procs:
        if p.poll() is None:
            p.terminate()
            p.wait(10)


def test_alertmanager_alert_runs_the_remediation_on_the_host(cli: Cli, tmp_path: Path, lab: Any, token: str,
                                                             alertmanager: Any, daemons: list[Daemon]) -> None:
    app = f"app{token}"
    lab.exec("srv1", ["sh", "-c", f"mkdir -p /var/tmp/{app}/cache /var/log/{app} && "
                                  f"head -c 200000 /dev/zero > /var/tmp/{app}/big.tmp && touch /var/tmp/{app}/cache/x "
                                  f"&& seq 1 20000 > /var/log/{app}/current.log"])
    d = Daemon(cli, shipped_runbooks(tmp_path, "remediate-disk-full"))
    daemons.append(d)
    am = alertmanager(f"http://127.0.0.1:{d.port}/hooks/alertmanager")
    summary = INJECTION.replace("TOKEN", token)
    amtool = ["amtool", f"--alertmanager.url={am}", "alert", "add", "DiskFull", "instance=srv1:9100",
              f"app={app}", "severity=critical", "mountpoint=/", f"--annotation=summary={summary}"]
    subprocess.run(amtool, check=True, capture_output=True, timeout=30)
    done = wait_for(lambda: finished(cli), 60, "the remediation run to finish")[0]
    assert done["rule"] == "disk-full" and done["host"] == "srv1" and done["run_status"] == "succeeded", done
    # the runbook's effect on the host: temporary files gone, log rotated and compressed
    listing = lab.exec("srv1", ["sh", "-c", f"find /var/tmp/{app} -mindepth 1; ls /var/log/{app}"]).stdout.split()
    assert "current.log" in listing and any(f.endswith(".log.gz") for f in listing), listing
    assert not [f for f in listing if f.startswith("/var/tmp/")], listing
    assert lab.exec("srv1", ["test", "-s", f"/var/log/{app}/current.log"]).returncode == 1  # empty again
    run = json.loads(cli.run("show", done["run_id"], "--json", check_rc=0).stdout)
    assert run["trigger"] == "event" and run["started_by"] == "alertmanager:disk-full"
    assert run["params"]["app"] == app and run["params"]["reason"] == summary  # a value, never rendered
    assert run["event"]["labels"]["instance"] == "srv1:9100" and run["event"]["source"] == "alertmanager"
    assert "started by event" in cli.run("show", done["run_id"], check_rc=0).stdout
    # resolve it in Alertmanager: the resolved notification is recorded
    past = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    subprocess.run([*amtool, f"--end={past}"], check=True, capture_output=True, timeout=30)
    resolved = wait_for(lambda: [a for a in actions(cli) if a["reason"] == "resolved"], 60, "the resolved event")
    assert resolved[0]["rule"] == "disk-full" and resolved[0]["host"] == "srv1"
    listed = json.loads(cli.run("events", "--since", "1h", "--json", check_rc=0).stdout)
    assert listed[0]["status"] == "resolved" and listed[0]["actions"][0]["reason"] == "resolved"
    assert [e["id"] for e in listed if e["actions"][0]["run_id"] == run["id"]]
    assert d.stop() == 0


# ---- storms ------------------------------------------------------------------------------------------------
def test_alert_storm_starts_one_remediation_per_host(cli: Cli, tmp_path: Path, lab: Any, token: str,
                                                      daemons: list[Daemon]) -> None:
    d = Daemon(cli, probe_runbook(tmp_path, token))
    daemons.append(d)
    t0 = time.time()
    identical = am_alert("ProbeDown", instance="srv2")
    for _ in range(1000):  # Alertmanager delivers at least once: the same notification, again and again
        d.alerts(identical)
    for i in range(1000):  # flapping: each firing is a new occurrence (startsAt), then it resolves
        starts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1767225600 + i))
        d.alerts(am_alert("ProbeFlap", "firing", starts, instance="srv3"))
        d.alerts(am_alert("ProbeFlap", "resolved", starts, instance="srv3"))
    elapsed = time.time() - t0
    print(f"\nstorm: 3000 alerts recorded and decided in {elapsed:.2f} s ({3000 / elapsed:.0f}/s)")
    wait_for(lambda: not [a for a in actions(cli) if a["outcome"] in ("queued", "started")], 60, "runs to end")
    acts = actions(cli)
    assert len(cli.query("SELECT id FROM events")) == 3000 and len(acts) == 3000
    started = [a for a in acts if a["run_id"]]
    per_host = Counter(a["host"] for a in started)
    assert per_host["srv2"] == 1 and per_host["srv3"] <= 1, per_host
    for host in ("srv2", "srv3"):  # on the host itself: the remediation ran at most once
        lines = lab.exec(host, ["sh", "-c", f"cat /tmp/probe-{token} 2>/dev/null"]).stdout.splitlines()
        assert len(lines) == per_host[host], (host, lines)
    reasons = Counter((a["host"], a["outcome"], a["reason"]) for a in acts if not a["run_id"])
    assert reasons[("srv2", "suppressed", "duplicate")] == 999, reasons
    assert reasons[("srv3", "suppressed", "resolved")] == 1000, reasons
    assert set(reasons) <= {("srv2", "suppressed", "duplicate"), ("srv3", "suppressed", "resolved"),
                            ("srv3", "suppressed", "cooldown"), ("srv3", "canceled", "resolved")}, reasons
    assert all(a["reason"] or a["run_id"] for a in acts)  # nothing without a run or a reason
    assert d.stop() == 0


def test_queue_full_resolved_cancels_queued_and_budget(cli: Cli, tmp_path: Path, lab: Any, token: str,
                                                       daemons: list[Daemon]) -> None:
    rb = probe_runbook(tmp_path, token, script=f'echo "$1" >> /tmp/probe-{token}; sleep 2')
    d = Daemon(cli, rb, "--workers", "1", "--queue", "1", "--budget", "3/1h")
    daemons.append(d)

    def outcome(body: dict[str, Any]) -> tuple[str, str | None]:
        a = decision(cli, body)
        return a["outcome"], a["reason"]

    assert outcome(d.alerts(am_alert("ProbeA", instance="srv1"))) == ("queued", None)
    wait_for(lambda: [a for a in actions(cli) if a["outcome"] == "started"], 30, "the first run to start")
    assert outcome(d.alerts(am_alert("ProbeB", instance="srv2"))) == ("queued", None)  # the worker is busy
    assert outcome(d.alerts(am_alert("ProbeC", instance="srv3"))) == ("suppressed", "queue_full")
    assert outcome(d.alerts(am_alert("ProbeB", "resolved", instance="srv2"))) == ("suppressed", "resolved")
    assert outcome(d.alerts(am_alert("ProbeD", instance="srv4"))) == ("queued", None)  # B gave its budget back
    assert outcome(d.alerts(am_alert("ProbeF", instance="srv1"))) == ("suppressed", "cooldown")
    wait_for(lambda: len([a for a in actions(cli) if a["run_id"]]) == 2, 30, "D to start")
    assert outcome(d.alerts(am_alert("ProbeE", instance="srv3"))) == ("queued", None)  # budget: A, D, E
    assert outcome(d.alerts(am_alert("ProbeG", instance="srv2"))) == ("suppressed", "budget")
    wait_for(lambda: finished(cli, 3), 60, "three runs to finish")
    acts = {(a["host"], a["outcome"], a["reason"]) for a in actions(cli)}
    assert ("srv2", "canceled", "resolved") in acts  # the queued run of B never started
    assert lab.exec("srv2", ["test", "-e", f"/tmp/probe-{token}"]).returncode == 1
    metrics = d.request("GET", "/metrics", token=None)[1]["text"]
    assert 'opsflow_events_suppressed_total{reason="queue_full"} 1' in metrics
    assert 'opsflow_runs_canceled_total{reason="resolved"} 1' in metrics
    assert d.stop() == 0


# ---- syslog -> router ------------------------------------------------------------------------------------
def test_syslog_from_logger_remediates_the_router(cli: Cli, tmp_path: Path, lab: Any,
                                                  daemons: list[Daemon]) -> None:
    if not shutil.which("logger"):
        pytest.skip("logger (util-linux) is not installed")
    d = Daemon(cli, shipped_runbooks(tmp_path, "remediate-ospf-neighbor"), syslog=True)
    daemons.append(d)
    rtr1, rtr2 = lab.address("rtr1"), lab.address("rtr2")
    message = f"AdjChg: Nbr {rtr2}(default) on eth0:{rtr1}: Full -> Deleted (InactivityTimer)"
    base = ["logger", "--server", "127.0.0.1", "--port", str(d.syslog_port), "--udp"]
    subprocess.run([*base, "--rfc5424", "-t", "ospfd", "-p", "daemon.notice", message], check=True, timeout=10)
    subprocess.run([*base, "--rfc3164", "-t", "cron", "nothing to see"], check=True, timeout=10)
    done = wait_for(lambda: finished(cli), 90, "the router remediation to finish")[0]
    assert done["rule"] == "ospf-adjacency-lost" and done["host"] == "rtr1" and done["run_status"] == "succeeded"
    run = json.loads(cli.run("show", done["run_id"], "--json", check_rc=0).stdout)
    assert run["params"] == {"interface": "eth0", "neighbor": rtr2}
    steps = {r["step"]: r for r in run["results"]}
    assert "Neighbor ID" in steps["diagnostics"]["stdout"] and steps["adjacency is full"]["status"] == "ok"
    assert steps["bounce ospf on the interface"]["status"] == "ok"
    events = json.loads(cli.run("events", "--json", check_rc=0).stdout)
    by_name = {e["name"]: e for e in events}
    assert by_name["ospfd"]["data"]["format"] == "rfc5424" and by_name["ospfd"]["severity"] == "notice"
    assert by_name["cron"]["outcome"] == "no_rule" and by_name["cron"]["data"]["format"] == "rfc3164"
    assert "Full" in lab.exec("rtr1", ["vtysh", "-c", "show ip ospf neighbor"]).stdout
    assert d.stop() == 0


# ---- refusals ----------------------------------------------------------------------------------------------
def test_unauthenticated_oversized_and_malformed_requests_queue_nothing(cli: Cli, tmp_path: Path, lab: Any,
                                                                        token: str, daemons: list[Daemon]) -> None:
    secret = cli.home / "hmac"
    cli.home.mkdir(parents=True, exist_ok=True)
    secret.write_text(HMAC_SECRET)
    secret.chmod(0o600)
    d = Daemon(cli, probe_runbook(tmp_path, token), "--hmac-secret-file", str(secret), "--max-body", "4096")
    daemons.append(d)
    good = json.dumps(am_payload([am_alert("ProbeX", instance="srv1")])).encode()
    sign = "sha256=" + hmac.new(HMAC_SECRET.encode(), good, hashlib.sha256).hexdigest()
    refusals = [
        (401, dict(body=good, token=None)),
        (401, dict(body=good, token=TOKEN + "x")),
        (401, dict(body=good, token=None, headers={"X-Opsflow-Signature": sign[:-1] + ("1" if sign.endswith("0") else "0")})),
        (401, dict(body=good + b" ", token=None, headers={"X-Opsflow-Signature": sign})),  # body changed
        (413, dict(body=b"[" + b"0," * 4000 + b"0]")),
        (400, dict(body=b'{"version": "4", "alerts": [')),
        (400, dict(body=b'{"version": "4", "alerts": {"x": 1}}')),
        (400, dict(body=b'{"version": "3", "alerts": []}')),
        (400, dict(body=json.dumps(am_payload([{**am_alert("ProbeX", instance="srv1"), "status": "sort-of"}])).encode())),
        (400, dict(body=json.dumps(am_payload([{**am_alert("ProbeX"), "labels": {"instance": "srv1"}}])).encode())),
        (400, dict(body=b"\xff\xfe not utf-8")),
        (415, dict(body=good, headers={"Content-Type": "text/plain"})),
    ]
    for code, kw in refusals:
        status, body, headers = d.request("POST", "/hooks/alertmanager", **kw)
        assert status == code and body.get("error"), (code, kw, status, body)
        assert not any(h.startswith("access-control-") for h in headers)
    for path, doc, reason in (("/hooks/event", {"name": "ProbeX", "host": "srv1", "shell": "x"}, "unknown key"),
                              ("/hooks/event", {"specversion": "1.0", "type": "ProbeX", "source": "s"}, "without id"),
                              ("/hooks/event", [], "empty list")):
        status, body, _ = d.post(path, doc)
        assert status == 400 and reason in body["error"], body
    assert d.request("OPTIONS", "/hooks/alertmanager")[0] == 405
    assert d.request("GET", "/hooks/alertmanager")[0] == 405
    assert d.request("GET", "/admin")[0] == 404
    assert not cli.query("SELECT id FROM events") and not cli.query("SELECT id FROM runs")
    # the same body, signed (no token): accepted
    status, body, _ = d.request("POST", "/hooks/alertmanager", good, token=None,
                                headers={"X-Opsflow-Signature": sign})
    assert status == 200 and body["events"][0]["outcome"] == "recorded" and decision(cli, body)["outcome"] == "queued"
    wait_for(lambda: finished(cli), 30, "the signed event's run")
    assert len(cli.query("SELECT id FROM events")) == 1
    metrics = d.request("GET", "/metrics", token=None)[1]["text"]
    assert 'opsflow_requests_rejected_total{reason="unauthorized"} 4' in metrics
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
    assert d.stop() == 0


def test_refuses_to_start_without_authentication(cli: Cli, tmp_path: Path, token: str) -> None:
    rb = probe_runbook(tmp_path, token)
    env = {k: v for k, v in cli.env().items() if not k.startswith("OPSFLOW_DAEMON_")}
    for args in (["--listen", "127.0.0.1:0"], ["--listen", "0.0.0.0:0", "--insecure"]):
        proc = subprocess.run([sys.executable, "-m", "opsflow", "daemon", "--runbooks", str(rb), *args], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "refusing to start without authentication" in proc.stderr, proc.stderr
    assert not cli.db.exists()  # refused before anything was opened


# ---- injection ---------------------------------------------------------------------------------------------
def test_injection_payloads_reach_the_host_literally(cli: Cli, tmp_path: Path, lab: Any, token: str,
                                                     daemons: list[Daemon]) -> None:
    d = Daemon(cli, probe_runbook(tmp_path, token, script=f'printf "%s" "$1" > /tmp/inj-{token}'))
    daemons.append(d)
    payload = INJECTION.replace("TOKEN", token) + "\n$HOME ${IFS} | & > /tmp/redirect-" + token
    d.alerts(am_alert("ProbeInject", instance="srv4", summary=payload))
    done = wait_for(lambda: finished(cli), 30, "the run")[0]
    assert done["run_status"] == "succeeded", done
    assert lab.exec("srv4", ["cat", f"/tmp/inj-{token}"]).stdout == payload
    for leftover in (f"/tmp/pwned-{token}", f"/tmp/redirect-{token}"):
        assert lab.exec("srv4", ["test", "-e", leftover]).returncode == 1
    assert d.stop() == 0


# ---- dry run, breaker ----------------------------------------------------------------------------------------
def test_check_mode_starts_dry_runs(cli: Cli, tmp_path: Path, lab: Any, token: str, daemons: list[Daemon]) -> None:
    d = Daemon(cli, probe_runbook(tmp_path, token), "--check")
    daemons.append(d)
    d.post("/hooks/event", {"name": "ProbeCheck", "labels": {"instance": "srv2"}, "message": "try the rule"})
    done = wait_for(lambda: finished(cli), 30, "the dry run")[0]
    run = runs(cli)[0]
    assert run["check_mode"] == 1 and done["run_status"] == "succeeded"
    assert lab.exec("srv2", ["test", "-e", f"/tmp/probe-{token}"]).returncode == 1  # nothing changed
    assert d.stop() == 0


def test_breaker_opens_after_failed_remediations_until_reset(cli: Cli, tmp_path: Path, lab: Any, token: str,
                                                             daemons: list[Daemon]) -> None:
    d = Daemon(cli, probe_runbook(tmp_path, token, cooldown="0", breaker=2, script="exit 3"))
    daemons.append(d)
    for i in (1, 2):
        d.alerts(am_alert(f"ProbeFail{i}", instance="srv3"))
        wait_for(lambda i=i: finished(cli, i), 30, f"failed run {i}")
    assert [a["run_status"] for a in finished(cli, 2)] == ["failed", "failed"]
    held = decision(cli, d.alerts(am_alert("ProbeFail3", instance="srv3")))
    assert held["reason"] == "breaker_open" and "opsflow breaker reset probe" in held["detail"]
    assert "probe" in cli.run("breaker", "list", check_rc=0).stdout
    assert "closed" in cli.run("breaker", "reset", "probe", check_rc=0).stdout
    assert decision(cli, d.alerts(am_alert("ProbeFail4", instance="srv3")))["outcome"] == "queued"
    wait_for(lambda: finished(cli, 3), 30, "the run after the reset")
    assert cli.run("breaker", "reset", "nope").returncode == 2
    assert d.stop() == 0


# ---- drain and restart ---------------------------------------------------------------------------------------
def test_sigterm_during_a_run_then_restart_loses_nothing(cli: Cli, tmp_path: Path, lab: Any, token: str,
                                                         daemons: list[Daemon]) -> None:
    rb = probe_runbook(tmp_path, token, script=f'echo "$1" >> /tmp/probe-{token}; sleep 60')
    args = ("--workers", "1", "--drain-timeout", "1", "--grace", "1")
    d = Daemon(cli, rb, *args)
    daemons.append(d)
    d.alerts(am_alert("ProbeLong", instance="srv1"))
    wait_for(lambda: [a for a in actions(cli) if a["outcome"] == "started"], 30, "the run to start")
    d.alerts(am_alert("ProbeQueued", instance="srv2"))
    t0 = time.time()
    assert d.stop(signal.SIGTERM, 60) == 0
    assert time.time() - t0 < 30
    by_host = {a["host"]: a for a in actions(cli)}
    assert by_host["srv1"]["outcome"] == "finished" and by_host["srv1"]["run_status"] == "canceled"
    assert (by_host["srv2"]["outcome"], by_host["srv2"]["reason"]) == ("canceled", "shutdown")
    assert [r["status"] for r in runs(cli)] == ["canceled"] and not cli.query("SELECT * FROM locks")
    # restart: everything recorded is still there; it answers and remediates again
    d2 = Daemon(cli, rb, *args)
    daemons.append(d2)
    assert d2.request("GET", "/healthz", token=None)[0] == 200
    d2.alerts(am_alert("ProbeQueued", "firing", "2026-01-01T00:01:00Z", instance="srv2"))
    wait_for(lambda: [a for a in actions(cli) if a["outcome"] == "started"], 30, "a run after the restart")
    # killed outright during that run: the next start settles it, nothing stays `running`
    assert d2.stop(signal.SIGKILL, 10) == -signal.SIGKILL
    d3 = Daemon(cli, rb, *args)
    daemons.append(d3)
    assert {r["status"] for r in runs(cli)} == {"canceled", "abandoned"}
    last = actions(cli)[-1]
    assert (last["outcome"], last["run_status"]) == ("finished", "abandoned")
    assert len(cli.query("SELECT id FROM events")) == 3
    assert d3.stop() == 0


# ---- intake hygiene (no lab: a `local` runbook on a local inventory) ---------------------------------------
def local_setup(tmp_path: Path, hosts: int = 4, script: str = "true") -> tuple[Cli, Path]:
    """A Cli with its own home and an inventory of h1..hN, and a runbook dir whose trigger (~Quick.*,
    host: labels.instance) starts a `local` step: runs happen without any lab host."""
    inventory = tmp_path / "inventory.yml"
    names = "\n".join(f"        h{i}: {{ansible_host: 192.0.2.{i}}}" for i in range(1, hosts + 1))
    inventory.write_text(f"all:\n  children:\n    servers:\n      vars: {{platform: linux}}\n      hosts:\n{names}\n")
    write_runbook(tmp_path / "rb-local", "quick", f"""\
        name: quick
        targets: servers
        lock: true
        params:
          text: {{type: str, default: none}}
        triggers:
          events:
            - name: quick
              match:
                name: ~Quick.*
              host: labels.instance
              params:
                text: annotations.summary
              cooldown: 0
        steps:
          - name: remediate
            local: [sh, -c, '{script}']
    """)
    return Cli(tmp_path / "home", inventory), tmp_path / "rb-local"


def raw_http(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, half-close, and read until the server closes (or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            chunks.append(b"<timeout>")
    return b"".join(chunks)


def statuses(reply: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", reply)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_request_with_text_that_cannot_be_stored_is_refused_whole(tmp_path: Path, backend: str,
                                                                    daemons: list[Daemon]) -> None:
    cli, rb = local_setup(tmp_path)
    with contextlib.ExitStack() as stack:
        db = () if backend == "sqlite" else ("--db", stack.enter_context(pg_store_url()))
        d = Daemon(cli, rb, *db)
        daemons.append(d)
        good = [am_alert("QuickA", instance="h1"), am_alert("QuickB", instance="h2")]
        for bad in ('"\\ud800"', '"a\\udfffb"', '"nul \\u0000 here"'):  # valid JSON; not storable text
            broken = json.dumps({**am_alert("QuickC", instance="h3"), "annotations": {"summary": "S"}})
            body = json.dumps(am_payload(good))[:-2] + ", " + broken.replace('"S"', bad) + "]}"
            status, reply, _ = d.request("POST", "/hooks/alertmanager", body.encode())
            assert status == 400 and "alerts[2].annotations.summary" in reply["error"], (bad, status, reply)
            events = [{"name": "QuickE", "labels": {"instance": "h4"}}, {"name": "QuickF", "message": "S"}]
            status, reply, _ = d.request("POST", "/hooks/event", json.dumps(events).replace('"S"', bad).encode())
            assert status == 400 and "body[1].message" in reply["error"], (bad, status, reply)
        status, reply, _ = d.request("POST", "/hooks/event", b'{"name": "QuickK", "labels": {"\\ud800": "x"}}')
        assert status == 400 and "key" in reply["error"]
        status, reply, _ = d.request("POST", "/hooks/event", b'{"name": "Quick\\ud83d\\ude00", "host": "h1"}')
        assert status == 200, reply  # a surrogate pair is one valid character
        store = SqlStore.connect(db[1] if db else str(cli.db))
        try:
            names = [e["name"] for e in store.events()]
            assert names == ["Quick\U0001f600"], names  # nothing of a refused request was recorded
        finally:
            store.close()
        assert d.stop() == 0
    assert "Traceback" not in d.log.read_text()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_write_all_records_every_statement_or_none(tmp_path: Path, backend: str) -> None:
    with contextlib.ExitStack() as stack:
        url = str(tmp_path / "s.db") if backend == "sqlite" else stack.enter_context(pg_store_url())
        store = SqlStore.connect(url)
        events = [Event(source="webhook", name=f"e{i}", id=f"ev-{i}", received_at=1.0) for i in range(3)]
        ok = [store.event_row(e, []) for e in events[:2]]
        with pytest.raises(StoreError, match="nothing of it recorded"):
            store.write_all([*ok, store.event_row(events[0], [])])  # the third repeats the first's id
        assert store.events() == []
        store.write_all([*ok, store.action_row({"id": "ev-1.0", "event_id": "ev-1", "rule": "r",
                                                "outcome": "queued"})])
        assert sorted(e["id"] for e in store.events()) == ["ev-0", "ev-1"]
        store.add_event(events[2], [])  # the connection is usable after a failed transaction
        assert len(store.events()) == 3
        store.close()


class _FailingStore(SqlStore):
    fail = 0

    def write_all(self, statements: list[Any]) -> None:
        if self.fail:
            self.fail -= 1
            raise StoreError("store: disk I/O error (test)")
        super().write_all(statements)


def test_a_request_the_store_refuses_leaves_no_trace_and_its_retry_is_decided_afresh(tmp_path: Path) -> None:
    from opsflow.events.daemon import Daemon as Core
    from opsflow.events.daemon import Settings

    cli, rb = local_setup(tmp_path)
    store = _FailingStore.connect(str(tmp_path / "s.db"))
    assert isinstance(store, _FailingStore)
    core = Core(Settings(inventory=str(cli.inventory), runbooks=str(rb), workers=1), store)
    core.load()

    def request() -> list[Event]:  # two alerts for one host, and one for another
        return [Event(source="alertmanager", name=n, host=h, labels={"instance": h}, fingerprint=n + h)
                for n, h in (("QuickA", "h1"), ("QuickB", "h1"), ("QuickC", "h2"))]

    store.fail = 1
    with pytest.raises(StoreError):
        core.submit(request())
    assert store.events() == [] and core.health()[1]["queued"] == 0
    assert core.metrics.value("opsflow_events_received_total", {"source": "alertmanager"}) == 0
    retry = request()
    core.submit(retry)  # the sender's retry: neither a duplicate nor held by a phantom run
    assert core.settle(30)
    by_event = {a["event_id"]: (a["outcome"], a["reason"]) for a in store.recent_actions(0)}
    outcomes = [by_event[e.id] for e in retry]
    assert outcomes == [("queued", None), ("suppressed", "locked"), ("queued", None)], outcomes
    assert len(store.events()) == 3 and core.health()[1]["queued"] == 2
    store.fail = 1  # a resolution that cannot be recorded cancels nothing
    with pytest.raises(StoreError):
        core.submit([Event(source="alertmanager", name="QuickA", status="resolved", host="h1",
                           labels={"instance": "h1"}, fingerprint="QuickAh1")])
    assert core.health()[1]["queued"] == 2 and len(store.events()) == 3
    store.close()


def test_content_length_must_be_one_plain_number(tmp_path: Path, daemons: list[Daemon]) -> None:
    cli, rb = local_setup(tmp_path)
    d = Daemon(cli, rb)
    daemons.append(d)
    body = json.dumps({"name": "QuickS", "labels": {"instance": "h1"}}).encode()
    head = b"POST /hooks/event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer " + \
        TOKEN.encode() + b"\r\n"
    smuggled = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    cases = {
        "+5": (400, b"Content-Length: +%d\r\n" % len(body)),
        "-1": (400, b"Content-Length: -1\r\n"),
        "hex": (400, b"Content-Length: 0x10\r\n"),
        "list": (400, b"Content-Length: %d, %d\r\n" % (len(body), len(body))),
        "repeated": (400, b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(body), len(body))),
        "conflicting": (400, b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(body), len(body) + len(smuggled))),
        "te+cl": (400, b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % len(body)),
        "chunked": (411, b"Transfer-Encoding: chunked\r\n"),
        "gzip": (400, b"Transfer-Encoding: gzip, chunked\r\n"),
        "huge": (400, b"Content-Length: " + b"9" * 30 + b"\r\n"),
        "none": (411, b""),
    }
    for name, (code, headers) in cases.items():
        reply = raw_http(d.port, head + headers + b"\r\n" + body + smuggled)
        assert statuses(reply) == [code], (name, reply[:300])  # refused, and the connection closed
        assert b"Connection: close" in reply and b'"error"' in reply, (name, reply[:300])
    assert not cli.query("SELECT id FROM events")  # neither the body nor the request hidden in it
    # a GET with a body: answered, and the connection closed (the body is never read as a request)
    reply = raw_http(d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
                     + smuggled)
    assert statuses(reply) == [200], reply[:300]
    reply = raw_http(d.port, head + b"Content-Length: %d\r\n\r\n" % len(body) + body + smuggled)
    assert statuses(reply) == [200, 200]  # a well-framed pipelined pair is two requests
    assert len(cli.query("SELECT id FROM events")) == 2
    assert d.stop() == 0
    assert "Traceback" not in d.log.read_text()


def test_clients_that_go_away_cost_one_log_line_each(tmp_path: Path, daemons: list[Daemon]) -> None:
    cli, rb = local_setup(tmp_path)
    d = Daemon(cli, rb)
    daemons.append(d)
    body = json.dumps([{"name": "QuickD", "message": "x" * 2000}] * 50).encode()
    head = (b"POST /hooks/event HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer "
            + TOKEN.encode() + b"\r\nContent-Length: %d\r\n\r\n")
    rounds = 20
    for _ in range(rounds):
        with socket.create_connection(("127.0.0.1", d.port)) as s:  # half a body, then gone
            s.sendall(head % len(body) + body[: len(body) // 2])
        with socket.create_connection(("127.0.0.1", d.port)) as s:  # half a body, then reset
            s.sendall(head % len(body) + body[: len(body) // 2])
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with socket.create_connection(("127.0.0.1", d.port)) as s:  # the whole request, reset before the reply
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(head % len(body) + body)
    wait_for(lambda: d.log.read_text().count("client went away") >= 2 * rounds, 30, "the disconnects to be logged")
    assert d.request("GET", "/healthz", token=None)[0] == 200  # still serving
    assert d.stop() == 0
    log = d.log.read_text()
    assert "Traceback" not in log and "Exception occurred" not in log, log[-3000:]
    gone = [ln for ln in log.splitlines() if "client went away" in ln]
    assert 2 * rounds <= len(gone) <= 3 * rounds, len(gone)  # one line per disconnect, at most
    recorded = len(cli.query("SELECT id FROM events"))
    assert recorded % 50 == 0 and recorded <= 50 * rounds  # only whole requests, each whole
