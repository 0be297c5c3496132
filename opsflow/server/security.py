"""Who is asking: a bearer API token or a console session cookie (+ CSRF header on unsafe methods).

Every API route depends on :func:`require` with its permission (``opsflow.auth.PERMISSIONS``):
no or a wrong credential → 401 (with ``WWW-Authenticate``), a role or scope too low → 403, and the
route's work is never started. With ``--insecure`` (loopback only) a request without credentials acts
as the local administrator ``local``; a credential given is still checked.

The web console (``opsflow.server.console``) reads the principal the same way:
``principal: Principal = Depends(require("read"))``; it sets the session cookie :data:`SESSION_COOKIE`
and sends the session's CSRF token in the :data:`CSRF_HEADER` header (or a ``csrf`` form field it checks
itself) with every POST.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from opsflow.auth import Principal, allowed, group_refusal
from opsflow.server.errors import ApiError

SESSION_COOKIE = "opsflow_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
LOCAL = Principal(name="local", role="admin", via="local")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="opsflow"'}


def unauthorized(message: str = "missing or wrong credentials: send Authorization: Bearer <token>") -> ApiError:
    return ApiError(401, "unauthorized", message, _CHALLENGE)


def _authenticate(store: Any, request: Request, insecure: bool) -> Principal:
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise unauthorized()
        check = getattr(store, "authenticate_token", None)
        found = check(value.strip()) if check is not None else None
        if not isinstance(found, Principal):
            raise unauthorized()
        return found
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        get = getattr(store, "get_session", None)
        session = get(cookie) if get is not None else None
        if session is None:
            raise unauthorized("the console session ended: log in again")
        if request.method not in SAFE_METHODS and not session.csrf_ok(request.headers.get(CSRF_HEADER)):
            raise ApiError(403, "csrf", f"missing or wrong {CSRF_HEADER} header")
        principal: Principal = session.principal
        return principal
    if insecure:
        return LOCAL
    raise unauthorized()


async def principal_of(request: Request) -> Principal:
    """The request's principal (cached on the request); 401 without a valid credential."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    ctx = request.app.state.ctx
    found = await run_in_threadpool(_authenticate, ctx.store, request, ctx.insecure)
    request.state.principal = found
    return found


def require(permission: str) -> Callable[[Request], Any]:
    """A dependency: the principal, when it has ``permission`` (at all; runbook scopes are checked by the
    route once it knows the runbook); 401 / 403 otherwise."""
    allowed(LOCAL, permission)  # an unknown permission fails at import, not at the first request

    async def dependency(request: Request) -> Principal:
        principal = await principal_of(request)
        if not allowed(principal, permission):
            raise ApiError(403, "forbidden", f"{principal.name} ({principal.role}) may not {permission}")
        return principal

    return dependency


def check_scope(principal: Principal, permission: str, runbook: str | None) -> None:
    """403 unless the principal may ``permission`` on that runbook (its scope)."""
    if not allowed(principal, permission, runbook):
        raise ApiError(403, "forbidden", f"{principal.name} ({principal.role}) may not {permission} "
                       f"runbook {runbook}")


def check_groups(principal: Principal, permission: str, hosts: dict[str, tuple[str, ...]]) -> None:
    """403 unless every host (name → its inventory groups) lies in the principal's groups (when it has any)."""
    refusal = group_refusal(principal, permission, hosts)
    if refusal:
        raise ApiError(403, "forbidden", refusal)


def via(principal: Principal) -> str:
    """How the principal acts, for the audit log: ``via token <id>``, ``via session``, ``via --insecure``."""
    if principal.via == "token":
        return f"via token {principal.token or '?'}"
    return "via --insecure" if principal.via == "local" else f"via {principal.via}"
