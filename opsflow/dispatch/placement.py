"""Which worker queue runs what: pure placement of (step, host) pairs on queues.

A host's queue is, first found: the step's ``queue:``, the host's (or its groups', as the inventory
merges them) ``opsflow_queue`` variable, the runbook's ``queue:``, else ``default``. A run is cut into
one unit of work per queue; a unit runs, in plan order, every pair placed on its queue. Steps that move
a host to another queue than its own need the units to meet after each step (:func:`needs_step_sync`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from opsflow.errors import UsageError

if TYPE_CHECKING:
    from opsflow.planning import Plan
    from opsflow.runbook.models import Step

DEFAULT_QUEUE = "default"
QUEUE_VAR = "opsflow_queue"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_queue(name: Any, where: str) -> str:
    """A queue name, or UsageError saying where the bad one is and what a good one looks like."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"{where}: {QUEUE_VAR} {name!r} is not a queue name (letters, digits, '_', '.', '-'; "
                         "e.g. site-a)")
    return name


def host_queue(host_vars: dict[str, Any], runbook_queue: str | None, host: str = "?") -> str:
    """The queue of a host's own steps: its ``opsflow_queue`` variable, the runbook's queue, else default."""
    if QUEUE_VAR in host_vars and host_vars[QUEUE_VAR] is not None:
        return check_queue(host_vars[QUEUE_VAR], f"host {host}")
    return runbook_queue or DEFAULT_QUEUE


def step_queue(step: Step | None, host_vars: dict[str, Any], runbook_queue: str | None, host: str = "?") -> str:
    """The queue that runs ``step`` on ``host``: the step's own, else the host's."""
    if step is not None and step.queue:
        return step.queue
    return host_queue(host_vars, runbook_queue, host)


def hosts_of(plan: Plan) -> list[str]:
    """Every host the plan touches, targets first, then hosts that only steps name."""
    seen = dict.fromkeys(plan.targets)
    for ps in plan.steps + plan.on_failure:
        seen.update(dict.fromkeys(ps.hosts))
    return list(seen)


def queue_of(plan: Plan, host: str, step: Step | None = None) -> str:
    """Where ``step`` (None: the host's own work — facts, rollback) runs on ``host``."""
    return step_queue(step, plan.inventory.hosts[host].vars, plan.loaded.runbook.queue, host)


def units(plan: Plan) -> dict[str, list[str]]:
    """Queue → the hosts it runs something on, in plan order (one unit of work per queue)."""
    out: dict[str, list[str]] = {}
    for host in hosts_of(plan):
        out.setdefault(queue_of(plan, host), []).append(host)
    for ps in plan.steps + plan.on_failure:
        for host in ps.hosts:
            queue = queue_of(plan, host, ps.step)
            if host not in out.setdefault(queue, []):
                out[queue].append(host)
    return out


def needs_step_sync(plan: Plan) -> bool:
    """Whether a step runs a host on another queue than the host's own: the units then meet after every step,
    so a host's steps keep their order across queues."""
    return any(queue_of(plan, h, ps.step) != queue_of(plan, h)
               for ps in plan.steps + plan.on_failure for h in ps.hosts)
