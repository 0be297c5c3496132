"""/api/v1 reads besides runs: events, the schedule and its log, KPI reports, service levels, reviews, audit."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from opsflow.auth import Principal
from opsflow.server.errors import ApiError
from opsflow.server.security import require

router = APIRouter(prefix="/api/v1")
Reader = Annotated[Principal, Depends(require("read"))]
Auditor = Annotated[Principal, Depends(require("read_audit"))]


def _ts(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


@router.get("/events", tags=["events"], summary="Events received, newest first, with what became of each")
async def events(request: Request, _p: Reader, since: float | None = None, until: float | None = None,
                 source: str | None = None, host: str | None = None, rule: str | None = None,
                 outcome: str | None = None, limit: int = Query(100, ge=1, le=1000),
                 cursor: str | None = None) -> dict[str, Any]:
    store = request.app.state.ctx.store
    rows, nxt = await run_in_threadpool(lambda: store.query_events(
        since=since, until=until, source=source, host=host, rule=rule, outcome=outcome, limit=limit, cursor=cursor))
    return {"events": rows, "next_cursor": nxt}


def _schedules(ctx: Any, count: int) -> dict[str, Any]:
    from opsflow.schedule.history import last_outcomes
    from opsflow.schedule.slots import next_slots
    from opsflow.schedule.tz import iso

    scheduler = ctx.scheduler
    if scheduler is None:
        return {"enabled": False, "entries": []}
    outcomes = last_outcomes(ctx.store)
    now = datetime.now(UTC)
    rows = []
    for name, entry in sorted(scheduler.schedules.entries.items(), key=lambda kv: (-kv[1].spec.priority, kv[0])):
        slots = next_slots(entry, start=now, count=count, p95=None) if entry.spec.enabled else []
        rows.append({"name": name, "does": entry.runbook, "report": entry.spec.report is not None,
                     "trigger": entry.trigger.describe(), "enabled": entry.spec.enabled,
                     "priority": entry.spec.priority, "calendars": [c.name for c in entry.calendars],
                     "last_outcome": outcomes.get(name),
                     "next": [{"start": iso(s.start, entry.tz) if s.start else None, "action": s.action}
                              for s in slots]})
    return {"enabled": True, "directory": str(scheduler.schedules.directory), "entries": rows}


@router.get("/schedules", tags=["schedules"], summary="Schedule entries and their next slots")
async def schedules(request: Request, _p: Reader, count: int = Query(5, ge=1, le=100)) -> dict[str, Any]:
    return await run_in_threadpool(_schedules, request.app.state.ctx, count)


@router.get("/schedules/log", tags=["schedules"], summary="Fire decisions of the scheduler, newest first")
async def schedule_log(request: Request, _p: Reader, since: float | None = None, entry: str | None = None,
                       limit: int = Query(200, ge=1, le=10_000)) -> dict[str, Any]:
    store = request.app.state.ctx.store
    rows = await run_in_threadpool(lambda: store.fires(since=since, entry=entry, limit=limit))
    return {"fires": [{**r, "slot_iso": _ts(r["slot"])} for r in rows]}


def _report(store: Any, since: str, until: str | None, service: str | None, hours: str | None) -> dict[str, Any]:
    from opsflow.reports.kpi import build_report, parse_instant

    now = time.time()
    start = parse_instant(since, now, "since")
    end = parse_instant(until, now, "until") if until else now
    report: dict[str, Any] = build_report(store, start, end, service=service, hours=hours, now=now)
    return report


@router.get("/reports", tags=["reports"], summary="The KPI report of a period (opsflow report --format json)")
async def reports(request: Request, _p: Reader, since: str = "30d", until: str | None = None,
                  service: str | None = None, hours: str | None = None) -> dict[str, Any]:
    return await run_in_threadpool(_report, request.app.state.ctx.store, since, until, service, hours)


def _slo(store: Any, service: str | None) -> list[dict[str, Any]]:
    from opsflow.reports.kpi import objective_status
    from opsflow.settings import current
    from opsflow.slo.loader import load_services

    cfg = current()
    path = Path(cfg.services)
    if not path.exists():
        raise ApiError(404, "not_found", "no services directory: no service levels are defined")
    rows: list[dict[str, Any]] = objective_status(store, load_services(path, cfg.runbooks, cfg.schedules), service,
                                                  time.time())
    return rows


@router.get("/slo", tags=["reports"], summary="Each objective over its window ending now: actual, met, budget")
async def slo(request: Request, _p: Reader, service: str | None = None) -> dict[str, Any]:
    return {"objectives": await run_in_threadpool(_slo, request.app.state.ctx.store, service)}


@router.get("/reviews", tags=["reviews"], summary="Reviews (lessons learned), newest first")
async def reviews(request: Request, _p: Reader, state: str | None = None, runbook: str | None = None,
                  limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    store = request.app.state.ctx.store
    return {"reviews": await run_in_threadpool(lambda: store.list_reviews(state=state, runbook=runbook, limit=limit))}


@router.get("/reviews/{review_id}", tags=["reviews"], summary="One review")
async def review(review_id: str, request: Request, _p: Reader) -> dict[str, Any]:
    found: dict[str, Any] | None = await run_in_threadpool(request.app.state.ctx.store.get_review, review_id)
    if found is None:
        raise ApiError(404, "not_found", f"no review {review_id!r}")
    return found


@router.get("/audit", tags=["audit"], summary="The audit log, newest first (admin)")
async def audit(request: Request, _p: Auditor, since: float | None = None,
                limit: int = Query(200, ge=1, le=10_000)) -> dict[str, Any]:
    store = request.app.state.ctx.store
    return {"audit": await run_in_threadpool(lambda: store.audit_log(since=since, limit=limit))}
