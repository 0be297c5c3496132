"""opsflow db current | upgrade: the store's schema revision, and migrating it (Alembic)."""

from __future__ import annotations

import json

import click

from opsflow.cli.options import db_opt


@click.group()
def db() -> None:
    """The store's schema: its revision, and upgrading it in place."""


@db.command()
@db_opt
@click.option("--json", "as_json", is_flag=True, help="print as JSON")
def current(db: str | None, as_json: bool) -> None:
    """The store's schema revision and this opsflow's newest (exit 1 when they differ)."""
    from opsflow.store import open_store
    from opsflow.store.migrate import HEAD, describe
    store = open_store(db, reap=False, migrate=False)
    rev = store.revision()
    store.close()
    if as_json:
        click.echo(json.dumps({"store": store.url, "revision": rev, "head": HEAD, "current": rev == HEAD}))
    else:
        click.echo(f"store {store.url}: revision {describe(rev)}; this opsflow's newest: {HEAD}"
                   + ("" if rev == HEAD else " (run `opsflow db upgrade`)"))
    raise SystemExit(0 if rev == HEAD else 1)


@db.command()
@db_opt
def upgrade(db: str | None) -> None:
    """Upgrade the store's schema in place to this opsflow's newest revision (nothing is lost)."""
    from opsflow.store import open_store
    from opsflow.store.migrate import describe
    store = open_store(db, reap=False, migrate=False)
    try:
        before, after = store.upgrade()
    finally:
        store.close()
    if before == after:
        click.echo(f"store {store.url} is already at {describe(after)}")
    else:
        click.echo(f"store {store.url} upgraded from {describe(before)} to {after}")
