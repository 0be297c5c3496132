"""opsflow daemon / events / breaker: events start remediation runbooks, and the schedule fires, safely and on record."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from typing import Any

import click

from opsflow.cli.options import db_opt, listen_opt, parse_budget, parse_since, service_options
from opsflow.errors import UsageError
from opsflow.textsafe import for_terminal


@click.command()
@listen_opt
@click.option("--syslog", default=None, metavar="HOST:PORT", help="also receive syslog over UDP here")
@click.option("--syslog-allow", multiple=True, metavar="CIDR",
              help="networks allowed to send syslog (repeatable) [default: loopback only]")
@service_options
def daemon(listen: str, syslog: str | None, syslog_allow: tuple[str, ...], runbooks: str, inventory: str | None,
           db: str | None, workers: int, queue_size: int, budget: str, drain_timeout: float, grace: float,
           max_body: int, token_file: str | None, hmac_secret_file: str | None, schedules_dir: str | None,
           no_schedule: bool, alertmanager: str | None, check: bool, insecure: bool, verbose: bool) -> None:
    """Receive alerts and events; start the runbooks whose triggers match; fire the schedule's entries.

    SIGTERM drains, SIGHUP reloads (rules and schedules)."""
    from opsflow.events.daemon import Daemon, Settings
    from opsflow.events.server import Auth, Listener, parse_address, require_auth
    from opsflow.planning import default_inventory
    from opsflow.server.startup import make_scheduler, reload
    from opsflow.store import open_store

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("opsflow").setLevel(logging.DEBUG if verbose else logging.INFO)
    budget_runs, budget_window = parse_budget(budget)
    auth = Auth.load(token_file, hmac_secret_file)
    address = parse_address(listen, "--listen")
    syslog_address = parse_address(syslog, "--syslog") if syslog else None
    require_auth(auth, address, syslog_address, syslog_allow, insecure)  # before anything is opened
    store = open_store(db)
    settings = Settings(inventory=inventory or default_inventory(), runbooks=runbooks, workers=workers,
                        queue_size=queue_size, budget_runs=budget_runs, budget_window=budget_window,
                        drain_timeout=drain_timeout, grace=grace, check=check)
    from opsflow.service.notifications import from_settings
    from opsflow.settings import current

    notices = from_settings(current())  # one set of channels for events, approvals, breakers and the schedule
    core = Daemon(settings, store, notices=notices)
    rules = core.load()
    scheduler = None if no_schedule else make_scheduler(schedules_dir, runbooks, settings.inventory, store, check, grace,
                                                    alertmanager, notices)
    core.scheduler = scheduler
    listener = Listener(core, auth, address, syslog_address, syslog_allow, max_body, insecure)
    stop = threading.Event()
    signals = {"n": 0}

    def on_stop(signum: int, _frame: Any) -> None:
        signals["n"] += 1
        if signals["n"] > 1:  # a second signal: cancel running runs now
            click.echo(f"opsflow daemon: {signal.Signals(signum).name} again: canceling running runs", err=True)
            threading.Thread(target=core.drain, kwargs={"timeout": 0, "hard": True}, daemon=True).start()
        stop.set()

    def on_reload(_signum: int, _frame: Any) -> None:
        reload(core, scheduler, runbooks)

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_stop)
    signal.signal(signal.SIGHUP, on_reload)
    core.start()
    listener.start()
    from opsflow.dispatch.background import start as start_sweeper

    sweeper = start_sweeper(store)  # dispatched runs whose workers are all gone end interrupted
    schedule_text = "; no schedule"
    if scheduler is not None:
        counts = scheduler.start()
        schedule_text = (f"; schedule: {len(scheduler.entries)} entries from {scheduler.schedules.directory}"
                         + (f" ({counts['misfired']} slot(s) missed while stopped: misfire policy applied)"
                            if counts["misfired"] else "") + (f", silences in {alertmanager}" if alertmanager else ""))
    host, port = listener.http_address
    syslog_text = ""
    if listener.syslog_address:
        syslog_text = f", syslog udp://{listener.syslog_address[0]}:{listener.syslog_address[1]}"
    click.echo(f"opsflow daemon: listening on http://{host}:{port}{syslog_text} (auth: {auth.describe()}); "
               f"{len(rules)} rule(s) from {runbooks}: {', '.join(r.name for r in rules) or 'none'}; "
               f"workers {workers}, queue {queue_size}, budget {budget_runs}/{budget_window:g}s{schedule_text}; "
               f"store {store.url}" + ("; CHECK MODE (dry runs)" if check else ""), err=True)
    while not stop.wait(1.0):
        pass
    click.echo("opsflow daemon: stopping: no new events; queued runs are canceled, running runs get "
               f"{drain_timeout:g} s", err=True)
    listener.stop()
    schedule_late: list[str] = []
    stopper = None
    if scheduler is not None:  # the schedule's runs drain beside the events' runs
        stopper = threading.Thread(target=lambda: schedule_late.extend(scheduler.stop(drain_timeout, grace)),
                                   name="opsflow-scheduler-stop", daemon=True)
        stopper.start()
    late = core.drain()
    if stopper is not None:
        stopper.join(drain_timeout + grace + 30)
        late += schedule_late
    if late:
        click.echo(f"opsflow daemon: canceled at the deadline: {', '.join(late)}", err=True)
    notices.close()  # notifications under way are sent (the scheduler's stop closed them already, if it ran)
    if sweeper is not None:
        sweeper.stop()
    store.close()
    click.echo("opsflow daemon: stopped", err=True)


def _outcome(action: dict[str, Any]) -> str:
    if action["outcome"] in ("suppressed", "canceled"):
        return f"{action['outcome']}: {action['reason']}"
    if action["outcome"] == "finished":
        return f"run {action['run_id']} {action['run_status']}"
    if action["outcome"] == "started":
        return f"run {action['run_id']} running"
    return str(action["outcome"])


@click.command()
@click.option("--since", default=None, help="e.g. 30m, 12h, 7d")
@click.option("--rule", default=None, help="only events that matched this rule")
@click.option("--outcome", default=None, help="started, suppressed, canceled, no_rule, or a reason (cooldown, …)")
@click.option("--limit", "-n", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@db_opt
def events(since: str | None, rule: str | None, outcome: str | None, limit: int, as_json: bool,
           db: str | None) -> None:
    """Events received by the daemon, newest first: matched rules, the run started or why none was."""
    from opsflow.store import open_store

    store = open_store(db)
    rows = store.events(since=parse_since(since) if since else None, limit=limit, rule=rule, outcome=outcome)
    store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.table import Table
    from rich.text import Text

    from opsflow.cli.render import console_for

    def cell(value: Any) -> Text:  # event data: shown as text, never read as markup or escape sequences
        return Text(for_terminal(value))

    table = Table()
    for col in ("received", "event", "source", "host", "rule", "outcome", "to start", "detail"):
        table.add_column(col)
    for e in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["received_at"]))
        name = f"{e['name']} ({e['status']})"
        for a in e["actions"] or [None]:
            if a is None:
                table.add_row(when, cell(name), cell(e["source"]), cell(e["host"] or "-"), "-", "no_rule", "-", "")
                continue
            latency = f"{a['start_latency']:.3f}s" if a["start_latency"] is not None else "-"
            table.add_row(when, cell(name), cell(e["source"]), cell(a["host"] or e["host"] or "-"), cell(a["rule"]),
                          cell(_outcome(a)), latency, cell((a["detail"] or "")[:80]))
    console_for(sys.stdout).print(table)


@click.group()
def breaker() -> None:
    """Circuit breakers of event rules: after N failed remediations a rule stops until reset."""


@breaker.command("list")
@db_opt
def breaker_list(db: str | None) -> None:
    """Every rule's breaker: closed or open, consecutive failures, the last run."""
    from opsflow.store import open_store

    store = open_store(db)
    rows = store.breakers()
    store.close()
    for b in rows:
        click.echo(for_terminal(f"{b['rule']:<32} {b['state']:<7} failures {b['failures']:<3} "
                                f"last run {b['last_run'] or '-'}"))


@breaker.command("reset")
@click.argument("rule")
@db_opt
def breaker_reset(rule: str, db: str | None) -> None:
    """Close RULE's breaker: the daemon remediates with it again."""
    from opsflow.planning import who
    from opsflow.store import open_store

    store = open_store(db)
    actor = who()
    state = store.breaker_reset(rule, actor)
    if state is not None:
        store.audit(actor, "breaker_reset", rule)
    store.close()
    if state is None:
        raise UsageError(f"no breaker for rule {rule!r} (see opsflow breaker list)")
    click.echo(for_terminal(f"breaker of {rule} closed by {state['reset_by']}"))
