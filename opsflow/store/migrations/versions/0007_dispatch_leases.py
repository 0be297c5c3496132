"""dispatches, leases, inflight, workers: runs dispatched to Celery workers (opsflow.dispatch).

Revision ID: 0007_dispatch_leases
Revises: 0006_users_and_tokens
"""

from __future__ import annotations

from alembic import op

from opsflow.store.ddl import statements
from opsflow.store.leases import DISPATCH_DDL

revision = "0007_dispatch_leases"
down_revision = "0006_users_and_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in statements(DISPATCH_DDL, op.get_bind().dialect.name == "postgresql"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index("inflight_run", "inflight")
    op.drop_index("leases_state", "leases")
    for table in ("workers", "inflight", "leases", "dispatches"):
        op.drop_table(table)
