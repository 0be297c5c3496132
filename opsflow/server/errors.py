"""Errors as JSON ``{error, message}`` with their HTTP status; never a stack trace in a response."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opsflow.errors import FourEyesRefused, OpsflowError, StoreError, UsageError, WindowClosed

log = logging.getLogger("opsflow.server")
_NAMES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "too_large", 415: "unsupported_media_type", 422: "invalid", 503: "unavailable"}
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class ApiError(OpsflowError):
    """An answer other than success: status, a short error code, a message for people."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.error, self.message, self.headers = status, error, message, headers or {}


def reply(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status, headers={**HEADERS, **(headers or {})})


def _validation_text(exc: RequestValidationError) -> str:
    """Where and what, never the value sent (it may be a secret)."""
    parts = []
    for e in exc.errors()[:10]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return reply(exc.status, exc.error, exc.message, exc.headers)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return reply(exc.status_code, _NAMES.get(exc.status_code, "error"), str(exc.detail),
                     dict(exc.headers or {}))

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return reply(422, "invalid", _validation_text(exc))

    async def opsflow_error(_request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, FourEyesRefused):
            return reply(403, "four_eyes", str(exc))
        if isinstance(exc, WindowClosed):
            return reply(409, "window_closed", str(exc))
        if isinstance(exc, UsageError):
            return reply(400, "bad_request", str(exc))
        if isinstance(exc, StoreError):
            log.error("store: %s", exc)
            return reply(503, "store", "the store cannot be read or written right now", {"Retry-After": "10"})
        log.error("%s: %s", type(exc).__name__, exc)
        return reply(500, "internal", "internal error; see the service's log")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(OpsflowError, opsflow_error)
    app.add_middleware(CatchAll)


class CatchAll:
    """Any other exception: logged with its traceback, answered 500 ``{"error": "internal"}`` (never the trace)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:  # noqa: BLE001 - the one place an unexpected error becomes a 500
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                return  # a stream already under way just ends
            response = reply(500, "internal", "internal error; see the service's log")
            await response(scope, receive, send)

