"""Runbook validation: every bad input gives file:line:col and a clear message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from opsflow.errors import RunbookError
from opsflow.inventory import load_inventory
from opsflow.runbook.validate import load_runbook

GOOD = """\
name: t
targets: servers
params:
  n: {type: int, default: 3}
steps:
  - name: a
    command: echo {{ n }}
"""


def write(tmp: Path, text: str, name: str = "rb.yaml") -> Path:
    (tmp / "playbooks").mkdir(exist_ok=True)
    p = tmp / "runbooks" / name
    p.parent.mkdir(exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


@pytest.fixture
def inv(tmp_path: Path):  # type: ignore[no-untyped-def]
    p = tmp_path / "inv.yml"
    p.write_text("all:\n  children:\n    servers:\n      hosts:\n        s1: {ansible_host: 10.0.0.1, role: web}\n")
    return load_inventory(p)


def diags(path: Path, inv=None) -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(RunbookError) as err:
        load_runbook(path, inv)
    return [str(d) for d in err.value.diagnostics]


def test_good_runbook_loads(tmp_path: Path, inv) -> None:  # type: ignore[no-untyped-def]
    lrb = load_runbook(write(tmp_path, GOOD), inv)
    assert lrb.runbook.steps[0].command is not None
    assert lrb.runbook.steps[0].command.argv == ["echo", "{{ n }}"]
    assert len(lrb.content_hash) == 64


def test_yaml_syntax_error_has_position(tmp_path: Path) -> None:
    p = write(tmp_path, "name: t\nsteps:\n  - name: a\n    command: [x\n")
    (d,) = diags(p)
    assert d.startswith(f"{p}:") and "YAML syntax error" in d
    assert d.split(":")[1] in ("4", "5")


def test_unknown_key_suggests(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("    command:", "    retrys: 2\n    command:"))
    (d,) = diags(p)
    assert d == f"{p}:7:5: unknown key 'retrys'; did you mean 'retries'?"


def test_wrong_type(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("    command:", "    retries: many\n    command:"))
    (d,) = diags(p)
    assert d.startswith(f"{p}:7:5:") and "retries" in d and "integer" in d


def test_all_errors_of_a_file_at_once(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD + "  - name: b\n    verify:\n      - file: /x\n        exits: true\n  - name: c\n"
              "    command: [a]\n    local: [b]\nbogus: 1\n")
    found = diags(p)
    assert len(found) == 3, found
    assert any("'exits'; did you mean 'exists'" in d for d in found)
    assert any("exactly one action" in d for d in found)
    assert any("unknown key 'bogus'" in d for d in found)


def test_undefined_template_variable(tmp_path: Path, inv) -> None:  # type: ignore[no-untyped-def]
    p = write(tmp_path, GOOD.replace("echo {{ n }}", "echo {{ n }} {{ nope }}"))
    (d,) = diags(p, inv)
    assert d.startswith(f"{p}:7:14:") and "undefined template variable 'nope'" in d


def test_inventory_vars_and_registered_names_are_known(tmp_path: Path, inv) -> None:  # type: ignore[no-untyped-def]
    text = GOOD + "    register: first\n  - name: b\n    command: echo {{ role }} {{ first.stdout }} {{ host.name }}\n"
    load_runbook(write(tmp_path, text), inv)


def test_template_syntax_error(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("echo {{ n }}", "echo {{ n }"))
    (d,) = diags(p)
    assert "template syntax error" in d and ":7:" in d


def test_unknown_target(tmp_path: Path, inv) -> None:  # type: ignore[no-untyped-def]
    p = write(tmp_path, GOOD.replace("targets: servers", "targets: databases"))
    (d,) = diags(p, inv)
    assert d.startswith(f"{p}:2:10:") and "selects no host" in d


def test_missing_playbook(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("command: echo {{ n }}", "ansible: nothere.yml"))
    (d,) = diags(p)
    assert "playbook 'nothere.yml' not found" in d and ":7:5:" in d


def test_secret_default_refused(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("n: {type: int, default: 3}", "n: {type: int, default: 3}\n  pw: {secret: true, default: hunter2}"))
    (d,) = diags(p)
    assert "secret param 'pw' must not have a default" in d


def test_example_runbooks_validate() -> None:
    root = Path(__file__).resolve().parents[2]
    inventory = load_inventory(root / "inventory")
    files = sorted((root / "runbooks").glob("*.yaml"))
    assert files
    for f in files:
        load_runbook(f, inventory)


def test_templates_per_runbook_are_bounded(tmp_path: Path) -> None:
    lines = "".join(f'      - "{{{{ n }}}}-{i}"\n' for i in range(1001))
    p = write(tmp_path, GOOD.replace("    command: echo {{ n }}\n", "    command:\n      - echo\n" + lines))
    (d,) = diags(p)
    assert d.startswith(f"{p}:1009:9: more than 1000 templates in one runbook"), d


def test_a_flood_of_problems_is_capped(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD + "    env:\n" + "".join(f"      K{i}: !!int x{i}\n" for i in range(300)))
    found = diags(p)
    assert len(found) == 201
    assert found[0] == f"{p}:9:11: cannot read 'x0' as !!int: invalid literal for int() with base 10: 'x0'"
    assert found[-1].endswith(": … and 100 more problems")


def test_duplicate_key_points_at_the_second(tmp_path: Path) -> None:
    (d,) = diags(write(tmp_path, GOOD + "name: u\n"))
    assert d.endswith(":8:1: duplicate key 'name'"), d
