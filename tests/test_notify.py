"""Notifications through Apprise against real receivers on loopback: an SMTP server (aiosmtpd) that
requires a login, and an HTTP server taking Apprise's json:// and form:// webhooks.

Every test carries canary secrets (an SMTP password, a webhook token, a secret in the body) and
checks they reach neither the message, nor a Delivery, nor any log record.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from opsflow.notify import Delivery, Kind, Notification, Notifier, Router
from opsflow.redact import MASK, Redactor
from tests.helpers import Hooks, Mailbox, free_port, smtp_server, webhook_receiver

pytest.importorskip("aiosmtpd.controller")

PASSWORD = "smtp-pw-" + uuid.uuid4().hex[:12]
TOKEN = "hook-tok-" + uuid.uuid4().hex[:12]
CANARY = "canary-" + uuid.uuid4().hex[:12]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server(PASSWORD) as server:
        yield server


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    with webhook_receiver() as server:
        yield server


def leaks(deliveries: list[Delivery], records: list[logging.LogRecord], *secrets: str) -> list[str]:
    texts = [repr(d) for d in deliveries] + [r.getMessage() for r in records]
    return [f"{s!r} in {t!r}" for t in texts for s in secrets if s in t]


def report(tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    path.write_text(f"<html><body><h1>Weekly report</h1><p>db password {CANARY}</p></body></html>")
    return path


def test_mail_with_attachment_arrives_and_no_secret_does(smtp: tuple[Mailbox, int], tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    box, port = smtp
    url = f"mailto://ops:{PASSWORD}@127.0.0.1:{port}?mode=insecure&from=opsflow@example.org&to=oncall@example.org"
    notifier = Notifier([url], Redactor([CANARY]), timeout=20)
    note = Notification(Kind.RUN_FAILED, f"backup failed on srv1 ({CANARY})",
                        body=f"step 'dump' failed: pg_dump: password {CANARY} rejected\n<b>not bold</b> [link](x)",
                        run_id="r-42", entry="nightly-backup", reason="hosts_failed",
                        links={"run": "http://opsflow.example.org/runs/r-42"}, attachments=[report(tmp_path)])
    with caplog.at_level(logging.DEBUG):
        [delivery] = notifier.send(note)
    assert delivery.ok, delivery
    assert delivery.target.startswith("mailto://ops:****@127.0.0.1") and PASSWORD not in delivery.target
    assert box.logins == [(b"ops", PASSWORD.encode())]  # the password was used, only on the wire
    [msg] = box.messages
    assert msg["Subject"] == f"backup failed on srv1 ({MASK})" and msg["To"] == "oncall@example.org"
    text = msg.get_body(("plain",))
    assert text is not None and msg.get_body(("html",)) is None  # plain text only: data is never markup
    content = text.get_content()
    assert f"pg_dump: password {MASK} rejected" in content and "<b>not bold</b> [link](x)" in content
    assert "run: r-42" in content and "entry: nightly-backup" in content and "reason: hosts_failed" in content
    assert "run: http://opsflow.example.org/runs/r-42" in content
    [att] = list(msg.iter_attachments())
    assert att.get_filename() == "report.html" and att.get_content_type() == "text/html"
    html = att.get_content()
    html = html.decode() if isinstance(html, bytes) else html
    assert "<h1>Weekly report</h1>" in html and f"db password {MASK}" in html
    raw = msg.as_string()
    assert CANARY not in raw and PASSWORD not in raw
    assert not leaks([delivery], caplog.records, PASSWORD, CANARY)
    assert any("mailto://ops:****@127.0.0.1" in r.getMessage() for r in caplog.records if r.name == "opsflow.notify")


def test_wrong_smtp_password_is_a_failed_delivery_without_the_password(smtp: tuple[Mailbox, int],
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    box, port = smtp
    wrong = "wrong-" + uuid.uuid4().hex[:10]
    url = f"mailto://ops:{wrong}@127.0.0.1:{port}?mode=insecure&from=opsflow@example.org&to=oncall@example.org"
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        [delivery] = Notifier([url], Redactor(), timeout=3).send(Notification("missed", "nightly backup missed"))
    assert time.monotonic() - started < 6  # the server stalls after the refusal: the timeout bounds the wait
    assert not delivery.ok and delivery.error and box.messages == []
    assert box.logins and box.logins[0] == (b"ops", wrong.encode())
    assert not leaks([delivery], caplog.records, wrong)


def test_webhooks_json_and_form_carry_the_text_not_the_secrets(hooks: Hooks,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    port = hooks.server_address[1]
    targets = [f"json://user:{PASSWORD}@127.0.0.1:{port}/hooks/json?-token={TOKEN}",
               f"form://127.0.0.1:{port}/hooks/form?+X-Api-Key={TOKEN}"]
    note = Notification("breaker_opened", "breaker opened: restart-nginx",
                        body=f"3 failures in 10m; last error: auth {CANARY} and {TOKEN}\x1b]0;pwned\x07",
                        entry="restart-nginx")
    with caplog.at_level(logging.DEBUG):
        deliveries = Notifier(targets, Redactor([CANARY]), timeout=20).send(note)
    assert [d.ok for d in deliveries] == [True, True], deliveries
    by_path = {r["path"].partition("?")[0]: r for r in hooks.requests}
    assert set(by_path) == {"/hooks/json", "/hooks/form"}
    sent = json.loads(by_path["/hooks/json"]["body"])
    assert sent["title"] == "breaker opened: restart-nginx" and sent["type"] == "failure"
    assert sent["message"].startswith(f"3 failures in 10m; last error: auth {MASK} and {MASK}\\x1b]0;pwned\\x07")
    assert "entry: restart-nginx" in sent["message"] and "kind: breaker_opened" in sent["message"]
    assert parse_qs(by_path["/hooks/json"]["path"].partition("?")[2]) == {"token": [TOKEN]}  # used on the wire
    form = parse_qs(by_path["/hooks/form"]["body"].decode())
    assert form["title"] == ["breaker opened: restart-nginx"] and MASK in form["message"][0]
    assert by_path["/hooks/form"]["headers"]["X-Api-Key"] == TOKEN
    for request in hooks.requests:
        assert CANARY.encode() not in request["body"] and TOKEN.encode() not in request["body"]
    assert [d.target.split("?")[0] for d in deliveries] == [f"json://user:****@127.0.0.1:{port}/hooks/json",
                                                            f"form://127.0.0.1:{port}/hooks/form"]
    assert not leaks(deliveries, caplog.records, PASSWORD, TOKEN, CANARY)
    assert any("JSON Payload" in r.getMessage() for r in caplog.records)  # Apprise's debug log was captured


def test_dead_target_is_a_failed_delivery_quickly(hooks: Hooks, caplog: pytest.LogCaptureFixture) -> None:
    dead = free_port()  # nothing listens there: connection refused
    live = hooks.server_address[1]
    targets = [f"json://127.0.0.1:{dead}/hook?-token={TOKEN}", f"json://127.0.0.1:{live}/hook",
               "nosuchscheme://whatever/" + TOKEN]
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG):
        deliveries = Notifier(targets, Redactor(), timeout=10).send(Notification("skipped", "entry skipped"))
    assert time.monotonic() - started < 5
    refused, ok, unknown = deliveries
    assert not refused.ok and refused.error and "onnection" in refused.error
    assert ok.ok and len(hooks.requests) == 1
    assert not unknown.ok and unknown.error == "not a notification URL Apprise can use"
    assert unknown.target == f"nosuchscheme://whatever/{MASK}"
    assert not leaks(deliveries, caplog.records, TOKEN)
    assert any(r.levelno == logging.WARNING and r.name == "opsflow.notify" and "failed" in r.getMessage()
               for r in caplog.records)


def test_slow_target_times_out_without_blocking_the_caller() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        started = time.monotonic()
        [d] = Notifier([f"json://127.0.0.1:{port}/hook"], Redactor(), timeout=1.5).send(
            Notification("report", "weekly report"))
        took = time.monotonic() - started
    assert not d.ok and d.error
    assert took < 6, took


def test_router_sends_each_kind_to_its_people(hooks: Hooks) -> None:
    port = hooks.server_address[1]
    router = Router.from_config({
        "contacts": {"ops-team": [f"json://127.0.0.1:{port}/ops", f"form://127.0.0.1:{port}/ops-form"]},
        "routes": [{"to": "ops-team", "on": ["run_failed", "breaker_opened"]},
                   {"to": f"json://127.0.0.1:{port}/all"}]})
    assert [d.ok for d in router.send(Notification("run_failed", "run failed"))] == [True, True, True]
    assert [d.ok for d in router.send(Notification("report", "weekly"))] == [True]
    assert sorted(r["path"] for r in hooks.requests) == ["/all", "/all", "/ops", "/ops-form"]
