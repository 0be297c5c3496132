"""The opsflow command line: thin — parse, build a request, render, map to exit codes."""

from __future__ import annotations

import os
import sys

import click

from opsflow.errors import OpsflowError, RunbookError
from opsflow.textsafe import for_terminal

# pydantic looks for plugins (every installed distribution's entry points) when it builds its first model:
# opsflow uses none, and a CLI process would pay that scan on each start (unless the user set this)
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# command → (module, attribute, one-line help); modules are imported only when their command runs,
# so `opsflow --help` and short commands start fast.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("opsflow.cli.commands", "run", "Run a runbook against its targets."),
    "plan": ("opsflow.cli.commands", "plan", "Print the plan of a run (steps × hosts); touches nothing."),
    "resume": ("opsflow.cli.commands", "resume", "Continue a failed, partial, canceled or abandoned run."),
    "approve": ("opsflow.cli.commands", "approve", "Let a run waiting at an approval step go on."),
    "deny": ("opsflow.cli.commands", "deny", "Stop a run waiting at an approval step."),
    "validate": ("opsflow.cli.commands", "validate", "Check runbooks, schedules and services; file:line:col errors, exit 2."),
    "list": ("opsflow.cli.commands", "list_runbooks", "List runbooks."),
    "history": ("opsflow.cli.commands", "history", "Past runs, newest first."),
    "show": ("opsflow.cli.commands", "show", "One run: steps × hosts with durations and outputs."),
    "schema": ("opsflow.cli.commands", "schema", "JSON Schema of the runbook, schedules or services format."),
    "backup": ("opsflow.cli.backup", "backup", "Config versions and server archives: list, show, diff, verify, report."),
    "daemon": ("opsflow.cli.daemon", "daemon", "Receive alerts and events; start matching remediation runbooks."),
    "serve": ("opsflow.cli.serve", "serve", "The HTTP API, hooks, scheduler and run workers in one process (FastAPI)."),
    "events": ("opsflow.cli.daemon", "events", "Received events and what became of them."),
    "breaker": ("opsflow.cli.daemon", "breaker", "Circuit breakers of event rules."),
    "lab": ("opsflow.cli.lab", "lab", "The local lab of real servers and routers."),
    "db": ("opsflow.cli.db", "db", "The store's schema revision; upgrade it in place."),
    "inventory": ("opsflow.cli.inventory", "inventory", "Hosts, variables and groups of an inventory, as Ansible sees them."),
    "schedule": ("opsflow.cli.schedule", "schedule", "The operations schedule: list, next slots, log of fire decisions, forecast."),
    "calendar": ("opsflow.cli.schedule", "calendar", "Maintenance windows and blackouts: check one at an instant."),
    "report": ("opsflow.cli.report", "report", "KPIs against service levels: terminal, HTML, Markdown, CSV, JSON."),
    "slo": ("opsflow.cli.slo", "slo", "Service levels: list, status, Prometheus rules, OpenSLO import and export."),
    "metrics": ("opsflow.cli.metrics_cmd", "metrics", "Run metrics from the store in the Prometheus text format."),
    "review": ("opsflow.cli.review", "review", "Lessons learned: reviews of runs and events, with action items."),
    "user": ("opsflow.cli.users", "user", "Users: role, scope (runbooks, inventory groups), console password."),
    "token": ("opsflow.cli.users", "token", "API tokens of users: create (shown once), list, revoke."),
    "audit": ("opsflow.cli.users", "audit", "The audit log: who did what, to what, when."),
    "worker": ("opsflow.cli.worker", "worker", "A Celery worker running dispatched runs of its queues (opsflow[celery])."),
    "workers": ("opsflow.cli.worker", "workers", "Workers: queues, what they run, last seen."),
    "abandon": ("opsflow.cli.worker", "abandon", "Give up an interrupted run (recorded with who and why)."),
}


class _Main(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        import importlib

        module, attr, _ = COMMANDS[name]
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        if args and not ctx.resilient_parsing and args[0] not in COMMANDS and not args[0].startswith("-"):
            self.unknown_command(ctx, args[0], self.list_commands(ctx))
        return super().resolve_command(ctx, args)

    @staticmethod
    def unknown_command(ctx: click.Context, name: str, known: list[str]) -> None:
        """Exit 2: no such command, with the closest known one(s) when there is one."""
        import difflib

        close = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
        best = [difflib.SequenceMatcher(None, name, c).ratio() for c in close]
        close = [c for c, r in zip(close, best, strict=True) if r >= best[0] - 0.2]  # not 'audit' for 'valdiate'
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else "."
        ctx.fail(f"No such command '{for_terminal(name)}'{hint} (commands: {', '.join(known)})")

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in self.list_commands(ctx)])

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RunbookError as exc:
            for d in exc.diagnostics:
                click.echo(for_terminal(str(d)), err=True)
            ctx.exit(exc.exit_code)
        except OpsflowError as exc:
            click.echo(f"opsflow: error: {for_terminal(str(exc))}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("opsflow: interrupted", err=True)
            ctx.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:  # the reader went away (`opsflow history | head`): stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(1)
        except Exception as exc:  # a bug of opsflow: one clear line, the traceback only on request
            if os.environ.get("OPSFLOW_DEBUG"):
                raise
            click.echo(f"opsflow: internal error: {type(exc).__name__}: {for_terminal(str(exc))[:500]} "
                       "(a bug in opsflow: set OPSFLOW_DEBUG=1 for the traceback and report it)", err=True)
            ctx.exit(70)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opsflow")
@click.pass_context
def main(ctx: click.Context) -> None:
    """opsflow — codified runbooks for servers and network devices, every outcome recorded."""
    if not ctx.resilient_parsing:
        ctx.default_map = _project_defaults()


def _project_defaults() -> dict[str, dict[str, object]] | None:
    """Option defaults from the project file (its [daemon] table, its runbooks directory): they sit
    below the environment and the command line, as opsflow.settings documents."""
    from opsflow.errors import UsageError
    from opsflow.settings import current

    settings = current()
    if settings.project_file is None:
        return None
    daemon: dict[str, object] = {k.replace("-", "_"): v for k, v in settings.daemon.items()}
    serve: dict[str, object] = dict(daemon)  # [daemon] sets up `opsflow serve` too (plus its own tls_*)
    if daemon:
        from opsflow.cli.daemon import daemon as command
        from opsflow.cli.serve import serve as serve_command

        of_daemon = {p.name for p in command.params if p.name}
        of_serve = {p.name for p in serve_command.params if p.name}
        known = sorted(of_daemon | of_serve)
        unknown = sorted(set(daemon) - set(known))
        if unknown:
            raise UsageError(f"{settings.project_file}: [daemon] has unknown setting(s) {', '.join(unknown)} "
                             f"(known: {', '.join(known)})")
        daemon = {k: v for k, v in daemon.items() if k in of_daemon}
        serve = {k: v for k, v in serve.items() if k in of_serve}
    if settings.sources.get("runbooks") != "default":
        daemon.setdefault("runbooks", settings.runbooks)
        serve.setdefault("runbooks", settings.runbooks)
    return {"daemon": daemon, "serve": serve}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
