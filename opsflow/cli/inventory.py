"""``opsflow inventory``: the hosts, variables and groups opsflow sees — Ansible's, exactly.

``hosts PATTERN`` lists the hosts a pattern selects (``--json``: a list, in Ansible's order),
``host NAME`` a host's variables (``--json``: what ``ansible-inventory --host NAME`` prints),
``graph [GROUP]`` the groups and hosts as a tree (``ansible-inventory --graph``'s format).
"""

from __future__ import annotations

import json

import click

from opsflow.textsafe import for_terminal

_inventory_opt = click.option("--inventory", "-i", "inventory_path", default=None,
                              help="inventory: file, directory, plugin config or script "
                                   "[env OPSFLOW_INVENTORY, project file; default ./inventory]")


def _load(path: str | None):  # type: ignore[no-untyped-def]
    from opsflow.inventory import load_inventory
    from opsflow.planning import default_inventory

    return load_inventory(path or default_inventory())


@click.group("inventory")
def inventory() -> None:
    """Hosts, variables and groups of an inventory, as Ansible sees them."""


@inventory.command("hosts")
@click.argument("pattern")
@_inventory_opt
@click.option("--json", "as_json", is_flag=True, help="a JSON list of host names, in Ansible's order")
def hosts(pattern: str, inventory_path: str | None, as_json: bool) -> None:
    """The hosts PATTERN selects (group, host, a:b, a:&b, a:!b, globs, ~regex, group[0:2])."""
    from opsflow.inventory.models import warn

    inv = _load(inventory_path)
    selected = inv.select(pattern)
    if not selected:  # as `ansible PATTERN --list-hosts`: the warnings, and the exit code stays 0
        for message in [*inv.pattern_warnings, "No hosts matched, nothing to do"]:
            warn(message)
    if as_json:
        click.echo(json.dumps(selected))
    else:
        for name in selected:
            click.echo(for_terminal(name))


@inventory.command("host")
@click.argument("name")
@_inventory_opt
@click.option("--json", "as_json", is_flag=True, help="JSON, exactly as ansible-inventory --host NAME")
@click.option("--show-secrets", is_flag=True,
              help="show passwords too (masked by default; with it, byte for byte ansible-inventory --host)")
def host(name: str, inventory_path: str | None, as_json: bool, show_secrets: bool) -> None:
    """The variables of host NAME (passwords masked unless --show-secrets)."""
    from opsflow.inventory.models import SECRET_VARS
    from opsflow.inventory.views import host_json, one_host
    from opsflow.redact import MASK

    inv = _load(inventory_path)
    hvars = inv.hosts[one_host(inv, name)].vars
    if not show_secrets:
        hvars = {k: (MASK if k in SECRET_VARS and v else v) for k, v in hvars.items()}
    if as_json:
        click.echo(host_json(hvars))
    else:
        import yaml

        click.echo(for_terminal(yaml.safe_dump(hvars, sort_keys=True, default_flow_style=False,
                                               allow_unicode=True)).rstrip("\n") if hvars else "{}")


@inventory.command("graph")
@click.argument("group", default="all")
@_inventory_opt
def graph(group: str, inventory_path: str | None) -> None:
    """Groups and hosts under GROUP (default all) as a tree."""
    from opsflow.inventory.views import graph as render

    click.echo(for_terminal(render(_load(inventory_path), group)))
