"""Helpers shared by the integration tests: run the real CLI in a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Cli:
    home: Path
    inventory: Path

    @property
    def db(self) -> Path:
        return self.home / "opsflow.db"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("OPSFLOW_DB", "CI")}
        env.update(OPSFLOW_HOME=str(self.home), OPSFLOW_INVENTORY=str(self.inventory), COLUMNS="200",
                   PYTHONPATH=str(ROOT))
        return env

    def run(self, *args: str, timeout: float = 300, check_rc: int | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "opsflow", *args], capture_output=True, text=True,
                              env=self.env(), timeout=timeout, cwd=ROOT)
        if check_rc is not None:
            assert proc.returncode == check_rc, f"rc {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "opsflow", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env(), cwd=ROOT)

    def run_json(self, *args: str, rc: int | None = 0) -> dict[str, Any]:
        proc = self.run("run", *args, "--json", check_rc=rc)
        data: dict[str, Any] = json.loads(proc.stdout)
        return data

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows from the store, or none while it does not exist yet (a run is still creating it)."""
        if not self.db.exists():
            return []
        try:
            with sqlite3.connect(self.db, timeout=10) as db:
                return db.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []

    def history(self) -> list[dict[str, Any]]:
        proc = self.run("history", "--json", check_rc=0)
        rows: list[dict[str, Any]] = json.loads(proc.stdout)
        return rows


@contextlib.contextmanager
def pg_store_url() -> Iterator[str]:
    """A PostgreSQL store URL whose search_path is a fresh schema, dropped afterwards.

    Skips, with the reason, without ``OPSFLOW_TEST_PG`` (``make test`` sets it) or a server.
    """
    import pytest

    pg = os.environ.get("OPSFLOW_TEST_PG")
    if not pg:
        pytest.skip("PostgreSQL tests need OPSFLOW_TEST_PG=postgresql://… (make test sets it)")
    psycopg = pytest.importorskip("psycopg")
    schema = f"t_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(pg, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {pg}: {exc}")
    try:
        yield f"{pg}{'&' if '?' in pg else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def write_runbook(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def by_step(run: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["step"], r["host"]): r for r in run["results"]}


class Hooks(ThreadingHTTPServer):
    """A local HTTP receiver of webhooks (Apprise json:// / form://): every POST kept in ``requests``."""

    requests: list[dict[str, Any]]


class _Receiver(BaseHTTPRequestHandler):
    server: Hooks

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # quiet
        pass


@contextlib.contextmanager
def webhook_receiver() -> Iterator[Hooks]:
    server = Hooks(("127.0.0.1", 0), _Receiver)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def wait_for(predicate: Any, timeout: float = 30, what: str = "condition", interval: float = 0.1) -> Any:
    """The first true value of ``predicate()``, polled until ``timeout`` s (then an AssertionError naming ``what``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mailbox:
    """What a real SMTP server (aiosmtpd) received: parsed messages, and the logins tried."""

    def __init__(self, password: str) -> None:
        from email.message import EmailMessage

        self.password = password
        self.messages: list[EmailMessage] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        import email
        import email.policy
        from email.message import EmailMessage

        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(data, LoginPassword)
        if ok:
            self.logins.append((data.login, data.password))
        return AuthResult(success=ok and data.password == self.password.encode())


@contextlib.contextmanager
def smtp_server(password: str) -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on loopback that requires a login with ``password`` (no TLS)."""
    import logging

    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # the test server's own protocol trace
    box, port = Mailbox(password), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=box.authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


CHROMIUM = "/usr/bin/chromium"  # Debian's package (make setup installs it); Playwright drives it


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium through Playwright: skipped where it is not installed, a failure in CI."""
    import pytest

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing (make setup installs Debian's chromium)", pytrace=False)
        pytest.skip(f"{CHROMIUM} is not installed (make setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
