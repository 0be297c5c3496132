"""The run store: one interface, SQLite by default, PostgreSQL for teams.

``open_store(url)``: ``None`` → the ``db`` setting (``opsflow.settings``: project file,
``$OPSFLOW_DB``, default ``$OPSFLOW_HOME/opsflow.db``);
``postgresql://…`` selects PostgreSQL (needs ``pip install opsflow[postgres]``).
"""

from __future__ import annotations

from pathlib import Path

from opsflow.settings import current
from opsflow.store.base import RunRecord, Store
from opsflow.store.sql import SqlStore
from opsflow.workdir import reap_workdirs

__all__ = ["RunRecord", "Store", "default_url", "home", "open_store"]


def home() -> Path:
    return current().home


def default_url() -> str:
    return current().db


def open_store(url: str | None = None, reap: bool = True, migrate: bool = True) -> Store:
    """The store at ``url`` (default: the ``db`` setting); ``migrate=False`` opens it whatever its schema
    (``opsflow db``); ``reap`` marks runs of dead processes abandoned and removes their work dirs."""
    store = SqlStore.connect(url or default_url(), migrate=migrate)
    if reap:
        store.reap()
        reap_workdirs()
    return store
