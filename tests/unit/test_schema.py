"""`opsflow schema`: a JSON Schema (Draft 2020-12) that gives the verdict `opsflow validate` gives.

Every shipped runbook, every complete runbook the tests write and a corpus of probes covering every
action and every short form validate against it; a table of probes — short forms that must be accepted,
structural errors that must be refused — gets the same, expected, verdict from ``load_runbook`` and from
``jsonschema``. What only ``validate`` can check (templates, files, cross references, regexes) is listed
at the end, with a probe each showing the schema leaves it alone.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from opsflow.errors import RunbookError
from opsflow.runbook.models import Runbook
from opsflow.runbook.schema import runbook_schema
from opsflow.runbook.validate import load_runbook
from opsflow.yamlpos import load_file, load_text

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "runbooks").glob("*.yaml"))

BARE = "name: probe\ntargets: servers\n"
HEAD = BARE + "params:\n  p: {type: int, default: 1}\n"
STEP = HEAD + "steps:\n  - name: s\n"
TRIGGER = HEAD + "steps:\n  - name: s\n    command: uptime\ntriggers:\n  events:\n    - "


def step(body: str) -> str:
    """A runbook whose one step has these keys (besides its name), given as YAML lines."""
    return STEP + "".join(f"    {line}\n" for line in body.strip("\n").split("\n"))


def top(body: str) -> str:
    """A runbook with these top-level keys and one command step."""
    return (BARE if body.lstrip().startswith("params:") else HEAD) + body.strip("\n") + "\nsteps:\n  - name: s\n    command: uptime\n"


def trigger(body: str) -> str:
    """A runbook with one event trigger made of these keys."""
    lines = body.strip("\n").split("\n")
    return TRIGGER + lines[0] + "\n" + "".join(f"      {line}\n" for line in lines[1:])


# ---- accepted: every action in every form, every short form --------------------------------------
ACCEPTED: dict[str, str] = {
    "command string": step("command: uptime"),
    "command string with template": step('command: echo "{{ p }} x"'),
    "command argv with numbers": step("command: [sleep, 1, 2.5]"),
    "command mapping": step('command: {argv: "echo hi", env: {A: b}, chdir: /tmp, stdin: x}'),
    "command mapping argv list": step("command: {argv: [echo, hi]}"),
    "local string": step("local: make build"),
    "ansible string": step("ansible: site.yml"),
    "ansible mapping": step("ansible: {playbook: site.yml, extra_vars: {a: 1}, tags: [x]}"),
    "network.command string": step("network.command: show version"),
    "network.command list": step("network.command: [show a, show b]"),
    "network.command mapping": step("network.command: {commands: [show a]}"),
    "network.config list": step('network.config: ["ip route 10.0.0.0/8 Null0"]'),
    "network.config mapping": step("network.config: {lines: [x], save: false}"),
    "network.backup bare": step("network.backup:"),
    "network.backup true": step("network.backup: true"),
    "network.backup mapping": step("network.backup: {}"),
    "network.restore bare": step("network.restore:"),
    "network.restore string": step('network.restore: "~1"'),
    "network.restore true": step("network.restore: true"),
    "network.restore mapping": step("network.restore: {version: latest}"),
    "restore bare": step("restore:"),
    "restore true": step("restore: true"),
    "restore mapping": step("restore: {version: latest, from_host: srv1, target: /srv/drill}"),
    "approve bare": step("approve:"),
    "approve string": step("approve: go ahead?"),
    "approve true": step("approve: true"),
    "approve mapping": step("approve: {message: go?, timeout: 60}"),
    "runbook string": step("runbook: sub.yaml"),
    "runbook mapping": step("runbook: {path: sub.yaml, params: {a: 1}}"),
    "backup": step('backup: {paths: [/etc, "{{ p }}/x"], keep_last: "{{ p }}", keep_daily: 7, keep_weekly: " 4 ",'
                   " keep_monthly: 6.0}"),
    "verify every kind": step("""
verify:
  - {file: /etc/motd, contains: x, not_contains: y, matches: "^x", mode: "0644", owner: root, exists: true}
  - {file: /etc, is_directory: true}
  - {service: sshd, running: true, enabled: true}
  - {port: 22, listening: true}
  - {port: "tcp://0.0.0.0:22"}
  - {package: openssh-server, installed: true}
  - {command: "uptime", rc: 0, name: up}
  - {command: [sh, -c, "echo 3"], rc: "{{ p }}", value: '(\\d+)', le: "{{ p }}", ge: 1.5, eq: "3"}
  - {process: sshd}
  - {disk_free: /, min_mb: "{{ p }}", min_percent: "5"}
  - {memory_free: true, min_mb: 64}
  - {testinfra: checks/test_x.py}
  - {show: show version, contains: FRR}
  - {file: /x, service: null}"""),
    "step options": step("""
command: uptime
hosts: srv1
when: "p == 1"
retries: 3
delay: 0
backoff: 2
timeout: 1.5
register: out
ignore_errors: true
changed_when: false
failed_when: "rc != 0"
retry_on: [unreachable, timeout, failed, 75]
rollback:
  - {name: undo, command: [rm, /tmp/x]}"""),
    "serial number": step("command: uptime\nserial: 2"),
    "serial whole float": step("command: uptime\nserial: 2.0"),
    "serial percent": step('command: uptime\nserial: " 25% "'),
    "serial list": step('command: uptime\nserial: [1, "0.5%", "100%"]'),
    "runbook options": top("""
description: probe
concurrency: 1000
timeout: 900
max_fail_percentage: 0
gather_facts: true
serial: [1, "25%"]
on_failure:
  - {name: page, local: [echo, failed]}"""),
    "lock true": top("lock: true"),
    "lock scope": top("lock: runbook"),
    "lock mapping": top("lock: {scope: host, wait: 60}"),
    "lock null": top("lock:"),
    "params": top("""
params:
  a: {type: str, description: x, choices: [x, y], default: x}
  b: {type: list, required: false}
  token: {type: str, secret: true}"""),
    "trigger shorthands": trigger("""name: disk-full
source: alertmanager
status: any
match: {name: [DiskFull, "~Disk.*"], severity: 1, labels: {alertname: DiskFull, up: true}, host: srv1,
        message: "disk (full|low)", data: {x.y: 2}}
host: labels.instance
params: {p: labels.count}
dedup: [host, labels.mount]
cooldown: 15m
breaker: 0"""),
    "trigger mappings": trigger("""host: {field: message, regex: 'on ([a-z]+)'}
params: {p: {field: data.n}}
dedup: {key: [fingerprint], window: 1.5h}
cooldown: 90"""),
    "trigger dedup string": trigger("dedup: host\ncooldown: ' 10 m '"),
}

# ---- the table: short forms accepted and structural errors refused, by both ----------------------
PROBES: list[tuple[str, str, bool]] = [
    # short forms and edges that are fine
    ("command string", step("command: uptime"), True),
    ("lock: true", top("lock: true"), True),
    ("cooldown: 15m", trigger("cooldown: 15m"), True),
    ("trigger host as a string", trigger("host: labels.instance"), True),
    ("network.backup with no value", step("network.backup:"), True),
    ("approve as a message", step("approve: restart?"), True),
    ("serial 100%", step('command: uptime\nserial: "100%"'), True),
    ("retries 3.0 is whole", step("command: uptime\nretries: 3.0"), True),
    ("count as template", step('backup: {paths: [/etc], keep_last: "{{ p }}"}'), True),
    ("severity as a number", trigger("match: {severity: 2}"), True),
    # steps and actions
    ("two actions in a step", step("command: uptime\nlocal: uptime"), False),
    ("no action", step("retries: 1"), False),
    ("action with no value", step("command:"), False),
    ("ansible with no value", step("ansible:"), False),
    ("blank command string", step('command: "  "'), False),
    ("empty argv", step("command: []"), False),
    ("boolean in argv", step("command: [echo, true]"), False),
    ("argv of mappings", step("command: [{a: b}]"), False),
    ("unknown key in command", step("command: {argv: x, shell: true}"), False),
    ("command env not text", step("command: {argv: x, env: {A: 1}}"), False),
    ("ansible without playbook", step("ansible: {tags: [x]}"), False),
    ("network.config as a string", step("network.config: hostname x"), False),
    ("network.config empty", step("network.config: []"), False),
    ("network.backup false", step("network.backup: false"), False),
    ("network.backup with a key", step("network.backup: {keep: 1}"), False),
    ("network.restore number", step("network.restore: 5"), False),
    ("restore as a string", step("restore: latest"), False),
    ("approve false", step("approve: false"), False),
    ("approve timeout 0", step("approve: {timeout: 0}"), False),
    ("runbook without path", step("runbook: {params: {}}"), False),
    ("backup relative path", step("backup: {paths: [etc/app]}"), False),
    ("backup no paths", step("backup: {paths: []}"), False),
    ("keep_last negative", step("backup: {paths: [/etc], keep_last: -1}"), False),
    ("keep_last words", step("backup: {paths: [/etc], keep_last: many}"), False),
    ("keep_daily fraction", step("backup: {paths: [/etc], keep_daily: 1.5}"), False),
    # checks
    ("verify not a list", step("verify: {file: /x}"), False),
    ("check without kind", step("verify: [{contains: x}]"), False),
    ("check with two kinds", step("verify: [{file: /x, service: y}]"), False),
    ("check kind only null", step("verify: [{file: null, contains: x}]"), False),
    ("unknown key in check", step("verify: [{file: /x, size: 1}]"), False),
    ("port true", step("verify: [{port: true}]"), False),
    ("min_mb words", step("verify: [{disk_free: /, min_mb: lots}]"), False),
    ("exists as text", step('verify: [{file: /x, exists: "yes"}]'), False),
    # step options
    ("serial 0", step("command: uptime\nserial: 0"), False),
    ('serial "0%"', step('command: uptime\nserial: "0%"'), False),
    ("serial -1", step("command: uptime\nserial: -1"), False),
    ("serial empty list", step("command: uptime\nserial: []"), False),
    ("serial without %", step('command: uptime\nserial: "25"'), False),
    ("serial true", step("command: uptime\nserial: true"), False),
    ("serial list with 0", step("command: uptime\nserial: [1, 0]"), False),
    ("retry_on bogus", step("command: uptime\nretry_on: [bogus]"), False),
    ("retry_on fraction", step("command: uptime\nretry_on: [1.5]"), False),
    ("retries -1", step("command: uptime\nretries: -1"), False),
    ('retries "3"', step('command: uptime\nretries: "3"'), False),
    ("retries true", step("command: uptime\nretries: true"), False),
    ("delay -1", step("command: uptime\ndelay: -1"), False),
    ("backoff 0.5", step("command: uptime\nbackoff: 0.5"), False),
    ("step timeout 0", step("command: uptime\ntimeout: 0"), False),
    ("register not a name", step("command: uptime\nregister: 1x"), False),
    ("ignore_errors yes-string", step('command: uptime\nignore_errors: "yes"'), False),
    ("changed_when number", step("command: uptime\nchanged_when: 1"), False),
    ("when number", step("command: uptime\nwhen: 5"), False),
    ("unknown step key", step("command: uptime\nretry: 3"), False),
    ("field name instead of key", step("command: uptime\nregister_as: out"), False),
    ("empty step name", HEAD + 'steps:\n  - name: ""\n    command: uptime\n', False),
    ("rollback step without action", step("command: uptime\nrollback: [{name: r}]"), False),
    # runbook
    ("unknown runbook key", top("owner: me"), False),
    ("bad runbook name", top("").replace("name: probe", "name: bad name"), False),
    ("targets a list", top("").replace("targets: servers", "targets: [a, b]"), False),
    ("no steps", HEAD + "steps: []\n", False),
    ("steps a mapping", HEAD + "steps: {name: s, command: uptime}\n", False),
    ("description a number", top("description: 5"), False),
    ("concurrency 0", top("concurrency: 0"), False),
    ("concurrency 1001", top("concurrency: 1001"), False),
    ("max_fail_percentage 101", top("max_fail_percentage: 101"), False),
    ("gather_facts 1", top("gather_facts: 1"), False),
    ('lock: "yes please"', top('lock: "yes please"'), False),
    ("lock false", top("lock: false"), False),
    ("lock scope unknown", top("lock: {scope: everything}"), False),
    ("lock wait -1", top("lock: {wait: -1}"), False),
    ("unknown lock key", top("lock: {scope: host, for: 10}"), False),
    # params
    ("bad param type", top("params: {x: {type: string}}"), False),
    ("choices not a list", top("params: {x: {choices: a}}"), False),
    ("param name not an identifier", top("params: {bad-name: {}}"), False),
    ("secret as text", top('params: {x: {secret: "yes"}}'), False),
    ("unknown param key", top("params: {x: {kind: str}}"), False),
    ("param not a mapping", top("params: {x: str}"), False),
    # triggers
    ('cooldown "15 parsecs"', trigger('cooldown: "15 parsecs"'), False),
    ("cooldown negative", trigger("cooldown: -1"), False),
    ("cooldown true", trigger("cooldown: true"), False),
    ("trigger host a number", trigger("host: 5"), False),
    ("trigger host unknown field", trigger("host: hostname"), False),
    ("trigger field ends with a dot", trigger("host: labels."), False),
    ("trigger param a list", trigger("params: {p: [labels.a]}"), False),
    ("match label a mapping", trigger("match: {labels: {a: {b: c}}}"), False),
    ("match message a number", trigger("match: {message: 5}"), False),
    ("match name list of lists", trigger("match: {name: [[a]]}"), False),
    ("dedup unknown field", trigger("dedup: bogus"), False),
    ("dedup window bad", trigger("dedup: {window: soon}"), False),
    ("source unknown", trigger("source: kafka"), False),
    ("status unknown", trigger("status: open"), False),
    ("breaker -1", trigger("breaker: -1"), False),
    ("breaker text", trigger('breaker: "3"'), False),
    ("bad trigger name", trigger("name: -x"), False),
    ("unknown trigger key", trigger("cooldown: 1m\nretry: 1"), False),
    ("unknown match key", trigger("match: {title: x}"), False),
    ("unknown field-ref key", trigger("host: {field: host, group: 1}"), False),
    ("no trigger events", top("triggers: {events: []}"), False),
    ("unknown triggers key", top("triggers: {events: [{}], cron: x}"), False),
]

# what needs more than the shape of the file: validate refuses it, the schema (documented) lets it be
ONLY_VALIDATE: list[tuple[str, str]] = [
    ("trigger param not a runbook param", trigger("params: {nope: host}")),
    ("trigger names used twice", TRIGGER + "name: a\n    - name: a\n"),
    ("catastrophic trigger regex", trigger("match: {message: '(a+)+$'}")),
    ("unclosed quote in a command string", step("command: echo 'hi")),
    ("playbook not found", step("ansible: missing.yml")),
    ("template syntax", step('command: "echo {{ p "')),
    ("secret param with a default", top("params: {t: {secret: true, default: x}}")),
]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return runbook_schema()


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with a playbook and a sub-runbook, so that probes naming them are whole."""
    root = tmp_path_factory.mktemp("project")
    (root / "playbooks").mkdir()
    (root / "playbooks" / "site.yml").write_text("- hosts: all\n  tasks: []\n")
    (root / "runbooks").mkdir()
    (root / "runbooks" / "sub.yaml").write_text("name: sub\ntargets: servers\nsteps:\n  - {name: s, command: uptime}\n")
    return root


def validate_accepts(project: Path, text: str) -> bool:
    path = project / "runbooks" / "probe.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_runbook(path)
    except RunbookError:
        return False
    return True


def schema_errors(validator: jsonschema.Draft202012Validator, tree: Any) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or 'runbook'}: {e.message[:200]}" for e in validator.iter_errors(tree)]


def test_schema_is_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("https://") and schema["title"] == "opsflow runbook"
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert all(d.get("additionalProperties") is False for d in schema["$defs"].values() if d.get("type") == "object")


def test_importing_the_models_builds_no_schema() -> None:
    """The models are imported by every `opsflow run`: the schema is built only when asked for."""
    code = ("from pydantic.json_schema import GenerateJsonSchema\n"
            "def refuse(*a, **k): raise SystemExit('a JSON schema was generated at import time')\n"
            "GenerateJsonSchema.generate = refuse\n"
            "import opsflow.runbook.models, opsflow.events.models, opsflow.runbook.validate\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    subprocess.run([sys.executable, "-c", code + "from opsflow.runbook.schema import runbook_schema\nrunbook_schema()"],
                   check=False, capture_output=True).returncode == 1 or pytest.fail("the check above cannot fail")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_runbooks_validate(path: Path, validator: jsonschema.Draft202012Validator) -> None:
    load_runbook(path)
    assert schema_errors(validator, load_file(path)) == []


def test_runbooks_written_by_the_tests_validate(validator: jsonschema.Draft202012Validator) -> None:
    """Each complete runbook literal of the test suite gets the schema's verdict that the model gives it."""
    seen = accepted = 0
    for source in sorted(ROOT.glob("tests/**/*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and "targets:" in node.value and "steps:" in node.value):
                continue
            try:
                tree = load_text(node.value, str(source))
                Runbook.model_validate(tree)
                ok = True
            except RunbookError:
                continue  # not YAML on its own (a piece of a format string)
            except ValueError as exc:
                if any(gap in str(exc) for gap in ("not a param of this runbook", "used twice", "regular expression",
                                                   "No closing quotation", "No escaped character")):
                    continue
                ok = False
            seen += 1
            accepted += ok
            assert validator.is_valid(tree) == ok, (f"{source}:{node.lineno}", schema_errors(validator, tree))
    assert seen >= 20 and accepted >= 15  # the suite writes runbooks: the scan finds them


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_corpus_validates(text: str, project: Path, validator: jsonschema.Draft202012Validator) -> None:
    assert validate_accepts(project, text)
    assert schema_errors(validator, load_text(text, "probe")) == []


@pytest.mark.parametrize(("text", "ok"), [(t, ok) for _, t, ok in PROBES], ids=[n for n, _, _ in PROBES])
def test_probe_gets_the_same_verdict(text: str, ok: bool, project: Path,
                                     validator: jsonschema.Draft202012Validator) -> None:
    assert validate_accepts(project, text) == ok, "opsflow validate"
    assert validator.is_valid(load_text(text, "probe")) == ok, schema_errors(validator, load_text(text, "probe"))


def test_probe_table_is_broad() -> None:
    assert len(PROBES) >= 40 and len({n for n, _, _ in PROBES}) == len(PROBES)
    assert sum(ok for _, _, ok in PROBES) >= 10 and sum(not ok for _, _, ok in PROBES) >= 40


@pytest.mark.parametrize("text", [t for _, t in ONLY_VALIDATE], ids=[n for n, _ in ONLY_VALIDATE])
def test_what_only_validate_checks(text: str, project: Path, validator: jsonschema.Draft202012Validator) -> None:
    """Listed in the schema's $comment: when the schema learns one of these, move the probe to PROBES."""
    assert not validate_accepts(project, text)
    assert validator.is_valid(load_text(text, "probe")), schema_errors(validator, load_text(text, "probe"))


def test_the_cli_prints_the_same_schema() -> None:
    import json
    import subprocess
    import sys

    from opsflow.runbook.schema import runbook_schema
    from tests.helpers import ROOT

    out = subprocess.run([sys.executable, "-m", "opsflow", "schema"], capture_output=True, text=True, cwd=ROOT,
                         check=True).stdout
    printed = json.loads(out)
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema" and printed == runbook_schema()
