"""opsflow: codified runbooks for IT service operation.

Every trigger (CLI, CI, event, schedule) builds a :class:`RunRequest`; one
executor runs it; every outcome is recorded in the store. The library face::

    import opsflow
    result = opsflow.run("runbooks/server-health.yaml", inventory="hosts.yml", check=True)
    result.raise_on_error()

Names are imported when first used, so ``import opsflow`` (and ``opsflow --help``) stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_WHERE = {
    "run": "opsflow.api", "plan": "opsflow.api", "execute": "opsflow.api", "request": "opsflow.api",
    "open_store": "opsflow.api",
    "RunRequest": "opsflow.planning", "Plan": "opsflow.planning",
    "RunResult": "opsflow.results", "StepResult": "opsflow.results", "HostStatus": "opsflow.results",
    "RunStatus": "opsflow.results", "ErrorKind": "opsflow.results",
    "Executor": "opsflow.executor", "Observer": "opsflow.executor", "NullObserver": "opsflow.executor",
    "Store": "opsflow.store",
    "OpsflowError": "opsflow.errors", "UsageError": "opsflow.errors", "RunbookError": "opsflow.errors",
    "InventoryError": "opsflow.errors", "RunFailed": "opsflow.errors",
    "Settings": "opsflow.settings",
}
__all__ = ["__version__", *_WHERE]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'opsflow' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
