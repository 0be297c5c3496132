"""``opsflow serve``'s process: the store, the daemon core (intake, rules, workers), the scheduler, the API's
run manager and uvicorn, started in order; SIGTERM drains, SIGHUP reloads rules and schedules.

uvicorn runs in a thread of its own (its signal handlers are not installed there): the main thread
owns the signals. A drain first answers new work with 503 (hooks, POST /api/v1/...), lets running runs
finish for --drain-timeout (then cancels them), and only then stops the HTTP server, so /healthz says
``draining`` and reads keep working meanwhile.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("opsflow.server")


class _NoQuery(logging.Filter):
    """Access log lines carry the path only: a query string may hold a token."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


@dataclass
class Options:
    listen: tuple[str, int]
    runbooks: str
    inventory: str
    db: str | None
    workers: int
    queue_size: int
    budget: tuple[int, float]
    drain_timeout: float
    grace: float
    max_body: int
    auth: Any
    schedules_dir: str | None
    no_schedule: bool
    alertmanager: str | None
    check: bool
    insecure: bool
    tls: tuple[str, str] | None


def serve(o: Options, say: Any) -> None:
    import uvicorn

    from opsflow.events.daemon import Daemon, Settings
    from opsflow.server.app import Context, create_app
    from opsflow.server.hooks import Intake
    from opsflow.server.live import RunManager
    from opsflow.server.startup import make_scheduler, reload
    from opsflow.service.notifications import from_settings
    from opsflow.settings import current
    from opsflow.store import open_store

    store = open_store(o.db)
    settings = Settings(inventory=o.inventory, runbooks=o.runbooks, workers=o.workers, queue_size=o.queue_size,
                        budget_runs=o.budget[0], budget_window=o.budget[1], drain_timeout=o.drain_timeout,
                        grace=o.grace, check=o.check, processes=True, store_url=o.db)
    notices = from_settings(current())
    core = Daemon(settings, store, notices=notices)
    rules = core.load()
    scheduler = None if o.no_schedule else make_scheduler(o.schedules_dir, o.runbooks, o.inventory, store, o.check,
                                                          o.grace, o.alertmanager, notices)
    core.scheduler = scheduler
    ctx = Context(store=store, core=core, auth=o.auth, runs=RunManager(store, o.workers, o.grace), runbooks=o.runbooks,
                  inventory=o.inventory, scheduler=scheduler, max_body=o.max_body, insecure=o.insecure, check=o.check)
    logging.getLogger("uvicorn.access").addFilter(_NoQuery())
    app = Intake(create_app(ctx), ctx)  # hooks straight to intake, the rest to the FastAPI app
    config = uvicorn.Config(app, host=o.listen[0], port=o.listen[1], log_config=None, lifespan="off",
                            server_header=False, proxy_headers=False, timeout_graceful_shutdown=5,
                            ssl_certfile=o.tls[0] if o.tls else None, ssl_keyfile=o.tls[1] if o.tls else None)
    server = uvicorn.Server(config)
    stop = threading.Event()
    signals = {"n": 0}

    def on_stop(signum: int, _frame: Any) -> None:
        signals["n"] += 1
        ctx.draining = True
        if signals["n"] > 1:  # a second signal: cancel running runs now
            say(f"opsflow serve: {signal.Signals(signum).name} again: canceling running runs")
            threading.Thread(target=core.drain, kwargs={"timeout": 0, "hard": True}, daemon=True).start()
            threading.Thread(target=ctx.runs.drain, args=(0, True), daemon=True).start()
        stop.set()

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_stop)
    signal.signal(signal.SIGHUP, lambda _s, _f: reload(core, scheduler, o.runbooks))
    core.start()
    from opsflow.dispatch.background import start as start_sweeper

    sweeper = start_sweeper(store)  # dispatched runs whose workers are all gone end interrupted
    thread = threading.Thread(target=server.run, name="opsflow-http", daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and thread.is_alive() and time.time() < deadline:
        time.sleep(0.02)
    if not server.started:
        from opsflow.errors import UsageError

        core.drain(timeout=0)
        store.close()
        raise UsageError(f"cannot listen on {o.listen[0]}:{o.listen[1]} (see the log above)")
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    schedule_text = "; no schedule"
    if scheduler is not None:
        counts = scheduler.start()
        schedule_text = (f"; schedule: {len(scheduler.entries)} entries from {scheduler.schedules.directory}"
                         + (f" ({counts['misfired']} slot(s) missed while stopped)" if counts["misfired"] else ""))
    scheme = "https" if o.tls else "http"
    shown = f"[{host}]" if ":" in str(host) else host
    say(f"opsflow serve: listening on {scheme}://{shown}:{port} (hooks auth: {o.auth.describe()}; API: "
        f"{'bearer tokens, sessions' + (', or none (--insecure)' if o.insecure else '')}); {len(rules)} rule(s) "
        f"from {o.runbooks}; workers {o.workers}, queue {o.queue_size}{schedule_text}; store {store.url}"
        + ("; CHECK MODE (dry runs)" if o.check else ""))
    while not stop.wait(1.0):
        if not thread.is_alive():
            say("opsflow serve: the HTTP server stopped")
            ctx.draining = True
            break
    say(f"opsflow serve: stopping: no new work; queued runs are canceled, running runs get {o.drain_timeout:g} s")
    _drain(ctx, o)
    server.should_exit = True
    thread.join(15)
    notices.close()
    if sweeper is not None:
        sweeper.stop()
    store.close()
    say("opsflow serve: stopped")


def _drain(ctx: Any, o: Options) -> None:
    late: list[str] = []
    helpers = []
    if ctx.scheduler is not None:
        helpers.append(threading.Thread(target=lambda: late.extend(ctx.scheduler.stop(o.drain_timeout, o.grace)),
                                        daemon=True))
    helpers.append(threading.Thread(target=lambda: late.extend(ctx.runs.drain(o.drain_timeout)), daemon=True))
    for t in helpers:
        t.start()
    late += ctx.core.drain()
    for t in helpers:
        t.join(o.drain_timeout + o.grace + 30)
    if late:
        log.warning("canceled at the deadline: %s", ", ".join(late))
