"""The daemon's listeners: HTTP (webhooks, /healthz, /metrics) and syslog over UDP.

HTTP requests to ``/hooks/*`` are authenticated — a bearer token, or an HMAC-SHA256 of the body
in ``X-Opsflow-Signature: sha256=<hex>`` (``X-Hub-Signature-256`` is accepted too) — compared in
constant time. A body over the limit, of the wrong type or shape is refused with the reason,
and nothing of it is recorded or queued. No CORS headers are ever sent: browsers cannot post here.
``/healthz`` and ``/metrics`` are open (they carry counts and names — rules, runbooks, hosts and devices
backed up, schedule entries — never event data, parameters or output).

A body is framed by exactly one ``Content-Length`` of digits: a signed, non-numeric, repeated or
conflicting one, or any ``Transfer-Encoding`` (chunked is not supported), is refused and the
connection closed — one request is never read as two. A client that goes away (a reset, a broken
pipe, a body cut short) costs one log line, without a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opsflow.errors import OpsflowError, StoreError, UsageError
from opsflow.events import intake
from opsflow.events.daemon import Daemon
from opsflow.events.metrics import CONTENT_TYPE

log = logging.getLogger("opsflow.daemon")
JSON_TYPES = ("application/json", "application/cloudevents+json", "application/cloudevents-batch+json")
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_LENGTH = re.compile(r"[0-9]{1,18}")
GONE = (ConnectionError, TimeoutError)  # the client reset, closed or stalled: one log line, no traceback


def parse_address(text: str, what: str) -> tuple[str, int]:
    """``127.0.0.1:8080``, ``[::1]:8080``, ``localhost:0`` → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or not host:
        raise UsageError(f"{what} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_auth(auth: Auth, listen: tuple[str, int], syslog: tuple[str, int] | None,
                 syslog_allow: tuple[str, ...], insecure: bool) -> None:
    """Refuse an unauthenticated HTTP listener (unless --insecure on loopback), and open syslog off loopback."""
    if not auth.enabled and not (insecure and is_loopback(listen[0])):
        raise UsageError("refusing to start without authentication: give --token-file or --hmac-secret-file "
                         "(or set OPSFLOW_DAEMON_TOKEN / OPSFLOW_DAEMON_HMAC_SECRET); --insecure is only "
                         "accepted with a loopback --listen address")
    if syslog is not None and not is_loopback(syslog[0]) and not syslog_allow:
        raise UsageError(f"--syslog {syslog[0]}:{syslog[1]} is not a loopback address: syslog has no "
                         "authentication, so name the senders with --syslog-allow CIDR")


@dataclass(frozen=True)
class Auth:
    token: bytes | None = None
    hmac_key: bytes | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.hmac_key)

    def describe(self) -> str:
        kinds = [k for k, v in (("bearer token", self.token), ("HMAC-SHA256 signature", self.hmac_key)) if v]
        return " or ".join(kinds) or "none (--insecure)"

    @classmethod
    def load(cls, token_file: str | None, hmac_file: str | None) -> Auth:
        """Secrets from files, else from OPSFLOW_DAEMON_TOKEN / OPSFLOW_DAEMON_HMAC_SECRET."""
        def secret(path: str | None, env: str, what: str) -> bytes | None:
            if path:
                try:
                    value = Path(path).read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError) as exc:
                    raise UsageError(f"cannot read the {what} file {path}: {exc}") from exc
                if Path(path).stat().st_mode & 0o077:
                    log.warning("%s file %s is readable by group or others (chmod 600 it)", what, path)
            else:
                value = os.environ.get(env, "").strip()
                if not value:
                    return None
            if len(value) < 16:
                raise UsageError(f"the {what} must be at least 16 characters")
            return value.encode()

        return cls(secret(token_file, "OPSFLOW_DAEMON_TOKEN", "token"),
                   secret(hmac_file, "OPSFLOW_DAEMON_HMAC_SECRET", "HMAC secret"))

    def check(self, headers: Any, body: bytes) -> bool:
        if not self.enabled:
            return True
        ok = False  # every configured method is evaluated: the time taken does not tell which failed
        if self.token:
            given = headers.get("Authorization", "")
            scheme, _, value = given.partition(" ")
            ok |= hmac.compare_digest(value.strip().encode(), self.token) and scheme.lower() == "bearer"
        if self.hmac_key:
            sig = headers.get("X-Opsflow-Signature") or headers.get("X-Hub-Signature-256") or ""
            expected = "sha256=" + hmac.new(self.hmac_key, body, hashlib.sha256).hexdigest()
            ok |= hmac.compare_digest(sig.strip().lower().encode(), expected.encode())
        return ok


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Listener) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """An error the handler did not expect: logged (not printed to stderr), with its traceback."""
        log.exception("HTTP request from %s failed", client_address[0] if client_address else "?")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "opsflow"
    sys_version = ""
    timeout = 10  # seconds a client may take to send its request
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def handle(self) -> None:
        try:
            super().handle()
        except GONE as exc:
            self.close_connection = True
            log.info("%s: client went away (%s) during %s", self.address_string(), type(exc).__name__,
                     getattr(self, "command", None) or "the request line")

    def _reply(self, code: int, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None,
               kind: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body, default=str).encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _refuse(self, code: int, reason: str, error: str, headers: dict[str, str] | None = None) -> None:
        self.server.app.daemon.metrics.inc("opsflow_requests_rejected_total", {"reason": reason})
        self._reply(code, {"error": error}, headers)

    def do_GET(self) -> None:
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length", "0").strip() != "0":
            self.close_connection = True  # a body is never read here: it must not be taken for a request
        if path == "/healthz":
            ok, info = app.daemon.health()
            self._reply(200 if ok else 503, info)
        elif path == "/metrics":
            self._reply(200, app.daemon.metrics.exposition(), kind=CONTENT_TYPE)
        elif path.startswith("/hooks/"):
            self._refuse(405, "method_not_allowed", "use POST", {"Allow": "POST"})
        else:
            self._refuse(404, "not_found", f"no such path {path}; POST /hooks/alertmanager or /hooks/event")

    def _length(self) -> int | None:
        """The body's length from its one Content-Length; None when refused (and the connection closed)."""
        lengths = self.headers.get_all("Content-Length") or []
        codings = self.headers.get_all("Transfer-Encoding") or []
        if codings or len(lengths) != 1:
            self.close_connection = True
        if codings and lengths:
            self._refuse(400, "malformed", "both Transfer-Encoding and Content-Length: refused")
        elif codings:
            coding = ", ".join(codings).strip().lower()
            if coding == "chunked":
                self._refuse(411, "length_required", "chunked bodies are not supported: send a Content-Length")
            else:
                self._refuse(400, "malformed", f"Transfer-Encoding {coding[:40]!r} is not supported")
        elif not lengths:
            self._refuse(411, "length_required", "a Content-Length header is required")
        elif len(lengths) > 1:
            self._refuse(400, "malformed", f"{len(lengths)} Content-Length headers: send one")
        elif not _LENGTH.fullmatch(lengths[0].strip(" \t")):
            self.close_connection = True
            self._refuse(400, "malformed", f"bad Content-Length {lengths[0][:40]!r}: expected digits only")
        else:
            return int(lengths[0].strip(" \t"))
        return None

    def _method_not_allowed(self) -> None:
        self.close_connection = True
        self._refuse(405, "method_not_allowed", f"{self.command} is not allowed", {"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    def do_POST(self) -> None:
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path not in ("/hooks/alertmanager", "/hooks/event"):
            self.close_connection = True
            return self._refuse(404, "not_found", f"no such hook {path}; POST /hooks/alertmanager or /hooks/event")
        if app.draining:
            self.close_connection = True
            return self._refuse(503, "draining", "the daemon is shutting down", {"Retry-After": "5"})
        length = self._length()
        if length is None:
            return None
        if length > app.max_body:
            self.close_connection = True
            return self._refuse(413, "too_large", f"body of {length} bytes is over the limit of {app.max_body}")
        body = self.rfile.read(length)  # a reset or a stall (timeout) is one line, in handle()
        if len(body) != length:
            self.close_connection = True
            log.info("%s: client went away after %d of %d bytes of its body", self.address_string(), len(body),
                     length)
            with contextlib.suppress(*GONE):
                self._refuse(400, "malformed", f"body ended after {len(body)} of {length} bytes")
            return None
        if not app.auth.check(self.headers, body):
            return self._refuse(401, "unauthorized", "missing or wrong bearer token or signature",
                                {"WWW-Authenticate": 'Bearer realm="opsflow"'})
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if ctype not in JSON_TYPES:
            return self._refuse(415, "unsupported_media_type",
                                f"Content-Type {ctype or 'none'!r} is not one of {', '.join(JSON_TYPES)}")
        try:
            events = intake.alertmanager(body) if path == "/hooks/alertmanager" else intake.generic(body, ctype)
        except intake.PayloadError as exc:
            return self._refuse(400, "malformed", str(exc))
        for e in events:
            e.peer = self.client_address[0]
        try:
            receipts = app.daemon.submit(events)
        except StoreError as exc:  # not recorded: the sender must retry (Alertmanager does on 5xx)
            log.error("store: %s", exc)
            return self._refuse(503, "store", "the store cannot record events right now", {"Retry-After": "10"})
        self._reply(200, {"received": len(events), "events": receipts})
        return None


class Listener:
    """Serves HTTP and (optionally) syslog in threads; ``stop`` stops accepting."""

    def __init__(self, daemon: Daemon, auth: Auth, listen: tuple[str, int], syslog: tuple[str, int] | None = None,
                 syslog_allow: tuple[str, ...] = (), max_body: int = 1 << 20, insecure: bool = False) -> None:
        require_auth(auth, listen, syslog, syslog_allow, insecure)
        self.daemon, self.auth, self.max_body = daemon, auth, max_body
        self.draining = False
        try:
            self.allow = tuple(ipaddress.ip_network(n, strict=False) for n in syslog_allow) or LOOPBACK
        except ValueError as exc:
            raise UsageError(f"--syslog-allow: {exc}") from exc
        try:
            self.http = _Server(listen, self)
        except OSError as exc:
            raise UsageError(f"cannot listen on {listen[0]}:{listen[1]}: {exc.strerror}") from exc
        self.udp: socket.socket | None = None
        if syslog is not None:
            family = socket.AF_INET6 if ":" in syslog[0] else socket.AF_INET
            self.udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                self.udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
                self.udp.bind(syslog)
            except OSError as exc:
                self.http.server_close()
                raise UsageError(f"cannot listen for syslog on {syslog[0]}:{syslog[1]}: {exc.strerror}") from exc
            self.udp.settimeout(0.2)
        self._threads: list[threading.Thread] = []

    @property
    def http_address(self) -> tuple[str, int]:
        host, port = self.http.server_address[:2]
        return str(host), int(port)

    @property
    def syslog_address(self) -> tuple[str, int] | None:
        return None if self.udp is None else tuple(self.udp.getsockname()[:2])

    def start(self) -> None:
        self._threads.append(threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.2},
                                              name="opsflow-http", daemon=True))
        if self.udp is not None:
            self._threads.append(threading.Thread(target=self._syslog, name="opsflow-syslog", daemon=True))
        for t in self._threads:
            t.start()

    def _syslog(self) -> None:
        assert self.udp is not None
        while not self.draining:
            try:
                packet, peer = self.udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                address = ipaddress.ip_address(peer[0])
            except ValueError:
                address = None
            if address is None or not any(address in net for net in self.allow):
                self.daemon.metrics.inc("opsflow_requests_rejected_total", {"reason": "syslog_source"})
                continue
            try:
                self.daemon.submit([intake.syslog(packet, str(peer[0]))])
            except OpsflowError as exc:
                log.error("syslog from %s not recorded: %s", peer[0], exc)
            except Exception:  # noqa: BLE001 - one bad packet never stops the listener
                log.exception("syslog from %s not recorded", peer[0])

    def stop(self) -> None:
        """Stop accepting: new connections are refused, the syslog socket is closed."""
        self.draining = True
        self.http.shutdown()
        self.http.server_close()
        for t in self._threads:
            t.join(5)
        if self.udp is not None:
            self.udp.close()
