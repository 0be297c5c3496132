"""runs.error_kind: why a run did not succeed, as data (hosts_failed, lock_held, timeout, internal …).

Revision ID: 0003_run_error_kind
Revises: 0002_history_indexes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_run_error_kind"
down_revision = "0002_history_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("error_kind", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("error_kind")
