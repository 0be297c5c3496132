"""run_rollups, host_rollups, rollup_days (and week_rollups, host_week_rollups, rollup_weeks): daily and weekly
roll-ups of finished runs for KPI reports (and people_week_rollups); the partial index of the backup results; reviews: lessons learned.

Revision ID: 0005_kpi_and_reviews
Revises: 0004_schedule_and_audit
"""

from __future__ import annotations

from alembic import op

from opsflow.store.ddl import KPI_REVIEWS_DDL, statements

revision = "0005_kpi_and_reviews"
down_revision = "0004_schedule_and_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in statements(KPI_REVIEWS_DDL, op.get_bind().dialect.name == "postgresql"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_index("results_backups", "results")
    op.drop_index("host_week_rollups_sums", "host_week_rollups")
    op.drop_index("runs_duration", "runs")
    op.drop_index("reviews_state", "reviews")
    for table in ("reviews", "rollup_weeks", "people_week_rollups", "host_week_rollups", "week_rollups", "rollup_days", "host_rollups",
                  "run_rollups"):
        op.drop_table(table)
