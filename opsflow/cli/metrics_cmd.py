"""opsflow metrics: the store's run metrics in the Prometheus text format (node_exporter's textfile collector)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from opsflow.cli.options import db_opt
from opsflow.errors import StoreError, UsageError


def write_atomically(path: Path, data: bytes) -> None:
    """``data`` in ``path`` by a temporary file of the same directory renamed over it: a reader (the
    textfile collector) sees the old file or the new one, never half of one."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"-o {path}: no such directory {directory}")
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)  # the collector often runs as another user; the file holds counts only
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"-o {path}: {exc.strerror or exc}") from exc


@click.command()
@db_opt
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="write to this file (atomically: a temporary file renamed), e.g. "
                   "/var/lib/node_exporter/textfile/opsflow.prom; default: standard output")
def metrics(db: str | None, output: str | None) -> None:
    """Run metrics from the store in the Prometheus text format: runs by status and trigger, durations,
    runs in progress, backup and drill ages, schedule slots, remediations, and the service levels of
    the services directory (target, attainment, met, budget left). When the store cannot be
    read, only opsflow_store_up 0 is written, and the exit code is 2 (as for any store error)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest

    from opsflow.reports.metrics import StoreCollector, service_levels
    from opsflow.store import open_store
    from opsflow.store.sql import SqlStore

    store = open_store(db, reap=False)
    try:
        if not isinstance(store, SqlStore):
            raise UsageError(f"store {store.url}: metrics need an SQL store")
        registry = CollectorRegistry()
        collector = StoreCollector(store, objectives=lambda: service_levels(store))
        registry.register(collector)
        data = generate_latest(registry)
    finally:
        store.close()
    if output is None:
        click.echo(data.decode(), nl=False)
    else:
        write_atomically(Path(output), data)
    if not collector.last_up:  # written all the same: opsflow_store_up 0 is what to alert on
        raise StoreError(f"store {store.url} could not be read: exported opsflow_store_up 0 only")
