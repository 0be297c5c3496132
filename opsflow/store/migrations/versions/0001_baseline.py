"""Baseline: the store as released before migrations (opsflow_meta schema 1).

The DDL is a frozen copy of that release's, so a database it created and one created here
are the same; such a database is stamped with this revision instead of running it.

Revision ID: 0001_baseline
Revises:
"""

from __future__ import annotations

from alembic import op

from opsflow.store.ddl import BASELINE_DDL

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None



def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    serial = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    for statement in BASELINE_DDL.replace("{serial}", serial).split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    for table in ("breakers", "event_actions", "events", "approvals", "locks", "results", "runs", "opsflow_meta"):
        op.drop_table(table)
