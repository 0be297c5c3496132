"""Connectors: the only modules that talk to targets.

Each connector turns a list of :class:`HostTask` (one host, its rendered action)
into :class:`~opsflow.results.StepResult` values, emitted as each host finishes.
"""

from opsflow.connectors.base import Connector, HostTask, RunContext

__all__ = ["Connector", "HostTask", "RunContext", "connector_for"]


def connector_for(action: str, host_kind: str) -> Connector:
    """The connector for an action on a kind of host (imports heavy libraries only when a step needs them)."""
    import importlib

    from opsflow.actions import action as lookup

    target = lookup(action).connectors.get(host_kind)
    if target is None:
        raise ValueError(f"no connector for action {action!r} on a {host_kind}")
    module, cls = target.split(":")
    connector: Connector = getattr(importlib.import_module(module), cls)()
    return connector
