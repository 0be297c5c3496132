"""The daemon's HTTP face on the ASGI app: POST /hooks/alertmanager and /hooks/event, GET /healthz and /metrics.

The same semantics as :mod:`opsflow.events.server`: a bearer token or an HMAC-SHA256 signature of the
body (``Auth.check``), one ``Content-Length`` (chunked bodies refused), a body limit, a JSON content
type, 503 while draining or when the store cannot record (the sender retries), 401 with
``WWW-Authenticate``; every refusal counted in ``opsflow_requests_rejected_total{reason}``.
``/healthz`` and ``/metrics`` are open: they carry counts and names, never event data.

A hook is answered 200 once its events are on disk (``Daemon.record``, a group commit awaited on the
event loop: no thread per request); rules are evaluated afterwards, off the request path. ``opsflow
serve`` puts :class:`Intake` in front of the FastAPI app, so a POST to a hook goes straight to
:func:`answer` without the app's routing and middleware (its cost per request was the larger part
of intake's); the app's own route, which calls the same :func:`answer`, serves it otherwise.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from opsflow.errors import StoreError
from opsflow.events import intake
from opsflow.events.metrics import CONTENT_TYPE
from opsflow.events.server import _LENGTH, JSON_TYPES
from opsflow.server.errors import HEADERS

log = logging.getLogger("opsflow.daemon")
router = APIRouter(include_in_schema=False)
Answer = tuple[int, bytes, dict[str, str]]
_BASE = [(k.lower().encode(), v.encode()) for k, v in {**HEADERS, "Content-Type": "application/json"}.items()]


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    ctx = request.app.state.ctx
    ok, info = await run_in_threadpool(ctx.core.health)
    if ok and ctx.draining:
        ok, info = False, {**info, "status": "draining"}
    info["api_runs"] = len(ctx.runs.running())
    return JSONResponse(info, 200 if ok else 503, headers=HEADERS)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(request.app.state.ctx.core.metrics.exposition)
    return Response(body, 200, headers=HEADERS, media_type=CONTENT_TYPE)


@router.post("/hooks/{kind}")
async def hook(kind: str, request: Request) -> Response:
    status, body, headers = await answer(request.app.state.ctx, request.scope, request.receive)
    return Response(body, status, headers={**HEADERS, **headers}, media_type="application/json")


class Intake:
    """ASGI: ``POST /hooks/…`` answered by :func:`answer` directly; every other request goes to ``app``."""

    def __init__(self, app: ASGIApp, ctx: Any) -> None:
        self.app, self.ctx = app, ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/hooks/"):
            await self.app(scope, receive, send)
            return
        try:
            status, body, headers = await answer(self.ctx, scope, receive)
        except Exception:  # noqa: BLE001 - as the app's CatchAll: logged, a 500 without the trace
            log.exception("POST %s failed", scope["path"])
            status, body, headers = 500, b'{"error": "internal", "message": "internal error; see the log"}', {}
        await send({"type": "http.response.start", "status": status,
                    "headers": [*_BASE, (b"content-length", str(len(body)).encode()),
                                *((k.lower().encode(), v.encode()) for k, v in headers.items())]})
        await send({"type": "http.response.body", "body": body})


def _refuse(ctx: Any, code: int, reason: str, error: str, headers: dict[str, str] | None = None,
            close: bool = False) -> Answer:
    ctx.core.metrics.inc("opsflow_requests_rejected_total", {"reason": reason})
    return code, json.dumps({"error": error}).encode(), {**(headers or {}), **({"Connection": "close"} if close else {})}


async def _body(receive: Receive, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` or the client went away (read no further)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def answer(ctx: Any, scope: Scope, receive: Receive) -> Answer:
    """A hook request → (status, JSON body, headers): recorded (200) or refused with the reason."""
    kind = scope["path"].removeprefix("/hooks/")
    if kind not in ("alertmanager", "event"):
        return _refuse(ctx, 404, "not_found", f"no such hook /hooks/{kind[:60]}; POST /hooks/alertmanager or "
                       "/hooks/event", close=True)
    if ctx.draining:
        return _refuse(ctx, 503, "draining", "the daemon is shutting down", {"Retry-After": "5"}, close=True)
    headers = Headers(scope=scope)
    lengths = headers.getlist("content-length")
    codings = headers.getlist("transfer-encoding")
    if codings:
        if ", ".join(codings).strip().lower() == "chunked" and not lengths:
            return _refuse(ctx, 411, "length_required", "chunked bodies are not supported: send a Content-Length",
                           close=True)
        return _refuse(ctx, 400, "malformed", "Transfer-Encoding is not supported", close=True)
    if not lengths:
        return _refuse(ctx, 411, "length_required", "a Content-Length header is required", close=True)
    if len(lengths) > 1 or not _LENGTH.fullmatch(lengths[0].strip(" \t")):
        return _refuse(ctx, 400, "malformed", "send one Content-Length of digits", close=True)
    length = int(lengths[0].strip(" \t"))
    if length > ctx.max_body:
        return _refuse(ctx, 413, "too_large", f"body of {length} bytes is over the limit of {ctx.max_body}",
                       close=True)
    body = await _body(receive, ctx.max_body)
    if body is None or len(body) != length:
        return _refuse(ctx, 400, "malformed", "the body does not match its Content-Length", close=True)
    if not ctx.auth.check(headers, body):
        return _refuse(ctx, 401, "unauthorized", "missing or wrong bearer token or signature",
                       {"WWW-Authenticate": 'Bearer realm="opsflow"'})
    ctype = (headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if ctype not in JSON_TYPES:
        return _refuse(ctx, 415, "unsupported_media_type",
                       f"Content-Type {ctype[:60] or 'none'!r} is not one of {', '.join(JSON_TYPES)}")
    try:
        events = intake.alertmanager(body) if kind == "alertmanager" else intake.generic(body, ctype)
    except intake.PayloadError as exc:
        return _refuse(ctx, 400, "malformed", str(exc))
    client = scope.get("client")
    peer = client[0] if client else ""
    for e in events:
        e.peer = peer
    try:  # awaits the group commit that puts the events on disk; rules are evaluated after it, off this path
        await ctx.core.record(events).wait_async()
    except StoreError as exc:  # not recorded: the sender must retry (Alertmanager does on 5xx)
        log.error("store: %s", exc)
        return _refuse(ctx, 503, "store", "the store cannot record events right now", {"Retry-After": "10"})
    receipts = ",".join(f'{{"id":"{e.id}","outcome":"recorded"}}' for e in events)  # ids: ev-<time>-<hex>
    return 200, f'{{"received":{len(events)},"events":[{receipts}]}}'.encode(), {}
