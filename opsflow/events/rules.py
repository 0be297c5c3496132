"""Rules (pure): which runbook an event starts, on which inventory host, with which params.

A rule is one ``triggers: events:`` entry of a runbook. Event values become params as they
are: strings stay strings, and nothing of an event is ever rendered as a template.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from opsflow.events.models import Event, EventTrigger, FieldRef, Pattern
from opsflow.inventory import Inventory
from opsflow.runbook.models import Runbook


@dataclass(frozen=True)
class Rule:
    name: str
    runbook: str  # the runbook's name
    path: str  # the runbook file
    trigger: EventTrigger
    targets: frozenset[str]  # inventory hosts the runbook may run on


@dataclass(frozen=True)
class HostIndex:
    """Inventory host names and addresses, to find the host an event is about."""

    names: frozenset[str]
    addresses: dict[str, str] = field(default_factory=dict)  # address → host name

    @classmethod
    def of(cls, inventory: Inventory) -> HostIndex:
        return cls(frozenset(inventory.hosts), {h.address: h.name for h in inventory.hosts.values()})

    def resolve(self, value: str) -> str | None:
        """``srv1``, ``srv1:9100``, ``10.0.0.11``, ``srv1.example.com`` → ``srv1``; None when unknown."""
        text = value.strip()
        candidates = [text]
        m = _HOST_PORT.fullmatch(text)  # [v6]:port, name:port
        if m:
            candidates.append(m[1] or m[2])
        for c in list(candidates):
            if "." in c and not _is_ip(c):
                candidates.append(c.split(".", 1)[0])
        for c in candidates:
            if c in self.names:
                return c
            if c in self.addresses:
                return self.addresses[c]
        return None


_HOST_PORT = re.compile(r"\[([^\]]+)\](?::\d+)?|([^:]+):\d+")


@functools.lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern[str]:
    """A trigger's regex, compiled once (validated when the runbook was loaded)."""
    return re.compile(pattern)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Match:
    """A rule an event matched: start a run (``starts``) or, for a resolved alert, cancel a queued one."""

    rule: Rule
    starts: bool
    host: str | None  # the inventory host; None when the event's host cannot be used
    problem: str | None  # why the host cannot be used
    params: dict[str, Any]
    key: str  # deduplication key (the same alert or event)


def rules_of(path: str, runbook: Runbook, inventory: Inventory) -> list[Rule]:
    if runbook.triggers is None:
        return []
    triggers = runbook.triggers.events
    targets = frozenset(inventory.select(runbook.targets))
    return [Rule(name=t.name or (runbook.name if len(triggers) == 1 else f"{runbook.name}.{i}"),
                 runbook=runbook.name, path=path, trigger=t, targets=targets)
            for i, t in enumerate(triggers)]


MATCH_LIMIT = 8192  # characters of an event field a trigger regex or glob looks at: bounded work per event


def _bounded(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text[:MATCH_LIMIT]


def extract(event: Event, ref: FieldRef) -> Any:
    """The value a field reference points at: the whole field, or the regex's first group (or match)."""
    value = event.get(ref.field)
    if ref.regex is None or value is None:
        return value
    m = _regex(ref.regex).search(_bounded(value))
    if not m:
        return None
    return m.group(1) if m.re.groups else m.group(0)


def pattern_ok(pattern: Pattern, value: Any) -> bool:
    """Exact value(s), or ``~regex`` (full match); a missing value matches nothing."""
    if value is None:
        return False
    text = _bounded(value)
    for p in pattern if isinstance(pattern, list) else [pattern]:
        if p.startswith("~"):
            if _regex(p[1:]).fullmatch(text):
                return True
        elif p == text or ("*" in p or "?" in p) and fnmatch.fnmatchcase(text, p):
            return True
    return False


def fires(trigger: EventTrigger, event: Event) -> bool:
    """Whether the event is one this trigger is about (any status)."""
    m = trigger.match
    if trigger.source != "any" and trigger.source != event.source:
        return False
    if m.name is not None and not pattern_ok(m.name, event.name):
        return False
    if m.severity is not None and not pattern_ok(m.severity, event.severity):
        return False
    if m.host is not None and not pattern_ok(m.host, event.host):
        return False
    if m.message is not None and not _regex(m.message).search(event.message):
        return False
    for space, wanted in (("labels", m.labels), ("annotations", m.annotations), ("data", m.data)):
        for key, pattern in wanted.items():
            if not pattern_ok(pattern, event.get(f"{space}.{key}")):
                return False
    return True


def evaluate(rule: Rule, event: Event, hosts: HostIndex) -> Match | None:
    t = rule.trigger
    if not fires(t, event):
        return None
    starts = t.status in ("any", event.status)
    if not starts and not (t.status == "firing" and event.status == "resolved"):
        return None
    raw = extract(event, t.host)
    host, problem = None, None
    if raw in (None, ""):
        problem = f"the event names no host ({t.host.field}{' ~ ' + t.host.regex if t.host.regex else ''})"
    else:
        host = hosts.resolve(str(raw))
        if host is None:
            problem = f"{raw!r} is not an inventory host"
        elif host not in rule.targets:
            problem = f"{host} is not a target of runbook {rule.runbook}"
            host = None
    params = {}
    for name, ref in t.params.items():
        value = extract(event, ref)
        if value is not None:  # absent: the param keeps its default
            params[name] = value
    key = "|".join(str(event.get(f)) for f in t.dedup.key)  # = extract(event, FieldRef(field=f))
    return Match(rule=rule, starts=starts, host=host, problem=problem, params=params, key=key)


def occurrence(event: Event) -> str:
    """What tells a repeat of the same notification from a new one: status and (Alertmanager) startsAt."""
    return f"{event.status}|{event.occurrence}"
