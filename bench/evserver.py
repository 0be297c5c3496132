"""The floor of event intake: a minimal stdlib HTTP server that reads each POST and acknowledges it.

``python -m bench.evserver [--listen 127.0.0.1:0]`` prints ``listening on http://HOST:PORT``
on stdout and serves until SIGTERM. It is built like opsflow's listener (ThreadingHTTPServer,
HTTP/1.1 keep-alive, Nagle off, Content-Length bodies) but records nothing and applies no
rule: it replies ``200 {"received": 1}`` to every POST. The daemon's time over this is its
authentication, parsing, rules, store writes and run scheduling.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # as opsflow's listener


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"received": 1}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.evserver")
    p.add_argument("--listen", default="127.0.0.1:0")
    a = p.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    server = _Server((host, int(port)), _Handler)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    print(f"listening on http://{server.server_address[0]}:{server.server_address[1]}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
