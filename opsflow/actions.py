"""The one registry of actions: what each runs on, which connector runs it, how it behaves
under ``--check``, and how many SSH sessions it opens per server.

Every other module asks here (``connector_for``, ``check_support``, ``ssh_sessions``, the
executor's wrong-target check) instead of repeating action names. Adding an action is one
entry here, its model in ``opsflow.runbook.models`` and its connector.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

SERVER, DEVICE = "server", "device"
BOTH = frozenset({SERVER, DEVICE})
READ_ONLY_PREFIXES = ("show ", "display ", "ping ", "traceroute ")


@dataclass(frozen=True)
class Action:
    name: str
    runs_on: frozenset[str]
    connectors: Mapping[str, str] = field(default_factory=dict)  # host kind → "module:Class"; {} = the executor
    check: tuple[bool, str] = (False, "")  # (supported, how it behaves) for every step of this action
    check_of: Callable[[Any], tuple[bool, str]] | None = None  # or decided per step, from its spec
    sessions: int = 0  # SSH sessions per server per try; -1: one per check (verify)

    def check_support(self, spec: Any) -> tuple[bool, str]:
        return self.check_of(spec) if self.check_of is not None else self.check

    def wrong_target(self, kind: str) -> bool:
        return kind not in self.runs_on


def _network_command_check(spec: Any) -> tuple[bool, str]:
    if spec is not None and all(c.strip().lower().startswith(READ_ONLY_PREFIXES) for c in spec.commands):
        return True, "show commands run (read only)"
    return False, "not checked: a device command that is not a show command"


_CONN = "opsflow.connectors."
_NETWORK = _CONN + "network:NetworkConnector"

ACTIONS: Mapping[str, Action] = MappingProxyType({a.name: a for a in (
    Action("command", frozenset({SERVER}), {SERVER: _CONN + "ssh:CommandConnector"},
           (False, "not checked: a command step cannot run in check mode"), sessions=1),
    Action("local", BOTH, dict.fromkeys(BOTH, _CONN + "local:LocalConnector"),
           (False, "not checked: a local step cannot run in check mode")),
    Action("ansible", frozenset({SERVER}), {SERVER: _CONN + "ansible:AnsibleConnector"},
           (True, "ansible --check --diff"), sessions=99),
    Action("verify", BOTH, {SERVER: _CONN + "verify:ServerVerifyConnector", DEVICE: _NETWORK},
           (True, "runs (it only reads)"), sessions=-1),
    Action("network.command", frozenset({DEVICE}), {DEVICE: _NETWORK}, check_of=_network_command_check),
    Action("network.config", frozenset({DEVICE}), {DEVICE: _NETWORK},
           (True, "diff of the candidate lines against the running config, not applied")),
    Action("network.backup", frozenset({DEVICE}), {DEVICE: _NETWORK},
           (False, "not checked: a backup stores a new version")),
    Action("network.restore", frozenset({DEVICE}), {DEVICE: _NETWORK},
           (True, "shows what would be restored, applies nothing")),
    Action("backup", frozenset({SERVER}), {SERVER: _CONN + "backup:BackupConnector"},
           (False, "not checked: a backup stores a new version"), sessions=1),
    Action("restore", frozenset({SERVER}), {SERVER: _CONN + "backup:BackupConnector"},
           (True, "shows what would be restored, applies nothing"), sessions=2),
    Action("approve", BOTH, check=(True, "asks for approval")),
    Action("runbook", BOTH, check=(True, "the sub-runbook runs in check mode"), sessions=99),
)})


def action(name: str) -> Action:
    try:
        return ACTIONS[name]
    except KeyError:
        raise ValueError(f"unknown action {name!r} (one of {', '.join(ACTIONS)})") from None
