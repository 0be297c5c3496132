"""Leases of units of work, and what a sweep does with them: pure decisions, no I/O.

A dispatched run is cut into units — one per worker queue its hosts are placed on. Each unit has a
lease row in the store: its ``state`` (``queued`` → ``running`` → ``done``, or ``lost``), the worker
holding it, a fencing ``token`` raised by every claim, and the holder's ``heartbeat``. A lease whose
heartbeat is older than its ``ttl`` is *stale*: its holder is presumed dead. A sweep puts a stale unit
back in its queue with a new token (the dead holder's writes are refused from then on) so another worker
takes it over; a stale unit whose queue no live worker serves is *interrupted* (the run waits for a person),
and a unit waiting in a queue that no live worker serves is given up, so no run stays ``running`` once its
workers are gone. Any long-lived opsflow process sweeps (:mod:`opsflow.dispatch.sweeper`), and
``opsflow history``, ``show`` and ``workers`` do too, lazily.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

QUEUED, RUNNING, DONE, LOST = "queued", "running", "done", "lost"
OPEN = (QUEUED, RUNNING)
DEFAULT_TTL = 30.0  # seconds without a heartbeat before a holder is presumed dead


def lease_ttl() -> float:
    """The lease TTL of this process: ``$OPSFLOW_LEASE_TTL``, else ``DEFAULT_TTL``."""
    return float(os.environ.get("OPSFLOW_LEASE_TTL") or DEFAULT_TTL)
ORPHAN_AFTER = 300.0  # seconds a unit may wait in a queue no live worker serves


@dataclass(frozen=True)
class Lease:
    run_id: str
    queue: str
    state: str
    token: int
    worker: str | None
    heartbeat: float | None  # the holder's last renewal (running), or when it was queued
    ttl: float
    sync: int = 0  # the last synchronisation point (batch or cross-queue step) this unit reached
    deliveries: int = 0  # claims so far: more than one means it was taken over
    hosts: tuple[str, ...] = ()
    outcome: str | None = None
    error: str | None = None
    error_kind: str | None = None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Lease:
        fields: dict[str, Any] = {k: v for k, v in row.items() if k in cls.__dataclass_fields__}
        fields["hosts"] = tuple(fields.get("hosts") or ())
        return cls(**fields)

    def stale(self, now: float) -> bool:
        return self.state == RUNNING and (self.heartbeat is None or now - self.heartbeat > self.ttl)


def claim_reason(lease: Lease | None, now: float) -> str | None:
    """Why a delivery of this unit may claim it (``new``, ``takeover``), or None: done, lost, or held by a live
    worker — a duplicate delivery (a Redis visibility timeout, a redelivery racing a sweep) is dropped."""
    if lease is None:
        return None
    if lease.state == QUEUED:
        return "takeover" if lease.deliveries else "new"
    if lease.stale(now):
        return "takeover"
    return None


def sweep(leases: list[Lease], live_queues: set[str], now: float, orphan_after: float = ORPHAN_AFTER
          ) -> list[tuple[Lease, str]]:
    """What to do with each open lease:

    - ``requeue``: stale (its holder presumed dead) on a queue a live worker serves, which takes it over;
    - ``interrupt``: stale on a queue no live worker serves — nobody can take it over, so the run stops
      ``interrupted`` and waits for a person (resume or abandon); a step it had in flight is not run again;
    - ``give_up``: queued on a queue no live worker serves, for longer than ``orphan_after`` (a unit never
      claimed: workers may be starting), or than its ttl (a unit put back after its holder died), or at once
      when another unit of its run is lost or interrupted now (the run cannot complete anyway).
    """
    out: list[tuple[Lease, str]] = []
    for lease in leases:
        if lease.stale(now):
            out.append((lease, "requeue" if lease.queue in live_queues else "interrupt"))
    losing = {lease.run_id for lease, action in out if action == "interrupt"}
    losing |= {lease.run_id for lease in leases if lease.state == LOST}
    for lease in leases:
        if lease.state != QUEUED or lease.queue in live_queues:
            continue
        waited = now - (lease.heartbeat or 0.0)
        if waited > orphan_after or (lease.deliveries and waited > lease.ttl) or lease.run_id in losing:
            out.append((lease, "give_up"))
    return out


def needs_sweep(leases: list[Lease], now: float) -> bool:
    """Whether a sweep could do anything with these open leases (else the workers need not be read): one is
    stale, or queued longer than its ttl."""
    return any(lease.stale(now) or (lease.state == QUEUED and now - (lease.heartbeat or 0.0) > lease.ttl)
               for lease in leases)


def reached(leases: list[Lease], point: int) -> bool:
    """Every unit of a run reached synchronisation point ``point`` (or ended: done, lost)."""
    return all(lease.sync >= point for lease in leases if lease.state in OPEN)


def live(last_seen: float, ttl: float, now: float) -> bool:
    """A worker is live while its heartbeat is younger than its ttl."""
    return now - last_seen <= ttl
