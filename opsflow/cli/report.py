"""``opsflow report``: KPIs against service levels, in the format the reader needs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from opsflow.cli.options import db_opt

FORMATS = ("terminal", "html", "markdown", "csv", "json")


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    if fmt == "html":
        from opsflow.reports.html import render_html

        return render_html(report)
    from opsflow.reports import text

    return {"terminal": text.render_terminal, "markdown": text.render_markdown, "csv": text.render_csv}[fmt](report)


def write_atomic(path: str, content: str) -> None:
    """Write all of it or nothing (the one atomic writer of the CLI: opsflow.cli.metrics_cmd)."""
    from opsflow.cli.metrics_cmd import write_atomically

    write_atomically(Path(path), content.encode("utf-8"))


def build(db: str | None, since: str, until: str | None, service: str | None, hours: str | None) -> dict[str, Any]:
    from opsflow.reports.kpi import build_report, parse_instant
    from opsflow.store import open_store

    now = time.time()
    start = parse_instant(since, now, "--since")
    end = parse_instant(until, now, "--until") if until else now
    store = open_store(db)
    try:
        return build_report(store, start, end, service=service, hours=hours, now=now)
    finally:
        store.close()


@click.command()
@click.option("--since", default="30d", show_default=True, help="a span before now (7d, 24h, 2w) or an ISO 8601 date")
@click.option("--until", default=None, help="ISO 8601 date or instant [default: now]")
@click.option("--service", default=None, help="only this service's runbooks, events, backups and schedule")
@click.option("--hours", default=None, metavar="CALENDAR",
              help="measure within this calendar's operational hours only (a calendar of the schedules directory)")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="terminal", show_default=True)
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False), help="write here (atomically)")
@db_opt
def report(since: str, until: str | None, service: str | None, hours: str | None, fmt: str, output: str | None,
           db: str | None) -> None:
    """KPIs of the period against service levels: runbooks, objectives, events, backups, schedule, people.

    \b
    opsflow report --since 7d
    opsflow report --since 2026-11-01 --until 2026-12-01 --service network-config --format html -o nov.html
    opsflow report --hours business-hours --format json
    """
    data = build(db, since, until, service, hours)
    content = render(data, fmt)
    if output:
        write_atomic(output, content)
        click.echo(f"report written to {output} ({len(content.encode()):,} bytes)", err=True)
    else:
        sys.stdout.write(content)
