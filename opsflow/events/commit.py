"""Group commit: the rows of concurrent requests recorded in one durable store transaction.

Each caller hands its statements to :meth:`GroupCommit.put` and waits on the :class:`Ticket` —
blocking (:meth:`Ticket.wait`, a thread of ``opsflow daemon``) or awaiting (:meth:`Ticket.wait_async`,
the event loop of ``opsflow serve``, no thread per request). One committer thread takes every pending
ticket (up to ``max_statements``), writes them all with one ``write`` call — one transaction, one
commit, one fsync (see :func:`durable`) — and then releases every waiter of that batch: a caller
returns only after its own rows are committed and on disk, so a 200 sent after ``wait`` survives a
SIGKILL of the process (and, on SQLite and PostgreSQL alike, a crash of the machine).

Batches form by themselves: while one is written, the next requests queue behind it. When ``write``
fails, nothing of the batch is recorded (one transaction), and every waiter of the batch *and* every
ticket queued behind it gets the error (``on_fail`` is told), so nothing acknowledged rests on rows
the store refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opsflow.errors import StoreError
from opsflow.store.base import Statement, Store

log = logging.getLogger("opsflow.daemon")


class Ticket:
    """One caller's statements and what it wants done once they are committed (``payload``)."""

    __slots__ = ("statements", "payload", "_done", "error", "_loop", "_future")

    def __init__(self, statements: list[Statement], payload: Any) -> None:
        self.statements, self.payload = statements, payload
        self._done = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._future: asyncio.Future[None] | None = None

    def finish(self, error: BaseException | None = None) -> tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None:
        """Done (committed, or ``error``); returns the loop and future an async waiter awaits, to be resolved."""
        self.error = error
        self._done.set()
        if self._future is not None and self._loop is not None:
            return self._loop, self._future
        return None

    def _raise(self) -> None:
        if self.error is not None:
            raise StoreError(str(self.error) if isinstance(self.error, StoreError)
                             else f"store: {type(self.error).__name__}: {self.error} (nothing of it recorded)"
                             ) from self.error

    def wait(self) -> None:
        """Block until committed; a StoreError (a new one per waiter) when it was not."""
        self._done.wait()
        self._raise()

    async def wait_async(self) -> None:
        """The same, awaited on the running event loop (the committer resolves it there)."""
        if not self._done.is_set():
            self._loop = asyncio.get_running_loop()
            self._future = self._loop.create_future()
            if not self._done.is_set():  # finished meanwhile: finish() may have missed the future
                await self._future
        self._raise()


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for f in futures:
        if not f.done():
            f.set_result(None)


def durable(store: Store) -> Callable[[list[Statement]], None]:
    """``store.write_all`` whose commit is on disk when it returns.

    PostgreSQL's commit is (``synchronous_commit`` on, its default). SQLite's store runs WAL with
    ``synchronous=NORMAL``: a commit reaches the WAL file (the OS has it: a killed process loses
    nothing) but is synced at checkpoints only; here the WAL file is fsync'd after each batch, once
    for all the requests of the batch, which is what ``synchronous=FULL`` would do per transaction."""
    url = str(getattr(store, "url", ""))
    if getattr(store, "_dialect", "") != "sqlite" or not url:
        return store.write_all
    wal = Path(url + "-wal")
    state: dict[str, int] = {}

    def sync() -> None:
        try:
            st = os.stat(wal)
        except FileNotFoundError:
            return  # nothing written through the WAL yet
        fd = state.get("fd")
        if fd is None or state.get("ino") != st.st_ino:  # first time, or the WAL file was recreated
            if fd is not None:
                os.close(fd)
            fd = state["fd"] = os.open(wal, os.O_RDONLY | os.O_CLOEXEC)
            state["ino"] = st.st_ino
            dfd = os.open(wal.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)  # the WAL file's directory entry
            finally:
                os.close(dfd)
        os.fsync(fd)

    def write(statements: list[Statement]) -> None:
        store.write_all(statements)
        try:
            sync()
        except OSError as exc:
            raise StoreError(f"store {url}: cannot sync the write-ahead log: {exc}") from exc

    return write


class Background:
    """One thread taking work queued under ``_cond``; ``flush`` waits until it has none left."""

    def __init__(self, name: str) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._busy = False  # the thread works on what it took
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        raise NotImplementedError

    def _backlog(self) -> int:
        """Work queued and not taken yet (under ``_cond``)."""
        raise NotImplementedError

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is done (or failed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._backlog() or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)


class GroupCommit(Background):
    def __init__(self, write: Callable[[list[Statement]], None], *, on_commit: Callable[[Sequence[Any]], None],
                 on_fail: Callable[[Sequence[Any]], None] | None = None, max_statements: int = 5000,
                 name: str = "opsflow-commit") -> None:
        super().__init__(name)
        self.write, self.on_commit, self.on_fail = write, on_commit, on_fail
        self.max_statements = max_statements
        self._pending: deque[Ticket] = deque()
        self._size = 0  # statements pending
        self.batches = 0  # counts, for tests and benchmarks: transactions, tickets, seconds in write
        self.tickets = 0
        self.seconds = 0.0
        self._thread.start()

    # ---- callers -----------------------------------------------------------------------
    def put(self, statements: list[Statement], payload: Any) -> Ticket:
        """Queue a ticket; tickets are committed in the order they were put."""
        ticket = Ticket(statements, payload)
        with self._cond:
            if self._closed:
                ticket.finish(StoreError("store: the daemon stopped recording events (nothing of it recorded)"))
                return ticket
            self._pending.append(ticket)
            self._size += len(statements)
            self._cond.notify_all()
        return ticket

    def waiting(self) -> int:
        """Tickets put and not yet taken by the committer."""
        with self._cond:
            return len(self._pending)

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._busy

    def _backlog(self) -> int:
        return len(self._pending)

    # ---- the committer -----------------------------------------------------------------
    def _take(self) -> list[Ticket] | None:
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
            batch: list[Ticket] = []
            size = 0
            while self._pending and (not batch or size + len(self._pending[0].statements) <= self.max_statements):
                ticket = self._pending.popleft()
                batch.append(ticket)
                size += len(ticket.statements)
            self._size -= size
            self._busy = True
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._commit(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _commit(self, batch: list[Ticket]) -> None:
        t0 = time.perf_counter()
        try:
            self.write([s for t in batch for s in t.statements])
        except BaseException as exc:  # noqa: BLE001 - every waiter gets it; the committer goes on
            with self._cond:
                failed = batch + list(self._pending)
                self._pending.clear()
                self._size = 0
            if self.on_fail is not None:
                try:
                    self.on_fail([t.payload for t in failed])
                except Exception:  # noqa: BLE001 - the waiters must be released whatever happens
                    log.exception("after the store refused %d request(s)", len(failed))
            self._release(failed, exc)
            return
        self.batches += 1
        self.tickets += len(batch)
        self.seconds += time.perf_counter() - t0
        try:
            self.on_commit([t.payload for t in batch])
        except Exception:  # noqa: BLE001 - recorded is recorded: the waiters get their receipts
            log.exception("after recording %d request(s)", len(batch))
        self._release(batch, None)

    @staticmethod
    def _release(tickets: list[Ticket], error: BaseException | None) -> None:
        """Finish the tickets; the async waiters of one event loop are woken with one call."""
        loops: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for t in tickets:
            waiter = t.finish(error)
            if waiter is not None:
                loops.setdefault(waiter[0], []).append(waiter[1])
        for loop, futures in loops.items():
            try:
                loop.call_soon_threadsafe(_resolve, futures)
            except RuntimeError:  # the loop is closed: nobody awaits any more
                pass
