"""schedule_fires: every fire decision of the scheduler, one per (entry, slot); audit: every action of a person.

Revision ID: 0004_schedule_and_audit
Revises: 0003_run_error_kind
"""

from __future__ import annotations

from alembic import op

from opsflow.store.ddl import SCHEDULE_AUDIT_DDL, statements

revision = "0004_schedule_and_audit"
down_revision = "0003_run_error_kind"
branch_labels = None
depends_on = None



def upgrade() -> None:
    for statement in statements(SCHEDULE_AUDIT_DDL, op.get_bind().dialect.name == "postgresql"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index("audit_at", "audit")
    op.drop_table("audit")
    op.drop_index("schedule_fires_decided", "schedule_fires")
    op.drop_table("schedule_fires")
