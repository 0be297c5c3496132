"""Backups and restores: device configs in a git repository, server archives with manifests.

Nothing stored is trusted blindly: a config version is shown, diffed, restored or called
"unchanged" only after its git objects are re-hashed and its content matches the sha256
recorded in the checksum ledger beside the repository (``repo``, ``ledger``, ``gitobjects``);
an archive is restored only after it matches its manifest (``archives``).
"""

from __future__ import annotations

from pathlib import Path


def backup_home() -> Path:
    """Where backups live: the ``backups`` setting (``$OPSFLOW_BACKUPS``, else ``<home>/backups``)."""
    from opsflow.settings import current

    return current().backups
