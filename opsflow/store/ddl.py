"""DDL the migrations run, shared with the creation of an empty store (``opsflow.store.migrate``).

``BASELINE_DDL`` is the store as released before migrations (opsflow_meta schema 1), frozen:
migration 0001 runs it. Later DDL that a migration runs as text is here too, so an empty store
created at head and a store migrated there are the same (a test compares them). Never edit a
released statement: add a migration instead.
"""

BASELINE_DDL = """
CREATE TABLE IF NOT EXISTS opsflow_meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, runbook TEXT NOT NULL, runbook_path TEXT, runbook_hash TEXT, params TEXT,
  trigger TEXT, started_by TEXT, status TEXT NOT NULL, check_mode INTEGER DEFAULT 0,
  started_at DOUBLE PRECISION NOT NULL, ended_at DOUBLE PRECISION, duration DOUBLE PRECISION,
  pid INTEGER, pid_start TEXT, node TEXT, error TEXT, hosts TEXT, parent_run TEXT, inventory TEXT);
CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
CREATE INDEX IF NOT EXISTS runs_runbook ON runs (runbook, started_at);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status);
CREATE TABLE IF NOT EXISTS results (
  id {serial}, run_id TEXT NOT NULL, step_index INTEGER, step TEXT, action TEXT, host TEXT, phase TEXT,
  status TEXT, changed INTEGER, rc INTEGER, started_at DOUBLE PRECISION, ended_at DOUBLE PRECISION,
  duration DOUBLE PRECISION, attempts INTEGER, stdout TEXT, stderr TEXT, data TEXT, error_class TEXT,
  error TEXT);
CREATE INDEX IF NOT EXISTS results_run ON results (run_id, step_index);
CREATE TABLE IF NOT EXISTS locks (
  resource TEXT PRIMARY KEY, run_id TEXT NOT NULL, runbook TEXT, pid INTEGER, pid_start TEXT, node TEXT,
  acquired_at DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS approvals (
  run_id TEXT NOT NULL, step_index INTEGER NOT NULL, step TEXT, message TEXT, state TEXT NOT NULL,
  requested_at DOUBLE PRECISION, deadline DOUBLE PRECISION, decided_at DOUBLE PRECISION, decided_by TEXT,
  comment TEXT, PRIMARY KEY (run_id, step_index));
CREATE TABLE IF NOT EXISTS events (
  id TEXT PRIMARY KEY, received_at DOUBLE PRECISION NOT NULL, source TEXT, name TEXT, status TEXT, host TEXT,
  severity TEXT, message TEXT, fingerprint TEXT, occurrence TEXT, peer TEXT, payload TEXT, rules TEXT,
  outcome TEXT, check_mode INTEGER DEFAULT 0);
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE TABLE IF NOT EXISTS event_actions (
  id TEXT PRIMARY KEY, event_id TEXT NOT NULL, rule TEXT NOT NULL, host TEXT, dedup_key TEXT, occurrence TEXT,
  outcome TEXT NOT NULL, reason TEXT, detail TEXT, run_id TEXT, run_status TEXT, daemon TEXT,
  received_at DOUBLE PRECISION, queued_at DOUBLE PRECISION, started_at DOUBLE PRECISION,
  ended_at DOUBLE PRECISION, start_latency DOUBLE PRECISION, end_latency DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS event_actions_event ON event_actions (event_id);
CREATE INDEX IF NOT EXISTS event_actions_run ON event_actions (run_id);
CREATE INDEX IF NOT EXISTS event_actions_outcome ON event_actions (outcome);
CREATE TABLE IF NOT EXISTS breakers (
  rule TEXT PRIMARY KEY, failures INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'closed',
  opened_at DOUBLE PRECISION, last_run TEXT, reset_at DOUBLE PRECISION, reset_by TEXT);
INSERT INTO opsflow_meta (key, value) VALUES ('schema', '1');
"""


# migration 0004: the scheduler's fire decisions and the audit log
SCHEDULE_AUDIT_DDL = """
CREATE TABLE IF NOT EXISTS schedule_fires (
  entry TEXT NOT NULL, slot DOUBLE PRECISION NOT NULL, decision TEXT NOT NULL, reason TEXT,
  deferred_to DOUBLE PRECISION, run_id TEXT, outcome TEXT, decided_at DOUBLE PRECISION NOT NULL, scheduler TEXT,
  PRIMARY KEY (entry, slot));
CREATE INDEX IF NOT EXISTS schedule_fires_decided ON schedule_fires (decided_at);
CREATE TABLE IF NOT EXISTS audit (
  id {serial}, at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
"""


# migration 0005: daily and weekly roll-ups of finished runs (KPI reports over millions of runs), reviews,
# and the index of the backup and restore results (a partial index: every other result is a committed insert
# that must not pay for it). run_rollups.started_by is '=' + who started the run for the triggers people use
# (not event, schedule, nor none), '' otherwise. A week (Monday's date) is rolled up once its 7 days are:
# week_rollups (day: the first day of the week with such runs; sketch only for succeeded runs not in check
# mode, '' otherwise), host_week_rollups (its index covers the sums per runbook and host of a report),
# people_week_rollups (the runs people started, per run_rollups.started_by), rollup_weeks marks it done.
KPI_REVIEWS_DDL = """
CREATE TABLE IF NOT EXISTS run_rollups (
  day TEXT NOT NULL, runbook TEXT NOT NULL, runbook_hash TEXT NOT NULL, trigger TEXT NOT NULL, started_by TEXT NOT NULL,
  status TEXT NOT NULL, check_mode INTEGER NOT NULL, runs INTEGER NOT NULL, duration_sum DOUBLE PRECISION NOT NULL,
  sketch TEXT NOT NULL, buckets TEXT NOT NULL,
  PRIMARY KEY (day, runbook, runbook_hash, trigger, started_by, status, check_mode));
CREATE TABLE IF NOT EXISTS host_rollups (
  day TEXT NOT NULL, runbook TEXT NOT NULL, host TEXT NOT NULL, runs INTEGER NOT NULL, failed INTEGER NOT NULL,
  PRIMARY KEY (day, runbook, host));
CREATE TABLE IF NOT EXISTS rollup_days (day TEXT PRIMARY KEY, runs INTEGER NOT NULL, rolled_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS week_rollups (
  week TEXT NOT NULL, runbook TEXT NOT NULL, runbook_hash TEXT NOT NULL, status TEXT NOT NULL,
  check_mode INTEGER NOT NULL, day TEXT NOT NULL, runs INTEGER NOT NULL, sketch TEXT NOT NULL,
  PRIMARY KEY (week, runbook, runbook_hash, status, check_mode));
CREATE TABLE IF NOT EXISTS host_week_rollups (
  week TEXT NOT NULL, runbook TEXT NOT NULL, host TEXT NOT NULL, runs INTEGER NOT NULL, failed INTEGER NOT NULL,
  PRIMARY KEY (week, runbook, host));
CREATE INDEX IF NOT EXISTS host_week_rollups_sums ON host_week_rollups (runbook, host, week, runs, failed);
CREATE TABLE IF NOT EXISTS people_week_rollups (
  week TEXT NOT NULL, started_by TEXT NOT NULL, runs INTEGER NOT NULL, PRIMARY KEY (week, started_by));
CREATE TABLE IF NOT EXISTS rollup_weeks (week TEXT PRIMARY KEY, runs INTEGER NOT NULL, rolled_at DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS reviews (
  id TEXT PRIMARY KEY, title TEXT NOT NULL, state TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
  created_by TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL, updated_by TEXT NOT NULL,
  closed_at DOUBLE PRECISION, closed_by TEXT, runbooks TEXT NOT NULL, runs TEXT NOT NULL, events TEXT NOT NULL,
  doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS reviews_state ON reviews (state, created_at);
CREATE INDEX IF NOT EXISTS runs_duration ON runs (runbook, duration);
CREATE INDEX IF NOT EXISTS results_backups ON results (action, host, ended_at)
  WHERE action IN ('backup', 'network.backup', 'restore', 'network.restore')
"""

# the predicate of the partial index results_backups: a query reaches the index only when its WHERE holds
# this very term (SQLite matches terms by their text, PostgreSQL proves the implication)
BACKUP_ACTIONS_SQL = "action IN ('backup', 'network.backup', 'restore', 'network.restore')"


def statements(ddl: str, postgres: bool) -> list[str]:
    serial = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    return [s for s in ddl.replace("{serial}", serial).split(";") if s.strip()]


# migration 0006: users, API tokens (only their sha256 kept), web console sessions (only the hash of their
# id kept), login attempts (rate limiting), and whether an approval needs four eyes (NULL: it does)
AUTH_DDL = """
CREATE TABLE IF NOT EXISTS users (
  name TEXT PRIMARY KEY, role TEXT NOT NULL, runbooks TEXT NOT NULL, groups TEXT NOT NULL, password_hash TEXT,
  disabled INTEGER NOT NULL DEFAULT 0, created_at DOUBLE PRECISION NOT NULL, created_by TEXT NOT NULL, contact TEXT);
CREATE TABLE IF NOT EXISTS api_tokens (
  id TEXT PRIMARY KEY, username TEXT NOT NULL, token_hash TEXT NOT NULL, name TEXT, role TEXT NOT NULL,
  created_at DOUBLE PRECISION NOT NULL, created_by TEXT NOT NULL, expires_at DOUBLE PRECISION,
  last_used_at DOUBLE PRECISION, revoked_at DOUBLE PRECISION, revoked_by TEXT);
CREATE INDEX IF NOT EXISTS api_tokens_user ON api_tokens (username);
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, username TEXT NOT NULL, csrf TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
  expires_at DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (username);
CREATE TABLE IF NOT EXISTS login_attempts (key TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS login_attempts_key ON login_attempts (key, at);
ALTER TABLE approvals ADD COLUMN four_eyes INTEGER DEFAULT 1
"""
