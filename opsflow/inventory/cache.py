"""The on-disk cache of resolved inventories (plain JSON; reading it never imports Ansible).

An entry is keyed by the absolute inventory path and valid while its *signature* is unchanged:
the mtime and size of every file and directory Ansible would read for it — the inventory file
(or the whole directory tree), ``group_vars/`` and ``host_vars/`` next to it, the Ansible
config files in effect (``$ANSIBLE_CONFIG``, ``./ansible.cfg``, ``~/.ansible.cfg``,
``/etc/ansible/ansible.cfg``), the ``ANSIBLE_*`` environment and the installed ansible-core.

Not cached on disk:

* inventories with a dynamic source (``script``, ``netbox.netbox.nb_inventory`` and any other
  plugin that does not only read files): their hosts change without any file changing. They are
  resolved on every load, unless ``OPSFLOW_INVENTORY_TTL=SECONDS`` allows reusing a resolution
  that long;
* inventories holding a password or secret variable (``ansible_password``, ``ansible_become_password``,
  …): opsflow never writes secrets under ``$OPSFLOW_HOME``. They are cached in memory only.

Entries live in ``$OPSFLOW_INVENTORY_CACHE``, else ``$OPSFLOW_HOME/cache/inventory``
(``~/.opsflow/cache/inventory``), mode 0600, the newest 256; a corrupt or unreadable entry is ignored.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

from opsflow.diskcache import evict, stamp, tree_stamp

FORMAT = 1
_MAX_ENTRIES = 20000  # a tree bigger than this is not a plausible inventory: no signature, no cache
KEEP = 256  # cache entries kept (one per inventory path); the oldest written go first


def cache_dir() -> Path:
    explicit = os.environ.get("OPSFLOW_INVENTORY_CACHE")
    if explicit:
        return Path(explicit)
    from opsflow.settings import current

    return current().home / "cache" / "inventory"


def ttl() -> float:
    try:
        return max(0.0, float(os.environ.get("OPSFLOW_INVENTORY_TTL", "0")))
    except ValueError:
        return 0.0


def _ansible_files() -> list[str]:
    spec = importlib.util.find_spec("ansible")  # finds the package without importing it
    release = os.path.join(os.path.dirname(spec.origin), "release.py") if spec and spec.origin else "-"
    configs = [os.environ.get("ANSIBLE_CONFIG", ""), os.path.abspath("ansible.cfg"),
               os.path.expanduser("~/.ansible.cfg"), "/etc/ansible/ansible.cfg"]
    return [release, *[c for c in configs if c]]


def signature(source: str) -> str | None:
    """A digest of everything the resolution of ``source`` depends on; None when not computable."""
    parts: list[Any] = [FORMAT, source]
    trees = [source] if os.path.isdir(source) else []
    if not trees and os.path.exists(source):
        parts.append(stamp(source))
        trees = [os.path.join(os.path.dirname(source), kind) for kind in ("group_vars", "host_vars")]
    for tree in trees:
        found = tree_stamp(tree, _MAX_ENTRIES)
        if found is None:
            return None
        parts += found
    parts += [stamp(f) for f in _ansible_files()]
    parts += sorted((k, v) for k, v in os.environ.items() if k.startswith("ANSIBLE_"))
    return hashlib.sha256(repr(parts).encode("utf-8", "surrogateescape")).hexdigest()


def _entry(source: str) -> Path:
    return cache_dir() / (hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()[:32] + ".json")


def read(source: str, sig: str) -> dict[str, Any] | None:
    try:
        with open(_entry(source), encoding="utf-8") as fh:
            entry = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("source") != source or entry.get("signature") != sig:
        return None
    expires = entry.get("expires")
    if expires is not None and time.time() > float(expires):
        return None
    data = entry.get("data")
    return data if isinstance(data, dict) else None


def write(source: str, sig: str, data: dict[str, Any], expires: float | None) -> None:
    """Store an entry atomically; a cache that cannot be written is only slower, never an error."""
    path = _entry(source)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"source": source, "signature": sig, "expires": expires, "data": data}, fh)
        os.replace(tmp, path)
    except OSError:
        return
    # every inventory path ever loaded (tests' temporary ones too) would otherwise stay forever
    evict(path.parent, ".json", KEEP)
