"""/api/v1/runs: list (filters, keyset paging), one run, its live stream (SSE), start, approve/deny, cancel, resume.

Runs start through the one funnel (:func:`opsflow.api.execute`) with trigger ``api`` and the principal's
name as ``started_by``; only runbooks of the service's runbooks directory can be started (a name or a
path under it, never one outside it). Every action of a person is audited with who did it and how
(``via token <id>``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from opsflow.auth import Principal, four_eyes_refusal, plan_hosts
from opsflow.errors import UsageError
from opsflow.planning import RunRequest, build_plan
from opsflow.server.errors import ApiError
from opsflow.server.live import RunLimitReached
from opsflow.server.security import check_groups, check_scope, require, via
from opsflow.store.runs_query import EVENT_COLS

router = APIRouter(prefix="/api/v1", tags=["runs"])
ACTIVE = ("running", "waiting")
HEARTBEAT = 15.0
RETRY_AFTER = "10"  # seconds, when the service admits no more runs
AsRun = Annotated[Principal, Depends(require("run"))]
AsApprove = Annotated[Principal, Depends(require("approve"))]
AsCancel = Annotated[Principal, Depends(require("cancel"))]
AsResume = Annotated[Principal, Depends(require("resume"))]


class StartRun(BaseModel):
    runbook: str = Field(description="a runbook's name, or a path relative to the runbooks directory")
    params: dict[str, Any] = Field(default_factory=dict)
    limit: str | None = Field(default=None, description="an inventory pattern limiting the targets")
    check: bool = False


class Decision(BaseModel):
    comment: str | None = Field(default=None, max_length=2000)


class Resume(BaseModel):
    params: dict[str, Any] = Field(default_factory=dict, description="override recorded params; secrets again")
    force: bool = Field(default=False, description="resume even though the runbook file changed")


def runbook_file(directory: str, name: str) -> Path:
    """The runbook ``name`` (its name, file stem, or relative path) inside ``directory``; never outside it."""
    root = Path(directory).resolve()
    if not name or "\x00" in name or len(name) > 500:
        raise ApiError(400, "bad_request", "runbook: a name or a path under the runbooks directory")
    if "/" in name or name.endswith((".yml", ".yaml")):
        path = (root / name).resolve()
        if not path.is_relative_to(root) or path.suffix not in (".yml", ".yaml") or not path.is_file():
            raise ApiError(404, "not_found", f"no runbook {name!r} in the runbooks directory")
        return path
    import yaml

    from opsflow.runbook.validate import find_runbooks

    files = [p for p in find_runbooks([str(root)]) if p.resolve().is_relative_to(root)]
    for path in files:
        if path.stem == name:
            return path.resolve()
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(doc, dict) and doc.get("name") == name:
            return path.resolve()
    raise ApiError(404, "not_found", f"no runbook {name!r} in the runbooks directory")


def _record(store: Any, run_id: str) -> dict[str, Any]:
    record: dict[str, Any] | None = store.get_run(run_id)
    if record is None:
        raise ApiError(404, "not_found", f"no run {run_id!r}")
    return record


def _not_draining(ctx: Any) -> None:
    if ctx.draining:
        raise ApiError(503, "draining", "the service is shutting down", {"Retry-After": "5"})


def run_hosts(ctx: Any, principal: Principal, record: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """A recorded run's targeted hosts with their groups in the service's inventory (only read when the
    principal is scoped to groups: the others need not)."""
    if not principal.groups:
        return {}
    from opsflow.inventory import load_inventory_cached

    known = load_inventory_cached(ctx.inventory).hosts
    return {h: known[h].groups if h in known else () for h in record.get("hosts") or {}}


def _launch(ctx: Any, req: RunRequest, principal: Principal, permission: str, what: str) -> dict[str, Any]:
    plan = build_plan(req)
    check_scope(principal, permission, plan.loaded.runbook.name)
    check_groups(principal, permission, plan_hosts(plan))
    _not_draining(ctx)
    try:
        live = ctx.runs.start(plan)
    except RunLimitReached as exc:
        raise ApiError(429, "too_many_runs", str(exc), {"Retry-After": RETRY_AFTER}) from None
    live.started.wait(5)  # its record exists (or it waits for a worker: then it is queued)
    ctx.store.audit(principal.name, what, live.run_id, f"runbook {plan.loaded.runbook.name}"
                    + (" (check mode)" if req.check else "") + f" {via(principal)}")
    record = ctx.store.get_run(live.run_id)
    return {"id": live.run_id, "status": record["status"] if record else "queued", "runbook": plan.loaded.runbook.name}


@router.get("/runs", summary="Runs, newest first", dependencies=[Depends(require("read"))])
async def list_runs(request: Request, runbook: str | None = None, status: str | None = None,
                    trigger: str | None = None, host: str | None = None,
                    since: float | None = Query(None, description="epoch seconds"),
                    until: float | None = Query(None, description="epoch seconds"), started_by: str | None = None,
                    limit: int = Query(50, ge=1, le=1000), cursor: str | None = None,
                    offset: int = Query(0, ge=0, le=100_000)) -> dict[str, Any]:
    store = request.app.state.ctx.store
    rows, nxt = await run_in_threadpool(lambda: store.query_runs(
        runbook=runbook, status=status, trigger=trigger, host=host, since=since, until=until,
        started_by=started_by, limit=limit, cursor=cursor, offset=offset))
    return {"runs": rows, "next_cursor": nxt}


def _detail(ctx: Any, run_id: str) -> dict[str, Any]:
    record = _record(ctx.store, run_id)
    event = ctx.store.event_for_run(record["id"])
    return {"run": record, "results": ctx.store.results(record["id"]),
            "approvals": ctx.store.approvals_of(record["id"]),
            "event": {k: event.get(k) for k in (*EVENT_COLS, "action")} if event else None,
            "live": ctx.runs.get(record["id"]) is not None}


@router.get("/runs/{run_id}", summary="One run: record, results per host×step, approvals, its event",
            dependencies=[Depends(require("read"))])
async def get_run(run_id: str, request: Request) -> dict[str, Any]:
    return await run_in_threadpool(_detail, request.app.state.ctx, run_id)


def _sse(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"


async def _live_stream(channel: Any) -> AsyncIterator[str]:
    seen = 0
    while True:
        await channel.wait(seen, HEARTBEAT)
        items = channel.items[seen:]
        if not items and not channel.ended:
            yield ": keep-alive\n\n"
        for kind, data in items:
            yield _sse(kind, data)
        seen += len(items)
        if channel.ended and seen >= len(channel.items):
            return


async def _polled_stream(store: Any, run_id: str) -> AsyncIterator[str]:
    """A run of another process: its results from the store as they are recorded, then its end."""
    seen, quiet = 0, 0.0
    while True:
        record = await run_in_threadpool(store.get_run, run_id)
        results = await run_in_threadpool(store.results, run_id)
        for r in results[seen:]:
            yield _sse("result", {k: r.get(k) for k in ("step_index", "step", "action", "host", "phase", "status",
                                                          "changed", "rc", "started_at", "ended_at", "duration",
                                                          "attempts", "error_class", "error", "stdout", "stderr")})
        seen = len(results)
        if record is None or record["status"] not in ACTIVE:
            yield _sse("end", {"run_id": run_id, "status": record["status"] if record else "unknown",
                               "error": record.get("error") if record else None})
            return
        await asyncio.sleep(1.0)
        quiet += 1.0
        if quiet >= HEARTBEAT:
            quiet = 0.0
            yield ": keep-alive\n\n"


@router.get("/runs/{run_id}/stream", summary="Server-sent events: each host×step result as it happens, then the end",
            dependencies=[Depends(require("read"))], response_class=StreamingResponse)
async def stream(run_id: str, request: Request) -> StreamingResponse:
    ctx = request.app.state.ctx
    live = ctx.runs.get(run_id)
    if live is not None:
        body = _live_stream(live.channel)
    else:
        record = _record(ctx.store, run_id) if ctx.runs.get(run_id) is None else None
        body = _polled_stream(ctx.store, record["id"] if record else run_id)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.post("/runs", status_code=202, summary="Start a run of a runbook of the runbooks directory")
async def start_run(request: Request, body: StartRun, principal: AsRun) -> dict[str, Any]:
    ctx = request.app.state.ctx
    _not_draining(ctx)
    path = await run_in_threadpool(runbook_file, ctx.runbooks, body.runbook)
    req = RunRequest(runbook=str(path), params=dict(body.params), inventory=ctx.inventory, limit=body.limit,
                     check=body.check or ctx.check, trigger="api", started_by=principal.name)
    return await run_in_threadpool(_launch, ctx, req, principal, "run", "run_start")


def _decide(ctx: Any, run_id: str, approved: bool, comment: str | None, principal: Principal) -> dict[str, Any]:
    record = _record(ctx.store, run_id)
    check_scope(principal, "approve", record["runbook"])
    check_groups(principal, "approve", run_hosts(ctx, principal, record))
    if approved:
        refusal = four_eyes_refusal(principal.name, record["started_by"])
        if refusal:
            raise ApiError(403, "four_eyes", refusal)
    decision = ctx.store.decide(record["id"], approved, principal.name, comment)  # FourEyesRefused → 403
    if decision is None:
        raise ApiError(409, "conflict", f"run {record['id']} ({record['status']}) is not waiting for an approval")
    ctx.store.audit(principal.name, "approve" if approved else "deny", record["id"],
                    f"step {decision['step']!r}" + (f": {comment}" if comment else "") + f" {via(principal)}")
    return {"id": record["id"], "approval": decision}


@router.post("/runs/{run_id}/approve", summary="Approve the run's waiting approval step (never one's own run)")
async def approve(run_id: str, request: Request, principal: AsApprove,
        body: Annotated[Decision | None, Body()] = None) -> dict[str, Any]:
    return await run_in_threadpool(_decide, request.app.state.ctx, run_id, True,
                                   body.comment if body else None, principal)


@router.post("/runs/{run_id}/deny", summary="Deny the run's waiting approval step: the run stops")
async def deny(run_id: str, request: Request, principal: AsApprove,
        body: Annotated[Decision | None, Body()] = None) -> dict[str, Any]:
    return await run_in_threadpool(_decide, request.app.state.ctx, run_id, False,
                                   body.comment if body else None, principal)


def _cancel(ctx: Any, run_id: str, principal: Principal) -> dict[str, Any]:
    """This service's run is canceled at once; another process's (a CLI run on the same store, a daemon's) is
    asked to through the store: the audit log's ``cancel`` entry of the run, which every executor watches."""
    record = _record(ctx.store, run_id)
    check_scope(principal, "cancel", record["runbook"])
    check_groups(principal, "cancel", run_hosts(ctx, principal, record))
    live = ctx.runs.get(record["id"])
    if record["status"] not in ACTIVE and (live is None or live.done.is_set()):
        raise ApiError(409, "conflict", f"run {record['id']} is {record['status']}: nothing to cancel")
    here = live is not None and not live.done.is_set()
    ctx.store.audit(principal.name, "cancel", record["id"], f"runbook {record['runbook']} {via(principal)}"
                    + ("" if here else f" (run by pid {record['pid']} on {record['node']}: asked through the store)"))
    if live is not None and here:
        live.executor.request_cancel(f"canceled by {principal.name}")
        return {"id": record["id"], "status": "canceling"}
    return {"id": record["id"], "status": "cancel_requested",
            "message": f"run {record['id']} runs in another process (pid {record['pid']} on {record['node']}): "
                       "it stops starting steps within a few seconds"}


@router.post("/runs/{run_id}/cancel", summary="Cancel a run: no new step starts (a run of another process "
                                              "within a few seconds, through the store)")
async def cancel(run_id: str, request: Request, principal: AsCancel) -> dict[str, Any]:
    return await run_in_threadpool(_cancel, request.app.state.ctx, run_id, principal)


def _resume(ctx: Any, run_id: str, body: Resume, principal: Principal) -> dict[str, Any]:
    from opsflow.resume import resume_target

    _record(ctx.store, run_id)
    try:
        record = resume_target(ctx.store, run_id)
    except UsageError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    check_scope(principal, "resume", record["runbook"])
    check_groups(principal, "resume", run_hosts(ctx, principal, record))
    root = Path(ctx.runbooks).resolve()
    path = Path(record["runbook_path"]).resolve()
    if not path.is_relative_to(root):
        raise ApiError(409, "conflict", f"run {record['id']}'s runbook is not in this service's runbooks directory")
    try:
        current = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        raise ApiError(409, "conflict", f"the runbook of run {record['id']} cannot be read") from None
    if current != record["runbook_hash"] and not body.force:
        raise ApiError(409, "conflict", f"the runbook changed since run {record['id']}; steps may not line up "
                       "(force: true resumes anyway)")
    params = {k: v for k, v in record["params"].items() if v != "********"}
    params.update(body.params)
    req = RunRequest(runbook=str(path), params=params, inventory=record["inventory"] or ctx.inventory,
                     limit=":".join(record["hosts"]) or None, trigger="api", started_by=principal.name,
                     parent_run=record["id"], resume_of=record["id"])
    out = _launch(ctx, req, principal, "resume", "resume")
    return {**out, "resumes": record["id"], "at": time.time()}


@router.post("/runs/{run_id}/resume", status_code=202, summary="Resume a failed, partial, canceled or abandoned run")
async def resume(run_id: str, request: Request, principal: AsResume,
        body: Annotated[Resume | None, Body()] = None) -> dict[str, Any]:
    ctx = request.app.state.ctx
    _not_draining(ctx)
    return await run_in_threadpool(_resume, ctx, run_id, body or Resume(), principal)
