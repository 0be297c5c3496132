"""The Celery side of scale-out: the app, its one task, and a worker's heartbeat and sweep.

Delivery settings, and why (Celery's defaults lose or double work when a worker dies):

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged when its unit ended,
  so a worker killed mid-run leaves it to the broker to deliver again;
- ``worker_prefetch_multiplier = 1``: a worker holds no more units than it runs;
- Redis ``visibility_timeout`` of :data:`VISIBILITY_TIMEOUT` (a day; ``OPSFLOW_VISIBILITY_TIMEOUT``), beyond any
  run's length — and a delivery of a unit that a live worker holds is dropped by its lease anyway;
- a worker's death is found by its leases going stale, not by the broker: any live worker (and the CLI
  following a run) sweeps stale leases back into their queues with a new fencing token; a stale unit that
  no live worker can take is interrupted (:mod:`opsflow.dispatch.sweeper`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery import Celery

from opsflow.dispatch import sweeper
from opsflow.dispatch.lease import DEFAULT_TTL
from opsflow.dispatch.unit import Unit, run_unit
from opsflow.executor import Executor

if TYPE_CHECKING:
    from opsflow.store.sql import SqlStore

log = logging.getLogger("opsflow.worker")
TASK = "opsflow.unit"
VISIBILITY_TIMEOUT = float(os.environ.get("OPSFLOW_VISIBILITY_TIMEOUT") or 86400)


def make_app(broker: str) -> Celery:
    app = Celery("opsflow", broker=broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        broker_transport_options=transport_options(VISIBILITY_TIMEOUT),
        task_ignore_result=True, task_serializer="json", accept_content=["json"], task_default_queue="default",
        task_create_missing_queues=True, worker_hijack_root_logger=False, broker_connection_retry_on_startup=True,
        broker_connection_timeout=5, worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_enable_remote_control=False,  # no pidbox queue: a worker restarted under its name is not refused
    )

    @app.task(name=TASK, bind=True)
    def unit(self: Any, run_id: str, queue: str) -> str:
        context = WORKER
        if context is None:
            raise RuntimeError("an opsflow unit runs only in `opsflow worker`")
        outcome = run_unit(context.store, run_id, queue, context.name, context.ttl, context.hold, context.release)
        log.info("%s", outcome)
        return outcome

    return app


def transport_options(visibility_timeout: float) -> dict[str, Any]:
    """Redis: a message not acknowledged within ``visibility_timeout`` is delivered again (kombu scans for such
    messages every ``unacked_restore_interval`` × ``unacked_restore_throttle`` s, 100 s by default; a short
    timeout is scanned for in step with it). RabbitMQ ignores these."""
    options: dict[str, Any] = {"visibility_timeout": visibility_timeout}
    if visibility_timeout < 100:
        options.update(unacked_restore_interval=max(1, int(visibility_timeout / 2)), unacked_restore_throttle=1)
    return options


def publish(app: Celery, run_id: str, queue: str) -> None:
    app.send_task(TASK, args=[run_id, queue], queue=queue)


def sweep(store: SqlStore, app: Celery | None) -> list[str]:
    """A sweep (:func:`opsflow.dispatch.sweeper.sweep`) that sends stale units back to their queues."""
    return sweeper.sweep(store, (lambda run_id, queue: publish(app, run_id, queue)) if app is not None else None)


@dataclass
class WorkerContext:
    """What the task of a worker process needs: its store, its name, and the units it holds now."""

    store: SqlStore
    name: str
    queues: list[str]
    concurrency: int
    ttl: float = DEFAULT_TTL
    app: Celery | None = None
    started_at: float = field(default_factory=time.time)
    held: dict[tuple[str, str], tuple[Unit, Executor | None]] = field(default_factory=dict)  # None: planning
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def hold(self, unit: Unit, executor: Executor | None) -> None:
        with self.lock:
            self.held[(unit.run_id, unit.queue)] = (unit, executor)
        self.beat_once()

    def release(self, unit: Unit) -> None:
        with self.lock:
            self.held.pop((unit.run_id, unit.queue), None)
        self.beat_once()

    def beat_once(self, state: str = "running") -> None:
        with self.lock:
            held = list(self.held.values())
        for unit, executor in held:
            if unit.fenced:
                continue
            if not self.store.renew(unit.run_id, unit.queue, unit.token):
                unit.fenced = True
                log.warning("run %s queue %s: lease lost (presumed dead and taken over): stopping", unit.run_id,
                            unit.queue)
                if executor is not None:
                    executor.request_cancel("lease lost: another worker took this unit over", hard=True)
            elif executor is not None and not executor.cancel.is_set():
                asked = self.store.audit_entries("cancel", target=unit.run_id, limit=1)
                if asked:
                    executor.request_cancel(f"canceled by {asked[0]['actor']}")
        self.store.worker_beat(self.name, socket.gethostname(), os.getpid(), self.queues, self.concurrency, self.ttl,
                               self.started_at, [f"{u.run_id}:{u.queue}" for u, _ in held], state)

    def run_beat(self) -> None:
        """Every ttl/4: renew held leases, bring cancellation, say this worker lives; every ttl/2: sweep."""
        last_sweep = 0.0
        while not self.stop.wait(self.ttl / 4):
            try:
                self.beat_once()
                if time.monotonic() - last_sweep >= self.ttl / 2:
                    last_sweep = time.monotonic()
                    sweep(self.store, self.app)
            except Exception as exc:  # noqa: BLE001 - the store away for a moment: the next beat tries again
                log.warning("heartbeat: %s: %s", type(exc).__name__, exc)


WORKER: WorkerContext | None = None


def run_worker(store: SqlStore, broker: str, queues: list[str], concurrency: int, name: str, ttl: float,
               loglevel: str = "INFO") -> None:
    """``opsflow worker``: a Celery worker (thread pool) of these queues, until SIGTERM (warm: running units end)
    or SIGINT."""
    global WORKER
    app = make_app(broker)
    WORKER = context = WorkerContext(store, name, queues, concurrency, ttl, app)
    context.beat_once()
    beat = threading.Thread(target=context.run_beat, daemon=True, name="opsflow-heartbeat")
    beat.start()
    try:
        app.worker_main(["worker", "-Q", ",".join(queues), "-c", str(concurrency), "-P", "threads", "-n", name,
                         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", loglevel])
    finally:
        context.stop.set()
        context.beat_once("stopped")
