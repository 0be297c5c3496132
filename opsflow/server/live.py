"""Runs this service started: worker threads through the one funnel (opsflow.api.execute), an observer
that feeds each run's stream (every host×step result as it happens, then the end), and cancellation."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsflow.api import execute
from opsflow.errors import OpsflowError
from opsflow.executor import Executor, NullObserver, new_run_id
from opsflow.planning import Plan, PlannedStep
from opsflow.results import RunResult, StepResult
from opsflow.store.base import Store

log = logging.getLogger("opsflow.server")
RESULT_KEYS = ("step_index", "step", "action", "host", "phase", "status", "changed", "rc", "started_at", "ended_at",
               "duration", "attempts", "error_class", "error", "stdout", "stderr")


def result_dict(r: StepResult) -> dict[str, Any]:
    """A result as the stream and GET /runs/{id} show it (already redacted by the executor)."""
    out = {k: getattr(r, k, None) for k in RESULT_KEYS}
    out["status"] = str(r.status)
    out["changed"] = bool(r.changed)
    return out


class Channel:
    """What happened in one run, in order; async readers are woken from the run's thread."""

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []
        self.ended = False
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    def publish(self, kind: str, data: dict[str, Any], end: bool = False) -> None:
        with self._lock:
            self.items.append((kind, data))
            self.ended = self.ended or end
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the reader's loop is closed: it went away
                pass

    async def wait(self, seen: int, timeout: float) -> None:
        """Until there is more than ``seen`` items, the end, or ``timeout``."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._lock:
            if len(self.items) > seen or self.ended:
                return
            self._waiters.append(entry)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.remove(entry)


class _Feed(NullObserver):
    def __init__(self, live: LiveRun) -> None:
        self.live = live

    def run_started(self, run_id: str, plan: Plan) -> None:
        self.live.channel.publish("started", {"run_id": run_id, "runbook": plan.loaded.runbook.name,
                                              "hosts": list(plan.targets)})
        self.live.started.set()

    def host_done(self, result: StepResult) -> None:
        self.live.channel.publish("result", result_dict(result))

    def waiting(self, run_id: str, step: PlannedStep, message: str, deadline: float) -> None:
        self.live.channel.publish("waiting", {"step": step.step.name, "step_index": step.index, "message": message,
                                              "deadline": deadline})


@dataclass
class LiveRun:
    run_id: str
    executor: Executor
    channel: Channel = field(default_factory=Channel)
    started: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)


DEFAULT_LIMIT = 32
_LIMIT = {"runs": DEFAULT_LIMIT}


def set_run_limit(limit: int) -> None:
    """The limit of the run managers made from now on (``opsflow serve --run-limit``)."""
    if limit < 1:
        raise ValueError("the run limit is at least 1")
    _LIMIT["runs"] = limit


class RunLimitReached(OpsflowError):
    """The service admits no more API runs until one ends (answered 429 with Retry-After)."""


class RunManager:
    """At most ``workers`` API runs at a time (more wait for a worker), and at most ``limit`` admitted at once
    (running or waiting): beyond it :meth:`start` refuses (:class:`RunLimitReached`) before anything is
    recorded. Each run's stream and executor."""

    def __init__(self, store: Store, workers: int, grace: float, limit: int | None = None) -> None:
        self.store, self.grace = store, grace
        self.workers = workers
        self.limit = max(limit if limit is not None else _LIMIT["runs"], 1)
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self.live: dict[str, LiveRun] = {}
        self._threads: list[threading.Thread] = []
        self.stopping = False
        self.on_finished: Callable[[RunResult], None] | None = None

    def start(self, plan: Plan) -> LiveRun:
        """Run the plan in a worker thread; return at once (``started`` is set when its record exists)."""
        run_id = new_run_id()
        live = LiveRun(run_id, Executor(self.store, None, grace=self.grace))
        live.executor.observer = _Feed(live)
        with self._lock:
            admitted = sum(1 for r in self.live.values() if not r.done.is_set())
            if admitted >= self.limit:
                raise RunLimitReached(f"the service runs or queues {admitted} API run(s), its limit "
                                      f"(--run-limit {self.limit}, {self.workers} at a time): try again when one "
                                      "has ended")
            self.live[run_id] = live
            thread = threading.Thread(target=self._run, args=(live, plan), name=f"opsflow-api-{run_id}", daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return live

    def _run(self, live: LiveRun, plan: Plan) -> None:
        status, error = "crashed", None
        try:
            with self._slots:
                if self.stopping:
                    error = "the service stopped before this run started"
                    status = "canceled"
                    return
                result = execute(plan, executor=live.executor, run_id=live.run_id)
                status, error = str(result.status), result.error
        except OpsflowError as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("API run %s: %s", live.run_id, error)
        except Exception:  # noqa: BLE001 - a worker never dies of one run
            log.exception("API run %s failed", live.run_id)
            error = "internal error (see the service's log)"
        finally:
            live.started.set()
            live.channel.publish("end", {"run_id": live.run_id, "status": status, "error": error}, end=True)
            live.done.set()
            # kept a while for late stream readers, then forgotten
            timer = threading.Timer(300, self._forget, (live.run_id,))
            timer.daemon = True
            timer.start()

    def _forget(self, run_id: str) -> None:
        with self._lock:
            self.live.pop(run_id, None)

    def get(self, run_id: str) -> LiveRun | None:
        with self._lock:
            return self.live.get(run_id)

    def running(self) -> list[LiveRun]:
        with self._lock:
            return [r for r in self.live.values() if not r.done.is_set()]

    def drain(self, timeout: float, hard: bool = False) -> list[str]:
        """No new runs; running ones get ``timeout`` s, then are canceled (their in-flight step gets the grace)."""
        self.stopping = True
        deadline = time.time() + (0 if hard else timeout)
        for live in self.running():
            live.done.wait(max(0.0, deadline - time.time()))
        late = self.running()
        for live in late:
            live.executor.request_cancel(f"canceled: the service stopped (drain deadline of {timeout:g} s)", hard=hard)
        end = time.time() + self.grace + 15
        for live in late:
            live.done.wait(max(0.0, end - time.time()))
        return [r.run_id for r in late]
