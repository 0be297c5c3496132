"""Event intake, rules, the guard, metrics and the event records — the daemon's pure parts, fast."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from opsflow.errors import RunbookError
from opsflow.events import intake
from opsflow.events.metrics import Metrics
from opsflow.events.models import Event, EventTrigger, parse_duration
from opsflow.events.rules import HostIndex, Rule, evaluate, extract, occurrence, pattern_ok
from opsflow.events.safety import Guard
from opsflow.inventory.models import Host, Inventory
from opsflow.runbook.validate import load_runbook
from opsflow.store.sql import SqlStore

# what Alertmanager 0.25 posted to a webhook for `amtool alert add DiskFull instance=srv1 severity=critical`
AM_PAYLOAD = {
    "receiver": "opsflow", "status": "firing", "groupKey": '{}:{alertname="DiskFull", instance="srv1"}',
    "truncatedAlerts": 0, "groupLabels": {"alertname": "DiskFull", "instance": "srv1"},
    "commonLabels": {"alertname": "DiskFull", "instance": "srv1", "severity": "critical"},
    "commonAnnotations": {"summary": "{{ 7*7 }}"}, "externalURL": "http://127.0.0.1:9093", "version": "4",
    "alerts": [{"status": "firing", "labels": {"alertname": "DiskFull", "instance": "srv1", "severity": "critical"},
                "annotations": {"summary": "{{ 7*7 }}"}, "startsAt": "2026-11-23T17:21:59.92370896Z",
                "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "3bbc7e7aa3e0e6c2"}],
}


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


# ---- intake ------------------------------------------------------------------------------------------------
def test_alertmanager_payload_is_one_event_per_alert() -> None:
    resolved = {**AM_PAYLOAD["alerts"][0], "status": "resolved", "labels": {"alertname": "DiskFull",  # type: ignore[dict-item]
                                                                              "instance": "srv2:9100"}}
    events = intake.alertmanager(body({**AM_PAYLOAD, "alerts": [*AM_PAYLOAD["alerts"], resolved]}))  # type: ignore[list-item]
    first, second = events
    assert (first.source, first.name, first.status, first.host, first.severity) == (
        "alertmanager", "DiskFull", "firing", "srv1", "critical")
    assert first.message == "{{ 7*7 }}" and first.fingerprint == "3bbc7e7aa3e0e6c2"
    assert first.occurrence == "2026-11-23T17:21:59.92370896Z" and first.data["receiver"] == "opsflow"
    assert second.status == "resolved" and second.host == "srv2:9100"
    assert second.labels["severity"] == "critical"  # commonLabels fill in


@pytest.mark.parametrize("doc, reason", [
    ({**AM_PAYLOAD, "version": "3"}, "unsupported Alertmanager webhook version"),
    ({**AM_PAYLOAD, "alerts": {"a": 1}}, "alerts: expected a list"),
    ({**AM_PAYLOAD, "commonLabels": {}, "alerts": [{"status": "firing", "labels": {"x": "y"}}]},
     "alerts[0].labels.alertname: missing"),
    ({**AM_PAYLOAD, "alerts": [{"status": "maybe", "labels": {"alertname": "A"}}]}, "expected firing or resolved"),
    ({**AM_PAYLOAD, "alerts": [{"status": "firing", "labels": {"alertname": ["A"]}}]}, "expected a string"),
    ([AM_PAYLOAD], "expected an Alertmanager webhook object"),
])
def test_alertmanager_payload_of_the_wrong_shape_is_refused(doc: Any, reason: str) -> None:
    with pytest.raises(intake.PayloadError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        intake.alertmanager(body(doc))


def test_bad_json_names_the_place() -> None:
    with pytest.raises(intake.PayloadError, match="line 1 column"):
        intake.generic(b'{"name": ')
    with pytest.raises(intake.PayloadError, match="not UTF-8"):
        intake.generic(b"\xff")


def test_generic_and_cloudevents() -> None:
    e = intake.generic(body({"name": "DiskFull", "host": "srv1", "labels": {"app": "web", "n": 3},
                             "message": "$(id)", "data": {"mount": {"path": "/var"}}}))[0]
    assert (e.source, e.status, e.labels, e.get("data.mount.path")) == ("webhook", "firing", {"app": "web", "n": "3"},
                                                                      "/var")
    assert e.fingerprint == intake.generic(body({"name": "DiskFull", "host": "srv1",
                                                 "labels": {"n": 3, "app": "web"}}))[0].fingerprint
    ce = {"specversion": "1.0", "id": "42", "source": "/monitor", "type": "DiskFull", "subject": "srv3",
          "region": "eu", "data": {"severity": "critical", "message": "full", "labels": {"app": "db"}}}
    c = intake.generic(body(ce), "application/cloudevents+json")[0]
    assert (c.source, c.name, c.host, c.severity, c.message) == ("cloudevents", "DiskFull", "srv3", "critical", "full")
    assert c.labels == {"region": "eu", "app": "db"} and c.data["ce_id"] == "42"
    batch = intake.generic(body([ce, {**ce, "id": "43"}]), "application/cloudevents-batch+json")
    assert batch[0].fingerprint == c.fingerprint != batch[1].fingerprint  # source + id identify an event


@pytest.mark.parametrize("doc, reason", [
    ({"host": "srv1"}, "event.name: missing"),
    ({"name": "X", "command": "rm"}, "unknown key"),
    ({"name": "X", "status": "open"}, "expected firing or resolved"),
    ({"name": "X", "data": [1]}, "event.data: expected an object"),
    ({"specversion": "1.0", "type": "X", "source": "s"}, "without id"),
    ({"specversion": "0.3", "type": "X", "source": "s", "id": "1"}, "is not supported"),
    ({"specversion": "1.0", "type": "X", "source": "s", "id": "1", "data_base64": "AA=="}, "binary data"),
    ([], "empty list"),
    ("text", "expected an object"),
])
def test_generic_events_of_the_wrong_shape_are_refused(doc: Any, reason: str) -> None:
    with pytest.raises(intake.PayloadError, match=reason):
        intake.generic(body(doc))


def test_syslog_rfc5424_rfc3164_and_anything_else() -> None:
    e = intake.syslog(b'<29>1 2026-11-23T17:21:28.7Z rtr1 ospfd 812 ADJ [origin ip="10.0.0.1"][x@1 a="b\\"c"] '
                      b'\xef\xbb\xbfAdjChg: Nbr 1.1.1.1 on eth0:10.0.0.1: Full -> Deleted', "127.0.0.1")
    assert (e.host, e.name, e.severity, e.data["facility"], e.data["msgid"], e.peer) == (
        "rtr1", "ospfd", "notice", 3, "ADJ", "127.0.0.1")
    assert e.message.startswith("AdjChg") and e.data["structured_data"] == {"origin": {"ip": "10.0.0.1"},
                                                                             "x@1": {"a": 'b"c'}}
    b = intake.syslog(b"<11>Nov 23 17:21:28 srv2 sshd[99]: error: kex")
    assert (b.host, b.name, b.severity, b.data["procid"], b.message, b.data["format"]) == (
        "srv2", "sshd", "err", "99", "error: kex", "rfc3164")
    nil = intake.syslog(b"<14>1 - - - - - - hello")
    assert (nil.host, nil.name, nil.message) == ("", "syslog", "hello")
    raw = intake.syslog(b"just text\n")
    assert raw.message == "just text" and raw.data["format"] == "unparsed"


# ---- rules -------------------------------------------------------------------------------------------------
def inventory() -> Inventory:
    hosts = {"srv1": Host("srv1", {"ansible_host": "10.0.0.11"}, ("servers",)),
             "srv2": Host("srv2", {"ansible_host": "10.0.0.12"}, ("servers",)),
             "rtr1": Host("rtr1", {"ansible_host": "10.0.0.250", "platform": "frr"}, ("routers",))}
    return Inventory(hosts=hosts, groups={"servers": ["srv1", "srv2"], "routers": ["rtr1"]})


HOSTS = HostIndex.of(inventory())


@pytest.mark.parametrize("value, host", [("srv1", "srv1"), ("srv1:9100", "srv1"), ("10.0.0.12", "srv2"),
                                         ("10.0.0.12:9100", "srv2"), ("srv1.example.com", "srv1"),
                                         ("srv9", None), ("", None), ("[::1]:80", None)])
def test_hosts_are_found_by_name_address_and_port(value: str, host: str | None) -> None:
    assert HOSTS.resolve(value) == host


def test_patterns() -> None:
    assert pattern_ok("critical", "critical") and not pattern_ok("critical", "Critical")
    assert pattern_ok(["warning", "critical"], "critical") and pattern_ok("~crit.*", "critical")
    assert not pattern_ok("~crit", "critical")  # a regex matches the whole value
    assert pattern_ok("srv*", "srv12") and not pattern_ok("srv1", None)


def rule(targets: tuple[str, ...] = ("srv1", "srv2"), **trigger: Any) -> Rule:
    return Rule(name="r", runbook="rb", path="rb.yaml", trigger=EventTrigger.model_validate(trigger),
                targets=frozenset(targets))


def test_a_rule_matches_labels_severity_message_and_maps_params() -> None:
    r = rule(source="alertmanager", match={"labels": {"alertname": "DiskFull"}, "severity": ["critical", "page"],
                                           "message": r"\d+% full"},
             host="labels.instance", params={"app": {"field": "labels.app", "regex": "^([a-z]+)$"},
                                            "why": "annotations.summary", "mount": "labels.mountpoint"})
    e = Event(source="alertmanager", name="DiskFull", severity="critical", message="97% full",
              labels={"alertname": "DiskFull", "instance": "srv2:9100", "app": "web"},
              annotations={"summary": "{{ 7*7 }} $(id)"}, fingerprint="f1", occurrence="t1")
    m = evaluate(r, e, HOSTS)
    assert m is not None and m.starts and m.host == "srv2" and m.problem is None and m.key == "f1"
    assert m.params == {"app": "web", "why": "{{ 7*7 }} $(id)"}  # absent mountpoint: the default stays
    bad = Event(**{**e.__dict__, "labels": {**e.labels, "app": "web; rm -rf /"}})
    assert "app" not in (evaluate(r, bad, HOSTS) or m).params  # the regex keeps unsafe values out
    assert evaluate(r, Event(**{**e.__dict__, "severity": "info"}), HOSTS) is None
    assert evaluate(r, Event(**{**e.__dict__, "source": "webhook"}), HOSTS) is None
    assert evaluate(r, Event(**{**e.__dict__, "message": "fine"}), HOSTS) is None


def test_the_host_must_be_known_and_a_target() -> None:
    r = rule(match={"name": "X"})
    problem = lambda host: (evaluate(r, Event(source="webhook", name="X", host=host), HOSTS) or None).problem  # noqa: E731
    assert problem("srv1") is None
    assert problem("rtr1") == "rtr1 is not a target of runbook rb"
    assert problem("srv9") == "'srv9' is not an inventory host"
    assert problem("") == "the event names no host (host)"


def test_host_and_params_from_a_syslog_message() -> None:
    r = rule(targets=("rtr1",), source="syslog", match={"message": "AdjChg: .*Full -> Deleted"},
             host={"field": "message", "regex": r"on [^:\s]+:([0-9.]+):"},
             params={"interface": {"field": "message", "regex": r"on ([^:\s]+):"}})
    e = intake.syslog(b"<29>1 - vm ospfd - - - AdjChg: Nbr 10.0.0.249(default) on eth0:10.0.0.250: Full -> Deleted")
    m = evaluate(r, e, HOSTS)
    assert m is not None and m.host == "rtr1" and m.params == {"interface": "eth0"}
    assert extract(e, EventTrigger.model_validate({"host": {"field": "message", "regex": "nope"}}).host) is None


def test_resolved_events_cancel_and_do_not_start() -> None:
    firing_rule, resolved_rule = rule(match={"name": "X"}), rule(match={"name": "X"}, status="resolved")
    fired = Event(source="webhook", name="X", host="srv1", fingerprint="k")
    resolved = Event(source="webhook", name="X", host="srv1", status="resolved", fingerprint="k")
    m = evaluate(firing_rule, resolved, HOSTS)
    assert m is not None and not m.starts and m.key == "k"
    assert evaluate(resolved_rule, fired, HOSTS) is None and evaluate(resolved_rule, resolved, HOSTS).starts  # type: ignore[union-attr]
    assert occurrence(fired) != occurrence(resolved)


def write(tmp_path: Path, triggers: str, params: str = "  app: {type: str, default: x}") -> Path:
    p = tmp_path / "rb.yaml"
    p.write_text(textwrap.dedent("""\
        name: rb
        targets: all
        params:
        {params}
        triggers:
          events:
        {triggers}
        steps:
          - name: s
            command: [echo, "{{{{ app }}}}"]
        """).format(params=params, triggers=textwrap.indent(textwrap.dedent(triggers), "  ")))
    return p


@pytest.mark.parametrize("triggers, where, message", [
    ("- match: {message: '(unclosed'}\n", "7:", "invalid regular expression"),
    ("- match: {labels: {a: '~['}}\n", "7:", "invalid regular expression"),
    ("- host: mesage\n", "7:", "expected one of name, status"),
    ("- cooldown: soon\n", "7:", "expected a duration"),
    ("- sauce: syslog\n", "7:", "unknown key 'sauce'"),
    ("- source: email\n", "7:", "source"),
    ("- params: {nope: labels.x}\n", "1:", "'nope' not a param of this runbook"),
    ("- name: a\n- name: a\n", "6:", "trigger name(s) used twice: a"),
])
def test_trigger_errors_point_at_the_file(tmp_path: Path, triggers: str, where: str, message: str) -> None:
    with pytest.raises(RunbookError) as exc:
        load_runbook(write(tmp_path, triggers))
    text = str(exc.value)
    assert f"rb.yaml:{where}" in text and message in text, text


def test_trigger_defaults_and_durations() -> None:
    t = EventTrigger.model_validate({"cooldown": "15m", "dedup": ["labels.alertname", "host"]})
    assert (t.source, t.status, t.cooldown, t.breaker, t.host.field) == ("any", "firing", 900.0, 3, "host")
    assert t.dedup.key == ["labels.alertname", "host"] and t.dedup.window == 3600
    assert parse_duration("2d") == 172800 and parse_duration(1.5) == 1.5
    with pytest.raises(ValueError):
        parse_duration(-1)


# ---- the guard ---------------------------------------------------------------------------------------------
def test_guard_dedup_cooldown_busy_and_budget() -> None:
    g = Guard(budget_runs=2, budget_window=60)
    assert not g.duplicate("r", "k", "firing|t1", 0)
    g.remember("r", "k", "firing|t1", 10, 0)
    assert g.duplicate("r", "k", "firing|t1", 5) and not g.duplicate("r", "k", "firing|t1", 10)  # window
    assert not g.duplicate("r", "k", "resolved|t1", 6) and not g.duplicate("other", "k", "firing|t1", 5)
    g.remember("r", "k", "resolved|t1", 10, 6)  # a change of status is news
    assert g.duplicate("r", "k", "resolved|t1", 7) and not g.duplicate("r", "k", "firing|t1", 7)
    g.admit("r", "srv1", "a1", 100)
    assert g.cooling("r", "srv1", 30, 110) == 20 and g.cooling("r", "srv1", 30, 131) == 0
    assert g.cooling("r", "srv2", 30, 110) == 0 and g.busy("srv1") == "a1"
    g.admit("r", "srv2", "a2", 101)
    assert g.budget_left(102) == 0
    g.release("srv2", "a2", started=False, rule="r", at=101)  # never started: budget and cooldown given back
    assert g.busy("srv2") is None and g.cooling("r", "srv2", 30, 102) == 0 and g.budget_left(102) == 1
    g.release("srv1", "a1", started=True, rule="r", at=100)
    assert g.busy("srv1") is None and g.cooling("r", "srv1", 30, 110) == 20
    assert g.budget_left(130) == 1 and g.budget_left(160.5) == 2  # the window slides


def test_guard_restores_from_recorded_actions() -> None:
    def act(i: int, outcome: str, reason: str | None = None, host: str = "srv1") -> dict[str, Any]:
        return {"id": f"a{i}", "rule": "r", "host": host, "dedup_key": "k", "occurrence": "firing|t1",
                "outcome": outcome, "reason": reason, "received_at": 100.0 + i, "queued_at": 100.0 + i}

    g = Guard(budget_runs=5, budget_window=3600)
    g.restore([act(0, "finished"), act(1, "suppressed", "duplicate"), act(2, "canceled", "shutdown", "srv2")],
              {"r": 600})
    assert g.duplicate("r", "k", "firing|t1", 200) and not g.duplicate("r", "k", "firing|t1", 701)
    assert g.cooling("r", "srv1", 600, 200) == 500 and g.cooling("r", "srv2", 600, 200) == 0
    assert g.budget_left(200) == 4 and g.busy("srv1") is None


# ---- metrics -----------------------------------------------------------------------------------------------
def test_metrics_exposition() -> None:
    m = Metrics()
    m.inc("opsflow_events_received_total", {"source": "alertmanager"}, 3)
    m.inc("opsflow_events_matched_total", {"rule": 'we"ird\\rule\n'})
    m.observe("opsflow_event_to_start_seconds", 0.02)
    m.observe("opsflow_event_to_start_seconds", 3.0)
    m.gauge("opsflow_event_queue_depth", lambda: {(): 7.0})
    text = m.render()
    assert 'opsflow_events_received_total{source="alertmanager"} 3' in text
    assert 'opsflow_events_matched_total{rule="we\\"ird\\\\rule\\n"} 1' in text
    assert 'opsflow_event_to_start_seconds_bucket{le="0.01"} 0' in text
    assert 'opsflow_event_to_start_seconds_bucket{le="0.025"} 1' in text
    assert 'opsflow_event_to_start_seconds_bucket{le="+Inf"} 2' in text
    assert "opsflow_event_to_start_seconds_sum 3.02" in text and "opsflow_event_queue_depth 7" in text
    assert 'opsflow_events_suppressed_total{reason="breaker_open"} 0' in text
    if shutil.which("promtool"):
        check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr


# ---- records -----------------------------------------------------------------------------------------------
@pytest.fixture
def store(sql_store: SqlStore) -> SqlStore:
    """On SQLite and on PostgreSQL (conftest)."""
    return sql_store


def test_events_actions_and_breakers_are_recorded(store: SqlStore) -> None:
    e = Event(source="webhook", name="X", host="srv1", labels={"a": "b"}, data={"big": "x" * 100_000}, id="ev-1",
              received_at=100.0, fingerprint="k")
    store.add_event(e, ["r"])
    store.add_event(Event(source="syslog", name="cron", id="ev-2", received_at=101.0), [])
    store.add_action({"id": "ev-1.0", "event_id": "ev-1", "rule": "r", "host": "srv1", "outcome": "queued",
                      "received_at": 100.0, "queued_at": 100.1, "daemon": "nowhere:1:1"})
    store.update_action("ev-1.0", outcome="started", run_id="run-1", started_at=100.3, start_latency=0.3)
    listed = store.events()
    assert [x["id"] for x in listed] == ["ev-2", "ev-1"] and listed[0]["outcome"] == "no_rule"
    assert listed[1]["data"] == {} and listed[1]["truncated"] is True and listed[1]["labels"] == {"a": "b"}
    assert store.event_for_run("run-1")["action"]["start_latency"] == 0.3  # type: ignore[index]
    assert [x["id"] for x in store.events(outcome="started")] == ["ev-1"]
    assert store.events(since=100.5)[0]["id"] == "ev-2" and store.event_for_run("run-2") is None
    assert not store.breaker_result("r", "run-1", True, 2) and store.breaker_result("r", "run-2", True, 2)
    assert store.breaker("r")["state"] == "open"  # type: ignore[index]
    assert store.breaker_reset("r", "me")["failures"] == 0 and store.breaker_reset("nope", "me") is None  # type: ignore[index]
    store.add_action({"id": "ev-2.0", "event_id": "ev-2", "rule": "r", "host": "srv2", "outcome": "queued",
                      "received_at": 101.0, "daemon": "nowhere:1:1"})
    assert store.recover_actions(lambda daemon: False) == 1  # a dead daemon's queued action is settled
    settled = store.events(outcome="daemon_stopped")[0]["actions"][0]
    assert (settled["id"], settled["outcome"]) == ("ev-2.0", "canceled")
