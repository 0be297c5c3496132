from __future__ import annotations

from pathlib import Path

import pytest

from opsflow.errors import InventoryError
from opsflow.inventory import load_inventory

INI = """\
lone ansible_host=10.0.0.9
[web]
w1 ansible_host=10.0.0.1 ansible_port=2222
w2 ansible_host=10.0.0.2
[db]
d1 ansible_host=10.0.0.3
[prod:children]
web
db
[prod:vars]
env=prod
tier = 3
"""

YAML = """\
all:
  vars: {ansible_user: ops, level: all}
  children:
    routers:
      vars: {platform: frr, level: group}
      hosts:
        r1: {ansible_host: 10.1.0.1, level: host}
        r2:
    servers:
      hosts:
        s1:
"""


def test_ini_groups_children_and_vars(tmp_path: Path) -> None:
    p = tmp_path / "hosts.ini"
    p.write_text(INI)
    inv = load_inventory(p)
    assert inv.select("prod") == ["w1", "w2", "d1"]
    assert inv.select("prod:!db") == ["w1", "w2"]
    assert inv.select("prod:&web") == ["w1", "w2"]
    assert inv.select("w*") == ["w1", "w2"]
    assert inv.select("all") == ["lone", "w1", "w2", "d1"]
    w1 = inv.hosts["w1"]
    assert (w1.address, w1.port, w1.vars["env"], w1.vars["tier"]) == ("10.0.0.1", 2222, "prod", 3)
    assert inv.hosts["lone"].platform == "linux" and inv.hosts["lone"].kind == "server"


def test_yaml_precedence_and_platforms(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts.yml").write_text(YAML)
    (tmp_path / "inv" / "group_vars").mkdir()
    (tmp_path / "inv" / "group_vars" / "servers.yml").write_text("level: group_vars\n")
    (tmp_path / "inv" / "host_vars").mkdir()
    (tmp_path / "inv" / "host_vars" / "r2.yml").write_text("ansible_host: 10.1.0.2\n")
    inv = load_inventory(tmp_path / "inv")
    assert inv.hosts["r1"].vars["level"] == "host"
    assert inv.hosts["r2"].vars["level"] == "group"
    assert inv.hosts["s1"].vars["level"] == "group_vars"
    assert inv.hosts["r2"].address == "10.1.0.2"
    assert inv.hosts["r1"].kind == "device" and inv.hosts["r1"].device_type == "cisco_ios"
    assert inv.hosts["s1"].user == "ops"


def test_unknown_pattern_is_a_clear_error(tmp_path: Path) -> None:
    p = tmp_path / "hosts.ini"
    p.write_text(INI)
    with pytest.raises(InventoryError, match="'dbz' is neither a host nor a group"):
        load_inventory(p).select("web:dbz")


def test_bad_inventory_files(tmp_path: Path) -> None:
    p = tmp_path / "h.yml"
    p.write_text("all:\n  hosts: [a, b]\n")
    with pytest.raises(InventoryError, match="must be a mapping"):
        load_inventory(p)
    with pytest.raises(InventoryError, match="does not exist"):
        load_inventory(tmp_path / "missing.yml")
    q = tmp_path / "h.ini"
    q.write_text("[web\nx\n")
    with pytest.raises(InventoryError, match=r"h.ini:1: malformed section"):
        load_inventory(q)


def test_cached_inventory_reloads_when_a_file_changes(tmp_path: Path) -> None:
    import os

    from opsflow.inventory import load_inventory_cached

    p = tmp_path / "hosts.ini"
    p.write_text("[web]\nw1\n")
    first = load_inventory_cached(p)
    assert load_inventory_cached(p) is first
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "w1.yml").write_text("role: db\n")
    second = load_inventory_cached(p)
    assert second is not first and second.hosts["w1"].vars["role"] == "db"
    p.write_text("[web]\nw1\nw2\n")
    os.utime(p, ns=(1, 1))
    assert load_inventory_cached(p).select("web") == ["w1", "w2"]
