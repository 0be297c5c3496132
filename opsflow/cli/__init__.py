"""The opsflow command line: thin — parse, build a request, render, map to exit codes."""

from __future__ import annotations

import sys

import click

from opsflow.errors import OpsflowError, RunbookError


class _Main(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except RunbookError as exc:
            for d in exc.diagnostics:
                click.echo(str(d), err=True)
            ctx.exit(exc.exit_code)
        except OpsflowError as exc:
            click.echo(f"opsflow: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("opsflow: interrupted", err=True)
            ctx.exit(130)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="opsflow")
def main() -> None:
    """opsflow — codified runbooks for servers and network devices, every outcome recorded."""


def _register() -> None:
    from opsflow.cli import backup, commands, lab
    from opsflow.cli import daemon as events_cli

    for cmd in (commands.run, commands.resume, commands.approve, commands.deny, commands.validate, commands.plan, commands.list_runbooks, commands.history,
                commands.show, commands.schema, backup.backup, lab.lab,
                events_cli.daemon, events_cli.events, events_cli.breaker):
        main.add_command(cmd)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
