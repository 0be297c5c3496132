"""The ASGI application: hooks, /healthz, /metrics, the API under /api/v1, its OpenAPI document at
/api/openapi.json (no docs pages: they would load scripts from CDNs), and the web console when installed."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from opsflow.events.daemon import Daemon
from opsflow.events.server import Auth
from opsflow.server import errors, hooks, runs, views
from opsflow.server.live import RunManager
from opsflow.store.base import Store

log = logging.getLogger("opsflow.server")


@dataclass
class Context:
    """What every request handler reaches through ``request.app.state.ctx``."""

    store: Store
    core: Daemon
    auth: Auth  # the hooks' token / HMAC secret
    runs: RunManager
    runbooks: str
    inventory: str
    scheduler: Any = None
    max_body: int = 1 << 20
    insecure: bool = False
    check: bool = False
    draining: bool = False


def create_app(ctx: Context) -> FastAPI:
    from opsflow import __version__

    app = FastAPI(title="opsflow", version=__version__, openapi_url="/api/openapi.json", docs_url=None,
                  redoc_url=None, swagger_ui_oauth2_redirect_url=None,
                  description="Codified runbooks: runs, approvals, events, schedules, KPI reports. Authenticate "
                              "with `Authorization: Bearer <token>` (opsflow token create).")
    app.state.ctx = ctx
    errors.install(app)
    app.include_router(hooks.router)
    app.include_router(runs.router)
    app.include_router(views.router)
    if importlib.util.find_spec("opsflow.server.console.routes") is not None:
        try:
            from opsflow.server.console.routes import router as console
        except Exception:  # noqa: BLE001 - the API serves without the console rather than not at all
            log.exception("the web console cannot be loaded: serving the API without it")
        else:
            app.include_router(console)
    return app
