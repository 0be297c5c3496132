"""opsflow worker / workers / abandon: scale-out on Celery (opsflow.dispatch)."""

from __future__ import annotations

import json
import os
import socket
import time

import click

from opsflow.cli.options import db_opt
from opsflow.errors import UsageError
from opsflow.textsafe import for_terminal as safe


def _broker(broker: str | None) -> str:
    from opsflow.settings import current

    url = broker or current().broker
    if not url:
        raise UsageError("no broker: --broker URL, OPSFLOW_BROKER or `broker` in the project file "
                         "(amqp://guest:guest@127.0.0.1:5672// for RabbitMQ, redis://127.0.0.1:6379/0 for Redis)")
    if not url.startswith(("amqp://", "amqps://", "pyamqp://", "redis://", "rediss://")):
        raise UsageError(f"broker {url.split('://')[0]}://…: amqp://… (RabbitMQ) or redis://… (Redis)")
    return url


def _celery() -> None:
    try:
        import celery  # noqa: F401
    except ImportError as exc:
        raise UsageError("opsflow worker needs Celery: pip install 'opsflow[celery]'") from exc


@click.command()
@click.option("--queues", "-Q", default="default", show_default=True, metavar="Q1,Q2",
              help="queues this worker serves (a site's hosts carry `opsflow_queue: site-a`)")
@click.option("--concurrency", "-c", default=4, show_default=True, type=click.IntRange(1, 256),
              help="units of work run at once (threads)")
@click.option("--broker", default=None, metavar="URL", help="amqp://… or redis://… [env OPSFLOW_BROKER, project file]")
@click.option("--name", "-n", default=None, help="worker name [default: opsflow-<queues>@<host>-<pid>]")
@click.option("--lease-ttl", default=None, type=click.FloatRange(1.0, 3600.0), metavar="SECONDS",
              help="a unit whose worker was silent this long is taken over [env OPSFLOW_LEASE_TTL; default 30]")
@click.option("--loglevel", "-l", default="INFO", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]))
@db_opt
def worker(queues: str, concurrency: int, broker: str | None, name: str | None, lease_ttl: float | None,
           loglevel: str, db: str | None) -> None:
    """Run opsflow's units of work from the broker's QUEUES, through the same executor and connectors as a local run.

    SIGTERM stops it warmly (units in flight end first); a worker killed outright is found by its stale lease and
    its units are taken over by another worker of their queue."""
    import logging

    from opsflow.dispatch.lease import lease_ttl as env_lease_ttl
    from opsflow.dispatch.placement import check_queue
    from opsflow.store import open_store

    _celery()
    url = _broker(broker)
    names = [check_queue(q.strip(), "--queues") for q in queues.split(",") if q.strip()]
    if not names:
        raise UsageError("--queues: at least one queue")
    ttl = lease_ttl or env_lease_ttl()
    logging.basicConfig(level=loglevel, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    store = open_store(db, reap=False)
    from opsflow.dispatch.app import run_worker

    label = name or f"opsflow-{'-'.join(names)}@{socket.gethostname()}-{os.getpid()}"
    click.echo(f"opsflow worker {label}: queues {', '.join(names)}, concurrency {concurrency}, store {store.url}, "
               f"lease ttl {ttl:g} s", err=True)
    try:
        run_worker(store, url, names, concurrency, label, ttl, loglevel)  # type: ignore[arg-type]
    finally:
        store.close()


@click.command()
@db_opt
@click.option("--json", "as_json", is_flag=True, help="as JSON")
@click.option("--all", "show_all", is_flag=True, help="also workers stopped or gone for more than a day")
def workers(db: str | None, as_json: bool, show_all: bool) -> None:
    """Workers: their queues, what they run, when they were last seen (their heartbeats in the store)."""
    from opsflow.cli.commands import sweep_stale
    from opsflow.dispatch.lease import live
    from opsflow.store import open_store

    store = open_store(db, reap=False)
    try:
        sweep_stale(store)  # runs whose workers are all gone end interrupted
        rows = store.workers()  # type: ignore[attr-defined]
    finally:
        store.close()
    now = time.time()
    for row in rows:
        row["alive"] = row["state"] == "running" and live(row["last_seen"], row["ttl"], now)
        row["status"] = "running" if row["alive"] else ("stopped" if row["state"] == "stopped" else "gone")
    if not show_all:
        rows = [r for r in rows if r["alive"] or now - r["last_seen"] < 86400]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no workers (start one: opsflow worker --queues default)")
        return
    click.echo(f"{'WORKER':<44} {'STATUS':<8} {'QUEUES':<20} {'SEEN':>8}  RUNNING")
    for r in rows:
        seen = f"{now - r['last_seen']:.0f}s ago"
        click.echo(safe(f"{r['name']:<44} {r['status']:<8} {','.join(r['queues']):<20} {seen:>8}  "
                        f"{', '.join(r['running']) or '-'}"))


@click.command()
@click.argument("run_id")
@click.option("--reason", required=True, metavar="TEXT", help="why it is given up (recorded with who)")
@db_opt
def abandon(run_id: str, reason: str, db: str | None) -> None:
    """Give up an interrupted run (or a dispatched one whose workers are gone): it ends abandoned, audited."""
    from opsflow.planning import who
    from opsflow.results import RunStatus
    from opsflow.store import open_store

    store = open_store(db)
    try:
        record = store.get_run(run_id)
        if record is None:
            raise UsageError(f"no run {run_id!r} (see opsflow history)")
        if record["status"] not in ("interrupted", "running", "waiting"):
            raise UsageError(f"run {record['id']} is {record['status']}: only an interrupted (or still running) run "
                             "can be abandoned")
        leases = store.leases(record["id"], open_only=True)  # type: ignore[attr-defined]
        if record["status"] != "interrupted" and not leases and not str(record.get("node", "")).startswith("celery"):
            raise UsageError(f"run {record['id']} runs in process {record['pid']} on {record['node']}: cancel it "
                             "there (Ctrl-C) instead")
        actor = who()
        store.finish_run(record["id"], RunStatus.ABANDONED, time.time(), record["hosts"],
                         f"abandoned by {actor}: {reason}" + (f" (was: {record['error']})" if record["error"] else ""),
                         "abandoned")
        store.audit(actor, "abandon", record["id"], reason)
        store.audit(actor, "cancel", record["id"], f"abandoned: {reason}")  # workers still holding a unit stop
        store.release_locks(record["id"])
    finally:
        store.close()
    click.echo(f"run {record['id']}: abandoned by {actor}")
