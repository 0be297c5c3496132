"""opsflow run / validate / plan / list / history / show / schema."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from opsflow.cli.options import db_opt, inventory_opt, parse_since, remote_options
from opsflow.errors import FourEyesRefused, RunbookError, UsageError
from opsflow.results import RunStatus
from opsflow.textsafe import for_terminal as safe


def parse_extra(values: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        if item.startswith("@"):
            import yaml

            try:
                data = yaml.safe_load(Path(item[1:]).read_text())
            except (OSError, yaml.YAMLError) as exc:
                raise UsageError(f"-e {item}: cannot read params file: {exc}") from exc
            if not isinstance(data, dict):
                raise UsageError(f"-e {item}: a params file must be a mapping")
            out.update(data)
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"-e {item!r}: expected key=value or @file.yml")
        out[key.strip()] = value
    return out


def execute_request(request: Any, db: str | None, as_json: bool, junit: str | None, quiet: bool,
                    dispatch: str | None = None, broker: str | None = None) -> None:
    """Build the plan, run it with live progress, print/write the record, exit with the run's code."""
    from opsflow.api import execute, open_store
    from opsflow.auth import plan_hosts
    from opsflow.auth.store import local_refusal
    from opsflow.cli.render import ProgressObserver, run_json
    from opsflow.cli.render import junit as junit_xml
    from opsflow.executor import Executor
    from opsflow.planning import build_plan

    plan = build_plan(request)  # bad input fails here: nothing is recorded
    store = open_store(db)
    refused = local_refusal(store, "resume" if request.resume_of else "run", plan.name, plan_hosts(plan))
    if refused:  # $OPSFLOW_USER is a user of the store whose role or scope does not allow it
        store.close()
        raise UsageError(refused)
    show_lessons(store, plan.name)
    executor = Executor(store, ProgressObserver(sys.stderr, quiet=quiet))
    interrupts = {"n": 0}

    def on_signal(signum: int, _frame: Any) -> None:
        interrupts["n"] += 1
        name = signal.Signals(signum).name
        if interrupts["n"] == 1:
            click.echo(f"\nopsflow: {name}: canceling — no new host or step starts, in-flight work is stopped "
                       f"in {executor.grace:g} s; again to stop at once", err=True)
            executor.request_cancel(f"canceled by {name}")
        else:
            click.echo(f"\nopsflow: {name} again: stopping in-flight work", err=True)
            executor.request_cancel(f"canceled by {name}", hard=True)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = execute(plan, executor=executor, dispatch=dispatch, broker=broker)  # the one funnel, as for all
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    record = store.get_run(result.run_id) or {}
    results = store.results(result.run_id)
    if as_json:
        click.echo(run_json(record, results))
    if junit:
        Path(junit).write_bytes(junit_xml(record, results))
    store.close()
    sys.exit(result.exit_code)


def show_lessons(store: Any, runbook: str) -> None:
    """On stderr: the open reviews of ``runbook`` and their action items not done (never fails the caller)."""
    from opsflow.errors import OpsflowError

    try:
        lessons = store.open_lessons(runbook)
    except OpsflowError as exc:
        click.echo(f"opsflow: note: open lessons of {safe(runbook)} not shown: {safe(exc)}", err=True)
        return
    if not lessons:
        return
    from opsflow.reviews.render import lesson_lines

    for line in lesson_lines(lessons):
        click.echo(line, err=True)


def _plan_lessons(db: str | None, runbook: str) -> None:
    """``opsflow plan``: the open lessons, from a store that exists (a plan creates none)."""
    from opsflow.errors import OpsflowError
    from opsflow.store import default_url, open_store

    url = db or default_url()
    if not url.startswith(("postgresql://", "postgres://")) and \
            not Path(url.removeprefix("sqlite:///").removeprefix("sqlite://")).exists():
        return
    try:
        store = open_store(url, reap=False)
    except OpsflowError as exc:
        click.echo(f"opsflow: note: open lessons of {safe(runbook)} not shown: {safe(exc)}", err=True)
        return
    try:
        show_lessons(store, runbook)
    finally:
        store.close()


def _trigger(trigger: str | None) -> str:
    import os

    return trigger or ("ci" if os.environ.get("CI") else "cli")


_output_opts = [
    click.option("--json", "as_json", is_flag=True, help="print the run record as JSON on stdout"),
    click.option("--junit", type=click.Path(dir_okay=False), default=None, help="write JUnit XML here"),
    click.option("--quiet", "-q", is_flag=True, help="no progress output"),
]


def _outputs(fn: Any) -> Any:
    for opt in reversed(_output_opts):
        fn = opt(fn)
    return fn


def _dispatch_opts(fn: Any) -> Any:
    """--dispatch local|celery and --broker URL (opsflow.dispatch; defaults from the settings)."""
    fn = click.option("--broker", default=None, metavar="URL",
                      help="Celery broker of --dispatch celery: amqp://… or redis://… [env OPSFLOW_BROKER, project file]")(fn)
    return click.option("--dispatch", type=click.Choice(["local", "celery"]), default=None,
                        help="run here (local) or on `opsflow worker`s (celery) [env OPSFLOW_DISPATCH, project file; "
                             "default local]")(fn)


@click.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
@click.option("-e", "--extra", "extra", multiple=True, metavar="KEY=VALUE", help="a param (repeatable), or @file.yml")
@click.option("--limit", "-l", default=None, help="inventory pattern restricting the targets")
@inventory_opt
@db_opt
@click.option("--check", is_flag=True, help="dry run: change nothing, show what would change")
@click.option("--strict", is_flag=True, help="with --check: refuse when a step cannot be checked")
@click.option("--trigger", default=None, type=click.Choice(["cli", "ci", "event", "schedule", "api"]),
              help="who starts the run [default: ci when $CI is set, else cli]")
@click.option("--override-window", is_flag=True,
              help="start even in a blackout or outside the maintenance window (needs --reason; audited)")
@click.option("--reason", default=None, metavar="TEXT", help="why the window is overridden (recorded with who)")
@_outputs
@_dispatch_opts
@remote_options
def run(runbook: str, extra: tuple[str, ...], limit: str | None, inventory: str | None, db: str | None,
        check: bool, strict: bool, trigger: str | None, override_window: bool, reason: str | None, as_json: bool,
        junit: str | None, quiet: bool, dispatch: str | None, broker: str | None, server: str | None,
        ca_file: str | None) -> None:
    """Run RUNBOOK against its targets. Exit 0 succeeded, 1 failed or partial, 2 bad input."""
    from opsflow.cli import remote
    from opsflow.planning import RunRequest, default_inventory

    if client := remote.connect(server, ca_file):  # through opsflow serve: RUNBOOK is a name of its runbooks
        remote.refuse_local({"--inventory": inventory, "--db": db, "--strict": strict, "--trigger": trigger,
                             "--override-window": override_window})
        return remote.run(client, runbook, parse_extra(extra), limit, check, as_json, junit, quiet)

    if strict and not check:
        raise UsageError("--strict only applies with --check")
    if override_window != bool(reason and reason.strip()):
        raise UsageError("--override-window and --reason TEXT go together: say why the window is overridden")
    execute_request(RunRequest(runbook=runbook, params=parse_extra(extra), inventory=inventory or default_inventory(),
                               limit=limit, trigger=_trigger(trigger), check=check, strict=strict,
                               override_window=reason.strip() if reason else None),
                    db, as_json, junit, quiet, dispatch, broker)


@click.command()
@click.argument("run_id")
@click.option("-e", "--extra", "extra", multiple=True, metavar="KEY=VALUE",
              help="override a recorded param; secret params must be given again")
@db_opt
@click.option("--force", is_flag=True, help="resume even though the runbook file changed since the run")
@_outputs
@_dispatch_opts
@remote_options
def resume(run_id: str, extra: tuple[str, ...], db: str | None, force: bool, as_json: bool, junit: str | None,
           quiet: bool, dispatch: str | None, broker: str | None, server: str | None, ca_file: str | None) -> None:
    """Continue a failed, partial, canceled or abandoned run from the steps it did not complete."""
    import hashlib

    from opsflow.cli import remote

    if client := remote.connect(server, ca_file):  # the server resumes it, from its runbooks directory
        remote.refuse_local({"--db": db})
        return remote.resume(client, run_id, parse_extra(extra), force, as_json, junit, quiet)

    from opsflow.planning import RunRequest
    from opsflow.resume import resume_target
    from opsflow.store import open_store

    store = open_store(db)
    try:
        record = resume_target(store, run_id)  # the newest run of its resume chain
    finally:
        store.close()
    path = Path(record["runbook_path"])
    try:
        current = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise UsageError(f"runbook {path} of run {record['id']} cannot be read: {exc.strerror}") from exc
    if current != record["runbook_hash"] and not force:
        raise UsageError(f"runbook {path} changed since run {record['id']}; steps may not line up "
                         "(use --force to resume anyway)")
    params = {k: v for k, v in record["params"].items() if v != "********"}
    params.update(parse_extra(extra))
    execute_request(RunRequest(runbook=str(path), params=params, inventory=record["inventory"],
                               limit=":".join(record["hosts"]) or None, trigger=record["trigger"],
                               parent_run=record["id"], resume_of=record["id"]), db, as_json, junit, quiet,
                    dispatch, broker)


def _decide(run_id: str, approved: bool, comment: str | None, db: str | None) -> None:
    from opsflow.planning import who
    from opsflow.store import open_store

    store = open_store(db)
    record = store.get_run(run_id)
    if record is None:
        raise UsageError(f"no run {run_id!r} (see opsflow history)")
    actor = who()  # $OPSFLOW_USER, else user@host
    from opsflow.auth.store import local_refusal

    refused = local_refusal(store, "approve", record["runbook"])
    if refused:
        store.close()
        raise UsageError(refused)
    try:  # four-eyes: FourEyesRefused (exit 2) when the one who started the run approves it
        try:
            decision = store.decide(record["id"], approved, actor, comment)
        except FourEyesRefused as exc:  # a refused approval is on record too
            store.audit(actor, "approve_refused", record["id"], str(exc))
            raise
        if decision is not None:  # who let a run go on, or stopped it: on record
            store.audit(actor, "approve" if approved else "deny", record["id"],
                        f"step {decision['step']!r}" + (f": {comment}" if comment else ""))
    finally:
        store.close()
    if decision is None:
        raise UsageError(f"run {record['id']} ({record['status']}) is not waiting for an approval")
    click.echo(safe(f"run {record['id']}: step {decision['step']!r} {decision['state']} by {decision['decided_by']}"))


@click.command()
@click.argument("run_id")
@click.option("--comment", "-m", default=None)
@db_opt
@remote_options
def approve(run_id: str, comment: str | None, db: str | None, server: str | None, ca_file: str | None) -> None:
    """Let a run waiting at an approval step go on."""
    from opsflow.cli import remote

    if client := remote.connect(server, ca_file):
        return remote.decide(client, run_id, True, comment)
    _decide(run_id, True, comment, db)


@click.command()
@click.argument("run_id")
@click.option("--comment", "-m", default=None)
@db_opt
@remote_options
def deny(run_id: str, comment: str | None, db: str | None, server: str | None, ca_file: str | None) -> None:
    """Stop a run waiting at an approval step."""
    from opsflow.cli import remote

    if client := remote.connect(server, ca_file):
        return remote.decide(client, run_id, False, comment)
    _decide(run_id, False, comment, db)


@click.command()
@click.argument("paths", nargs=-1)
@inventory_opt
def validate(paths: tuple[str, ...], inventory: str | None) -> None:
    """Check runbooks, schedules and services: schema, unknown keys, types, templates, playbooks, targets,
    calendars, objectives. Exit 2 on any error."""
    from opsflow.inventory import load_inventory
    from opsflow.runbook.validate import find_runbooks, load_runbook
    from opsflow.settings import current

    settings = current()
    given = list(paths) or [settings.runbooks] + [d for d in (settings.schedules, settings.services) if Path(d).is_dir()]
    everything = find_runbooks(given)
    schedule_files = [f for f in everything if _is_schedule_file(f)]
    service_files = [f for f in everything if _has_top_key(f, "services") and f not in schedule_files]
    files = [f for f in everything if f not in schedule_files and f not in service_files]
    if not everything:
        raise UsageError("no runbook, schedule or services files found (give paths, or run where runbooks/ is)")
    inv_path = inventory or settings.inventory
    inv = load_inventory(inv_path) if files and (inventory or Path(inv_path).exists()) else None
    bad = _validate_schedules(schedule_files, settings.runbooks) + _validate_services(service_files, settings)
    for f in files:
        try:
            load_runbook(f, inv)
            click.echo(f"ok  {f}")
        except RunbookError as exc:
            bad += 1
            for d in exc.diagnostics:
                click.echo(safe(d), err=True)
    if files and inv is None:
        click.echo("note: no inventory given, targets and template variables were not checked", err=True)
    if bad:
        click.echo(f"{bad} of {len(files) + len(schedule_files) + len(service_files)} file(s) invalid", err=True)
        sys.exit(2)


def _has_top_key(path: Path, keys: str) -> bool:
    """Whether the file has one of the top-level keys (a regex alternation) and no ``steps:``."""
    import re

    try:
        head = path.read_text(errors="replace")[:65536]
    except OSError:
        return False
    return bool(re.search(rf"^({keys})\s*:", head, re.M)) and not re.search(r"^steps\s*:", head, re.M)


def _is_schedule_file(path: Path) -> bool:
    """A schedules file has top-level ``calendars:`` or ``schedules:`` and no ``steps:``."""
    return _has_top_key(path, "calendars|schedules")


def _validate_services(files: list[Path], settings: Any) -> int:
    """Validate services files per directory (their calendars are the schedules directory's)."""
    if not files:
        return 0
    from opsflow.slo.loader import load_services

    bad = 0
    for directory in sorted({f.parent for f in files}):
        try:
            load_services(directory, settings.runbooks, settings.schedules)
            failed: set[str] = set()
        except RunbookError as exc:
            failed = {d.file for d in exc.diagnostics}
            for d in exc.diagnostics:
                click.echo(safe(d), err=True)
        for f in sorted(f for f in files if f.parent == directory):
            if str(f) in failed:
                bad += 1
            else:
                click.echo(f"ok  {f}")
    return bad


def _validate_schedules(files: list[Path], runbooks: str) -> int:
    """Validate schedule files together per directory (calendars and entries refer to each other)."""
    if not files:
        return 0
    from opsflow.schedule.loader import validate_schedules

    bad = 0
    for directory in sorted({f.parent for f in files}):
        diags = validate_schedules(directory, runbooks)
        failed = {d.file for d in diags}
        for d in diags:
            click.echo(safe(d), err=True)
        for f in sorted(f for f in files if f.parent == directory):
            if str(f) in failed:
                bad += 1
            else:
                click.echo(f"ok  {f}")
    return bad


@click.command("list")
@click.argument("paths", nargs=-1)
def list_runbooks(paths: tuple[str, ...]) -> None:
    """List runbooks with their description and targets."""
    from opsflow.runbook.validate import find_runbooks, load_runbook

    for f in find_runbooks(list(paths) or ["runbooks"]):
        try:
            rb = load_runbook(f).runbook
            summary = rb.description.splitlines()[0] if rb.description else ""
            click.echo(safe(f"{rb.name:<28} {rb.targets:<16} {len(rb.steps):>2} steps  {summary}"))
        except RunbookError as exc:
            click.echo(f"{f}: invalid ({len(exc.diagnostics)} problem(s); see opsflow validate)", err=True)


def sweep_stale(store: Any) -> None:
    """Dispatched runs whose workers are all gone end ``interrupted`` now (a cheap query when none is stale)."""
    from opsflow.dispatch.sweeper import sweep_lazily

    for line in sweep_lazily(store):
        click.echo(safe(f"opsflow: {line}"), err=True)


@click.command()
@click.option("--runbook", default=None, help="only runs of this runbook (its name)")
@click.option("--status", default=None, type=click.Choice([str(s) for s in RunStatus]), help="only runs in this state")
@click.option("--since", default=None, help="e.g. 30m, 12h, 7d")
@click.option("--limit", "-n", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@db_opt
@remote_options
def history(runbook: str | None, status: str | None, since: str | None, limit: int, as_json: bool,
            db: str | None, server: str | None, ca_file: str | None) -> None:
    """Past runs, newest first."""
    from opsflow.cli import remote
    from opsflow.store import open_store

    if client := remote.connect(server, ca_file):
        rows = remote.history(client, runbook, status, parse_since(since) if since else None, limit)
    else:
        store = open_store(db)
        sweep_stale(store)
        rows = store.history(runbook=runbook, status=status, since=parse_since(since) if since else None, limit=limit)
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    header = ("run", "runbook", "status", "trigger", "started", "duration", "hosts")
    table_rows = []
    for r in rows:
        hosts = r["hosts"]
        bad = sum(1 for s in hosts.values() if s in ("failed", "unreachable", "timeout"))
        table_rows.append((*(safe(r[k]) for k in ("id", "runbook", "status", "trigger")),
                           time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started_at"])),
                           f"{r['duration']:.2f}s" if r["duration"] is not None else "-",
                           f"{len(hosts) - bad}/{len(hosts)} ok"))
    if not sys.stdout.isatty():
        # a pipe or a file: the same columns, plainly aligned — without importing rich and laying a table out
        widths = [max([len(c), *(len(row[i]) for row in table_rows)]) for i, c in enumerate(header)]
        for row in (header, tuple("-" * w for w in widths), *table_rows):
            sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # console_for's console, without importing opsflow.cli.render (it pulls in the runbook models: ~150 ms)
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True, emoji=False)
    table = Table()
    for col in header:
        table.add_column(col)
    for row in table_rows:
        table.add_row(*(Text(v) for v in row[:4]), *row[4:])
    console.print(table)


@click.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@click.option("--verbose", "-v", is_flag=True, help="print every output in full")
@db_opt
@remote_options
def show(run_id: str, as_json: bool, verbose: bool, db: str | None, server: str | None, ca_file: str | None) -> None:
    """One run: steps × hosts with durations and outputs."""
    from opsflow.cli import remote
    from opsflow.cli.render import run_json, show_run
    from opsflow.store import open_store

    record: dict[str, Any] | None
    if client := remote.connect(server, ca_file):
        record, results, event = remote.detail(client, run_id)
    else:
        store = open_store(db)
        sweep_stale(store)
        record = store.get_run(run_id)
        if record is None:
            raise UsageError(f"no run {run_id!r} in {store.url} (see opsflow history)")
        results = store.results(record["id"])
        event = store.event_for_run(record["id"])  # the event that started it (opsflow daemon), if any
        store.close()
    if as_json:
        click.echo(run_json({**record, "event": event} if event else record, results))
    else:
        show_run(sys.stdout, record, results, verbose)
        if event:
            from opsflow.cli.render import describe_event

            click.echo(safe(describe_event(event)))


@click.command()
@click.option("--kind", type=click.Choice(["runbook", "schedule", "service"]), default="runbook", show_default=True,
              help="which file format")
def schema(kind: str) -> None:
    """JSON Schema of the runbook (or schedules, or services) format, for editors."""
    if kind == "service":
        from opsflow.slo.schema import service_schema

        click.echo(json.dumps(service_schema(), indent=2))
        return
    if kind == "schedule":
        from opsflow.schedule.schema import schedule_schema

        click.echo(json.dumps(schedule_schema(), indent=2))
        return
    from opsflow.runbook.schema import runbook_schema

    click.echo(json.dumps(runbook_schema(), indent=2))


@click.command()
@click.argument("runbook", type=click.Path(dir_okay=False))
@click.option("-e", "--extra", "extra", multiple=True, metavar="KEY=VALUE")
@click.option("--limit", "-l", default=None)
@inventory_opt
@db_opt
@click.option("--json", "as_json", is_flag=True)
def plan(runbook: str, extra: tuple[str, ...], limit: str | None, inventory: str | None, db: str | None,
         as_json: bool) -> None:
    """Print the plan of a run (steps × hosts) without touching any target; open lessons of it on stderr."""
    from opsflow.planning import RunRequest, build_plan, default_inventory

    p = build_plan(RunRequest(runbook=runbook, params=parse_extra(extra), inventory=inventory or default_inventory(),
                              limit=limit))
    _plan_lessons(db, p.name)
    if as_json:
        click.echo(json.dumps({"runbook": p.name, "targets": p.targets, "params": p.public_params(),
                               "batches": p.batches, "steps": p.describe()}, indent=2, default=str))
        return
    click.echo(safe(f"{p.name}: {len(p.targets)} host(s): {', '.join(p.targets)}"))
    if len(p.batches) > 1:
        click.echo(safe(f"batches: {' | '.join(', '.join(b) for b in p.batches)}"))
    for s in p.describe():
        rollback = f"  rollback: {', '.join(s['rollback'])}" if s["rollback"] else ""
        click.echo(safe(f"  {s['index']:>2}. [{s['phase']}] {s['name']} ({s['action']}) → {', '.join(s['hosts']) or '-'}"
                        f"\n      check mode: {s['check_mode']}{rollback}"))
