"""``opsflow slo``: the service levels — list, status, Prometheus rules, OpenSLO export and import."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from opsflow.cli.options import db_opt

services_opt = click.option("--services", "services_dir", default=None,
                            help="services directory or file [env OPSFLOW_SERVICES, project file; default ./services]")
service_opt = click.option("--service", default=None, help="only this service")


def _load(services_dir: str | None) -> Any:
    from opsflow.errors import UsageError
    from opsflow.settings import current
    from opsflow.slo.loader import load_services

    path = Path(services_dir or current().services)
    if not path.exists():
        raise UsageError(f"no services directory {path} (service levels live in services/*.yaml; see README, "
                         "'Service levels')")
    cfg = current()
    return load_services(path, cfg.runbooks, cfg.schedules)


def _entries() -> dict[str, str]:
    from opsflow.reports.kpi import schedule_entries

    return schedule_entries(None)


@click.group()
def slo() -> None:
    """Service levels: objectives per service, measured from the store."""


@slo.command("list")
@services_opt
@click.option("--json", "as_json", is_flag=True)
def list_(services_dir: str | None, as_json: bool) -> None:
    """The services and their objectives."""
    services = _load(services_dir)
    rows = [{"service": s.name, "objective": o.name, "kind": o.kind, "target": o.threshold or o.ratio,
             "window_s": o.window, "description": o.describe(), "runbooks": services.runbooks_of(s, o),
             "hours": s.hours, "corrections": s.corrections}
            for s in services.services.values() for o in s.objectives]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for s in services.services.values():
        extra = (f", hours: {s.hours}" if s.hours else "") + (f", corrections: {', '.join(s.corrections)}"
                                                              if s.corrections else "")
        click.echo(f"{s.name}  ({len(services.runbooks_of(s))} runbooks{extra})")
        for o in s.objectives:
            click.echo(f"  {o.name:<24} {o.kind:<19} {o.describe()}")


@slo.command()
@services_opt
@service_opt
@db_opt
@click.option("--json", "as_json", is_flag=True)
def status(services_dir: str | None, service: str | None, db: str | None, as_json: bool) -> None:
    """Each objective over its own window, ending now: actual, met, error budget left, burn rate.

    Exit status 1 when an objective is breached (for CI and cron)."""
    from opsflow.reports.kpi import objective_status
    from opsflow.store import open_store

    services = _load(services_dir)
    store = open_store(db)
    try:
        rows = objective_status(store, services, service, time.time())
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        from opsflow.reports.text import fmt_burn, fmt_measure, fmt_met, fmt_pct

        click.echo(f"{'service/objective':<44} {'target':>9} {'actual':>9} {'met':>10} {'budget left':>11} {'burn':>6}")
        for r in rows:
            click.echo(f"{r['service'] + '/' + r['name']:<44} {fmt_measure(r['target'], r['unit']):>9} "
                       f"{fmt_measure(r['actual'], r['unit']):>9} {fmt_met(r['met']):>10} "
                       f"{fmt_pct(r['budget_remaining']):>11} {fmt_burn(r['burn_rate']):>6}")
    if any(not r["met"] for r in rows):
        sys.exit(1)


@slo.command()
@services_opt
@service_opt
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), help="write here (atomically)")
def rules(services_dir: str | None, service: str | None, output: str | None) -> None:
    """Prometheus recording and alerting rules: multi-window burn rates (14.4×/1h, 6×/6h, 3×/1d, 1×/3d)."""
    from opsflow.slo.rules import dump
    from opsflow.slo.rules import rules as make

    _emit(dump(make(_load(services_dir), service, _entries())), output)


@slo.command()
@services_opt
@service_opt
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), help="write here (atomically)")
def export(services_dir: str | None, service: str | None, output: str | None) -> None:
    """The services as OpenSLO v1 documents (Service and SLO)."""
    from opsflow.slo.openslo import dumps
    from opsflow.slo.openslo import export as make

    _emit(dumps(make(_load(services_dir), service, _entries())), output)


@slo.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="write the services file here (atomically) [default: stdout]")
def import_(file: str, output: str | None) -> None:
    """Read OpenSLO v1 documents (as `opsflow slo export` writes them) into a services file."""
    import yaml

    from opsflow.slo.openslo import import_docs

    services = import_docs(Path(file).read_text(encoding="utf-8"), file)
    text = f"# Imported from {Path(file).name} by `opsflow slo import`.\n" + yaml.safe_dump(
        {"services": services}, sort_keys=False, width=200)
    _emit(text, output)


def _emit(text: str, output: str | None) -> None:
    if output:
        from opsflow.cli.report import write_atomic

        write_atomic(output, text)
        click.echo(f"written to {output}", err=True)
    else:
        sys.stdout.write(text)
