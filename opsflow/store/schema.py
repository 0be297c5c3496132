"""The store's tables as SQLAlchemy Core metadata: what the Alembic migrations build, and what a
test compares a migrated database with (so model and migrations never drift apart).

Imported only by the migrations and the tests: the store itself talks to its database through
the driver (sqlite3, psycopg) on SQL it owns, so opening a store that is current costs no
SQLAlchemy import.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, Table, Text, text

from opsflow.store.ddl import BACKUP_ACTIONS_SQL

metadata = MetaData()
F = Float(precision=53)  # DOUBLE PRECISION on PostgreSQL, REAL on SQLite

opsflow_meta = Table("opsflow_meta", metadata, Column("key", Text, primary_key=True), Column("value", Text))

runs = Table(
    "runs", metadata,
    Column("id", Text, primary_key=True), Column("runbook", Text, nullable=False), Column("runbook_path", Text),
    Column("runbook_hash", Text), Column("params", Text), Column("trigger", Text), Column("started_by", Text),
    Column("status", Text, nullable=False), Column("check_mode", Integer, server_default="0"),
    Column("started_at", F, nullable=False), Column("ended_at", F), Column("duration", F),
    Column("pid", Integer), Column("pid_start", Text), Column("node", Text), Column("error", Text),
    Column("hosts", Text), Column("parent_run", Text), Column("inventory", Text), Column("error_kind", Text),
    Index("runs_started", "started_at"), Index("runs_runbook", "runbook", "started_at"),
    Index("runs_status", "status"), Index("runs_parent", "parent_run"), Index("runs_duration", "runbook", "duration"),
)

results = Table(
    "results", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("run_id", Text, nullable=False), Column("step_index", Integer), Column("step", Text),
    Column("action", Text), Column("host", Text), Column("phase", Text), Column("status", Text),
    Column("changed", Integer), Column("rc", Integer), Column("started_at", F), Column("ended_at", F),
    Column("duration", F), Column("attempts", Integer), Column("stdout", Text), Column("stderr", Text),
    Column("data", Text), Column("error_class", Text), Column("error", Text),
    Index("results_run", "run_id", "step_index"),  # every result is a committed insert: besides this index,
    # only a partial one, on the backup and restore results
    Index("results_backups", "action", "host", "ended_at", sqlite_where=text(BACKUP_ACTIONS_SQL),
          postgresql_where=text(BACKUP_ACTIONS_SQL)),
)

locks = Table(
    "locks", metadata,
    Column("resource", Text, primary_key=True), Column("run_id", Text, nullable=False), Column("runbook", Text),
    Column("pid", Integer), Column("pid_start", Text), Column("node", Text), Column("acquired_at", F),
)

approvals = Table(
    "approvals", metadata,
    Column("run_id", Text, primary_key=True), Column("step_index", Integer, primary_key=True),
    Column("step", Text), Column("message", Text), Column("state", Text, nullable=False),
    Column("requested_at", F), Column("deadline", F), Column("decided_at", F), Column("decided_by", Text),
    Column("comment", Text),
)

events = Table(
    "events", metadata,
    Column("id", Text, primary_key=True), Column("received_at", F, nullable=False), Column("source", Text),
    Column("name", Text), Column("status", Text), Column("host", Text), Column("severity", Text),
    Column("message", Text), Column("fingerprint", Text), Column("occurrence", Text), Column("peer", Text),
    Column("payload", Text), Column("rules", Text), Column("outcome", Text),
    Column("check_mode", Integer, server_default="0"),
    Index("events_received", "received_at"),
)

event_actions = Table(
    "event_actions", metadata,
    Column("id", Text, primary_key=True), Column("event_id", Text, nullable=False), Column("rule", Text, nullable=False),
    Column("host", Text), Column("dedup_key", Text), Column("occurrence", Text), Column("outcome", Text, nullable=False),
    Column("reason", Text), Column("detail", Text), Column("run_id", Text), Column("run_status", Text),
    Column("daemon", Text), Column("received_at", F), Column("queued_at", F), Column("started_at", F),
    Column("ended_at", F), Column("start_latency", F), Column("end_latency", F),
    Index("event_actions_event", "event_id"), Index("event_actions_run", "run_id"),
    Index("event_actions_outcome", "outcome"),
)

schedule_fires = Table(
    "schedule_fires", metadata,
    Column("entry", Text, primary_key=True), Column("slot", F, primary_key=True),
    Column("decision", Text, nullable=False), Column("reason", Text), Column("deferred_to", F),
    Column("run_id", Text), Column("outcome", Text), Column("decided_at", F, nullable=False),
    Column("scheduler", Text),
    Index("schedule_fires_decided", "decided_at"),
)

audit = Table(
    "audit", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at", F, nullable=False), Column("actor", Text, nullable=False), Column("action", Text, nullable=False),
    Column("target", Text), Column("detail", Text),
    Index("audit_at", "at"),
)

run_rollups = Table(
    "run_rollups", metadata,
    Column("day", Text, primary_key=True), Column("runbook", Text, primary_key=True),
    Column("runbook_hash", Text, primary_key=True), Column("trigger", Text, primary_key=True),
    Column("started_by", Text, primary_key=True),
    Column("status", Text, primary_key=True), Column("check_mode", Integer, primary_key=True),
    Column("runs", Integer, nullable=False), Column("duration_sum", F, nullable=False),
    Column("sketch", Text, nullable=False), Column("buckets", Text, nullable=False),
)

host_rollups = Table(
    "host_rollups", metadata,
    Column("day", Text, primary_key=True), Column("runbook", Text, primary_key=True),
    Column("host", Text, primary_key=True), Column("runs", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
)

rollup_days = Table(
    "rollup_days", metadata,
    Column("day", Text, primary_key=True), Column("runs", Integer, nullable=False),
    Column("rolled_at", F, nullable=False),
)

week_rollups = Table(
    "week_rollups", metadata,
    Column("week", Text, primary_key=True), Column("runbook", Text, primary_key=True),
    Column("runbook_hash", Text, primary_key=True), Column("status", Text, primary_key=True),
    Column("check_mode", Integer, primary_key=True), Column("day", Text, nullable=False),
    Column("runs", Integer, nullable=False), Column("sketch", Text, nullable=False),
)

host_week_rollups = Table(
    "host_week_rollups", metadata,
    Column("week", Text, primary_key=True), Column("runbook", Text, primary_key=True),
    Column("host", Text, primary_key=True), Column("runs", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Index("host_week_rollups_sums", "runbook", "host", "week", "runs", "failed"),
)

people_week_rollups = Table(
    "people_week_rollups", metadata,
    Column("week", Text, primary_key=True), Column("started_by", Text, primary_key=True),
    Column("runs", Integer, nullable=False),
)

rollup_weeks = Table(
    "rollup_weeks", metadata,
    Column("week", Text, primary_key=True), Column("runs", Integer, nullable=False),
    Column("rolled_at", F, nullable=False),
)

reviews = Table(
    "reviews", metadata,
    Column("id", Text, primary_key=True), Column("title", Text, nullable=False), Column("state", Text, nullable=False),
    Column("created_at", F, nullable=False), Column("created_by", Text, nullable=False),
    Column("updated_at", F, nullable=False), Column("updated_by", Text, nullable=False),
    Column("closed_at", F), Column("closed_by", Text), Column("runbooks", Text, nullable=False),
    Column("runs", Text, nullable=False), Column("events", Text, nullable=False), Column("doc", Text, nullable=False),
    Index("reviews_state", "state", "created_at"),
)

breakers = Table(
    "breakers", metadata,
    Column("rule", Text, primary_key=True), Column("failures", Integer, nullable=False, server_default="0"),
    Column("state", Text, nullable=False, server_default="closed"), Column("opened_at", F),
    Column("last_run", Text), Column("reset_at", F), Column("reset_by", Text),
)

# 0006: who may do what (opsflow.auth.store); JSON lists in runbooks/groups; only hashes of secrets
users = Table(
    "users", metadata,
    Column("name", Text, primary_key=True), Column("role", Text, nullable=False),
    Column("runbooks", Text, nullable=False), Column("groups", Text, nullable=False), Column("password_hash", Text),
    Column("disabled", Integer, nullable=False, server_default="0"), Column("created_at", F, nullable=False),
    Column("created_by", Text, nullable=False), Column("contact", Text),
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Text, primary_key=True), Column("username", Text, nullable=False),
    Column("token_hash", Text, nullable=False), Column("name", Text), Column("role", Text, nullable=False),
    Column("created_at", F, nullable=False), Column("created_by", Text, nullable=False), Column("expires_at", F),
    Column("last_used_at", F), Column("revoked_at", F), Column("revoked_by", Text),
    Index("api_tokens_user", "username"),
)

sessions = Table(
    "sessions", metadata,
    Column("id", Text, primary_key=True), Column("username", Text, nullable=False), Column("csrf", Text, nullable=False),
    Column("created_at", F, nullable=False), Column("expires_at", F, nullable=False), Column("last_seen", F),
    Index("sessions_user", "username"),
)

login_attempts = Table(
    "login_attempts", metadata,
    Column("key", Text, nullable=False), Column("at", F, nullable=False),
    Index("login_attempts_key", "key", "at"),
)

approvals.append_column(Column("four_eyes", Integer, server_default="1"))

# 0007: runs dispatched to Celery workers (opsflow.store.leases)
dispatches = Table(
    "dispatches", metadata,
    Column("run_id", Text, primary_key=True), Column("request", Text, nullable=False), Column("runbook_hash", Text),
    Column("step_sync", Integer, nullable=False, server_default="0"), Column("dispatched_by", Text),
    Column("dispatched_at", F, nullable=False), Column("finished_at", F),
)

leases = Table(
    "leases", metadata,
    Column("run_id", Text, primary_key=True), Column("queue", Text, primary_key=True),
    Column("hosts", Text, nullable=False), Column("state", Text, nullable=False),
    Column("token", Integer, nullable=False, server_default="0"), Column("worker", Text), Column("heartbeat", F),
    Column("ttl", F, nullable=False), Column("sync", Integer, nullable=False, server_default="0"),
    Column("deliveries", Integer, nullable=False, server_default="0"), Column("outcome", Text), Column("error", Text),
    Column("error_kind", Text),
    Index("leases_state", "state"),
)

inflight = Table(
    "inflight", metadata,
    Column("run_id", Text, nullable=False), Column("queue", Text, nullable=False),
    Column("step_index", Integer, nullable=False), Column("phase", Text, nullable=False),
    Column("host", Text, nullable=False), Column("step", Text),
    Column("idempotent", Integer, nullable=False, server_default="0"), Column("token", Integer, nullable=False),
    Column("started_at", F),
    Index("inflight_run", "run_id", "queue"),
)

workers = Table(
    "workers", metadata,
    Column("name", Text, primary_key=True), Column("node", Text), Column("pid", Integer),
    Column("queues", Text, nullable=False), Column("concurrency", Integer), Column("ttl", F, nullable=False),
    Column("started_at", F, nullable=False), Column("last_seen", F, nullable=False), Column("running", Text),
    Column("state", Text, nullable=False),
)
