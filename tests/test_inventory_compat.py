"""opsflow sees exactly the hosts and variables Ansible sees: the corpus × patterns, against the real CLIs.

For every inventory of tests/inventories/cases.yml (INI with ranges and typed values, YAML with
group priorities, a directory of INI/YAML/TOML with ignored files, group_vars/host_vars as files,
directories, ``.json`` and extension-less files, ``constructed``, ``generator``, a ``script``, a
comma host list, the lab's shape):

* every pattern: the hosts ``opsflow`` selects, in order, equal those of ``ansible PATTERN
  --list-hosts`` (Ansible's AdHocCLI, run once per pattern in a fresh fork so no state is
  shared), and so do the "Could not match supplied host pattern" warnings;
* ``ansible-inventory --list`` (every group, its hosts and children, and every variable of every
  host) equals opsflow's view of the inventory, JSON for JSON, and ``--graph`` line for line;
* ``opsflow inventory host NAME --json`` prints byte for byte what ``ansible-inventory --host NAME``
  prints, and ``opsflow inventory hosts PATTERN --json`` the list ``ansible`` gives.

Ansible runs from an empty directory: ``ansible-inventory`` would otherwise also read the
current directory's group_vars/ (its default playbook directory), which opsflow never does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsflow.inventory import load_inventory
from opsflow.inventory.sources import _resolve, _source, from_data
from opsflow.inventory.views import ansible_list, graph

CORPUS = Path(__file__).parent / "inventories"
CASES: dict[str, Any] = yaml.safe_load((CORPUS / "cases.yml").read_text())
BIN = Path(sys.executable).parent
NO_MATCH = "Could not match supplied host pattern"

# `ansible -i INV PATTERN --list-hosts` for many patterns: Ansible is imported once, then each
# pattern runs AdHocCLI in its own fork (a fresh `ansible` process in all but the import time),
# twice: as is, and with Group._walk_relationship iterating its set of groups in insertion order.
# As is, Ansible's order of hosts reached through nested groups varies from run to run (the
# groups hash by identity); opsflow always gives the insertion-order one.
DRIVER = r"""
import contextlib, io, json, os, sys
from ansible.cli.adhoc import AdHocCLI
from ansible.inventory.group import Group
from ansible.utils.display import Display


def walk_in_insertion_order(self, rel, include_self=False, preserve_ordering=False):
    seen = {}
    unprocessed = dict.fromkeys(getattr(self, rel))
    if include_self:
        unprocessed[self] = None
    ordered = ([self] if include_self else []) + list(getattr(self, rel))
    while unprocessed:
        seen.update(unprocessed)
        new = {}
        for g in list(unprocessed):
            for item in getattr(g, rel):
                new[item] = None
                if item not in seen:
                    ordered.append(item)
        unprocessed = {g: None for g in new if g not in seen}
    return ordered if preserve_ordering else set(seen)


def list_hosts(inv, pattern, ordered):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        if ordered:
            Group._walk_relationship = walk_in_insertion_order
        warned = []
        Display().warning = lambda msg, *a, **k: warned.append(str(msg))
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                AdHocCLI(["ansible", "-i", inv, pattern, "--list-hosts"]).run()
            lines = buf.getvalue().splitlines()
            res = {"head": lines[0].strip(), "hosts": [x.strip() for x in lines[1:]], "warnings": warned}
        except BaseException as exc:
            res = {"error": f"{type(exc).__name__}: {exc}", "warnings": warned}
        with os.fdopen(w, "w") as fh:
            json.dump(res, fh)
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as fh:
        res = json.load(fh)
    os.waitpid(pid, 0)
    return res


inv, patterns = sys.argv[1], json.loads(sys.argv[2])
json.dump({p: {"ordered": list_hosts(inv, p, True), "as_is": list_hosts(inv, p, False)} for p in patterns},
          sys.stdout)
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("corpus") / "inventories"
    shutil.copytree(CORPUS, dest)  # keeps the script's exec bit; fresh mtimes
    return dest


@pytest.fixture(scope="module")
def empty_cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cwd")


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSFLOW_HOME", str(tmp_path_factory.getbasetemp() / "opsflow-home"))


def source_of(corpus: Path, name: str) -> str:
    src = CASES["cases"][name]["source"]
    return src if "," in src else str(corpus / src)


def patterns_of(name: str) -> list[str]:
    return list(dict.fromkeys(CASES["common"] + CASES["cases"][name]["patterns"]))


def ansible_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    return {**env, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}


def run_ansible(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=ansible_env(), timeout=300)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


def select_with_warnings(data: dict[str, Any], source: str, pattern: str) -> tuple[list[str], list[str]]:
    """opsflow's selection on a fresh Inventory (as each `ansible` run is fresh), and its warnings."""
    inv = from_data(data, source)
    hosts = inv.select(pattern)
    return hosts, list(inv.pattern_warnings)


@pytest.mark.parametrize("name", sorted(CASES["cases"]))
def test_patterns_select_the_hosts_ansible_lists(name: str, corpus: Path, empty_cwd: Path) -> None:
    source, patterns = source_of(corpus, name), patterns_of(name)
    want = json.loads(run_ansible([sys.executable, "-c", DRIVER, source, json.dumps(patterns)], empty_cwd))
    data, _ = _resolve(_source(source))
    mismatches = []
    for pattern in patterns:
        expected, as_is = want[pattern]["ordered"], want[pattern]["as_is"]
        for res in (expected, as_is):
            assert "error" not in res, f"ansible {pattern!r}: {res['error']}"
            assert res["head"] == f"hosts ({len(res['hosts'])}):"
        got, warned = select_with_warnings(data, _source(source), pattern)
        if got != expected["hosts"]:
            mismatches.append(f"{pattern!r}: opsflow {got} != ansible {expected['hosts']}")
        if "[" in pattern and "~" not in pattern:  # a subscript picks by position: as many hosts
            if len(got) != len(as_is["hosts"]):
                mismatches.append(f"{pattern!r}: opsflow {got} != ansible as is {as_is['hosts']}")
        elif sorted(got) != sorted(as_is["hosts"]):
            mismatches.append(f"{pattern!r}: opsflow {got} != ansible as is {as_is['hosts']}")
        theirs = [w for w in expected["warnings"] if w.startswith(NO_MATCH)]
        ours = [w for w in warned if w.startswith(NO_MATCH)]
        if ours != theirs:
            mismatches.append(f"{pattern!r}: warnings {ours} != ansible's {theirs}")
    assert not mismatches, f"{len(mismatches)} of {len(patterns)} patterns differ:\n" + "\n".join(mismatches)


@pytest.mark.parametrize("name", sorted(CASES["cases"]))
def test_groups_hosts_and_every_variable_equal_ansible_inventory(name: str, corpus: Path, empty_cwd: Path) -> None:
    source = source_of(corpus, name)
    listed = plain(json.loads(run_ansible([str(BIN / "ansible-inventory"), "-i", source, "--list"], empty_cwd)))
    tree = run_ansible([str(BIN / "ansible-inventory"), "-i", source, "--graph"], empty_cwd)
    inv = load_inventory(source)
    assert inv.hosts, "the corpus inventory has hosts"
    for host in inv.hosts.values():  # each host on its own, for a readable failure
        assert host.vars == listed["_meta"]["hostvars"].get(host.name, {}), host.name
    assert ansible_list(inv) == listed
    assert graph(inv) == tree.rstrip("\n")


def plain(value: Any) -> Any:
    """``ansible-inventory --list`` writes some strings (from TOML, scripts) as ``{"__ansible_unsafe": s}``
    inside ``_meta``; ``--host`` and opsflow give the plain string."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def opsflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "opsflow"), *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**ansible_env(), "OPSFLOW_HOME": os.environ["OPSFLOW_HOME"]})


@pytest.mark.parametrize("name,host,pattern", [
    ("ini-ranges", "w01", "prod:!db-b:&web*"),
    ("ini-ranges", "lone", "web[1:3].example.com"),
    ("yaml-priorities", "r2", "routers:&core"),
    ("dir-mixed", "ns3", "dns,mail"),
    ("dir-mixed", "mx2", "mail:!mx1"),
    ("constructed", "n2", "big"),
    ("script", "sw1", "db"),
    ("generator", "run-api-prod", "api:!*-dev"),
])
def test_cli_output_is_ansibles(name: str, host: str, pattern: str, corpus: Path, empty_cwd: Path) -> None:
    source = source_of(corpus, name)
    ours = opsflow("inventory", "host", host, "-i", source, "--json", cwd=empty_cwd)
    theirs = run_ansible([str(BIN / "ansible-inventory"), "-i", source, "--host", host], empty_cwd)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs
    listed = opsflow("inventory", "hosts", pattern, "-i", source, "--json", cwd=empty_cwd)
    out = run_ansible([str(BIN / "ansible"), "-i", source, pattern, "--list-hosts"], empty_cwd).splitlines()
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [line.strip() for line in out[1:]] != []
    tree = opsflow("inventory", "graph", "-i", source, cwd=empty_cwd)
    assert tree.stdout == run_ansible([str(BIN / "ansible-inventory"), "-i", source, "--graph"], empty_cwd)


def test_no_host_gives_ansibles_warning(corpus: Path, empty_cwd: Path) -> None:
    source = source_of(corpus, "ini-ranges")
    proc = opsflow("inventory", "hosts", "web:dbz", "-i", source, "--json", cwd=empty_cwd)
    assert json.loads(proc.stdout) == ["w01", "w02", "w03", "www-a", "www-b", "www-c"]
    assert "[WARNING]: Could not match supplied host pattern, ignoring: dbz" in proc.stderr
    none = opsflow("inventory", "hosts", "dbz", "-i", source, "--json", cwd=empty_cwd)
    assert (none.returncode, json.loads(none.stdout)) == (0, [])
    assert "[WARNING]: No hosts matched, nothing to do" in none.stderr


def test_passwords_are_masked_unless_asked_for(tmp_path: Path, empty_cwd: Path) -> None:
    inv = tmp_path / "hosts.ini"
    inv.write_text("[db]\npg1 ansible_host=10.0.0.5 ansible_password=Sw0rdfish! ansible_become_pass=Sup3r role=primary\n")
    masked = opsflow("inventory", "host", "pg1", "-i", str(inv), "--json", cwd=empty_cwd)
    assert masked.returncode == 0, masked.stderr
    assert "Sw0rdfish!" not in masked.stdout and "Sup3r" not in masked.stdout
    assert json.loads(masked.stdout)["ansible_password"] == "********" and '"role": "primary"' in masked.stdout
    shown = opsflow("inventory", "host", "pg1", "-i", str(inv), "--json", "--show-secrets", cwd=empty_cwd)
    assert shown.stdout == run_ansible([str(BIN / "ansible-inventory"), "-i", str(inv), "--host", "pg1"], empty_cwd)
