"""Inventory: Ansible's inventories resolved by Ansible itself, cached, with Ansible's host patterns.

``load_inventory(path)`` / ``load_inventory_cached(path)`` → ``Inventory`` (``hosts``, ``groups``,
``children``, ``select(pattern)``, ``select_or_fail(pattern, what)``, ``secrets()``); each ``Host``
has its variables exactly as ``ansible-inventory --host`` gives them. See ``sources`` (loading and
caching), ``resolve`` (the only module importing Ansible), ``patterns`` and ``cache``.
"""

from opsflow.inventory.models import Host, Inventory
from opsflow.inventory.sources import load_inventory, load_inventory_cached

__all__ = ["Host", "Inventory", "load_inventory", "load_inventory_cached"]
