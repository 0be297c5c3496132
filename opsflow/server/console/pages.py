"""The console's other pages: a host, the schedule, service levels, events, approvals waiting for me."""

from __future__ import annotations

import time
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from opsflow.auth import allowed, four_eyes_refusal
from opsflow.server.console import views
from opsflow.server.console.web import outside_groups, render, store_of, to_login, viewer_of

router = APIRouter(include_in_schema=False)
PERIODS = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "90d": 90 * 86400}
EVENT_SINCE = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


@router.get("/hosts/{name}")
def host_page(request: Request, name: str) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return to_login(request)
    from opsflow.errors import UsageError
    from opsflow.reports.backups import backup_status

    store = store_of(request)
    cursor = request.query_params.get("cursor") or None
    try:
        runs, next_cursor = store.query_runs(host=name, limit=50, cursor=cursor)
    except UsageError:
        runs, next_cursor = [], None
    backups = [b for b in backup_status(store) if b["name"] == name]
    return render(request, "host.html", viewer, name=name, runs=runs, backup=backups[0] if backups else None,
                  status=views.status,
                  next_url=f"/hosts/{name}?{urlencode({'cursor': next_cursor})}" if next_cursor else None)


def _schedules(request: Request) -> Any:
    """The service's schedule set (its scheduler's), else the configured schedules directory's; None without."""
    scheduler = getattr(getattr(request.app.state, "ctx", None), "scheduler", None)
    if scheduler is not None and getattr(scheduler, "schedules", None) is not None:
        return scheduler.schedules
    from opsflow.schedule.loader import load_schedules
    from opsflow.settings import current

    directory = Path(current().schedules)
    if not directory.is_dir():
        return None
    return load_schedules(directory, check_runbooks=False)


def _zone(name: str) -> tzinfo:
    from opsflow.schedule.tz import UnknownZone, zone

    try:
        return zone(name) if name else UTC
    except UnknownZone:
        return UTC


@router.get("/schedule")
def schedule_page(request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return to_login(request)
    from opsflow.errors import OpsflowError
    from opsflow.schedule.forecast import forecast

    q = request.query_params
    z = _zone(q.get("tz", ""))
    days = min(max(int(q.get("days", "14")) if q.get("days", "").isdigit() else 14, 1), 60)
    error = None
    try:
        sset = _schedules(request)
    except OpsflowError as exc:
        sset, error = None, str(exc)
    now = datetime.now(UTC)
    calendar: list[views.Day] = []
    entries: list[dict[str, Any]] = []
    if sset is not None:
        fc = forecast(sset, now, days)
        fires = store_of(request).fires(since=now.timestamp() - 7 * 86400, limit=5000)
        calendar = views.calendar_days(fc, z, fires, past_days=7)
        entries = [{"name": n, "runbook": e.runbook, "trigger": e.trigger.describe(), "enabled": e.spec.enabled,
                    "calendars": [c.name for c in e.calendars]} for n, e in sorted(sset.entries.items())]
    return render(request, "schedule.html", viewer, days=calendar, entries=entries, zone=str(z), error=error,
                  today=now.astimezone(z).date(), has_schedules=sset is not None, status=views.status, span=days)


def _period(request: Request) -> tuple[str, float, float]:
    key = request.query_params.get("period", "7d")
    key = key if key in PERIODS else "7d"
    until = time.time()
    return key, until - PERIODS[key], until


@router.get("/slo")
def slo_page(request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return to_login(request)
    key, _since, _until = _period(request)
    return render(request, "slo.html", viewer, period=key, periods=list(PERIODS))


@router.get("/slo/report")
def slo_report(request: Request) -> Response:
    """The KPI report of opsflow.reports (built and rendered by it), for the service-levels page's frame."""
    viewer = viewer_of(request)
    if viewer is None:
        return Response("session ended", status_code=401, media_type="text/plain")
    from opsflow.errors import OpsflowError
    from opsflow.reports.html import render_html
    from opsflow.reports.kpi import build_report

    _key, since, until = _period(request)
    try:
        page = render_html(build_report(store_of(request), since, until))
        code = 200
    except OpsflowError as exc:
        from markupsafe import escape

        page, code = f"<!DOCTYPE html><title>report</title><p>The report cannot be built: {escape(str(exc))}</p>", 500
    response = HTMLResponse(page, status_code=code)
    response.headers["Content-Security-Policy"] = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                                   "frame-ancestors 'self'")
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/events")
def events_page(request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return to_login(request)
    from opsflow.errors import UsageError

    q = request.query_params
    chosen = {k: q.get(k, "").strip()[:200] for k in ("source", "host", "rule", "outcome")}
    since_key = q.get("since", "")
    since = time.time() - EVENT_SINCE[since_key] if since_key in EVENT_SINCE else None
    try:
        events, cursor = store_of(request).query_events(**{k: v or None for k, v in chosen.items()}, since=since,
                                                         limit=50, cursor=q.get("cursor") or None)
    except UsageError:
        events, cursor = [], None
    kept = {k: v for k, v in {**chosen, "since": since_key}.items() if v}
    return render(request, "events.html", viewer, events=events, filters=chosen, since=since_key,
                  sinces=list(EVENT_SINCE), status=views.status,
                  next_url=f"/events?{urlencode({**kept, 'cursor': cursor})}" if cursor else None)


def _runbooks(request: Request, principal: Any) -> list[dict[str, Any]]:
    """The runbooks of the service's runbooks directory this principal may start: name, description, targets,
    and their params (what the form shows as a hint). A file that does not load is left out."""
    from opsflow.runbook.validate import find_runbooks, load_runbook_cached

    directory = getattr(getattr(request.app.state, "ctx", None), "runbooks", None)
    if not directory or not Path(directory).is_dir():
        return []
    out: dict[str, dict[str, Any]] = {}
    for path in find_runbooks([str(directory)]):
        try:
            rb = load_runbook_cached(path).runbook
        except Exception:  # noqa: BLE001 - a runbook that does not load cannot be started either
            continue
        if rb.name in out or not allowed(principal, "run", rb.name):
            continue
        out[rb.name] = {"name": rb.name, "description": rb.description, "targets": rb.targets,
                        "params": views.param_hints(rb.params)}
    return sorted(out.values(), key=lambda r: r["name"])


@router.get("/runs/new")
def start_page(request: Request) -> Response:
    """The form that starts a run: it posts to the API (POST /api/v1/runs), as the rerun button does."""
    viewer = viewer_of(request)
    if viewer is None:
        return to_login(request)
    p = viewer.principal
    if not allowed(p, "run"):
        return render(request, "error.html", viewer, status_code=403, title="Not allowed",
                      message=f"Starting a run needs the operator role (you are {p.role}).")
    q = request.query_params
    return render(request, "start.html", viewer, runbooks=_runbooks(request, p), chosen=q.get("runbook", "")[:200],
                  limit=q.get("limit", "")[:500])


@router.get("/approvals")
def approvals_page(request: Request) -> Response:
    viewer = viewer_of(request)
    if viewer is None:
        return to_login(request)
    p = viewer.principal
    mine: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for a in store_of(request).pending_approvals():
        run = a["run"]
        required = a.get("four_eyes")
        why = four_eyes_refusal(p.name, run.get("started_by"), required=required is None or bool(required))
        if why is None and not allowed(p, "approve", run.get("runbook")):
            why = f"approving needs the approver role for runbook {run.get('runbook')} (you are {p.role})"
        outside = None if why else outside_groups(request, p, run)
        if outside:
            why = f"approving needs the run's hosts in your inventory groups: {outside}"
        (others if why else mine).append({**a, "why": why})
    return render(request, "approvals.html", viewer, mine=mine, others=others, now=time.time())


__all__ = ["router"]
