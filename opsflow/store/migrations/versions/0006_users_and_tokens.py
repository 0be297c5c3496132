"""users, api_tokens, sessions, login_attempts: who may do what (opsflow.auth); approvals.four_eyes.

Revision ID: 0006_users_and_tokens
Revises: 0005_kpi_and_reviews
"""

from __future__ import annotations

from alembic import op

from opsflow.store.ddl import AUTH_DDL, statements

revision = "0006_users_and_tokens"
down_revision = "0005_kpi_and_reviews"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in statements(AUTH_DDL, op.get_bind().dialect.name == "postgresql"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_column("approvals", "four_eyes")
    op.drop_index("login_attempts_key", "login_attempts")
    op.drop_index("sessions_user", "sessions")
    op.drop_index("api_tokens_user", "api_tokens")
    for table in ("login_attempts", "sessions", "api_tokens", "users"):
        op.drop_table(table)
