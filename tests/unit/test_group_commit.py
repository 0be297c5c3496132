"""Group commit of the daemon's intake (opsflow.events.commit): concurrent requests share one store
transaction, each caller returns only once its rows are committed, and a batch the store refuses is
refused to every one of its callers, with nothing of it recorded and every decision of it undone."""

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


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_submits_each_recorded_exactly_once(tmp_path: Path, backend: str) -> None:
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
        events, actions = _recorded(store)
        ids = [r["id"] for r in receipts]
        assert len(ids) == len(set(ids)) == sum(events.values())  # every receipt's event, once, nothing else
        assert set(events) == set(ids) and max(events.values()) == 1
        acted = [a for r in receipts for a in r.get("actions", [])]
        assert len(acted) == sum(actions.values()) and max(actions.values()) == 1
        queued = {a["action"] for a in acted if a["outcome"] == "queued"}
        outcomes = dict(store._exec("SELECT id, outcome FROM event_actions"))
        assert queued and all(outcomes[a] == "queued" for a in queued)
        assert {i.action for i in core._queue} == queued and all(i.ready for i in core._queue)
        assert core.metrics.value("opsflow_events_received_total", {"source": "webhook"}) == len(ids)
        assert core.commits.tickets == threads * requests


def test_tickets_put_while_a_batch_is_written_are_committed_together() -> None:
    writes: list[list[Statement]] = []
    entered, gate = threading.Event(), threading.Event()

    def write(statements: list[Statement]) -> None:
        if not writes:
            entered.set()
            gate.wait(30)
        writes.append(statements)

    done: list[Any] = []
    commits = GroupCommit(write, lock=threading.RLock(), on_commit=done.extend, on_fail=lambda _: None)

    def one(i: int) -> None:
        commits.arrive()
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


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_batch_the_store_refuses_fails_every_waiter_and_leaves_nothing(tmp_path: Path, backend: str) -> None:
    with _store(backend, tmp_path) as store:
        core = _daemon(tmp_path, store)
        core.submit([_event("QuickSeed", 1, "seed", id="ev-seed")])
        # an action row already holds the id the decision on event ev-c2 will write: the batch fails in its
        # second statement (actions), after its events were inserted in the same transaction
        store.add_action({"id": "ev-c2.0", "event_id": "ev-seed", "rule": "quick", "outcome": "suppressed"})
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

        def request(name: str) -> list[Event]:  # the same alerts again for the retry
            hosts = {"a": [2], "b": [3, 4], "c": [5, 6, 7], "d": [8]}[name]
            return [_event("QuickDisk", h, f"fp-{name}-{h}", id=f"ev-{name}{k}") for k, h in enumerate(hosts)]

        a = threading.Thread(target=submit, args=("a", request("a")))
        a.start()
        assert store.entered.wait(10)  # the committer writes a's batch, held at the gate
        late = [threading.Thread(target=submit, args=(n, request(n))) for n in "bcd"]
        for t in late:
            t.start()
        deadline = time.monotonic() + 10
        while core.commits.waiting() < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert core.commits.waiting() == 3 and not results
        gate.set()
        for t in [a, *late]:
            t.join(30)
        assert isinstance(results["a"], list) and results["a"][0]["actions"][0]["outcome"] == "queued"
        assert all(isinstance(results[n], StoreError) for n in "bcd"), results
        events, actions = _recorded(store)
        assert set(events) == set(before[0]) | {"ev-a0"}  # nothing of b, c or d: not even its events
        assert set(actions) == set(before[1]) | {"ev-a0.0"}
        assert [i.action for i in core._queue] == [*queued_before, "ev-a0.0"]  # no phantom remediation
        assert core.metrics.value("opsflow_events_received_total", {"source": "webhook"}) == 2  # seed and a

        # the senders retry (without the clash): decided afresh, neither duplicates nor held by phantom runs
        store._exec("DELETE FROM event_actions WHERE id = ?", ("ev-c2.0",))
        for n in "bcd":
            receipts = core.submit(request(n))
            assert [r["actions"][0]["outcome"] for r in receipts] == ["queued"] * len(receipts), receipts
        events, _ = _recorded(store)
        assert len(events) == 1 + 1 + 2 + 3 + 1 and max(events.values()) == 1
        assert all(i.ready for i in core._queue) and len(core._queue) == 1 + 1 + 2 + 3 + 1
