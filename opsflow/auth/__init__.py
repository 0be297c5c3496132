"""Who may do what: principals (a user, or an API token of one), roles, scopes, and four-eyes.

Roles are ordered; each includes the ones before it:

============  ==========================================================================
``viewer``    read: runs, events, schedules, reports, service levels, reviews
``operator``  start, cancel, resume and rerun runs; open and edit reviews
``approver``  approve or deny a run's approval step (never one's own run: four-eyes)
``admin``     users and tokens, breaker resets, window overrides, the audit log
============  ==========================================================================

A principal may be scoped to runbooks and/or inventory groups (fnmatch patterns): outside its
scope it acts as a ``viewer``. Pure: the store keeps users and tokens (:mod:`opsflow.auth.store`),
the service and the CLI ask here.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsflow.planning import Plan

ROLES = ("viewer", "operator", "approver", "admin")
PERMISSIONS: dict[str, str] = {  # permission → the least role that has it
    "read": "viewer",
    "run": "operator", "cancel": "operator", "resume": "operator", "review": "operator",
    "approve": "approver",
    "override_window": "admin", "reset_breaker": "admin", "manage_users": "admin", "read_audit": "admin",
}


@dataclass(frozen=True)
class Principal:
    """Who is acting: a user's name, their role, and their scope (empty: everything)."""

    name: str
    role: str
    runbooks: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    token: str | None = None  # the token's id when acting through one (never the token itself)
    via: str = "token"  # token | session | local
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def at_least(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def in_scope(self, runbook: str | None = None, groups: tuple[str, ...] = ()) -> bool:
        if runbook is not None and self.runbooks and not any(fnmatch.fnmatchcase(runbook, p) for p in self.runbooks):
            return False
        return not (self.groups and groups and not any(fnmatch.fnmatchcase(g, p) for g in groups for p in self.groups))


def allowed(principal: Principal, permission: str, runbook: str | None = None, groups: tuple[str, ...] = ()) -> bool:
    """Whether the principal may do it (on that runbook and those inventory groups)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    need = PERMISSIONS[permission]
    if need == "viewer":
        return True
    return principal.at_least(need) and principal.in_scope(runbook, groups)


def hosts_outside(principal: Principal, hosts: Mapping[str, Iterable[str]]) -> list[str]:
    """The hosts (name → its inventory groups) that lie outside the principal's group scope: none of their
    groups (``all`` included) matches one of its patterns. None when the principal is not scoped to groups.
    A host the inventory does not know has no group but ``all``."""
    if not principal.groups:
        return []
    return [h for h, groups in hosts.items() if not principal.in_scope(None, ("all", *groups))]


def group_refusal(principal: Principal, permission: str, hosts: Mapping[str, Iterable[str]]) -> str | None:
    """Why the principal may not ``permission`` a run on these hosts (some outside its groups); None: it may."""
    outside = hosts_outside(principal, hosts)
    if not outside:
        return None
    shown = ", ".join(outside[:10]) + (f" and {len(outside) - 10} more" if len(outside) > 10 else "")
    return (f"{principal.name} ({principal.role}) may not {permission} runs on hosts outside its inventory "
            f"groups ({', '.join(principal.groups)}): {shown}")


def plan_hosts(plan: Plan) -> dict[str, tuple[str, ...]]:
    """Every host a plan touches (its targets, and the hosts of steps with ``hosts:`` of their own), with
    their inventory groups: what a group scope is checked against."""
    names = dict.fromkeys([*plan.targets, *(h for ps in [*plan.steps, *plan.on_failure] for h in ps.hosts)])
    known = plan.inventory.hosts
    return {h: known[h].groups if h in known else () for h in names}


def person(name: str | None) -> str:
    """The person in a recorded actor: ``alice@host`` (the CLI's) and ``alice`` (the service's) are alice."""
    return (name or "").split("@", 1)[0].strip().lower()


def four_eyes_refusal(decider: str, started_by: str | None, required: bool = True) -> str | None:
    """Why ``decider`` may not decide the approval of a run ``started_by`` someone (None: may)."""
    if required and started_by and person(decider) == person(started_by):
        return (f"{decider} started this run and cannot approve it too (four-eyes): another approver must "
                "decide")
    return None


__all__ = ["PERMISSIONS", "ROLES", "Principal", "allowed", "four_eyes_refusal", "group_refusal", "hosts_outside",
           "person", "plan_hosts"]
