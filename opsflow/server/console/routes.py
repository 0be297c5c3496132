"""The console's routes: login and logout, the runs list, a run (live), and the static files.

``router`` is what the service mounts at ``/``; the other pages (hosts, schedule, service levels,
events, approvals) are in :mod:`.pages` and included here. Every page redirects to ``/login``
without a session; buttons post to the service's API (``/api/v1``) from ``static/console.js`` with
the session's CSRF token in ``X-CSRF-Token``.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from opsflow.server.console import pages, views
from opsflow.server.console.web import (
    COOKIE,
    CSRF_FIELD,
    HERE,
    Viewer,
    csrf_ok,
    form,
    local_target,
    outside_groups,
    render,
    secure,
    store_of,
    to_login,
    viewer_of,
)

router = APIRouter(include_in_schema=False)
router.include_router(pages.router)  # first: its /runs/new before /runs/{run_id}
STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
SINCE = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
RUN_FILTERS = ("runbook", "status", "trigger", "host", "started_by")
PAGE = 50


@router.get("/console/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse("/runs" if viewer_of(request) else "/login", status_code=303)


# ---- login and logout -----------------------------------------------------------------------

@router.get("/login")
def login_page(request: Request, next: str = "/runs") -> Response:
    if viewer_of(request) is not None:
        return RedirectResponse(local_target(next), status_code=303)
    return render(request, "login.html", None, next=local_target(next), error=None, username="")


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await form(request)
    username, password = fields.get("username", "").strip(), fields.get("password", "")
    target = local_target(fields.get("next"))
    store = store_of(request)
    error: str | None = None
    principal = None
    if not username or not password:
        error = "Enter your user name and password."
    else:
        from opsflow.auth.store import TooManyAttempts

        try:
            principal = store.check_password(username, password, request.client.host if request.client else "")
        except TooManyAttempts:
            error = "Too many failed logins: wait a few minutes, then try again."
        else:
            if principal is None:
                error = "Login failed: the user name or the password is wrong."
    if principal is None:
        return render(request, "login.html", None, status_code=401 if error and "wrong" in error else 429
                      if error and "Too many" in error else 400, next=target, error=error, username=username)
    cookie, _csrf = store.create_session(principal.name)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", secure=secure(request), path="/")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return to_login(request)
    fields = await form(request)
    if not csrf_ok(viewer, fields.get(CSRF_FIELD) or request.headers.get("X-CSRF-Token")):
        return render(request, "error.html", viewer, status_code=403, title="Refused",
                      message="This request did not carry the page's CSRF token: reload the page and try again.")
    store_of(request).delete_session(viewer.session)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure(request))
    return response


# ---- runs ------------------------------------------------------------------------------------

@router.get("/runs")
def runs(request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return to_login(request)
    q = request.query_params
    chosen = {k: q.get(k, "").strip()[:200] for k in RUN_FILTERS}
    since_key = q.get("since", "")
    since = time.time() - SINCE[since_key] if since_key in SINCE else None
    if chosen["status"] and chosen["status"] not in views.STATUS:
        chosen["status"] = ""
    from opsflow.errors import UsageError

    try:
        rows, cursor = store_of(request).query_runs(
            **{k: v or None for k, v in chosen.items()}, since=since, limit=PAGE, cursor=q.get("cursor") or None)
    except UsageError:
        rows, cursor = [], None
    kept = {k: v for k, v in {**chosen, "since": since_key}.items() if v}
    from urllib.parse import urlencode

    from opsflow.auth import allowed

    return render(request, "runs.html", viewer, runs=rows, filters=chosen, since=since_key, sinces=list(SINCE),
                  can_start=allowed(viewer.principal, "run"),
                  statuses=["running", "waiting", "succeeded", "partial", "failed", "canceled", "abandoned",
                            "crashed"],
                  triggers=["cli", "api", "event", "schedule"], status=views.status,
                  next_url=f"/runs?{urlencode({**kept, 'cursor': cursor})}" if cursor else None,
                  first_url=f"/runs?{urlencode(kept)}" if q.get("cursor") else None, filtered=bool(kept))


def _planned_steps(run: dict[str, Any]) -> list[str]:
    """The runbook's step names, when its file is still there and loads; else none (the grid shows what ran)."""
    path = run.get("runbook_path")
    if not path:
        return []
    try:
        from opsflow.runbook.validate import load_runbook_cached

        return [s.name for s in load_runbook_cached(path).runbook.steps]
    except Exception:  # noqa: BLE001 - a changed or removed runbook file: show what was recorded
        return []


def _run_context(request: Request, viewer: Viewer, run_id: str) -> dict[str, Any] | None:
    store = store_of(request)
    run = store.get_run(run_id)
    if run is None:
        return None
    results = store.results(run["id"])
    approvals = store.approvals_of(run["id"])
    grid = views.grid(run, results, _planned_steps(run), approvals)
    pending = next((a for a in approvals if a.get("state") == "pending"), None)
    p = viewer.principal
    live = run["status"] not in views.FINISHED
    failed = views.failed_hosts(run)
    from opsflow.redact import MASK

    secret_params = any(v == MASK for v in (run.get("params") or {}).values())
    outside = outside_groups(request, p, run)
    actions = {
        "decide": views.decision_action(p, run, pending, outside),
        "cancel": views.operator_action(p, run, "cancel", live, "the run has ended", outside),
        "resume": views.operator_action(p, run, "resume", not live and run["status"] != "succeeded",
                                        "only an ended run that did not succeed can be resumed", outside),
        "rerun": views.operator_action(p, run, "run", not live and bool(failed) and not secret_params,
                                       "secret parameters are not kept: rerun it from the CLI" if secret_params
                                       else "no failed host to rerun", outside),
    }
    return {"run": run, "grid": grid, "approvals": approvals, "pending": pending, "actions": actions,
            "failed": failed, "live": live, "status": views.status}


@router.get("/runs/{run_id}")
def run_page(request: Request, run_id: str) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return to_login(request)
    ctx = _run_context(request, viewer, run_id)
    if ctx is None:
        return render(request, "error.html", viewer, status_code=404, title="No such run",
                      message=f"There is no run {run_id[:64]} in the store.")
    store = store_of(request)
    run = ctx["run"]
    event = store.event_for_run(run["id"])
    reviews = [r for r in store.list_reviews(runbook=run["runbook"], limit=200) if run["id"] in (r.get("runs") or [])]
    selected = _selected_cell(request, ctx)
    return render(request, "run.html", viewer, event=_event_brief(event), reviews=reviews, selected=selected,
                  resumes=store.resumes_of(run["id"]), **ctx)


def _selected_cell(request: Request, ctx: dict[str, Any]) -> dict[str, Any] | None:
    q = request.query_params
    host, step, phase = q.get("host"), q.get("step"), q.get("phase", "main")
    if not host or not step or not step.isdigit():
        return None
    cell = ctx["grid"].cell(host, int(step), phase)
    name = next((s[1] for s in ctx["grid"].steps if s[0] == int(step) and s[2] == phase), step)
    return {"host": host, "step": name, "phase": phase, "cell": cell}


def _event_brief(event: dict[str, Any] | None) -> dict[str, Any] | None:
    """The event that started a run, without its payload: what came in, from where, and which rule acted."""
    if event is None:
        return None
    keep = ("id", "received_at", "source", "name", "status", "host", "severity", "rules", "outcome")
    brief = {k: event.get(k) for k in keep}
    action = event.get("action") or {}
    brief["rule"] = action.get("rule")
    brief["action_outcome"] = action.get("outcome")
    return brief


def _live_run(request: Request, run_id: str) -> Response | tuple[Any, dict[str, Any]]:
    """The viewer and the run's page context, or the plain-text answer of a fragment request (401/404)."""
    viewer = viewer_of(request)
    if viewer is None:
        return Response("session ended", status_code=401, media_type="text/plain")
    ctx = _run_context(request, viewer, run_id)
    if ctx is None:
        return Response("no such run", status_code=404, media_type="text/plain")
    return viewer, ctx


@router.get("/runs/{run_id}/live")
def run_live(request: Request, run_id: str) -> Response:
    """The parts of a run's page that change while it runs (header, actions, grid, approvals), as HTML."""
    found = _live_run(request, run_id)
    if isinstance(found, Response):
        return found
    viewer, ctx = found
    return render(request, "run_live.html", viewer, **ctx)


@router.get("/runs/{run_id}/output")
def cell_output(request: Request, run_id: str) -> Response:
    """One cell's output (stdout/stderr as the store keeps them: already redacted), as an HTML fragment."""
    found = _live_run(request, run_id)
    if isinstance(found, Response):
        return found
    viewer, ctx = found
    selected = _selected_cell(request, ctx)
    return render(request, "output.html", viewer, run=ctx["run"], selected=selected, status=views.status)


__all__ = ["router"]
