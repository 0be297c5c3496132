"""The floor of event intake: a minimal HTTP server that reads each POST and acknowledges it.

``python -m bench.evserver [--listen 127.0.0.1:0] [--stdlib]`` prints ``listening on http://HOST:PORT``
on stdout and serves until SIGTERM. It records nothing and applies no rule: it replies
``200 {"received": 1}`` to every POST. By default it is a bare ASGI app on uvicorn, with the same
event loop and HTTP parser as ``opsflow serve`` (uvloop and httptools when installed), one process;
``--stdlib`` is the stdlib ThreadingHTTPServer (HTTP/1.1 keep-alive, Nagle off) the old daemon was
built on. opsflow's time over this is its authentication, parsing, rules, store writes and runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_OK = b'{"received": 1}'


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
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_OK)))
        self.end_headers()
        self.wfile.write(_OK)

    def do_GET(self) -> None:
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def _asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the whole body, answer 200: nothing else."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_OK)).encode())]})
    await send({"type": "http.response.body", "body": _OK})


def _serve_asgi(host: str, port: int) -> int:
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    print(f"listening on http://{sock.getsockname()[0]}:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(_asgi, log_config=None, access_log=False, lifespan="off", server_header=False)
    uvicorn.Server(config).run(sockets=[sock])  # SIGTERM/SIGINT: uvicorn's own handlers stop it
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.evserver")
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--stdlib", action="store_true", help="the stdlib ThreadingHTTPServer instead of uvicorn")
    a = p.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    if not a.stdlib:
        return _serve_asgi(host, int(port))
    server = _Server((host, int(port)), _Handler)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    print(f"listening on http://{host}:{server.server_address[1]}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
