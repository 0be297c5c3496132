"""Group commit of the daemon's intake (opsflow.events.commit): concurrent requests share one store
transaction, each caller returns only once its rows are committed, and a batch the store refuses is
refused to every one of its callers, with nothing of it recorded. Decisions come after, off the
request path (opsflow.events.decide): refused ones are undone and taken again, and events a stopped
daemon left undecided are decided by the next one."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsflow.errors import StoreError
from opsflow.events.commit import GroupCommit
from opsflow.events.daemon import Daemon, Settings
from opsflow.events.models import Event
from opsflow.store.base import Statement
from opsflow.store.sql import SqlStore
from tests.helpers import pg_store_url, write_runbook

HOSTS = 8


class _GatedStore(SqlStore):
    """A real store whose next ``write_all`` waits at ``gate`` (when set) before writing."""

    gate: threading.Event | None = None
    entered: threading.Event | None = None

    def write_all(self, statements: list[Statement]) -> None:
        gate, self.gate = self.gate, None
        if gate is not None:
            assert self.entered is not None
            self.entered.set()
            gate.wait(30)
        super().write_all(statements)


@contextlib.contextmanager
def _store(backend: str, tmp_path: Path) -> Iterator[_GatedStore]:
    with contextlib.ExitStack() as stack:
        url = str(tmp_path / "s.db") if backend == "sqlite" else stack.enter_context(pg_store_url())
        store = _GatedStore.connect(url)
        assert isinstance(store, _GatedStore)
        try:
            yield store
        finally:
            store.close()


def _daemon(tmp_path: Path, store: SqlStore, queue: int = 1000) -> Daemon:
    inventory = tmp_path / "inventory.yml"
    names = "\n".join(f"        h{i}: {{ansible_host: 192.0.2.{i}}}" for i in range(1, HOSTS + 1))
    inventory.write_text(f"all:\n  children:\n    servers:\n      vars: {{platform: linux}}\n      hosts:\n{names}\n")
    write_runbook(tmp_path / "rb", "quick", """\
        name: quick
        targets: servers
        triggers:
          events:
            - name: quick
              match: {name: ~Quick.*}
              host: labels.instance
              dedup: {key: [fingerprint]}
              cooldown: 0
        steps:
          - name: remediate
            local: ["true"]
    """)
    core = Daemon(Settings(inventory=str(inventory), runbooks=str(tmp_path / "rb"), queue_size=queue,
                           budget_runs=1_000_000), store)
    core.load()
    return core  # not started: no worker takes the queue, so every decision stays visible


def _event(name: str, host: int, fp: str, **kw: Any) -> Event:
    return Event(source="webhook", name=name, host=f"h{host}", labels={"instance": f"h{host}"}, fingerprint=fp,
                 **kw)


def _recorded(store: SqlStore) -> tuple[Counter[str], Counter[str]]:
    events = Counter(str(r[0]) for r in store._exec("SELECT id FROM events"))
    actions = Counter(str(r[0]) for r in store._exec("SELECT id FROM event_actions"))
    return events, actions


def _decisions(store: SqlStore) -> dict[str, str]:
    """Action id → outcome."""
    return {str(r[0]): str(r[1]) for r in store._exec("SELECT id, outcome FROM event_actions")}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_submits_each_recorded_exactly_once_then_decided(tmp_path: Path, backend: str) -> None:
    threads, requests = 8, 30
    with _store(backend, tmp_path) as store:
        core = _daemon(tmp_path, store)
        receipts: list[dict[str, Any]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def sender(k: int) -> None:
            try:
                for i in range(requests):  # 1-3 events a request: matching ones, others, a few repeats
                    events = [_event("QuickDisk" if (i + j) % 3 else "Other", (k + i + j) % HOSTS + 1,
                                     f"fp-{k}-{i // 2}-{j}") for j in range(1 + (i + k) % 3)]
                    got = core.submit(events)
                    with lock:
                        receipts.extend(got)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        workers = [threading.Thread(target=sender, args=(k,)) for k in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
        assert not errors, errors[:3]
        assert {r["outcome"] for r in receipts} == {"recorded"}  # decided after the 200, off the request path
        assert core.settle(30)
        events, actions = _recorded(store)
        ids = [r["id"] for r in receipts]
        assert len(ids) == len(set(ids)) == sum(events.values())  # every receipt's event, once, nothing else
        assert set(events) == set(ids) and max(events.values()) == 1
        outcomes = dict(store._exec("SELECT id, outcome FROM events"))
        matched = {i for i, o in outcomes.items() if o == "matched"}
        assert set(outcomes.values()) == {"matched", "no_rule"}  # none left pending
        assert {a.rsplit(".", 1)[0] for a in actions} == matched and max(actions.values()) == 1
        queued = {a for a, o in _decisions(store).items() if o == "queued"}
        assert queued and {i.action for i in core._queue} == queued and all(i.ready for i in core._queue)
        assert core.metrics.value("opsflow_events_received_total", {"source": "webhook"}) == len(ids)
        assert core.commits.tickets >= threads * requests


def test_tickets_put_while_a_batch_is_written_are_committed_together() -> None:
    writes: list[list[Statement]] = []
    entered, gate = threading.Event(), threading.Event()

    def write(statements: list[Statement]) -> None:
        if not writes:
            entered.set()
            gate.wait(30)
        writes.append(statements)

    done: list[Any] = []
    commits = GroupCommit(write, on_commit=done.extend)

    def one(i: int) -> None:
        commits.put([("INSERT", (i,))], i).wait()

    first = threading.Thread(target=one, args=(0,))
    first.start()
    assert entered.wait(10)
    rest = [threading.Thread(target=one, args=(i,)) for i in range(1, 6)]
    for t in rest:
        t.start()
    deadline = time.monotonic() + 10
    while commits.waiting() < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not done  # nobody returned before its rows were written
    gate.set()
    for t in [first, *rest]:
        t.join(10)
    assert [len(w) for w in writes] == [1, 5] and commits.batches == 2  # one transaction for the five
    assert sorted(done) == [0, 1, 2, 3, 4, 5]
    commits.close()


def test_async_waiters_are_released_on_their_event_loop() -> None:
    import asyncio

    commits = GroupCommit(lambda _s: None, on_commit=lambda _p: None)

    async def many() -> int:
        tickets = [commits.put([("INSERT", (i,))], i) for i in range(50)]
        await asyncio.gather(*(t.wait_async() for t in tickets))
        return len(tickets)

    assert asyncio.run(many()) == 50
    commits.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_batch_the_store_refuses_fails_every_waiter_and_leaves_nothing(tmp_path: Path, backend: str) -> None:
    with _store(backend, tmp_path) as store:
        core = _daemon(tmp_path, store)
        core.submit([_event("QuickSeed", 1, "seed", id="ev-seed")])
        assert core.settle(30)
        before = _recorded(store)
        queued_before = [i.action for i in core._queue]

        gate = threading.Event()
        store.entered, store.gate = threading.Event(), gate
        results: dict[str, Any] = {}

        def submit(name: str, events: list[Event]) -> None:
            try:
                results[name] = core.submit(events)
            except StoreError as exc:
                results[name] = exc

        def request(name: str, clash: bool = False) -> list[Event]:  # the same alerts again for the retry
            hosts = {"a": [2], "b": [3, 4], "c": [5, 6, 7], "d": [8]}[name]
            return [_event("QuickDisk", h, f"fp-{name}-{h}", id="ev-seed" if clash and k == 2 else f"ev-{name}{k}")
                    for k, h in enumerate(hosts)]

        a = threading.Thread(target=submit, args=("a", request("a")))
        a.start()
        assert store.entered.wait(10)  # the committer writes a's batch, held at the gate
        # c's third event repeats an id already recorded: b, c and d are written together, and refused together
        late = [threading.Thread(target=submit, args=(n, request(n, clash=n == "c"))) for n in "bcd"]
        for t in late:
            t.start()
        deadline = time.monotonic() + 10
        while core.commits.waiting() < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert core.commits.waiting() == 3 and not results
        gate.set()
        for t in [a, *late]:
            t.join(30)
        assert isinstance(results["a"], list) and results["a"][0]["outcome"] == "recorded"
        assert all(isinstance(results[n], StoreError) for n in "bcd"), results
        assert core.settle(30)
        events, actions = _recorded(store)
        assert set(events) == set(before[0]) | {"ev-a0"}  # nothing of b, c or d: not even its events
        assert set(actions) == set(before[1]) | {"ev-a0.0"}
        assert [i.action for i in core._queue] == [*queued_before, "ev-a0.0"]  # no phantom remediation
        assert core.metrics.value("opsflow_events_received_total", {"source": "webhook"}) == 2  # seed and a

        for n in "bcd":  # the senders retry (without the clash): recorded, then decided, as new
            core.submit(request(n))
        assert core.settle(30)
        events, _ = _recorded(store)
        assert len(events) == 1 + 1 + 2 + 3 + 1 and max(events.values()) == 1
        assert set(_decisions(store).values()) == {"queued"}
        assert all(i.ready for i in core._queue) and len(core._queue) == 1 + 1 + 2 + 3 + 1


class _RefusingStore(_GatedStore):
    """Refuses the next ``refuse`` transactions that record decisions."""

    refuse = 0

    def write_all(self, statements: list[Statement]) -> None:
        if self.refuse and any(sql.startswith("UPDATE events") for sql, _ in statements):
            self.refuse -= 1
            raise StoreError("store: disk I/O error (test)")
        super().write_all(statements)


def test_decisions_the_store_refuses_are_undone_and_taken_again(tmp_path: Path, monkeypatch: Any) -> None:
    from opsflow.events import decide

    monkeypatch.setattr(decide, "RETRY", 0.05)
    store = _RefusingStore.connect(str(tmp_path / "s.db"))
    assert isinstance(store, _RefusingStore)
    try:
        core = _daemon(tmp_path, store)
        store.refuse = 2
        core.submit([_event("QuickDisk", 1, "fp-1"), _event("QuickDisk", 2, "fp-2"), _event("Other", 3, "fp-3")])
        assert core.settle(30) and store.refuse == 0
        assert dict(store._exec("SELECT name, outcome FROM events")) == {"QuickDisk": "matched", "Other": "no_rule"}
        assert sorted(_decisions(store).values()) == ["queued", "queued"]
        assert len(core._queue) == 2  # each once: the refused decisions left no phantom on the queue or guard
    finally:
        store.close()


def test_events_left_pending_are_decided_at_the_next_start(tmp_path: Path) -> None:
    """A SIGKILL between recording and deciding leaves events `pending`: the next daemon decides them."""
    store = _GatedStore.connect(str(tmp_path / "s.db"))
    try:
        left = [_event("QuickDisk", h, f"fp-{h}", id=f"ev-left{h}", received_at=time.time() - 5) for h in (1, 2)]
        store.write_all([store.event_row(e, None) for e in left])  # recorded, never decided
        assert [e["outcome"] for e in store.pending_events()] == ["pending", "pending"]
        core = _daemon(tmp_path, store)
        core.start()
        assert core.settle(30)
        assert store.pending_events() == []
        deadline = time.monotonic() + 30
        while {a["outcome"] for a in store.recent_actions(0)} - {"finished"} and time.monotonic() < deadline:
            time.sleep(0.02)
        started = store.recent_actions(0)
        assert sorted(a["id"] for a in started) == ["ev-left1.0", "ev-left2.0"]
        assert all(a["run_id"] and a["start_latency"] >= 5 for a in started), started  # latency from receipt
        core.drain(timeout=5)
    finally:
        store.close()


def test_runs_a_killed_daemon_had_queued_are_queued_again(tmp_path: Path) -> None:
    """Queued (decided, recorded), then the daemon was killed before a worker took it: the next one runs it."""
    import socket

    store = _GatedStore.connect(str(tmp_path / "s.db"))
    try:
        now = time.time()
        event = _event("QuickDisk", 3, "fp-q", id="ev-q", received_at=now - 2)
        dead = f"{socket.gethostname()}:999999999:0"  # no such process on this node
        old = _event("QuickDisk", 4, "fp-old", id="ev-old", received_at=now - 3600)
        store.write_all([store.event_row(event, ["quick"]), store.event_row(old, ["quick"]),
                         *(store.action_row({"id": f"{e.id}.0", "event_id": e.id, "rule": "quick", "host": e.host,
                                             "dedup_key": e.fingerprint, "outcome": "queued", "daemon": dead,
                                             "received_at": e.received_at, "queued_at": e.received_at})
                           for e in (event, old))])
        core = _daemon(tmp_path, store)
        core.start()
        deadline = time.monotonic() + 30
        while store.recent_actions(0)[-1]["outcome"] != "finished" and time.monotonic() < deadline:
            time.sleep(0.02)
        by_id = {a["id"]: a for a in store.recent_actions(0)}
        assert by_id["ev-q.0"]["outcome"] == "finished" and by_id["ev-q.0"]["run_id"]  # taken over, and run
        assert by_id["ev-q.0"]["daemon"] == core.identity
        assert (by_id["ev-old.0"]["outcome"], by_id["ev-old.0"]["reason"]) == ("canceled", "daemon_stopped")  # stale
        core.drain(timeout=5)
    finally:
        store.close()
