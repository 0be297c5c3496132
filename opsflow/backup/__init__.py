"""Backups and restores: device configs in a git repository, server archives with manifests.

Nothing stored is trusted blindly: a config version is shown, diffed, restored or called
"unchanged" only after its git objects are re-hashed and its content matches the sha256
recorded in the checksum ledger beside the repository (``repo``, ``ledger``, ``gitobjects``);
an archive is restored only after it matches its manifest (``archives``).
"""

from __future__ import annotations

import os
from pathlib import Path


def backup_home() -> Path:
    """Where backups live: ``$OPSFLOW_BACKUPS``, else ``$OPSFLOW_HOME/backups``."""
    from opsflow.store import home

    return Path(os.environ.get("OPSFLOW_BACKUPS") or home() / "backups")
