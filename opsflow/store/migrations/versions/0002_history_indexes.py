"""An index for resume chains (runs.parent_run); schema 2 (an opsflow of schema 1 refuses the store).

Revision ID: 0002_history_indexes
Revises: 0001_baseline
"""

from __future__ import annotations

from alembic import op

revision = "0002_history_indexes"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("runs_parent", "runs", ["parent_run"])
    # the release before migrations checks this value and refuses a store newer than it knows
    op.execute("UPDATE opsflow_meta SET value = '2' WHERE key = 'schema'")


def downgrade() -> None:
    op.execute("UPDATE opsflow_meta SET value = '1' WHERE key = 'schema'")
    op.drop_index("runs_parent", "runs")
