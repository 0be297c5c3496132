"""The sender of benchmark 7 (events): open or closed loop POSTs over keep-alive connections, each timed."""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str  # "opsflow" or "baseline"
    host: str
    port: int
    headers: dict[str, str]
    path: str = "/hooks/event"


@dataclass
class Rec:
    target: str
    scheduled: float  # perf_counter when it was due
    sent: float
    acked: float
    status: int  # HTTP status; 0 when the request failed
    body: bytes = b""

    @property
    def latency(self) -> float:
        """Seconds from when the event was due to its acknowledgement (open loop: sender lag included)."""
        return self.acked - self.scheduled


Item = tuple[float, Target, bytes]  # (offset from the start in s, where to, body)


def send(count: int, make: Callable[[int], Item], connections: int, stop_after: float) -> list[Rec]:
    """Send `count` events (make(i) → offset, target, body) from `connections` threads, each with one
    keep-alive connection per target; no event starts later than `stop_after` s after the start."""
    out: list[Rec | None] = [None] * count
    nxt = itertools.count()
    t0 = time.perf_counter() + 0.05
    lock = threading.Lock()

    def worker() -> None:
        conns: dict[str, http.client.HTTPConnection] = {}
        try:
            while True:
                with lock:
                    i = next(nxt)
                if i >= count:
                    return
                offset, target, body = make(i)
                due = t0 + offset
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                if time.perf_counter() - t0 > stop_after:
                    return
                sent = time.perf_counter()
                status, data = 0, b""
                conn = conns.get(target.name)
                try:
                    if conn is None:
                        conn = conns[target.name] = http.client.HTTPConnection(target.host, target.port, timeout=30)
                    conn.request("POST", target.path, body, target.headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    status = resp.status
                except (OSError, http.client.HTTPException) as exc:
                    data = f"{type(exc).__name__}: {exc}".encode()
                    if conn is not None:
                        conn.close()
                    conns.pop(target.name, None)
                out[i] = Rec(target.name, due, sent, time.perf_counter(), status, data)
        finally:
            for c in conns.values():
                c.close()

    threads = [threading.Thread(target=worker, name=f"bench-sender-{k}", daemon=True) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(stop_after + 60)
    return [r for r in out if r is not None]
