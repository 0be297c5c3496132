"""Alembic environment of the opsflow store: always run from opsflow.store.migrate with a connection."""

from __future__ import annotations

from alembic import context

from opsflow.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
