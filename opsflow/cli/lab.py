"""`opsflow lab ...`: bring the local lab up, look at it, break it, take it down."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from opsflow.errors import LabError
from opsflow.lab import FAULT_MODES, Lab
from opsflow.lab.plan import read_state


def default_state_dir() -> Path:
    from opsflow.settings import current

    return current().home / "lab"


def _open(state_dir: Path | None, name: str | None) -> Lab:
    directory = state_dir or default_state_dir()
    if name is None:
        # down/status/fault on a state dir: the lab's name is in its state file
        try:
            state = read_state(directory / "state.json")
        except LabError:
            state = None
        name = state.name if state is not None else "lab"
    return Lab(directory, name)


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the lab keeps its keys, inventory and host files [default: $OPSFLOW_HOME/lab, ~/.opsflow/lab].",
)
name_option = click.option(
    "--name",
    default=None,
    help="Lab name; namespaces and links are named after it, so labs with different names coexist "
    "[up: lab; others: read from the state dir].",
)


class _LabGroup(click.Group):
    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        known = self.list_commands(ctx)
        if args and not ctx.resilient_parsing and args[0] not in known and not args[0].startswith("-"):
            from opsflow.cli import _Main

            _Main.unknown_command(ctx, args[0], known)
        return super().resolve_command(ctx, args)


@click.group(cls=_LabGroup)
def lab() -> None:
    """The local lab: real OpenSSH servers and FRR routers in namespaces of this machine (root)."""


@lab.command()
@click.option("--servers", default=2, show_default=True, type=click.IntRange(0, 220), help="Linux servers.")
@click.option("--routers", default=2, show_default=True, type=click.IntRange(0, 20), help="FRR routers.")
@state_dir_option
@name_option
def up(servers: int, routers: int, state_dir: Path | None, name: str | None) -> None:
    """Bring the lab up and write its inventory."""
    the_lab = Lab(state_dir or default_state_dir(), name or "lab")
    the_lab.up(servers=servers, routers=routers, progress=lambda msg: click.echo(msg))
    click.echo(f"inventory:  {the_lab.inventory_path}")
    click.echo(f"ssh_config: {the_lab.ssh_config}  (e.g. ssh -F {the_lab.ssh_config} srv1)")


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


@lab.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of hosts).")
@state_dir_option
@name_option
def status(as_json: bool, state_dir: Path | None, name: str | None) -> None:
    """Each host: up, address, SSH reachable, OSPF adjacency (routers), injected fault."""
    the_lab = _open(state_dir, name)
    hosts = the_lab.status()
    if as_json:
        click.echo(json.dumps([asdict(h) for h in hosts], indent=2))
        return
    if not hosts:
        raise LabError(f"no lab in {the_lab.state_dir} (start one with: opsflow lab up --state-dir {the_lab.state_dir})")
    rows = [("HOST", "KIND", "ADDRESS", "UP", "SSH", "ADJACENCY", "FAULT")]
    rows += [
        (h.name, h.kind, h.address, _yes(h.up), _yes(h.ssh), _yes(h.adjacency), h.fault or "-") for h in hosts
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@lab.command()
@state_dir_option
@name_option
def down(state_dir: Path | None, name: str | None) -> None:
    """Stop every lab process and remove its namespaces, links and files (idempotent)."""
    the_lab = _open(state_dir, name)
    had_state = the_lab.state_path.exists()
    the_lab.down()
    if had_state:
        click.echo(f"lab {the_lab.name} is down: processes, namespaces, links and {the_lab.state_dir} removed")
    else:
        click.echo(f"no lab in {the_lab.state_dir}; leftovers of a lab named {the_lab.name!r}, if any, removed")


@lab.command()
@click.argument("host")
@click.argument("mode", type=click.Choice(FAULT_MODES))
@state_dir_option
@name_option
def fault(host: str, mode: str, state_dir: Path | None, name: str | None) -> None:
    """Inject a fault into HOST: down (cut its link), drop / reject (its SSH traffic), up (undo)."""
    the_lab = _open(state_dir, name)
    the_lab.fault(host, mode)  # type: ignore[arg-type]  # click.Choice guarantees a FaultMode
    what = {
        "down": "link cut",
        "drop": "SSH packets silently dropped (connections time out)",
        "reject": "SSH connections refused (TCP reset)",
        "up": "faults cleared",
    }[mode]
    click.echo(f"{host}: {what}")
