"""The console's plumbing: the store, the signed-in principal, CSRF, forms and templates.

One accessor reads the service's state (:func:`store_of`); everything else asks it. A page without a
valid ``opsflow_session`` cookie redirects to ``/login``; a state-changing request must carry the
session's CSRF token, in a hidden ``csrf`` form field or an ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import functools
import hmac
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse

from opsflow.auth import Principal
from opsflow.textsafe import for_xml

if TYPE_CHECKING:
    import jinja2

COOKIE = "opsflow_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"
HERE = Path(__file__).parent
MAX_FORM = 16 * 1024  # bytes of a form body (login, logout): more is refused


def store_of(request: Request) -> Any:
    """The service's store (``app.state.ctx.store``, opsflow.server.app.Context): the one place that knows."""
    ctx = getattr(request.app.state, "ctx", None)
    store = getattr(ctx, "store", None)
    if store is None:
        raise RuntimeError("the console needs app.state.ctx.store (opsflow.server.app.Context)")
    return store


@dataclass(frozen=True)
class Viewer:
    """Who is looking at a page, and the CSRF token of their session."""

    principal: Principal
    csrf: str
    session: str

    @property
    def name(self) -> str:
        return self.principal.name


def viewer_of(request: Request) -> Viewer | None:
    """The signed-in principal of the request's session cookie; None without a live session."""
    sid = request.cookies.get(COOKIE)
    if not sid or len(sid) > 512:
        return None
    session = store_of(request).get_session(sid)
    if session is None:
        return None
    return Viewer(session.principal, session.csrf, sid)


def csrf_ok(viewer: Viewer, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(viewer.csrf.encode(), str(token).encode())


def to_login(request: Request) -> RedirectResponse:
    """303 to the login page, coming back to this page (path and query) after it."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def local_target(value: str | None) -> str:
    """Where to go after logging in: a path of this site only (never ``//elsewhere`` or a scheme)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/runs"
    return value


async def form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as {field: first value} (no multipart: none is needed)."""
    body = await request.body()
    if len(body) > MAX_FORM:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {k: v[0] for k, v in parsed.items()}


def secure(request: Request) -> bool:
    """Whether the browser reached us over TLS (then the cookie is Secure)."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "") == "https"


def outside_groups(request: Request, principal: Principal, run: dict[str, Any]) -> str | None:
    """The run's hosts outside the principal's inventory groups (the service's inventory), as the API says it."""
    if not principal.groups:
        return None
    from opsflow.auth import hosts_outside
    from opsflow.errors import OpsflowError
    from opsflow.server.runs import run_hosts

    try:
        hosts = run_hosts(request.app.state.ctx, principal, run)
    except (AttributeError, OpsflowError):  # no inventory, or one that does not load: no host is known in it
        hosts = dict.fromkeys(run.get("hosts") or {}, ())
    outside = hosts_outside(principal, hosts)
    return ", ".join(outside) if outside else None


# ---- templates --------------------------------------------------------------------------------

def when(ts: Any) -> str:
    """A store timestamp as ``2025-03-03 06:00:12 UTC``; a dash when there is none."""
    if not isinstance(ts, int | float) or not math.isfinite(ts):
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ts: Any) -> str:
    if not isinstance(ts, int | float) or not math.isfinite(ts):
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def ago(ts: Any, now: float | None = None) -> str:
    if not isinstance(ts, int | float):
        return ""
    delta = (time.time() if now is None else now) - ts
    future = delta < 0
    delta = abs(delta)
    text = (f"{int(delta)}s" if delta < 90 else f"{int(delta // 60)}m" if delta < 5400 else
            f"{int(delta // 3600)}h" if delta < 172800 else f"{int(delta // 86400)}d")
    return f"in {text}" if future else f"{text} ago"


def duration(seconds: Any) -> str:
    """``0.42s``, ``12.3s``, ``4m05s``, ``2h01m``; a dash when unknown."""
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        return "—"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _finalize(value: Any) -> Any:
    """Every printed value: None as a dash, control characters made visible (escaping stays Jinja's)."""
    from markupsafe import Markup

    if value is None:
        return "—"
    if isinstance(value, Markup):
        return value
    return for_xml(value) if isinstance(value, str) else value


@functools.cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True,
                             finalize=_finalize, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(when=when, iso=iso, ago=ago, duration=duration)
    return env


def render(request: Request, template: str, viewer: Viewer | None, status_code: int = 200,
           **context: Any) -> HTMLResponse:
    page = environment().get_template(template).render(
        request_path=request.url.path, viewer=viewer, csrf=viewer.csrf if viewer else "", **context)
    response = HTMLResponse(page, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'")
    return response


__all__ = ["COOKIE", "CSRF_FIELD", "CSRF_HEADER", "Viewer", "csrf_ok", "environment", "form", "local_target",
           "outside_groups", "render", "secure", "store_of", "to_login", "viewer_of"]
