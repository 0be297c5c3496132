"""Load an inventory as Ansible sees it: resolved once by Ansible, then served from a cache.

``load_inventory(path)`` accepts whatever ``ansible -i`` accepts: an INI, YAML, TOML or JSON
file, a directory of them (recursively, with Ansible's ignore rules), ``group_vars/`` and
``host_vars/`` as files or directories in any extension Ansible reads (``.yml``, ``.yaml``,
``.json``, none), inventory plugin configs (``constructed``, ``generator``, ``auto``, and the
plugin of any installed collection, e.g. ``netbox.netbox.nb_inventory`` with
``plugin: netbox.netbox.nb_inventory`` in a ``*.nb_inventory.yml`` file), executable
``script`` inventories, and a comma list of hosts (``web1,web2,``).

The resolution is Ansible's own (``resolve``: InventoryManager + VariableManager), so hosts,
groups, the order of hosts and every variable equal ``ansible-inventory``'s. It is cached on disk
(``cache``) keyed by the files' times and sizes: a cached load reads one JSON file and never
imports Ansible. ``load_inventory_cached`` adds an in-process layer (the same object while
nothing changed) for long-running processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from opsflow.errors import InventoryError
from opsflow.inventory import cache
from opsflow.inventory.models import Host, Inventory, warn


def from_data(data: dict[str, Any], source: str) -> Inventory:
    """An Inventory from the plain data of ``resolve.resolve`` (as read from the cache)."""
    try:
        hosts = {name: Host(name=name, vars=h["vars"], groups=tuple(h["groups"])) for name, h in data["hosts"].items()}
        groups = data["groups"]
        return Inventory(
            hosts=hosts, source=source,
            groups={g: list(v["hosts"]) for g, v in groups.items()},
            children={g: list(v["children"]) for g, v in groups.items()},
            own={g: list(v["own"]) for g, v in groups.items()},
            implicit=dict(data.get("implicit") or {}), warnings=list(data.get("warnings") or []),
            dynamic=list(data.get("dynamic") or []),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise InventoryError(f"inventory {source}: unusable resolved data ({exc})") from exc


def _source(path: str | Path) -> str:
    """The Ansible source of an ``-i`` value: an absolute path, or a comma list of hosts (``a,b,``)."""
    text = str(path)
    if Path(text).exists():
        return os.path.abspath(text)
    if "," in text:
        return text
    raise InventoryError(f"inventory {text} does not exist (pass --inventory PATH or set OPSFLOW_INVENTORY)")


def _resolve(source: str) -> tuple[dict[str, Any], str | None]:
    """(data, signature): from the disk cache when valid, else from Ansible (then cached)."""
    sig = cache.signature(source)
    if sig is not None:
        data = cache.read(source, sig)
        if data is not None:
            return data, sig
    from opsflow.inventory.resolve import resolve

    data = resolve([source])
    if sig is not None:
        secret = from_data(data, source).secrets()
        ttl = cache.ttl()
        if not secret and (not data["dynamic"] or ttl > 0):
            cache.write(source, sig, data, time.time() + ttl if data["dynamic"] else None)
    return data, sig


def load_inventory(path: str | Path) -> Inventory:
    """The inventory at ``path`` (file, directory, plugin config, script, or ``host1,host2,``)."""
    source = _source(path)
    data, _ = _resolve(source)
    inventory = from_data(data, source)
    for message in inventory.warnings:
        warn(message)
    return inventory


_MEMORY: dict[str, tuple[str | None, float | None, Inventory]] = {}


def load_inventory_cached(path: str | Path) -> Inventory:
    """``load_inventory``, the same object while nothing it depends on changed (the daemon, sub-runbooks)."""
    source = _source(path)
    sig = cache.signature(source)
    hit = _MEMORY.get(source)
    if hit is not None and sig is not None and hit[0] == sig and (hit[1] is None or time.monotonic() < hit[1]):
        return hit[2]
    inventory = load_inventory(source)
    expires = time.monotonic() + cache.ttl() if inventory.dynamic else None
    _MEMORY[source] = (sig, expires, inventory)
    return inventory
