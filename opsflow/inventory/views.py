"""Views of an inventory in ``ansible-inventory``'s formats (pure): ``--graph``, ``--list``, ``--host``."""

from __future__ import annotations

import json
from typing import Any

from opsflow.errors import InventoryError
from opsflow.inventory.models import Inventory


def host_json(vars: dict[str, Any]) -> str:
    """A host's variables as ``ansible-inventory --host NAME`` prints them (sorted keys, indent 4)."""
    return json.dumps(vars, sort_keys=True, indent=4)


def one_host(inventory: Inventory, name: str) -> str:
    """The host ``name`` designates (a host name, or a pattern selecting exactly one host)."""
    if name in inventory.hosts and not inventory.hosts[name].implicit:
        return name
    hosts = inventory.select(name)
    if len(hosts) != 1:
        raise InventoryError(f"{name!r} is not one host of inventory {inventory.source} "
                             f"(it selects {len(hosts)}); pass a single valid host")
    return hosts[0]


def graph(inventory: Inventory, group: str = "all") -> str:
    """Groups and hosts as a tree, line for line what ``ansible-inventory --graph GROUP`` prints."""
    if group not in inventory.groups:
        raise InventoryError(f"{group!r} is not a group of inventory {inventory.source}: "
                             "graph starts at a group name")
    lines: list[str] = []

    def name(text: str, depth: int) -> str:
        return "  |" * depth + "--" + text if depth else text

    def walk(g: str, depth: int) -> None:
        lines.append(name(f"@{g}:", depth))
        for child in inventory.children.get(g, []):
            walk(child, depth + 1)
        if g != "all":
            for h in inventory.own.get(g, []):
                lines.append(name(h, depth + 1))

    walk(group, 0)
    return "\n".join(lines)


def ansible_list(inventory: Inventory) -> dict[str, Any]:
    """The inventory as ``ansible-inventory --list`` gives it (groups, their hosts and children, _meta)."""
    available = set(inventory.groups.get("all", []))
    seen: set[str] = set()

    def group(g: str) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if g != "all":
            body["hosts"] = [h for h in inventory.own.get(g, []) if h in available]
        body["children"] = list(inventory.children.get(g, []))
        out = {g: body}
        for child in body["children"]:
            if child not in seen:
                out.update(group(child))
                seen.add(child)
        for key in ("hosts", "children"):
            if key in body and not body[key]:
                del body[key]
        if not body:
            del out[g]
        return out

    result = group("all")
    hostvars = {h: inventory.hosts[h].vars for h in inventory.groups.get("all", []) if inventory.hosts[h].vars}
    result["_meta"] = {"hostvars": hostvars, "profile": "inventory_legacy"}
    return result
