"""Connectors: the only modules that talk to targets.

Each connector turns a list of :class:`HostTask` (one host, its rendered action)
into :class:`~opsflow.results.StepResult` values, emitted as each host finishes.
"""

from opsflow.connectors.base import Connector, HostTask, RunContext

__all__ = ["Connector", "HostTask", "RunContext", "connector_for"]


def connector_for(action: str, host_kind: str) -> Connector:
    """The connector for an action (imports heavy libraries only when a step needs them)."""
    if action == "command":
        from opsflow.connectors.ssh import CommandConnector

        return CommandConnector()
    if action == "local":
        from opsflow.connectors.local import LocalConnector

        return LocalConnector()
    if action == "ansible":
        from opsflow.connectors.ansible import AnsibleConnector

        return AnsibleConnector()
    if action in ("backup", "restore"):
        from opsflow.connectors.backup import BackupConnector

        return BackupConnector()
    if action in ("network.command", "network.config", "network.backup", "network.restore") or (action == "verify" and host_kind == "device"):
        from opsflow.connectors.network import NetworkConnector

        return NetworkConnector()
    if action == "verify":
        from opsflow.connectors.verify import ServerVerifyConnector

        return ServerVerifyConnector()
    raise ValueError(f"no connector for action {action!r}")
