"""The store's schema grows by Alembic migrations, nothing lost, on SQLite and PostgreSQL.

- a store made by the release before migrations (tests/data/store-v1.db) opens, is upgraded in
  place and keeps every row;
- the schema of a new store equals the one every migration builds, and the SQLAlchemy model;
- a store newer than this opsflow is refused; the release before migrations refuses ours;
- PostgreSQL is upgraded only by `opsflow db upgrade`; concurrent first opens do not collide.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opsflow.errors import StoreError
from opsflow.store import open_store
from opsflow.store.ddl import BASELINE_DDL
from opsflow.store.migrate import HEAD, REVISIONS, _alembic_upgrade
from opsflow.store.sql import SqlStore
from tests.helpers import ROOT, pg_store_url

FIXTURE = ROOT / "tests" / "data" / "store-v1.db"
TABLES = ("runs", "results", "locks", "approvals", "events", "event_actions", "breakers")


def rows(path: Path, table: str, columns: str = "*") -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute(f"SELECT {columns} FROM {table}").fetchall(), key=repr)


def columns(path: Path, table: str) -> str:
    with sqlite3.connect(path) as db:
        return ", ".join(r[1] for r in db.execute(f"PRAGMA table_info({table})"))


def schema_of(path: Path) -> dict[str, Any]:
    """Tables with their columns (name, type, not null, default, pk) and indexes with their columns."""
    out: dict[str, Any] = {}
    with sqlite3.connect(path) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
            cols = [tuple(r[1:]) for r in db.execute(f"PRAGMA table_info({table})")]
            indexes = {name: [c[2] for c in db.execute(f"PRAGMA index_info({name})")]
                       for _, name, *_ in db.execute(f"PRAGMA index_list({table})") if not name.startswith("sqlite_")}
            out[table] = (cols, indexes)
    return out


def test_a_store_of_the_release_before_migrations_is_upgraded_with_nothing_lost(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    shutil.copy(FIXTURE, path)
    cols = {t: columns(path, t) for t in TABLES}
    before = {t: rows(path, t, cols[t]) for t in TABLES}
    assert all(before[t] for t in TABLES), "the fixture holds rows in every table"
    store = open_store(str(path), reap=False)
    assert store.revision() == HEAD  # type: ignore[attr-defined]
    assert store.get_run("20261201-000001-v1run1")["status"] == "failed"  # type: ignore[index]
    assert store.approval("20261201-000001-v1run1", 1)["decided_by"] == "alice@laptop"  # type: ignore[index]
    assert [e["id"] for e in store.events()] == ["ev-v1-1"]
    store.close()
    assert {t: rows(path, t, cols[t]) for t in TABLES} == before  # every row, every column it had
    assert rows(path, "runs", "error_kind") == [(None,)] * 4  # a column added by a migration
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM opsflow_meta WHERE key = 'schema'").fetchone() == ("2",)
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "runs_parent" in indexes


def test_release_before_migrations_refuses_an_upgraded_store(tmp_path: Path) -> None:
    """That release compares opsflow_meta's schema with its own (1): run its very check on ours."""
    path = tmp_path / "s.db"
    open_store(str(path)).close()
    with sqlite3.connect(path) as db:
        (value,) = db.execute("SELECT value FROM opsflow_meta WHERE key = 'schema'").fetchone()
    old_release_refuses = int(value) > 1  # `elif int(rows[0][0]) > SCHEMA_VERSION: raise StoreError(...)`
    assert old_release_refuses


def test_a_store_newer_than_this_opsflow_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    open_store(str(path)).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    with pytest.raises(StoreError, match="0099_from_the_future, newer than this opsflow knows.*upgrade opsflow"):
        open_store(str(path))


def test_new_store_schema_equals_the_migrations_and_the_model(tmp_path: Path) -> None:
    fast, migrated = tmp_path / "fast.db", tmp_path / "migrated.db"
    open_store(str(fast)).close()
    sqlite3.connect(migrated).close()
    _alembic_upgrade(str(migrated), stamp_baseline=False)
    assert schema_of(fast) == schema_of(migrated)
    assert rows(fast, "alembic_version") == rows(migrated, "alembic_version") == [(HEAD,)]

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from opsflow.store.schema import metadata

    engine = create_engine(f"sqlite:///{migrated}")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    engine.dispose()
    # SQLite reports a non-INTEGER primary key column as nullable (it allows NULL there): not a drift
    primary = {(t.name, c.name) for t in metadata.tables.values() for c in t.primary_key.columns}
    diff = [d for d in diff if not (isinstance(d, list) and d[0][0] == "modify_nullable"
                                    and (d[0][2], d[0][3]) in primary)]
    assert diff == []


def test_every_revision_is_known_and_ordered() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from opsflow.store.migrate import SCRIPTS

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    script = ScriptDirectory.from_config(cfg)
    assert script.get_current_head() == HEAD
    assert [r.revision for r in reversed(list(script.walk_revisions()))] == list(REVISIONS)


def test_concurrent_first_opens_do_not_collide(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    code = "import sys; from opsflow.store import open_store; open_store(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    errors = [p.communicate()[1] for p in procs if p.wait() != 0]
    assert not errors, errors
    assert rows(path, "alembic_version") == [(HEAD,)]


def test_postgres_is_upgraded_only_on_request() -> None:
    with pg_store_url() as url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:  # a store of the release before migrations
            for statement in BASELINE_DDL.replace("{serial}", "BIGSERIAL PRIMARY KEY").split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO runs (id, runbook, status, started_at) VALUES ('r1', 'rb', 'succeeded', 1.0)")
        with pytest.raises(StoreError, match="opsflow db upgrade"):
            open_store(url)
        store = SqlStore.connect(url, migrate=False)
        assert store.upgrade() == ("legacy", HEAD)
        store.close()
        store = SqlStore.connect(url)
        assert store.revision() == HEAD and store.get_run("r1")["runbook"] == "rb"  # type: ignore[index]
        store.close()


def test_postgres_new_store_is_created_at_head() -> None:
    with pg_store_url() as url:
        store = open_store(url)
        assert store.revision() == HEAD  # type: ignore[attr-defined]
        store.close()


def test_opening_a_current_store_imports_neither_sqlalchemy_nor_alembic(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    open_store(str(path)).close()
    code = ("import sys; from opsflow.store import open_store; open_store(sys.argv[1]).close(); "
            "print([m for m in ('sqlalchemy', 'alembic') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
