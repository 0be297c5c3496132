"""The Python API: the one funnel every trigger goes through.

    import opsflow

    result = opsflow.run("runbooks/server-health.yaml", inventory="inventory/hosts.yml",
                         params={"min_disk_mb": 500}, check=True)
    print(result.status, result.failed_hosts)
    result.raise_on_error()

The CLI, the event daemon and sub-runbooks all call :func:`execute` (or :func:`run`):
a :class:`~opsflow.planning.RunRequest` becomes a :class:`~opsflow.planning.Plan`, one
:class:`~opsflow.executor.Executor` runs it, every outcome lands in the store.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from opsflow.executor import Executor, Observer
from opsflow.planning import Plan, RunRequest, build_plan, who
from opsflow.results import RunResult
from opsflow.store import Store
from opsflow.store import open_store as _open_store


def open_store(url: str | None = None) -> Store:
    """The run store: ``url`` (a SQLite path or ``postgresql://…``), else the ``db`` setting."""
    return _open_store(url)


def request(runbook: str | Path, *, inventory: str | Path | None = None, params: dict[str, Any] | None = None,
            limit: str | None = None, check: bool = False, strict: bool = False, trigger: str = "api",
            started_by: str | None = None) -> RunRequest:
    """A run request with the settings' defaults filled in (inventory)."""
    from opsflow.planning import default_inventory

    return RunRequest(runbook=str(runbook), params=dict(params or {}),
                      inventory=str(inventory) if inventory is not None else default_inventory(),
                      limit=limit, check=check, strict=strict, trigger=trigger, started_by=started_by or who())


def plan(runbook: str | Path, **kw: Any) -> Plan:
    """The plan of a run (steps × hosts, batches, check-mode behaviour); touches nothing.

    Raises :class:`~opsflow.errors.UsageError` (``RunbookError`` with file:line:col diagnostics,
    ``InventoryError``) on bad input.
    """
    return build_plan(request(runbook, **kw))


def execute(req: RunRequest | Plan, *, store: Store | None = None, observer: Observer | None = None,
            cancel: threading.Event | None = None, executor: Executor | None = None,
            run_id: str | None = None, dispatch: str | None = None, broker: str | None = None) -> RunResult:
    """Run a request (or an already built plan) to its end and return its result.

    ``dispatch`` (default: the ``dispatch`` setting): ``local`` runs it in this process; ``celery`` sends it to
    ``opsflow worker`` s through ``broker`` (default: the ``broker`` setting) and follows it in the store —
    the executor's observer sees its results, its cancellation reaches the workers. The store is closed
    afterwards only when this call opened it.
    """
    the_plan = req if isinstance(req, Plan) else build_plan(req)
    owned = store is None and executor is None
    ex = executor or Executor(store or open_store(), observer, cancel)
    try:
        from opsflow.settings import current

        if (dispatch or current().dispatch) == "celery":
            from opsflow.dispatch.client import dispatch_and_follow

            return dispatch_and_follow(the_plan, ex.store, ex, broker or current().broker, run_id)
        return ex.execute(the_plan, run_id)
    finally:
        if owned:
            ex.store.close()


def run(runbook: str | Path, *, store: Store | None = None, observer: Observer | None = None,
        cancel: threading.Event | None = None, **kw: Any) -> RunResult:
    """Run a runbook: ``inventory``, ``params``, ``limit``, ``check``, ``strict``, ``trigger``, ``started_by``.

    Returns a :class:`~opsflow.results.RunResult` (``status``, ``hosts``, ``steps``, ``failed_hosts``,
    ``raise_on_error()``); a failed run is a result, not an exception.
    """
    return execute(request(runbook, **kw), store=store, observer=observer, cancel=cancel)
