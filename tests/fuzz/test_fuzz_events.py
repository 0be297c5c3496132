"""Property-based fuzzing of event intake (hypothesis), bounded for CI (well under a minute).

In process: generated bodies — JSON of any shape, Alertmanager- and CloudEvents-shaped documents
with fields of random types, random bytes, lone surrogates, NULs, huge numbers, deep nesting — go
through the intake parsers and, when accepted, through the daemon's decisions into a real SQLite
store: each is either recorded whole or refused with a ``PayloadError`` (a 4xx), never anything else.
Then fewer of them go to a real daemon over HTTP: every answer is a 2xx or a 4xx, never a 5xx, and
its log holds no traceback. ``OPSFLOW_FUZZ_EXAMPLES`` scales the number of examples.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsflow.events import intake
from opsflow.events.daemon import Daemon as Core
from opsflow.events.daemon import Settings
from opsflow.events.server import JSON_TYPES
from opsflow.store.sql import SqlStore

SCALE = float(os.environ.get("OPSFLOW_FUZZ_EXAMPLES", "1"))
FIGURES: Counter[str] = Counter()

# ---- strategies ----------------------------------------------------------------------------------------------
# Mostly well-formed documents (so that most reach the rules and the store), each field sometimes of a random
# type or holding text no store keeps; and, as often, anything at all.
ANY_CHAR = st.characters(exclude_categories=())  # surrogates (Cs) and control characters included
bad_texts = st.one_of(st.text(ANY_CHAR, max_size=20), st.sampled_from(["\ud800", "a\udfff", "\x00", "x\udbff\ud7ff"]))
good_texts = st.one_of(st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20),
                       st.sampled_from(["\ud83d\ude00", "h1", "h2:9100", "192.0.2.3", "QuickFuzz", "", "~.*"]))
numbers = st.one_of(st.integers(), st.integers(min_value=10**30, max_value=10**60), st.floats(),
                    st.sampled_from([1e308, -0.0, 2**63, -(2**63) - 1]))
scalars = st.one_of(st.none(), st.booleans(), numbers, good_texts, bad_texts)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """The good value nine times in ten; else any JSON value, or text that cannot be stored."""
    return st.integers(0, 9).flatmap(lambda i: good if i else (st.one_of(json_values, bad_texts) if bad is None else bad))


json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(mostly(good_texts, bad_texts), inner, max_size=4)), max_leaves=20)


str_maps = mostly(st.dictionaries(good_texts, st.one_of(good_texts, st.integers(), st.booleans(), st.floats()),
                                  max_size=4))
alerts = st.fixed_dictionaries(
    {"status": mostly(st.sampled_from(["firing", "resolved"])),
     "labels": mostly(st.fixed_dictionaries({"alertname": mostly(st.just("QuickFuzz")),
                                             "instance": mostly(st.sampled_from(["h1", "h2:9100", "nope"]))},
                                            optional={"severity": mostly(good_texts), "x": good_texts}))},
    optional={"annotations": str_maps, "fingerprint": mostly(good_texts), "startsAt": mostly(good_texts),
              "endsAt": mostly(good_texts), "generatorURL": mostly(good_texts)})
alertmanager_docs = st.fixed_dictionaries(
    {"version": mostly(st.just("4")), "alerts": mostly(st.lists(alerts, max_size=4))},
    optional={"commonLabels": str_maps, "receiver": json_values, "groupKey": json_values,
              "status": json_values, "externalURL": json_values})
generic_docs = st.fixed_dictionaries(
    {"name": mostly(st.just("QuickFuzz"))},
    optional={**{k: mostly(good_texts) for k in ("status", "host", "severity", "message", "fingerprint", "id",
                                                 "source", "time")},
              "labels": str_maps, "annotations": str_maps, "data": mostly(st.dictionaries(good_texts, json_values))})
cloud_docs = st.fixed_dictionaries(
    {"specversion": mostly(st.just("1.0")), "id": mostly(good_texts), "source": mostly(good_texts),
     "type": mostly(st.just("QuickFuzz"))},
    optional={"subject": mostly(good_texts), "data": json_values, "ext": mostly(good_texts),
              "data_base64": json_values})
shaped = st.one_of(alertmanager_docs, generic_docs, cloud_docs, st.lists(st.one_of(generic_docs, cloud_docs),
                                                                        max_size=4), json_values)


def _nested(depth: int, kind: str) -> bytes:
    return (b'{"a":' * depth + b"1" + b"}" * depth) if kind == "object" else (b"[" * depth + b"]" * depth)


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(_nested, st.integers(1, 5000), st.sampled_from(["object", "list"])),
    st.integers(1, 6000).map(lambda n: b"9" * n),  # numbers past Python's 4300 digits
    st.sampled_from([b"1e999", b"-1e999", b"NaN", b"Infinity", b'"\\ud800"', b'{"name": "\\udc00"}', b"",
                     b'{"name": "x"' + b" " * 100, b"\xef\xbb\xbf{}", b'{"version": "4", "alerts": [1e999]}']),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """A hook and a body for it (mostly the right hook): a generated document, encoded one way or another, or
    bytes. Lone surrogates are ASCII-escaped (valid JSON) or, raw, make the body invalid UTF-8."""
    kind = draw(st.sampled_from(["alertmanager", "event", "event", "json", "raw"]))
    hook = "/hooks/alertmanager" if kind == "alertmanager" else "/hooks/event"
    path = draw(mostly(st.just(hook), st.sampled_from(["/hooks/alertmanager", "/hooks/event"])))
    if kind == "raw":
        return path, bytes(draw(raw_bodies))
    strategy = {"alertmanager": alertmanager_docs, "json": json_values}.get(
        kind, st.one_of(generic_docs, cloud_docs, st.lists(st.one_of(generic_docs, cloud_docs), max_size=4)))
    text = json.dumps(draw(strategy), ensure_ascii=draw(st.booleans()))
    return path, text.encode("utf-8", draw(mostly(st.just("backslashreplace"), st.just("surrogatepass"))))


# ---- in process ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Core]:
    """The daemon's core on a real SQLite store, with a rule for QuickFuzz events (no workers: nothing runs)."""
    from tests.lab.test_daemon import local_setup

    tmp = tmp_path_factory.mktemp("fuzz")
    cli, rb = local_setup(tmp)
    store = SqlStore.connect(str(tmp / "fuzz.db"))
    daemon = Core(Settings(inventory=str(cli.inventory), runbooks=str(rb), workers=1, queue_size=5), store)
    daemon.load()
    yield daemon
    print(f"\nfuzz in process: {dict(sorted(FIGURES.items()))}")
    store.close()


def parse(path: str, body: bytes, ctype: str) -> list[Any]:
    return intake.alertmanager(body) if path == "/hooks/alertmanager" else intake.generic(body, ctype)


@settings(max_examples=int(1500 * SCALE), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(request=requests(), ctype=st.sampled_from(JSON_TYPES))
def test_intake_records_a_request_whole_or_refuses_it_cleanly(core: Core, request: tuple[str, bytes],
                                                              ctype: str) -> None:
    path, body = request
    FIGURES["tried"] += 1
    try:
        events = parse(path, body, ctype)
    except intake.PayloadError as exc:  # the server answers 400 with this text
        FIGURES["refused"] += 1
        assert str(exc) and len(str(exc)) < 1000
        json.dumps({"error": str(exc)})  # it can be sent
        return
    before = len(core.store.events(limit=100000))
    receipts = core.submit(events)  # the store: any exception fails the example
    FIGURES["recorded"] += 1
    FIGURES["events"] += len(events)
    assert len(receipts) == len(events)
    assert core.settle(30)  # decided after the 200: a decision that raised leaves its events pending
    stored = core.store.events(limit=100000)
    assert len(stored) == before + len(events) and not [e for e in stored if e["outcome"] == "pending"]
    for sql, args in [core.store.event_row(e, []) for e in events]:  # what PostgreSQL would refuse: NUL
        assert not any(isinstance(a, str) and "\x00" in a for a in args), sql
    with core._lock:  # keep the queue from filling up: nothing works on it here
        core._queue.clear()
        core.guard = type(core.guard)(core.s.budget_runs, core.s.budget_window)


def test_syslog_takes_any_datagram() -> None:
    @settings(max_examples=int(500 * SCALE), deadline=None, database=None)
    @given(packet=st.one_of(st.binary(max_size=300), st.text(ANY_CHAR, max_size=100).map(
        lambda t: ("<13>1 - h app - - - " + t).encode("utf-8", "surrogatepass"))))
    def check(packet: bytes) -> None:
        event = intake.syslog(packet, "127.0.0.1")
        for text in (event.name, event.host, event.message, json.dumps(event.data, ensure_ascii=False)):
            assert "\x00" not in text
            text.encode("utf-8")  # no surrogate: storable

    check()


# ---- through a real daemon -------------------------------------------------------------------------------------
def test_a_real_daemon_answers_every_request_with_a_2xx_or_4xx(tmp_path: Path) -> None:
    from tests.lab.test_daemon import Daemon, local_setup

    cli, rb = local_setup(tmp_path)
    d = Daemon(cli, rb, "--queue", "5", "--workers", "1")
    codes: Counter[int] = Counter()
    try:
        @settings(max_examples=int(250 * SCALE), deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(request=requests(), ctype=st.sampled_from(JSON_TYPES))
        def post(request: tuple[str, bytes], ctype: str) -> None:
            path, body = request
            status, reply, _ = d.request("POST", path, body, headers={"Content-Type": ctype})
            codes[status] += 1
            assert 200 <= status < 300 or 400 <= status < 500, (status, reply, body[:200])
            if status >= 400:
                assert reply.get("error"), reply

        post()
        assert d.request("GET", "/healthz", token=None)[0] == 200
    finally:
        assert d.stop() == 0
    print(f"\nfuzz over HTTP: {sum(codes.values())} requests, answers {dict(sorted(codes.items()))}")
    assert codes[200] and sum(v for k, v in codes.items() if k >= 400)  # both kinds were tried
    log = d.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
