"""The daemon's HTTP face on the ASGI app: POST /hooks/alertmanager and /hooks/event, GET /healthz and /metrics.

The same semantics as :mod:`opsflow.events.server`: a bearer token or an HMAC-SHA256 signature of the
body (``Auth.check``), one ``Content-Length`` (chunked bodies refused), a body limit, a JSON content
type, 503 while draining or when the store cannot record (the sender retries), 401 with
``WWW-Authenticate``; every refusal counted in ``opsflow_requests_rejected_total{reason}``.
``/healthz`` and ``/metrics`` are open: they carry counts and names, never event data.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from opsflow.errors import StoreError
from opsflow.events import intake
from opsflow.events.metrics import CONTENT_TYPE
from opsflow.events.server import _LENGTH, JSON_TYPES
from opsflow.server.errors import HEADERS

log = logging.getLogger("opsflow.daemon")
router = APIRouter(include_in_schema=False)


def _refuse(request: Request, code: int, reason: str, error: str, headers: dict[str, str] | None = None,
            close: bool = False) -> JSONResponse:
    request.app.state.ctx.core.metrics.inc("opsflow_requests_rejected_total", {"reason": reason})
    extra = {**(headers or {}), **({"Connection": "close"} if close else {})}
    return JSONResponse({"error": error}, code, headers={**HEADERS, **extra})


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


async def _body(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is over ``limit`` (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/hooks/{kind}")
async def hook(kind: str, request: Request) -> Response:
    ctx = request.app.state.ctx
    if kind not in ("alertmanager", "event"):
        return _refuse(request, 404, "not_found", f"no such hook /hooks/{kind[:60]}; POST /hooks/alertmanager or "
                       "/hooks/event", close=True)
    if ctx.draining:
        return _refuse(request, 503, "draining", "the daemon is shutting down", {"Retry-After": "5"}, close=True)
    lengths = request.headers.getlist("content-length")
    codings = request.headers.getlist("transfer-encoding")
    if codings:
        if ", ".join(codings).strip().lower() == "chunked" and not lengths:
            return _refuse(request, 411, "length_required", "chunked bodies are not supported: send a Content-Length",
                           close=True)
        return _refuse(request, 400, "malformed", "Transfer-Encoding is not supported", close=True)
    if not lengths:
        return _refuse(request, 411, "length_required", "a Content-Length header is required", close=True)
    if len(lengths) > 1 or not _LENGTH.fullmatch(lengths[0].strip(" \t")):
        return _refuse(request, 400, "malformed", "send one Content-Length of digits", close=True)
    length = int(lengths[0].strip(" \t"))
    if length > ctx.max_body:
        return _refuse(request, 413, "too_large", f"body of {length} bytes is over the limit of {ctx.max_body}",
                       close=True)
    body = await _body(request, ctx.max_body)
    if body is None or len(body) != length:
        return _refuse(request, 400, "malformed", "the body does not match its Content-Length", close=True)
    if not ctx.auth.check(request.headers, body):
        return _refuse(request, 401, "unauthorized", "missing or wrong bearer token or signature",
                       {"WWW-Authenticate": 'Bearer realm="opsflow"'})
    ctype = (request.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if ctype not in JSON_TYPES:
        return _refuse(request, 415, "unsupported_media_type",
                       f"Content-Type {ctype[:60] or 'none'!r} is not one of {', '.join(JSON_TYPES)}")
    try:
        events = intake.alertmanager(body) if kind == "alertmanager" else intake.generic(body, ctype)
    except intake.PayloadError as exc:
        return _refuse(request, 400, "malformed", str(exc))
    peer = request.client.host if request.client else ""
    for e in events:
        e.peer = peer
    try:  # blocks until the events and decisions are durable
        receipts: list[dict[str, Any]] = await run_in_threadpool(ctx.core.submit, events)
    except StoreError as exc:  # not recorded: the sender must retry (Alertmanager does on 5xx)
        log.error("store: %s", exc)
        return _refuse(request, 503, "store", "the store cannot record events right now", {"Retry-After": "10"})
    return JSONResponse({"received": len(events), "events": receipts}, headers=HEADERS)
