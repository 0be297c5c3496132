"""Inventory: hosts and groups from Ansible YAML or INI inventories, with inheritance."""

from opsflow.inventory.models import Host, Inventory
from opsflow.inventory.sources import load_inventory, load_inventory_cached

__all__ = ["Host", "Inventory", "load_inventory", "load_inventory_cached"]
