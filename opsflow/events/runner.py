"""Remediation runs in worker processes (``opsflow serve``): intake's interpreter never runs them.

A run costs a few CPU-ms of Python (its plan, the executor, the store writes) and holds the GIL
meanwhile; hundreds a second in the intake's process starve its event loop. So each of the daemon's
worker threads owns one child process (``python -m opsflow.events.runner``, started once, again after
it died) and only waits on it: the thread sends the run request over a socket pair, the child builds
the plan and executes it through the one funnel (``opsflow.api.execute``, its own store connection),
and reports back when the run record exists (``started``: the action's start and its latency are
recorded by the daemon as before), when a step waits for approval, and its result.

The queue, its limit and the guard stay in the daemon: a child takes one run at a time. A child that
dies (killed, out of memory) ends its run the way a later start finds a dead process's run: the
store's ``reap`` marks it ``abandoned`` with the reason, its locks released; the action is recorded
``finished``/``abandoned`` (or ``suppressed``, reason ``invalid``, if the run had not started) and a
new child is started for the next run. A child whose daemon is gone (its socket closed) cancels its
run and exits.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from opsflow.errors import OpsflowError

log = logging.getLogger("opsflow.daemon")


@dataclass
class Outcome:
    """How a run sent to a child ended: ``result`` (a RunResult), not started (``reason``), or the child died."""

    result: Any = None
    reason: str = ""  # not started: blackout | invalid
    detail: str = ""
    died: bool = False


class Child:
    """One worker process and the socket pair to it; started again when it died."""

    def __init__(self, name: str, store_url: str | None, grace: float) -> None:
        self.name, self.store_url, self.grace = name, store_url, grace
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        self._send = threading.Lock()  # the worker thread and a drain both send
        self._guard = threading.Lock()  # the process and socket: replaced or closed by one thread at a time
        self._busy = self._stopped = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _ensure(self) -> Connection:
        with self._guard:
            if self.proc is not None and self.proc.poll() is None and self.conn is not None:
                return self.conn
            if self._stopped:
                raise OSError("the worker processes are stopped")
            self._close()
            return self._spawn()

    def _spawn(self) -> Connection:
        mine, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "opsflow.events.runner", str(theirs.fileno())],
                                         pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.conn = Connection(mine.detach())
        self.conn.send(("init", self.store_url, self.grace, logging.getLogger("opsflow").getEffectiveLevel()))
        return self.conn

    def start(self) -> None:
        """Start the process now (its imports are paid before the first run, not by it)."""
        self._ensure()

    def run(self, request: Any, run_id: str, started: Callable[[str], None],
            waiting: Callable[[str, str, str, float], None]) -> Outcome:
        """Run ``request`` in the child as ``run_id``; ``started``/``waiting`` are called from this thread."""
        try:
            conn = self._ensure()
        except OSError as exc:
            return Outcome(reason="invalid", detail=f"internal error: no worker process to run it: {exc}")
        self._busy = True
        try:
            with self._send:
                conn.send(("run", request, run_id))
            while True:
                msg = conn.recv()
                kind = msg[0]
                if kind == "started":
                    started(msg[1])
                elif kind == "waiting":
                    waiting(*msg[1:])
                elif kind == "finished":
                    return Outcome(result=msg[1])
                elif kind == "not_started":
                    return Outcome(reason=msg[1], detail=msg[2])
                else:  # "error": a bug in the child, the run (if any) recorded by its executor
                    return Outcome(reason="invalid", detail=msg[1])
        except (EOFError, OSError):
            with self._guard:
                code = _reap(self.proc)
                self._close()
            return Outcome(died=True, detail=f"its worker process {self.name} died ({_exit_text(code)})")
        finally:
            self._busy = False

    def cancel(self, reason: str, hard: bool = False) -> None:
        """Ask the child to cancel its run (the executor's own cancel: the step in flight gets the grace)."""
        try:
            with self._send:
                if self.conn is not None:
                    self.conn.send(("cancel", reason, hard))
        except OSError:
            pass

    def stop(self, timeout: float = 5.0) -> None:
        """Ask an idle child to exit; kill it after ``timeout``."""
        with self._guard:
            if self._stopped:
                return
            self._stopped = True
            proc = self.proc
        if proc is None:
            return
        self._ask_stop()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with self._guard:
            if not self._busy:  # else the worker thread, reading from it, closes it (a closed fd is never read)
                self._close()

    def _ask_stop(self) -> None:
        try:
            with self._send:
                if self.conn is not None:
                    self.conn.send(("stop",))
        except OSError:
            pass

    def _close(self) -> None:
        """Under ``_guard``: forget the socket and a process that has exited."""
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        if self.proc is not None and self.proc.poll() is not None:
            self.proc = None


class Cancel:
    """What the daemon's drain calls on a running item: the child's executor is canceled."""

    def __init__(self, child: Child) -> None:
        self.child = child

    def request_cancel(self, reason: str, hard: bool = False) -> None:
        self.child.cancel(reason, hard)


def _reap(proc: subprocess.Popen[bytes] | None) -> int | None:
    """The exit status of a child whose socket closed (killed if it lingers)."""
    if proc is None:
        return None
    try:
        return proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        import signal

        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


# ---- the child -------------------------------------------------------------------------
def _child(conn: Connection) -> None:
    """The worker process: runs one request at a time through ``opsflow.api.execute``."""
    import signal

    # sent to the whole group (Ctrl-C, a service manager): the daemon drains, cancels our run and stops us.
    # A handler, not SIG_IGN, which the steps' processes would inherit through exec.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: None)
    _, store_url, grace, level = conn.recv()
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s %(name)s[worker {os.getpid()}]: %(message)s")
    from opsflow.api import execute
    from opsflow.errors import WindowClosed
    from opsflow.executor import Executor, NullObserver
    from opsflow.planning import Plan, PlannedStep, build_plan
    from opsflow.redact import Redactor
    from opsflow.store import open_store

    store = open_store(store_url)
    lock = threading.Lock()
    jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
    state: dict[str, Any] = {}

    def send(msg: tuple[Any, ...]) -> None:
        with lock:
            conn.send(msg)

    def listen() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the daemon is gone: nobody follows the run any more
                state["cancel"] = ("canceled: the opsflow serve process that started it is gone", True)
                executor = state.get("executor")
                if executor is not None:
                    executor.request_cancel(*state["cancel"])
                jobs.put(None)
                return
            if msg[0] == "run":
                jobs.put(msg)
            elif msg[0] == "cancel":
                state["cancel"] = (msg[1], msg[2])
                executor = state.get("executor")
                if executor is not None:
                    executor.request_cancel(msg[1], hard=msg[2])
            else:
                jobs.put(None)
                return

    class Watch(NullObserver):
        def run_started(self, run_id: str, plan: Plan) -> None:
            self.redactor = Redactor(plan.secrets)
            send(("started", run_id))

        def waiting(self, run_id: str, step: PlannedStep, message: str, deadline: float) -> None:
            send(("waiting", run_id, step.step.name, self.redactor.text(message), deadline))

    threading.Thread(target=listen, name="opsflow-worker-pipe", daemon=True).start()
    while (job := jobs.get()) is not None:
        _, request, run_id = job
        state.pop("cancel", None)
        plan = None
        try:
            try:
                plan = build_plan(request)
            except WindowClosed as exc:  # a maintenance window holds automatic remediation back too
                send(("not_started", "blackout", str(exc)))
                continue
            except OpsflowError as exc:
                send(("not_started", "invalid", str(exc)))
                continue
            executor = Executor(store, Watch(), grace=grace)
            state["executor"] = executor
            if "cancel" in state:
                executor.request_cancel(*state["cancel"])
            result = execute(plan, executor=executor, run_id=run_id)
            send(("finished", result))
        except (EOFError, OSError):
            break
        except Exception as exc:  # noqa: BLE001 - the process lives on for the next run
            logging.getLogger("opsflow.daemon").exception("run %s", run_id)
            text = f"internal error {type(exc).__name__}: {exc}"  # it goes into notices: the run's secrets masked
            send(("error", Redactor(plan.secrets).text(text) if plan is not None else text))
        finally:
            state.pop("executor", None)
    store.close()


if __name__ == "__main__":
    _child(Connection(int(sys.argv[1])))
