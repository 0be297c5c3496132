"""Inventories as Ansible resolves them; patterns; the cache (tests/test_inventory_compat.py compares
the whole corpus with the real Ansible CLIs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsflow.errors import InventoryError
from opsflow.inventory import Host, Inventory, load_inventory, load_inventory_cached, models
from opsflow.inventory import cache as inv_cache
from opsflow.inventory.patterns import split_pattern
from opsflow.inventory.views import graph, one_host

INI = """\
lone ansible_host=10.0.0.9 flag=yes num=010 day=2024-01-01 note="a # b" # a comment
web[1:3].example.com
srv[01:10:2]
[web]
w1 ansible_host=10.0.0.1 ansible_port=2222
w2 ansible_host=10.0.0.2
[db]
db-[a:c]
[prod:children]
web
db
[prod:vars]
env=prod
tier = 3
[web:vars]
env=web
"""

YAML = """\
all:
  vars: {ansible_user: ops, level: all}
  children:
    routers:
      vars: {platform: frr, level: group, color: red, ansible_group_priority: 5}
      hosts:
        r1: {ansible_host: 10.1.0.1, level: host}
        r2:
    core:
      vars: {level: core, color: blue, ansible_group_priority: 1}
      hosts:
        r2:
    servers:
      hosts:
        s1:
"""


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPSFLOW_INVENTORY_TTL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def warned() -> Iterator[list[str]]:
    out: list[str] = []
    saved, models.WARN[0] = models.WARN[0], out.append
    yield out
    models.WARN[0] = saved


@pytest.fixture
def ini(tmp_path: Path) -> Inventory:
    p = tmp_path / "hosts.ini"
    p.write_text(INI)
    return load_inventory(p)


def test_ranges_are_expanded_and_ini_values_stay_strings(ini: Inventory) -> None:
    assert ini.select("ungrouped") == ["lone", "web1.example.com", "web2.example.com", "web3.example.com",
                                       "srv01", "srv03", "srv05", "srv07", "srv09"]
    assert ini.select("db") == ["db-a", "db-b", "db-c"]
    lone = ini.hosts["lone"].vars
    assert (lone["flag"], lone["num"], lone["day"], lone["note"]) == ("yes", "010", "2024-01-01", "a # b")
    w1 = ini.hosts["w1"]
    assert (w1.address, w1.port, w1.vars["env"], w1.vars["tier"]) == ("10.0.0.1", 2222, "web", 3)
    assert w1.groups == ("prod", "web") and ini.hosts["lone"].groups == ("ungrouped",)
    assert ini.hosts["lone"].platform == "linux" and ini.hosts["lone"].kind == "server"


def test_patterns_follow_ansible(ini: Inventory, warned: list[str]) -> None:
    assert ini.select("prod:!db") == ["w1", "w2"]
    assert ini.select("!db") == ["lone", "web1.example.com", "web2.example.com", "web3.example.com",
                                 "srv01", "srv03", "srv05", "srv07", "srv09", "w1", "w2"]  # from all
    assert ini.select("&web") == ["w1", "w2"]
    assert ini.select("!db-a:db") == ["db-b", "db-c"]  # plain terms first, then &, then !
    assert ini.select("db[0]") == ["db-a"] and ini.select("db[-1]") == ["db-c"]
    assert ini.select("db[0:1]") == ["db-a", "db-b"] and ini.select("db[1:]") == ["db-b", "db-c"]
    assert ini.select("~db-[ab]") == ["db-a", "db-b"] and ini.select("~^w\\d") == ["w1", "w2"]
    assert ini.select("w*,srv0[15]*") == ["w1", "w2", "web1.example.com", "web2.example.com", "web3.example.com",
                                         "srv01", "srv05"]  # a glob matches groups, then hosts
    assert not warned
    assert ini.select("web:dbz") == ["w1", "w2"]
    assert warned == ["Could not match supplied host pattern, ignoring: dbz"]
    assert ini.select("db[7]") == [] and ini.pattern_warnings == ["No hosts matched the subscripted pattern 'db[7]'"]
    assert ini.select("~(") == [] and ini.pattern_warnings == ["Invalid host list pattern: ~("]
    assert ini.select("localhost") == ["localhost"] and ini.hosts["localhost"].vars["ansible_connection"] == "local"
    assert "localhost" not in ini.select("all")


def test_split_pattern() -> None:
    assert split_pattern("a,b[1], c[2:3] , d") == ["a", "b[1]", "c[2:3]", "d"]
    assert split_pattern("a:!b:&c") == ["a", "!b", "&c"]
    assert split_pattern("web[1:3]") == ["web[1:3]"]
    assert split_pattern("fe80::1") == ["fe80::1"] and split_pattern("h.example.com:22") == ["h.example.com:22"]


def test_a_pattern_selecting_nothing_is_refused_naming_it(ini: Inventory, warned: list[str]) -> None:
    with pytest.raises(InventoryError, match=r"targets 'dbz:&web' selects no host of inventory .*hosts.ini "
                       r"\(Could not match supplied host pattern, ignoring: dbz; No hosts matched") as exc:
        ini.select_or_fail("dbz:&web", "targets")
    assert exc.value.exit_code == 2
    assert warned == []  # in the error, not before it
    assert ini.select("dbz") == [] and ini.pattern_warnings == ["Could not match supplied host pattern, ignoring: dbz"]
    assert ini.select_or_fail("web") == ["w1", "w2"]
    with pytest.raises(InventoryError, match="empty host pattern"):
        ini.select(" ")


def test_priority_and_group_vars_precedence(tmp_path: Path) -> None:
    (tmp_path / "inv").mkdir()
    (tmp_path / "inv" / "hosts.yml").write_text(YAML)
    (tmp_path / "inv" / "group_vars").mkdir()
    (tmp_path / "inv" / "group_vars" / "all.yml").write_text("level: group_vars_all\n")
    (tmp_path / "inv" / "group_vars" / "servers.json").write_text('{"from_json": [1, {"a": null}]}')
    (tmp_path / "inv" / "host_vars" / "r2").mkdir(parents=True)
    (tmp_path / "inv" / "host_vars" / "r2" / "net.yml").write_text("ansible_host: 10.1.0.2\n")
    inv = load_inventory(tmp_path / "inv")
    assert inv.hosts["r1"].vars["level"] == "host"
    assert inv.hosts["r2"].vars["color"] == "red"  # routers' priority 5 beats core's 1
    assert inv.hosts["r2"].vars["level"] == "group_vars_all"  # group_vars/all beats every group of the file
    assert inv.hosts["s1"].vars["from_json"] == [1, {"a": None}]
    assert "ansible_group_priority" not in inv.hosts["r2"].vars
    assert inv.hosts["r2"].address == "10.1.0.2"
    assert inv.hosts["r1"].kind == "device" and inv.hosts["r1"].device_type == "cisco_ios"
    assert inv.hosts["s1"].user == "ops"
    assert graph(inv).splitlines()[:4] == ["@all:", "  |--@ungrouped:", "  |--@routers:", "  |  |--r1"]


def test_plugins_constructed_and_script(tmp_path: Path) -> None:
    inv_dir = tmp_path / "inv"
    inv_dir.mkdir()
    (inv_dir / "01-hosts.yml").write_text("all:\n  hosts:\n    a: {mem: 4}\n    b: {mem: 16}\n")
    (inv_dir / "02-constructed.yml").write_text("plugin: ansible.builtin.constructed\ngroups:\n  big: mem > 8\n")
    inv = load_inventory(inv_dir)
    assert inv.select("big") == ["b"] and inv.dynamic == []
    script = tmp_path / "inventory.sh"
    script.write_text('#!/bin/sh\necho \'{"web": {"hosts": ["x1"]}, "_meta": {"hostvars": {"x1": {"v": 1}}}}\'\n')
    script.chmod(0o755)
    dyn = load_inventory(script)
    assert dyn.select("web") == ["x1"] and dyn.hosts["x1"].vars == {"v": 1}
    assert dyn.dynamic == [str(script)]
    assert not list(inv_cache.cache_dir().glob(f"{inv_cache._entry(str(script)).name}"))  # never cached on disk


def test_bad_inventories_are_clear_errors(tmp_path: Path) -> None:
    p = tmp_path / "h.yml"
    p.write_text("all:\n  hosts: [a, b]\n")
    with pytest.raises(InventoryError, match=r"h.yml: Ansible could not parse it .*requires a dictionary"):
        load_inventory(p)
    with pytest.raises(InventoryError, match="does not exist"):
        load_inventory(tmp_path / "missing.yml")
    q = tmp_path / "h.ini"
    q.write_text("[web\nx\n")
    with pytest.raises(InventoryError, match=r"h.ini: Ansible could not parse it"):
        load_inventory(q)


def test_cache_is_keyed_by_every_file(tmp_path: Path, home: Path) -> None:
    p = tmp_path / "hosts.ini"
    p.write_text("[web]\nw1\n")
    first = load_inventory_cached(p)
    assert load_inventory_cached(p) is first
    assert len(list(inv_cache.cache_dir().glob("*.json"))) == 1
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "w1.yml").write_text("role: db\n")
    second = load_inventory_cached(p)
    assert second is not first and second.hosts["w1"].vars["role"] == "db"
    (tmp_path / "host_vars" / "w1.yml").write_text("role: dx\n")  # same size, new mtime
    os.utime(tmp_path / "host_vars" / "w1.yml", ns=(1, 1))
    assert load_inventory(p).hosts["w1"].vars["role"] == "dx"
    p.write_text("[web]\nw1\nw2\n")
    assert load_inventory_cached(p).select("web") == ["w1", "w2"]


def test_the_cache_keeps_the_newest_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inv_cache, "KEEP", 2)
    for i in range(4):
        inv_cache.write(f"/inv/{i}", "sig", {"n": i}, None)
        os.utime(inv_cache._entry(f"/inv/{i}"), ns=(i + 1, i + 1))
    inv_cache.write("/inv/4", "sig", {"n": 4}, None)
    assert [inv_cache.read(f"/inv/{i}", "sig") for i in range(5)] == [None, None, None, {"n": 3}, {"n": 4}]
    assert inv_cache.read("/inv/4", "other") is None


def test_a_cached_load_does_not_import_ansible(tmp_path: Path, home: Path) -> None:
    p = tmp_path / "hosts.yml"
    p.write_text("all:\n  children:\n    web:\n      hosts:\n" + "".join(f"        w{i}: {{n: {i}}}\n" for i in range(200)))
    code = ("import json, sys; from opsflow.inventory import load_inventory; inv = load_inventory(sys.argv[1]); "
            "print(json.dumps(['ansible' in sys.modules, inv.select('web[-1]'), inv.hosts['w7'].vars]))")
    env = {**os.environ, "OPSFLOW_HOME": str(home)}
    runs = [json.loads(subprocess.run([sys.executable, "-c", code, str(p)], env=env, check=True, capture_output=True,
                                      text=True).stdout) for _ in range(2)]
    assert runs[0] == [True, ["w199"], {"n": 7}]  # resolved by Ansible
    assert runs[1] == [False, ["w199"], {"n": 7}]  # from the cache


def test_secrets_are_never_written_to_the_cache(tmp_path: Path) -> None:
    p = tmp_path / "hosts.ini"
    p.write_text("[web]\nw1 ansible_become_password=s3cret-canary-42\n")
    inv = load_inventory(p)
    assert inv.secrets() == ["s3cret-canary-42"]
    cached = list(inv_cache.cache_dir().glob("*.json")) if inv_cache.cache_dir().exists() else []
    assert cached == []
    assert load_inventory_cached(p) is load_inventory_cached(p)  # in memory only


def test_an_inventory_built_in_code_and_one_host(ini: Inventory) -> None:
    inv = Inventory(hosts={"a": Host("a", {}, ("g",)), "b": Host("b", {}, ())}, groups={"g": ["a"]})
    assert inv.select("all") == ["a", "b"] and inv.select("g:b") == ["a", "b"] and inv.select("!g") == ["b"]
    assert graph(inv) == "@all:\n  |--@g:\n  |  |--a"
    assert one_host(ini, "w1") == "w1" and one_host(ini, "db[1]") == "db-b"
    with pytest.raises(InventoryError, match="not one host"):
        one_host(ini, "db")
