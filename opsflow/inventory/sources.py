"""Load Ansible inventories (YAML or INI, file or directory, with group_vars/ and host_vars/)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

from opsflow.errors import InventoryError
from opsflow.inventory.models import Host, Inventory


class _Builder:
    def __init__(self, source: str) -> None:
        self.source = source
        self.host_vars: dict[str, dict[str, Any]] = {}
        self.group_vars: dict[str, dict[str, Any]] = {"all": {}}
        self.group_hosts: dict[str, list[str]] = {"all": []}
        self.children: dict[str, list[str]] = {"all": []}

    def group(self, name: str) -> None:
        self.group_vars.setdefault(name, {})
        self.group_hosts.setdefault(name, [])
        self.children.setdefault(name, [])

    def host(self, name: str, group: str, hvars: dict[str, Any] | None) -> None:
        self.group(group)
        self.host_vars.setdefault(name, {}).update(hvars or {})
        if name not in self.group_hosts[group]:
            self.group_hosts[group].append(name)

    def child(self, parent: str, child: str) -> None:
        self.group(parent)
        self.group(child)
        if child not in self.children[parent]:
            self.children[parent].append(child)

    # ---- YAML -------------------------------------------------------------------------
    def yaml_group(self, name: str, body: Any, where: str) -> None:
        self.group(name)
        if body is None:
            return
        if not isinstance(body, dict):
            raise InventoryError(f"{where}: group {name!r} must be a mapping with hosts/vars/children")
        unknown = set(body) - {"hosts", "vars", "children"}
        if unknown:
            raise InventoryError(f"{where}: group {name!r} has unknown keys {sorted(unknown)}; "
                                 "expected hosts, vars, children")
        hosts = body.get("hosts") or {}
        if not isinstance(hosts, dict):
            raise InventoryError(f"{where}: hosts of group {name!r} must be a mapping of host → vars")
        for host, hvars in hosts.items():
            if hvars is not None and not isinstance(hvars, dict):
                raise InventoryError(f"{where}: vars of host {host!r} must be a mapping")
            self.host(str(host), name, hvars)
        gvars = body.get("vars") or {}
        if not isinstance(gvars, dict):
            raise InventoryError(f"{where}: vars of group {name!r} must be a mapping")
        self.group_vars[name].update(gvars)
        for child, child_body in (body.get("children") or {}).items():
            self.child(name, str(child))
            self.yaml_group(str(child), child_body, where)

    # ---- INI --------------------------------------------------------------------------
    def ini(self, text: str, where: str) -> None:
        section, kind = "ungrouped", "hosts"
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                if not line.endswith("]"):
                    raise InventoryError(f"{where}:{lineno}: malformed section header {line!r}")
                name = line[1:-1].strip()
                section, _, kind = name.partition(":")
                kind = kind or "hosts"
                if kind not in ("hosts", "vars", "children"):
                    raise InventoryError(f"{where}:{lineno}: unknown section kind {kind!r}")
                self.group(section)
                continue
            try:
                parts = shlex.split(line, comments=True)
            except ValueError as exc:
                raise InventoryError(f"{where}:{lineno}: {exc}") from exc
            if kind == "hosts":
                hvars = dict(_kv(p, where, lineno) for p in parts[1:])
                self.host(parts[0], section, hvars)
            elif kind == "vars":
                key, value = _kv(line.replace(" = ", "=", 1), where, lineno)
                self.group_vars[section][key] = value
            else:
                self.child(section, parts[0])

    # ---- result -----------------------------------------------------------------------
    def build(self) -> Inventory:
        members: dict[str, list[str]] = {}

        def collect(group: str, seen: tuple[str, ...] = ()) -> list[str]:
            if group in seen:
                raise InventoryError(f"{self.source}: group {group!r} is its own descendant")
            out = list(self.group_hosts.get(group, []))
            have = set(out)
            for child in self.children.get(group, []):
                for h in collect(child, (*seen, group)):
                    if h not in have:
                        have.add(h)
                        out.append(h)
            return out

        for group in self.group_vars:
            members[group] = collect(group)
        members["all"] = list(self.host_vars)
        grouped = {h for g, m in members.items() if g != "all" for h in m}
        members.setdefault("ungrouped", [h for h in self.host_vars if h not in grouped])
        depth = self._depths()
        of_host: dict[str, list[str]] = {}
        for g, m in members.items():
            if g != "all":
                for h in m:
                    of_host.setdefault(h, []).append(g)
        hosts: dict[str, Host] = {}
        for name, hvars in self.host_vars.items():
            groups = sorted(of_host.get(name, []), key=lambda g: (depth.get(g, 1), g))
            merged: dict[str, Any] = dict(self.group_vars.get("all", {}))
            for g in groups:
                merged.update(self.group_vars.get(g, {}))
            merged.update(hvars)
            hosts[name] = Host(name=name, vars=merged, groups=tuple(groups))
        return Inventory(hosts=hosts, groups=members, source=self.source, children=self.children)

    def _depths(self) -> dict[str, int]:
        depth = {"all": 0}
        frontier = ["all"] + [g for g in self.group_vars if not any(g in c for c in self.children.values())]
        for g in frontier:
            depth.setdefault(g, 1)
        changed = True
        while changed:
            changed = False
            for parent, kids in self.children.items():
                for kid in kids:
                    d = depth.get(parent, 1) + 1
                    if depth.get(kid, 0) < d and d < 64:
                        depth[kid] = d
                        changed = True
        return depth


def _kv(part: str, where: str, lineno: int) -> tuple[str, Any]:
    key, sep, value = part.partition("=")
    if not sep:
        raise InventoryError(f"{where}:{lineno}: expected key=value, got {part!r}")
    try:
        parsed = yaml.safe_load(value) if value else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed if parsed is not None else ""


_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_FAST_LOADER)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InventoryError(f"{where}: YAML syntax error: {exc.problem}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise InventoryError(f"{path}: cannot read inventory: {exc}") from exc


def _load_file(builder: _Builder, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yml", ".yaml", ".json"):
        data = _read_yaml(path)
        if data is None:
            return
        if not isinstance(data, dict):
            raise InventoryError(f"{path}: an inventory must be a mapping of groups (e.g. all: …)")
        for group, body in data.items():
            builder.yaml_group(str(group), body, str(path))
    else:
        builder.ini(text, str(path))


def _vars_dir(base: Path, name: str, present: set[str]) -> dict[str, Any]:
    """Variables of one group or host from ``base/NAME``, ``NAME.yml`` or ``NAME.yaml`` (listed once)."""
    out: dict[str, Any] = {}
    for candidate in (base / name, base / f"{name}.yml", base / f"{name}.yaml"):
        if candidate.name not in present:
            continue
        files = sorted(candidate.glob("*.y*ml")) if candidate.is_dir() else [candidate]
        for f in files:
            if f.is_file():
                data = _read_yaml(f) or {}
                if not isinstance(data, dict):
                    raise InventoryError(f"{f}: variables file must be a mapping")
                out.update(data)
    return out


def load_inventory(path: str | Path) -> Inventory:
    """Load an inventory file or directory (every *.yml/*.yaml/*.ini file in it)."""
    p = Path(path)
    if not p.exists():
        raise InventoryError(f"inventory {p} does not exist (pass --inventory PATH or set OPSFLOW_INVENTORY)")
    builder = _Builder(str(p))
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix in (".yml", ".yaml", ".ini", ""))
        if not files:
            raise InventoryError(f"inventory directory {p} holds no .yml/.yaml/.ini file")
        for f in files:
            _load_file(builder, f)
        base = p
    else:
        _load_file(builder, p)
        base = p.parent
    for kind, table in (("group_vars", builder.group_vars), ("host_vars", builder.host_vars)):
        folder = base / kind
        present = {f.name for f in folder.iterdir()} if folder.is_dir() else set()
        if present:
            for name in list(table):
                table[name].update(_vars_dir(folder, name, present))
    return builder.build()


_CACHE: dict[str, tuple[tuple[tuple[str, int, int], ...], Inventory]] = {}


def _signature(p: Path) -> tuple[tuple[str, int, int], ...]:
    """What the inventory at ``p`` is made of: every file with its mtime and size."""
    base = p if p.is_dir() else p.parent
    files = [p] if p.is_file() else [f for f in p.iterdir() if f.is_file()] if p.is_dir() else []
    for kind in ("group_vars", "host_vars"):
        if (base / kind).is_dir():
            files += [f for f in (base / kind).rglob("*") if f.is_file()]
    out = []
    for f in sorted(files):
        st = f.stat()
        out.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(out)


def load_inventory_cached(path: str | Path) -> Inventory:
    """``load_inventory``, reused while none of its files changed (long-running processes: the daemon)."""
    p = Path(path)
    if not p.exists():
        return load_inventory(p)
    key = str(p.resolve())
    sig = _signature(p)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == sig:
        return hit[1]
    inventory = load_inventory(p)
    _CACHE[key] = (sig, inventory)
    return inventory
