"""Group commit: the statements of concurrent requests recorded in one store transaction.

Each caller hands its statements to :meth:`GroupCommit.put` (in the order its decisions were
taken) and blocks in :meth:`Ticket.wait`. One committer thread takes every pending ticket (up to
``max_statements``), writes them all with one ``write`` call — one transaction, one commit — and
then releases every waiter of that batch: a caller returns only after its own rows are committed,
so a 200 sent after ``wait`` is as safe as with a transaction per request.

The committer waits for more (at most ``gather`` seconds) only while callers announced with
:meth:`arrive` are still deciding: a lone request is written at once. When ``write`` fails,
nothing of the batch is recorded (one transaction), and every waiter of the batch *and* every
ticket queued behind it gets the error: later decisions may rest on the failed ones (a duplicate,
a busy host), so ``on_fail`` undoes them all, newest first, under the caller's ``lock``, before
anything new is decided.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from opsflow.errors import StoreError
from opsflow.store.base import Statement

log = logging.getLogger("opsflow.daemon")


class Ticket:
    """One caller's statements and what it wants done once they are committed (``payload``)."""

    __slots__ = ("statements", "payload", "_done", "error")

    def __init__(self, statements: list[Statement], payload: Any) -> None:
        self.statements, self.payload = statements, payload
        self._done = threading.Event()
        self.error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self._done.set()

    def wait(self) -> None:
        """Block until committed; a StoreError (a new one per waiter) when it was not."""
        self._done.wait()
        if self.error is not None:
            raise StoreError(str(self.error) if isinstance(self.error, StoreError)
                             else f"store: {type(self.error).__name__}: {self.error} (nothing of it recorded)"
                             ) from self.error


class GroupCommit:
    def __init__(self, write: Callable[[list[Statement]], None], *, lock: Any,
                 on_commit: Callable[[Sequence[Any]], None], on_fail: Callable[[Sequence[Any]], None],
                 gather: float = 0.002, max_statements: int = 2000, name: str = "opsflow-commit") -> None:
        self.write, self.lock, self.on_commit, self.on_fail = write, lock, on_commit, on_fail
        self.gather, self.max_statements = gather, max_statements
        self._cond = threading.Condition(threading.Lock())
        self._pending: deque[Ticket] = deque()
        self._coming = 0  # callers deciding now, whose tickets are about to be put
        self._busy = False  # a batch is being written
        self._closed = False
        self.batches = 0  # counts, for tests and benchmarks
        self.tickets = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # ---- callers -----------------------------------------------------------------------
    def arrive(self) -> None:
        """A caller starts deciding: the committer may wait (``gather``) for its ticket."""
        with self._cond:
            self._coming += 1

    def leave(self) -> None:
        """A caller that arrived puts nothing (its decisions failed, or it has no statements)."""
        with self._cond:
            self._coming -= 1
            self._cond.notify_all()

    def put(self, statements: list[Statement], payload: Any) -> Ticket:
        """Queue a ticket (call it under ``lock``, right after deciding, to keep decision order)."""
        ticket = Ticket(statements, payload)
        with self._cond:
            self._coming -= 1
            if self._closed:
                ticket.finish(StoreError("store: the daemon stopped recording events (nothing of it recorded)"))
                return ticket
            self._pending.append(ticket)
            self._cond.notify_all()
        return ticket

    def waiting(self) -> int:
        """Tickets put and not yet taken by the committer."""
        with self._cond:
            return len(self._pending)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every ticket put so far is written (or failed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy:
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

    # ---- the committer -----------------------------------------------------------------
    def _take(self) -> list[Ticket] | None:
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
            deadline = time.monotonic() + self.gather
            while self._coming > 0 and self._size() < self.max_statements:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[Ticket] = []
            size = 0
            while self._pending and (not batch or size + len(self._pending[0].statements) <= self.max_statements):
                ticket = self._pending.popleft()
                batch.append(ticket)
                size += len(ticket.statements)
            self._busy = True
            return batch

    def _size(self) -> int:
        return sum(len(t.statements) for t in self._pending)

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
        try:
            self.write([s for t in batch for s in t.statements])
        except BaseException as exc:  # noqa: BLE001 - every waiter gets it; the committer goes on
            with self.lock:  # nothing new is decided until the failed decisions are undone
                with self._cond:
                    failed = batch + list(self._pending)
                    self._pending.clear()
                try:
                    self.on_fail([t.payload for t in failed])
                except Exception:  # noqa: BLE001 - the waiters must be released whatever happens
                    log.exception("undoing %d request(s) the store refused", len(failed))
            for t in failed:
                t.finish(exc)
            return
        self.batches += 1
        self.tickets += len(batch)
        try:
            self.on_commit([t.payload for t in batch])
        except Exception:  # noqa: BLE001 - recorded is recorded: the waiters get their receipts
            log.exception("after recording %d request(s)", len(batch))
        for t in batch:
            t.finish()
