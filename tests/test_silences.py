"""Maintenance silences against the real Prometheus Alertmanager (Debian's prometheus-alertmanager),
started on loopback with a storage directory of its own."""

from __future__ import annotations

import http.client
import json
import logging
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsflow.silences import (
    Matcher,
    SilenceClient,
    SilenceError,
    hosts_matcher,
    maintenance_silence,
    regex_escape,
)
from tests.helpers import wait_for

CREATOR = "opsflow-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



class Alertmanager:
    def __init__(self, url: str) -> None:
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])

    def call(self, method: str, path: str, doc: Any = None) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=json.dumps(doc).encode() if doc is not None else None,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, (resp.status, data)
            return json.loads(data) if data.strip() else None
        finally:
            conn.close()

    def alert(self, **labels: str) -> None:
        now = datetime.now(UTC)
        self.call("POST", "/api/v2/alerts", [{
            "labels": {"alertname": "HostDown", **labels}, "annotations": {"summary": "down"},
            "startsAt": now.isoformat(), "endsAt": (now + timedelta(hours=1)).isoformat()}])

    def alert_state(self, instance: str) -> dict[str, Any] | None:
        for a in self.call("GET", "/api/v2/alerts"):
            if a["labels"].get("instance") == instance:
                return dict(a["status"])
        return None


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not binary:
        pytest.skip("Prometheus Alertmanager is not installed (`make setup` installs prometheus-alertmanager)")
    config = tmp_path / "alertmanager.yml"
    config.write_text(json.dumps({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}))
    log = tmp_path / "alertmanager.log"
    for _ in range(3):  # a free port may be taken between the probe and the bind
        port = free_port()
        with log.open("w") as out:
            proc = subprocess.Popen([binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                                     "--cluster.listen-address=", f"--storage.path={tmp_path / 'am-data'}"],
                                    stdout=out, stderr=subprocess.STDOUT)

        def ready(port: int = port, proc: subprocess.Popen[bytes] = proc) -> bool:
            if proc.poll() is not None:
                return True
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/-/ready")
                return conn.getresponse().status == 200
            except OSError:
                return False

        wait_for(ready, 30, "Alertmanager to be ready")
        if proc.poll() is None:
            break
    else:
        raise AssertionError(f"Alertmanager did not start:\n{log.read_text()}")
    try:
        yield Alertmanager(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(10)


def test_regex_matches_exactly_the_hosts_as_alertmanager_anchors_it() -> None:
    m = hosts_matcher(["srv1", "db-1.example.org", "srv1"], label="host")
    assert m == Matcher("host", r"(srv1|db-1\.example\.org)(:[0-9]+)?", is_regex=True)
    assert str(m) == 'host=~"(srv1|db-1\\\\.example\\\\.org)(:[0-9]+)?"'
    pattern = re.compile(m.value)
    assert all(pattern.fullmatch(h) for h in ["srv1", "srv1:9100", "db-1.example.org:9100"])
    assert not any(pattern.fullmatch(h) for h in ["srv10", "srv1:x", "db-1Xexample.org", "srv"])
    assert regex_escape("a|b(c)*") == r"a\|b\(c\)\*"
    assert hosts_matcher(["srv1"], with_port=False).value == "(srv1)"


def test_maintenance_silence_silences_the_hosts_and_expires_on_exit(alertmanager: Alertmanager) -> None:
    client = SilenceClient(alertmanager.url, timeout=5)
    with maintenance_silence(client, ["srv1", "srv2"], duration=3600, created_by=CREATOR,
                             comment="opsflow run r-1: patching") as silence:
        assert silence.ok and silence.id and silence.error is None
        [active] = [s for s in alertmanager.call("GET", "/api/v2/silences") if s["status"]["state"] == "active"]
        assert active["id"] == silence.id and active["createdBy"] == CREATOR
        assert active["comment"] == "opsflow run r-1: patching"
        assert active["matchers"] == [{"name": "instance", "value": "(srv1|srv2)(:[0-9]+)?", "isRegex": True,
                                       "isEqual": True}]
        ends = datetime.fromisoformat(active["endsAt"].replace("Z", "+00:00"))
        assert timedelta(minutes=59) < ends - datetime.now(UTC) <= timedelta(hours=1)
        assert [s["id"] for s in client.active(created_by=CREATOR)] == [silence.id]
        assert client.active(created_by="someone-else") == []

        alertmanager.alert(instance="srv1:9100")
        alertmanager.alert(instance="srv10:9100")  # not in maintenance: the anchored regex leaves it alone
        state = wait_for(lambda: (s := alertmanager.alert_state("srv1:9100")) and s["state"] == "suppressed" and s,
                         10, "srv1's alert to be suppressed")
        assert state["silencedBy"] == [silence.id]
        other = wait_for(lambda: alertmanager.alert_state("srv10:9100"), 10, "srv10's alert")
        assert other["state"] == "active" and other["silencedBy"] == []
    assert silence.expired and silence.error is None
    assert client.get(silence.id)["status"]["state"] == "expired"
    assert client.active(created_by=CREATOR) == []
    wait_for(lambda: (s := alertmanager.alert_state("srv1:9100")) and s["state"] == "active", 10,
             "srv1's alert to be active again")


def test_an_exception_in_the_block_still_expires_the_silence(alertmanager: Alertmanager) -> None:
    client = SilenceClient(alertmanager.url, timeout=5)
    with pytest.raises(RuntimeError, match="step failed"), \
            maintenance_silence(client, ["srv3"], duration=timedelta(minutes=30), created_by=CREATOR) as silence:
        assert silence.id and client.get(silence.id)["status"]["state"] == "active"
        raise RuntimeError("step failed")
    assert silence.id and silence.expired
    assert client.get(silence.id)["status"]["state"] == "expired"


def test_unreachable_alertmanager_warns_and_the_block_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    client = SilenceClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    ran = False
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="opsflow.silences"), \
            maintenance_silence(client, ["srv1"], duration=600, created_by=CREATOR) as silence:
        ran = True
    assert ran and time.monotonic() - started < 5
    assert silence.id is None and not silence.ok and not silence.expired
    assert silence.error and "alerts of srv1 not silenced" in silence.error and "cannot reach" in silence.error
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.getMessage() == silence.error


def test_expire_failure_is_reported_not_raised(alertmanager: Alertmanager, caplog: pytest.LogCaptureFixture) -> None:
    client = SilenceClient(alertmanager.url, timeout=5)
    with caplog.at_level(logging.WARNING, logger="opsflow.silences"), \
            maintenance_silence(client, ["srv4"], duration=600, created_by=CREATOR) as silence:
        assert silence.id
        client.base_url = f"http://127.0.0.1:{free_port()}"  # Alertmanager gone before the block ends
    assert silence.id and not silence.expired
    assert silence.error and f"silence {silence.id} not expired" in silence.error
    assert [r.getMessage() for r in caplog.records] == [silence.error]


def test_client_errors_are_silence_errors(alertmanager: Alertmanager) -> None:
    client = SilenceClient(alertmanager.url, timeout=5)
    now = datetime.now(UTC)
    with pytest.raises(SilenceError, match="HTTP 400"):
        client.create([Matcher("instance", "(unclosed", is_regex=True)], now, now + timedelta(hours=1), CREATOR, "x")
    with pytest.raises(SilenceError, match="HTTP 404"):
        client.get("00000000-0000-0000-0000-000000000000")
    with pytest.raises(SilenceError, match="must end after it starts"):
        client.create([Matcher("instance", "srv1")], now, now, CREATOR, "x")
    with pytest.raises(SilenceError, match="must be http"):
        SilenceClient("alertmanager:9093")
