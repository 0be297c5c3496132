"""Resolve an inventory with Ansible's own code; the result is plain JSON data.

This is the only module of opsflow.inventory that imports Ansible, and it is imported only when
no cached resolution is valid (see ``cache``). What it returns is what ``ansible-inventory``
gives for the same files:

* hosts in Ansible's inventory order, each with its variables exactly as
  ``ansible-inventory -i SRC --host NAME`` prints them (inventory-level variables: host and
  group variables with group priorities, ``group_vars/`` and ``host_vars/`` next to each
  source, vars plugins), as plain JSON types;
* groups in Ansible's order, with their hosts (transitively, in ``Group.get_hosts()`` order),
  their own hosts and their child groups;
* the variables of the implicit ``localhost`` (when no host of that name is in the inventory);
* the warnings Ansible gave while parsing, and which sources came from a dynamic plugin
  (``script``, a cloud or CMDB plugin such as ``netbox.netbox.nb_inventory``): those cannot be
  cached by file times.

One deliberate difference: ``ansible-inventory`` also reads ``group_vars/``/``host_vars/`` of
the current directory (its default "playbook directory"); opsflow, like ``ansible`` ad hoc,
reads only those next to the inventory, so the current directory never changes a host.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from opsflow.errors import InventoryError

FORMAT = 1
LOCALHOST = ("127.0.0.1", "localhost", "::1")  # names Ansible creates an implicit localhost for
# plugins whose result depends only on the files they read (and on the other sources)
STATIC_PLUGINS = frozenset({"ini", "yaml", "toml", "host_list", "advanced_host_list", "constructed", "generator"})


def _short(name: str) -> str:
    return name.removeprefix("ansible.builtin.")


def _auto_target(source: str) -> str:
    """The plugin an ``auto`` config file names (``plugin: constructed``)."""
    import yaml

    try:
        with open(source, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return "auto"
    return str(data.get("plugin", "auto")) if isinstance(data, dict) else "auto"


@contextmanager
def _captured_warnings(out: list[str]) -> Iterator[None]:
    """Ansible's warnings go to ``out`` (and are shown by opsflow, cached or not), not to stderr."""
    from ansible.utils.display import Display

    display = Display()
    saved = {k: display.__dict__.get(k) for k in ("warning", "error_as_warning")}

    def warning(msg: str, *args: Any, **kwargs: Any) -> None:
        if msg not in out:
            out.append(str(msg))

    def error_as_warning(msg: str | None, exception: BaseException, *args: Any, **kwargs: Any) -> None:
        text = f"{msg} {exception}" if msg else str(exception)
        if text not in out:
            out.append(text)

    display.warning = warning
    display.error_as_warning = error_as_warning
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                display.__dict__.pop(k, None)
            else:
                display.__dict__[k] = v


def _plain(value: Any, encoder: type[json.JSONEncoder]) -> Any:
    """Ansible's tagged/unsafe values → plain JSON types, as ``ansible-inventory`` writes them."""
    return json.loads(json.dumps(value, cls=encoder, sort_keys=True))


def _encoder() -> type[json.JSONEncoder]:
    try:
        from ansible._internal._json._profiles import _inventory_legacy

        encoder: type[json.JSONEncoder] = _inventory_legacy.Encoder
    except ImportError:  # ansible-core < 2.19
        from ansible.parsing.ajson import AnsibleJSONEncoder

        encoder = AnsibleJSONEncoder
    return encoder


def _init_plugins(init: Callable[[], None]) -> None:
    """Collections (e.g. netbox.netbox) become loadable; once per process, as Ansible's CLI does."""
    try:
        from ansible.utils.collection_loader import AnsibleCollectionConfig

        if AnsibleCollectionConfig.collection_finder is not None:
            return
    except ImportError:  # pragma: no cover - older ansible-core
        pass
    init()


def _forget_found_files() -> None:
    """host_group_vars keeps, per process, which group_vars/host_vars files it found: a long-running
    opsflow (the daemon, a second resolve after a file changed) must look again."""
    try:
        from ansible.plugins.vars import host_group_vars
    except ImportError:  # pragma: no cover
        return
    for name in ("FOUND", "NAK", "CANONICAL_PATHS"):
        table: Any = getattr(host_group_vars, name, None)
        if table is not None:
            table.clear()


# Ansible's plugin loading and its module-level caches are not safe in two threads at once (a half-loaded
# plugin module): one resolution at a time in a process (the service's API threads, a worker's units)
_RESOLVING = threading.Lock()


def resolve(sources: list[str]) -> dict[str, Any]:
    """Parse ``sources`` with Ansible's InventoryManager and VariableManager → plain data."""
    with _RESOLVING:
        return _resolve(sources)


def _resolve(sources: list[str]) -> dict[str, Any]:
    warnings: list[str] = []
    parsed: dict[str, str] = {}  # source → plugin that parsed it
    failures: dict[str, list[str]] = {}
    try:
        from ansible import constants as C
        from ansible.errors import AnsibleError
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.plugins.loader import init_plugin_loader
        from ansible.vars.manager import VariableManager
    except ImportError as exc:  # pragma: no cover - ansible-core is a dependency
        raise InventoryError(f"ansible-core is needed to read inventories: {exc}") from exc

    class _Recording(InventoryManager):
        """Records which plugin parsed each source, and why the others declined."""

        def _fetch_inventory_plugins(self) -> list[Any]:
            plugins = super()._fetch_inventory_plugins()
            for plugin in plugins:
                name = _short(str(getattr(plugin, "_load_name", "") or type(plugin).__name__))
                plugin.parse = _recorder(plugin.parse, name)
            return plugins

    def _recorder(parse: Callable[..., Any], name: str) -> Callable[..., Any]:
        def wrapped(inventory: Any, loader: Any, source: str, *args: Any, **kwargs: Any) -> Any:
            try:
                result = parse(inventory, loader, source, *args, **kwargs)
            except Exception as exc:
                failures.setdefault(str(source), []).append(f"{name}: {exc}")
                raise
            parsed[str(source)] = _short(_auto_target(str(source))) if name == "auto" else name
            return result

        return wrapped

    _init_plugins(init_plugin_loader)
    _forget_found_files()
    encoder = _encoder()
    empty = tempfile.mkdtemp(prefix="opsflow-inv-")
    try:
        with _captured_warnings(warnings):
            loader = DataLoader()
            loader.set_basedir(empty)  # no "playbook" group_vars from the current directory
            try:
                manager = _Recording(loader=loader, sources=list(sources))
                variables = VariableManager(loader=loader, inventory=manager)
                data = _collect(manager, variables, encoder, set(getattr(C, "INTERNAL_STATIC_VARS", ())))
            except AnsibleError as exc:
                raise InventoryError(f"inventory {', '.join(sources)}: {exc}") from exc
    finally:
        shutil.rmtree(empty, ignore_errors=True)
    if not parsed:
        why = "; ".join(f"{src}: {'; '.join(msgs)}" for src, msgs in failures.items())
        raise InventoryError(f"inventory {', '.join(sources)}: Ansible could not parse it as an inventory"
                             + (f" ({why})" if why else ""))
    data["warnings"] = warnings
    data["plugins"] = parsed
    data["dynamic"] = sorted(src for src, plugin in parsed.items() if plugin not in STATIC_PLUGINS)
    return data


def group_hosts(group: Any) -> list[str]:
    """``Group.get_hosts()``, made deterministic.

    Ansible walks child groups level by level through a *set* of Group objects, which hash by
    identity: when a group reaches hosts through nested groups at two levels or more, the order
    of ``ansible all --list-hosts`` changes from one run to the next. This is the same walk with
    the set iterated in insertion order, so one of the orders Ansible gives, and always the same.
    """
    ordered = [group, *group.child_groups]
    seen: dict[Any, None] = {}
    level = dict.fromkeys([*group.child_groups, group])
    while level:
        seen.update(level)
        following: dict[Any, None] = {}
        for parent in level:
            for child in parent.child_groups:
                following[child] = None
                if child not in seen:
                    ordered.append(child)
        level = {g: None for g in following if g not in seen}
    out: dict[str, None] = {}
    for g in ordered:
        for h in g.hosts:
            if group.name == "all" and getattr(h, "implicit", False):
                continue
            out.setdefault(str(h.name), None)
    return list(out)


def _collect(manager: Any, variables: Any, encoder: type[json.JSONEncoder], internal: set[str]) -> dict[str, Any]:
    def host_vars(host: Any) -> dict[str, Any]:
        found = variables.get_vars(host=host, include_hostvars=False, stage="all")
        out: dict[str, Any] = _plain({k: v for k, v in found.items() if k not in internal}, encoder)
        return out

    hosts = {
        str(h.name): {"vars": host_vars(h),
                      "groups": sorted(str(g.name) for g in h.get_groups() if g.name != "all")}
        for h in manager.hosts.values()
    }
    groups = {
        str(name): {"hosts": group_hosts(g),
                    "own": [str(h.name) for h in g.hosts],
                    "children": [str(c.name) for c in g.child_groups]}
        for name, g in manager.groups.items()
    }
    implicit: dict[str, dict[str, Any]] = {}
    inv_data = manager._inventory
    for name in LOCALHOST:
        if name in hosts:
            continue
        saved, inv_data.localhost = inv_data.localhost, None
        try:
            host = inv_data.get_host(name)
            if host is not None:
                implicit[name] = host_vars(host)
        finally:
            inv_data.localhost = saved
    return {"format": FORMAT, "hosts": hosts, "groups": groups, "implicit": implicit}

