"""Backups and restores: device configs in a git repository, server archives with manifests."""

from __future__ import annotations

import os
from pathlib import Path


def backup_home() -> Path:
    """Where backups live: ``$OPSFLOW_BACKUPS``, else ``$OPSFLOW_HOME/backups``."""
    from opsflow.store import home

    return Path(os.environ.get("OPSFLOW_BACKUPS") or home() / "backups")
