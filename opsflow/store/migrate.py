"""The store's schema, versioned by Alembic migrations (``opsflow/store/migrations``).

Opening a store costs one query when its schema is current: SQLAlchemy and Alembic are imported
only to migrate. The states a store can be in, and what opening it does:

- **empty**: the schema at head is created (the DDL below, which a test proves equal to running
  every migration) and stamped with the head revision;
- **current** (``alembic_version`` = :data:`HEAD`): nothing;
- **older** (a known revision, or a store made before migrations: ``opsflow_meta`` schema 1, no
  ``alembic_version``): upgraded in place, SQLite at once, PostgreSQL — a store a team shares,
  perhaps with older workers still running — only by ``opsflow db upgrade``;
- **newer** (a revision this opsflow does not know): refused, "upgrade opsflow".

Migrations of one store never run twice at once: a file lock (SQLite) or an advisory lock
(PostgreSQL) is held while the revision is read again and the migrations run.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from opsflow.errors import StoreError

REVISIONS = ("0001_baseline", "0002_history_indexes", "0003_run_error_kind", "0004_schedule_and_audit",
             "0005_kpi_and_reviews", "0006_users_and_tokens", "0007_dispatch_leases")  # oldest first
HEAD = REVISIONS[-1]
BASELINE = REVISIONS[0]
SCRIPTS = Path(__file__).parent / "migrations"
_PG_LOCK = 0x6F707366  # "opsf": the advisory lock key of migrations

# The schema at HEAD, for an empty store (tests/unit/test_migrations.py proves it equal to the migrations).
HEAD_DDL = """
CREATE INDEX IF NOT EXISTS runs_parent ON runs (parent_run);
UPDATE opsflow_meta SET value = '2' WHERE key = 'schema';
ALTER TABLE runs ADD COLUMN error_kind TEXT;
CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL,
  CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
"""

Exec = Callable[..., list[tuple[Any, ...]]]


def revision(run: Exec) -> str | None:
    """The store's revision; ``"legacy"`` for a store made before migrations; None when empty."""
    try:
        rows = run("SELECT version_num FROM alembic_version")
        if rows:
            return str(rows[0][0])
    except StoreError:
        pass
    try:
        run("SELECT 1 FROM runs LIMIT 1")
    except StoreError:
        return None
    return "legacy"


def describe(rev: str | None) -> str:
    return {None: "empty", "legacy": "schema 1 (before migrations)"}.get(rev, str(rev))


def ensure_current(run: Exec, url: str, raw_url: str, dialect: str, auto: bool) -> None:
    """Bring the store to HEAD as described above, or raise StoreError saying what to do."""
    if revision(run) == HEAD:
        return
    with _migration_lock(run, raw_url, dialect):
        rev = revision(run)
        if rev == HEAD:
            return
        if rev is not None and rev != "legacy" and rev not in REVISIONS:
            raise StoreError(f"store {url} has schema revision {rev}, newer than this opsflow knows "
                             f"(its newest is {HEAD}): upgrade opsflow")
        if rev is None:
            _create(run, dialect)
            return
        if not auto:
            raise StoreError(f"store {url} is at revision {describe(rev)}; this opsflow needs {HEAD}. "
                             "Run `opsflow db upgrade` (with every opsflow that uses it stopped or upgraded)")
        _alembic_upgrade(raw_url, stamp_baseline=rev == "legacy")


def upgrade(run: Exec, url: str, raw_url: str, dialect: str) -> tuple[str | None, str]:
    """``opsflow db upgrade``: (revision before, revision after)."""
    before = revision(run)
    ensure_current(run, url, raw_url, dialect, auto=True)
    return before, revision(run) or HEAD


def _create(run: Exec, dialect: str) -> None:
    """An empty store: the baseline, then what the later migrations add, stamped at HEAD."""
    from opsflow.store.ddl import AUTH_DDL, BASELINE_DDL, KPI_REVIEWS_DDL, SCHEDULE_AUDIT_DDL, statements
    from opsflow.store.leases import DISPATCH_DDL

    todo = statements(BASELINE_DDL + HEAD_DDL + SCHEDULE_AUDIT_DDL + ";" + KPI_REVIEWS_DDL + ";" + AUTH_DDL + ";"
                      + DISPATCH_DDL, dialect == "postgres")
    run("BEGIN")
    try:
        for statement in todo:
            run(statement)
        run("INSERT INTO alembic_version (version_num) VALUES (?)", (HEAD,))
        run("COMMIT")
    except BaseException:
        run("ROLLBACK")
        raise


def sqlalchemy_url(raw_url: str) -> str:
    if raw_url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + raw_url.split("://", 1)[1]
    return f"sqlite:///{raw_url}"


def _alembic_upgrade(raw_url: str, stamp_baseline: bool) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(sqlalchemy_url(raw_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(SCRIPTS))
            cfg.attributes["connection"] = conn
            if stamp_baseline:
                command.stamp(cfg, BASELINE)
            command.upgrade(cfg, "head")
            conn.commit()
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy, Alembic and driver errors alike
        raise StoreError(f"store upgrade failed: {type(exc).__name__}: {exc}") from exc
    finally:
        engine.dispose()


@contextlib.contextmanager
def _migration_lock(run: Exec, raw_url: str, dialect: str) -> Iterator[None]:
    if dialect == "postgres":
        run("SELECT pg_advisory_lock(?)", (_PG_LOCK,))
        try:
            yield
        finally:
            run("SELECT pg_advisory_unlock(?)", (_PG_LOCK,))
        return
    lock_path = Path(raw_url + ".migrate-lock")
    with open(lock_path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
