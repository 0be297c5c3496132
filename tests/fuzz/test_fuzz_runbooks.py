"""Bad runbooks never crash or hang the loader: regression cases, then property-based fuzzing (hypothesis).

Every way in — ``opsflow validate``, ``run``, ``plan`` and the daemon — loads a runbook with
``load_runbook``; whatever the file holds, it returns a runbook or raises ``RunbookError`` whose
diagnostics each point at ``file:line:col``, within a bounded time. The properties mutate the shipped
runbooks (values replaced by hostile ones, text spliced with YAML and Jinja fragments) and generate
trigger regexes; bounded for CI (a few seconds). ``OPSFLOW_FUZZ_EXAMPLES`` scales the number of examples.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsflow.errors import RunbookError, TemplateError
from opsflow.inventory import load_inventory
from opsflow.inventory.models import Inventory
from opsflow.runbook import render
from opsflow.runbook.limits import check_regex
from opsflow.runbook.validate import LoadedRunbook, load_runbook
from opsflow.yamlpos import MAX_FILE_BYTES

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "runbooks").glob("*.yaml"))
SCALE = float(os.environ.get("OPSFLOW_FUZZ_EXAMPLES", "1"))
FIGURES: Counter[str] = Counter()

HEAD = "name: t\ntargets: servers\nsteps:\n  - name: a\n"
TRIGGERED = HEAD + "    command: echo\ntriggers:\n  events:\n    - "


def _bomb(indent: str, levels: int = 9) -> str:
    """The billion laughs: ~500 bytes, 9**levels strings once expanded."""
    lines = [f'{indent}l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"{indent}l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def write(tmp: Path, text: str, name: str = "rb.yaml") -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


def diagnostics(path: Path, inventory: Inventory | None = None) -> list[str]:
    with pytest.raises(RunbookError) as err:
        load_runbook(path, inventory)
    found = [str(d) for d in err.value.diagnostics]
    assert found
    for d in found:
        assert re.match(rf"{re.escape(str(path))}:\d+:\d+: \S", d), d
    return found


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    p = tmp_path_factory.mktemp("inv") / "inv.yml"
    p.write_text("all:\n  children:\n    servers:\n      hosts:\n        s1: {ansible_host: 10.0.0.1, role: web}\n"
                 "    routers:\n      hosts:\n        r1: {ansible_host: 10.0.0.2, platform: frr}\n")
    return load_inventory(p)


# ---- the cases of the issue, each a file:line:col error -------------------------------------------------------
CASES = {
    "yaml_nested_300_lists": (HEAD + "    command: " + "[" * 300 + "x" + "]" * 300 + "\n",
                              ":5:", "nesting deeper than 64 levels"),
    "yaml_nested_300_mappings": (HEAD + "    command: " + "{a: " * 300 + "x" + "}" * 300 + "\n",
                                 ":5:", "nesting deeper than 64 levels"),
    "yaml_nested_block_style": (HEAD + "    command: echo\n    env:\n" + "".join(f"{'  ' * (i + 3)}k{i}:\n"
                                                                               for i in range(260)) + "\n",
                                ":", "nesting deeper than 64 levels"),
    "jinja_200_parentheses": (HEAD + '    command: "echo {{ ' + "(" * 200 + "1" + ")" * 200 + ' }}"\n',
                              ":5:14:", "nested 200 levels deep"),
    "jinja_3000_ifs": (HEAD + '    command: "echo ' + "{% if 1 %}" * 3000 + "x" + "{% endif %}" * 3000 + '"\n',
                       ":5:14:", "nested 3000 levels deep"),
    "jinja_3000_additions": (HEAD + '    command: "echo {{ ' + "+".join(["1"] * 3000) + ' }}"\n',
                             ":5:14:", "too deeply"),
    "jinja_3000_nots": (HEAD + "    command: echo\n    when: " + "not " * 3000 + "x\n", ":6:11:", "too deeply"),
    "jinja_huge_power_folded": (HEAD + '    command: "echo {{ 10 ** (10 ** 9) }} {{ nope"\n', ":5:14:",
                                "template syntax error"),
    "int_over_4300_digits": ("name: t\ntargets: servers\nconcurrency: " + "9" * 5000 + "\nsteps:\n  - name: a\n"
                             "    command: echo\n", ":3:14:", "integer of 5000 characters; the limit is 64"),
    "hex_int_in_string_field": (HEAD + "    command: echo\ndescription: 0x" + "f" * 5000 + "\n", ":6:14:",
                                "integer of 5002 characters"),
    "hex_int_in_argv": (HEAD + "    command: [echo, 0x" + "f" * 5000 + "]\n", ":5:21:", "integer of 5002"),
    "int_tag_on_text": (HEAD + "    command: echo\n    retries: !!int abc\n", ":6:14:", "cannot read 'abc' as !!int"),
    "float_tag_on_text": (HEAD + "    command: echo\n    delay: !!float abc\n", ":6:12:", "as !!float"),
    "python_tag": (HEAD + "    command: !!python/object:os.system echo\n", ":5:14:", "not supported"),
    "set_tag_on_mapping": (HEAD + "    command: echo\n    env: !!set {a: b}\n", ":6:10:", "!!set is not supported"),
    "unknown_filter": (HEAD + '    command: "echo {{ x | nosuchfilter }}"\n', ":5:14:", "No filter named 'nosuchfilter'"),
    "unknown_test": (HEAD + '    command: "echo {{ x is nosuchtest }}"\n', ":5:14:", "No test named 'nosuchtest'"),
    "unknown_filter_in_when": (HEAD + "    command: echo\n    when: x | nosuchfilter\n", ":6:11:", "No filter named"),
    "unknown_filter_in_failed_when": (HEAD + "    command: echo\n    failed_when: rc | nope\n", ":6:18:",
                                      "No filter named 'nope'"),
    "trigger_host_field_int": (TRIGGERED + "host: {field: 5}\n", ":8:14:", "host.field: Input should be a valid string"),
    "trigger_match_message_int": (TRIGGERED + "match: {message: 5}\n", ":8:15:", "Input should be a valid string"),
    "trigger_regex_mapping": (TRIGGERED + "host: {field: host, regex: {a: b}}\n", ":8:27:",
                              "regex: Input should be a valid string (got mapping"),
    "trigger_dedup_key_int": (TRIGGERED + "dedup: {key: [5]}\n", ":8:", "Input should be a valid string"),
    "trigger_label_pattern_mapping": (TRIGGERED + "match: {labels: {a: {b: c}}}\n", ":8:", "labels.a"),
    "trigger_regex_nested_quantifier": (TRIGGERED + "match: {message: '(a+)+$'}\n", ":8:15:",
                                        "exponential time on some input (a repeat inside a repeat)"),
    "trigger_regex_star_star": (TRIGGERED + "match: {message: '(a*)*$'}\n", ":8:15:", "exponential time"),
    "trigger_regex_overlapping_alternation": (TRIGGERED + "match: {name: '~(a|a)*$'}\n", ":8:", "alternation"),
    "trigger_regex_field_ref": (TRIGGERED + "host: {field: message, regex: '(\\w+\\s?)+$'}\n", ":8:",
                                "exponential time"),
    "trigger_regex_does_not_compile": (TRIGGERED + "match: {message: '(a'}\n", ":8:15:",
                                       "invalid regular expression '(a'"),
    "alias_bomb_in_extra_vars": (HEAD + "    ansible:\n      playbook: p.yml\n      extra_vars:\n" + _bomb("        "),
                                 ":", "more than 100000 values once its YAML aliases are expanded"),
    "alias_bomb_in_changed_when": (HEAD + "    command: echo\n    changed_when:\n" + _bomb("      "), ":",
                                   "aliases are expanded"),
    "alias_inside_its_own_anchor": (HEAD + "    command: &a [echo, *a]\n", ":5:24:", "alias *a names no anchor"),
    "two_documents": (HEAD + "    command: echo\n---\nname: u\n", ":6:1:", "one YAML document; found a second"),
    "mapping_as_key": (HEAD + "    command: echo\n    ? {a: b}\n    : 1\n", ":6:7:", "mapping key must be a plain value"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_runbook_is_a_positioned_error(name: str, tmp_path: Path) -> None:
    text, where, message = CASES[name]
    p = write(tmp_path, text)
    started = time.monotonic()
    found = diagnostics(p)
    assert time.monotonic() - started < 2, f"{name} took {time.monotonic() - started:.1f} s"
    assert any(where in d and message in d for d in found), found


def test_alias_bomb_is_refused_fast_and_small(tmp_path: Path) -> None:
    p = write(tmp_path, CASES["alias_bomb_in_extra_vars"][0])
    assert p.stat().st_size < 700
    tracemalloc.start()
    started = time.monotonic()
    try:
        diagnostics(p)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 2, f"{elapsed:.1f} s"
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_a_runbook_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    p = write(tmp_path, HEAD + "    command: echo\ndescription: |\n" + ("  " + "x" * 98 + "\n") * 250_000)
    assert p.stat().st_size > 20 * MAX_FILE_BYTES
    started = time.monotonic()
    (d,) = diagnostics(p)
    assert time.monotonic() - started < 2
    assert re.fullmatch(rf"{re.escape(str(p))}:1:1: the file is 25\.\d MB; the limit is 1\.0 MB \(split it.*", d), d


def test_aliases_merges_and_anchors_still_work(tmp_path: Path) -> None:
    text = ("name: t\ntargets: servers\nsteps:\n  - &first\n    name: a\n    command: {argv: [echo], env: &env {A: '1'}}\n"
            "  - <<: *first\n    name: b\n  - name: c\n    command: {argv: [echo], env: *env}\n")
    lrb = load_runbook(write(tmp_path, text))
    assert [s.name for s in lrb.runbook.steps] == ["a", "b", "c"]
    assert [s.command.env for s in lrb.runbook.steps if s.command] == [{"A": "1"}] * 3
    assert lrb.where("steps", 1, "name") == (8, 5)


def test_useful_regexes_are_accepted() -> None:
    for pattern in (r"disk (\S+) full", r"^(?:[a-z0-9-]+\.)+[a-z]+$", r"[a-z]+(-[a-z]+)*", r"(\d{1,3}\.){3}\d{1,3}",
                    r"(foo|bar)+", r"^/dev/(\w+)$", r"(?i)^(?:host|node)-\d+$", r".*"):
        assert check_regex(pattern) == pattern


def test_lone_undefined_expression_is_a_template_error() -> None:
    ctx = {"host": {"name": "s1", "vars": {}}}
    for source in ("{{ host.vars.nosuch_var }}", " {{ host.vars.nosuch_var }} ", "{{ [host.vars.nosuch_var] }}",
                   "{{ {'k': host.vars.nosuch_var} }}"):
        with pytest.raises(TemplateError, match="nosuch_var"):
            render.render(source, ctx)
        with pytest.raises(TemplateError, match="nosuch_var"):
            render.render({"argv": ["echo", source]}, ctx)
    assert render.render("{{ host.vars.get('nosuch_var', 7) }}", ctx) == 7


def test_huge_results_are_template_errors_not_hangs() -> None:
    for source in ("{{ 10 ** (10 ** 9) }}", "{{ 'a' * 10 ** 10 }}", "{{ [1] * 10 ** 10 }}"):
        started = time.monotonic()
        assert render.check_syntax(source) == (None, set())
        with pytest.raises(TemplateError, match="too large"):
            render.render(source, {})
        assert time.monotonic() - started < 2
    assert render.render("{{ 2 ** 10 }} {{ 'ab' * 2 }}", {}) == "1024 abab"


# ---- the real command line -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["alias_bomb_in_extra_vars", "yaml_nested_300_lists", "jinja_3000_ifs",
                                  "int_over_4300_digits", "trigger_regex_mapping"])
def test_cli_validate_exits_2_with_a_position(name: str, tmp_path: Path) -> None:
    inv = write(tmp_path, "all:\n  children:\n    servers:\n      hosts:\n        s1: {ansible_host: 10.0.0.1}\n",
                "inv.yml")
    p = write(tmp_path, CASES[name][0])
    proc = subprocess.run([sys.executable, "-m", "opsflow", "validate", str(p), "--inventory", str(inv)],
                          capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert re.search(rf"^{re.escape(str(p))}:\d+:\d+: .*{re.escape(CASES[name][2])}", proc.stderr, re.M), proc.stderr


# ---- properties --------------------------------------------------------------------------------------------------
def _load(path: Path, text: str, inventory: Inventory | None) -> LoadedRunbook | None:
    """Load; a refusal must be a RunbookError whose every diagnostic is in this file at a real line."""
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    lines = sum(text.count(c) for c in "\n\r\x85\u2028\u2029") + 2  # YAML's line breaks, counted generously
    try:
        lrb = load_runbook(path, inventory)
    except RunbookError as exc:
        FIGURES["refused"] += 1
        assert exc.diagnostics
        for d in exc.diagnostics:
            assert d.file == str(path) and 1 <= d.line <= lines and d.col >= 1 and d.message, d
        return None
    FIGURES["loaded"] += 1
    return lrb


JINJA_BITS = ["{{", "}}", "{%", "%}", "{#", "#}", "(", ")", "[", "]", "{", "}", "|", " if ", " else ", "endif",
              " for x in ", "endfor", "x", "host.vars.role", "params", "n", "1", "'s'", "**", "*", "+", " not ", ".",
              ",", ":", "default", "int", "nosuch", " is ", "defined", "~", "range(", "9" * 20, "\"", "\\", "\n"]
YAML_BITS = ["&a ", "*a", "<<: ", "!!int ", "!!float ", "!!str ", "!!binary ", "!!set ", "!!python/none ", "!x ",
             "? ", "- ", ": ", "[", "]", "{", "}", ",", "|\n", ">-\n", "'", "\"", "#", "\t", "---\n", "...\n", "%YAML 1.1\n",
             "0x" + "f" * 80, "9" * 4400, "1e999", ".nan", "~", "null", "yes", "2001-13-45", "0o777", "1_000",
             "1:2:3", "\ufeff", "\x00", "\ud800", "\x85", "\u2028"]
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**70), max_value=10**70), st.floats(),
    st.text(max_size=30), st.sampled_from(["{{ n }}", "{{ nope }}", "{{ x | nosuch }}", "{% if %}", "(a+)+$",
                                           "~(a|a)*$", "~[", "host", "labels.x", "10m", "-1", "25%", "0%",
                                           "{{ 10 ** (10 ** 9) }}", "{{ host.vars.nosuch }}", "~.*"]),
    st.lists(st.sampled_from(JINJA_BITS), max_size=12).map("".join))
values = st.recursive(leaves, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
KEYS = ["name", "targets", "steps", "params", "triggers", "events", "match", "host", "field", "regex", "message",
        "command", "when", "changed_when", "failed_when", "retries", "delay", "timeout", "serial", "register",
        "extra_vars", "verify", "rollback", "lock", "concurrency", "dedup", "key", "labels", "cooldown", "default",
        "type", "ansible", "runbook", "network.config", "lines", "source", "status", "breaker", "window"]


def _paths(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield at
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*at, i))


def _mutate(tree: Any, draw: Any) -> Any:
    paths = list(_paths(tree))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.sampled_from(paths))
        parent = tree
        for part in at[:-1]:
            parent = parent[part]
        if not at:
            continue
        how = draw(st.sampled_from(["replace", "delete", "add"]))
        if how == "replace":
            parent[at[-1]] = draw(values)
        elif how == "delete":
            del parent[at[-1]]
        elif isinstance(parent[at[-1]], dict):
            parent[at[-1]][draw(st.sampled_from(KEYS))] = draw(values)
        elif isinstance(parent[at[-1]], list):
            parent[at[-1]].append(draw(values))
        paths = list(_paths(tree))
    return tree


@st.composite
def mutated_runbooks(draw: Any) -> str:
    """A shipped runbook whose values, keys and list items are replaced, removed or added."""
    from opsflow.yamlpos import load_file

    tree = _plain(load_file(draw(st.sampled_from(SHIPPED))))
    return json.dumps(_mutate(tree, draw), indent=1, default=str)


@st.composite
def spliced_runbooks(draw: Any) -> str:
    """A shipped runbook's text with YAML and Jinja fragments inserted at random places."""
    text = draw(st.sampled_from(SHIPPED)).read_text()
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        bit = "".join(draw(st.lists(st.sampled_from(YAML_BITS + JINJA_BITS), min_size=1, max_size=6)))
        cut = draw(st.integers(0, 3))
        text = text[:at] + bit + text[at + cut:]
    return text


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


FUZZ = settings(deadline=timedelta(seconds=2), suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz")
    print(f"\nrunbook fuzzing, examples tried: {dict(FIGURES)}")  # for the record (pytest -s)


@settings(FUZZ, max_examples=int(400 * SCALE))
@given(text=mutated_runbooks())
def test_mutated_runbooks_load_or_are_refused_with_positions(text: str, workdir: Path, inventory: Inventory) -> None:
    FIGURES["mutated"] += 1
    _load(workdir / "mutated.yaml", text, inventory)


@settings(FUZZ, max_examples=int(400 * SCALE))
@given(text=spliced_runbooks())
def test_spliced_runbooks_load_or_are_refused_with_positions(text: str, workdir: Path, inventory: Inventory) -> None:
    FIGURES["spliced"] += 1
    _load(workdir / "spliced.yaml", text, inventory)


@settings(FUZZ, max_examples=int(400 * SCALE))
@given(template=st.lists(st.sampled_from(JINJA_BITS), min_size=1, max_size=40).map("".join),
       where=st.sampled_from(["command", "when", "changed_when", "failed_when", "env"]))
def test_random_templates_load_or_are_refused(template: str, where: str, workdir: Path,
                                              inventory: Inventory) -> None:
    FIGURES["templates"] += 1
    value = json.dumps(template)
    line = {"command": f"    command: {value}\n", "env": f"    command: echo\n    env: {{A: {value}}}\n"}.get(
        where, f"    command: echo\n    {where}: {value}\n")
    _load(workdir / "template.yaml", HEAD + line, inventory)
    render.check_syntax(template, expression=where.endswith("when"))


REGEX_BITS = ["a", "b", "\\w", "\\d", "\\s", ".", "-", "(", ")", "(?:", "|", "+", "*", "?", "{2}", "{1,3}", "{2,}",
              "[ab]", "[^a]", "^", "$", "\\.", "++", "(?>"]
ATTACKS = ["a" * 28 + "!", "ab" * 14 + "!", "1" * 28 + "!", "a-" * 14 + "!", " a" * 14 + "!", "a." * 14 + "!"]


@settings(FUZZ, max_examples=int(600 * SCALE))
@given(pattern=st.lists(st.sampled_from(REGEX_BITS), min_size=1, max_size=10).map("".join),
       where=st.sampled_from(["message", "name", "regex"]))
def test_trigger_regexes_are_refused_or_fast(pattern: str, where: str, workdir: Path, inventory: Inventory) -> None:
    """A regex the validator accepts matches hostile text quickly; any other is a positioned refusal."""
    FIGURES["regexes"] += 1
    value = json.dumps("~" + pattern if where == "name" else pattern)
    rule = {"message": f"match: {{message: {value}}}", "name": f"match: {{name: {value}}}",
            "regex": f"host: {{field: message, regex: {value}}}"}[where]
    if _load(workdir / "trigger.yaml", TRIGGERED + rule + "\n", inventory) is None:
        return
    compiled = re.compile(pattern)
    for attack in ATTACKS:
        started = time.monotonic()
        compiled.search(attack)
        assert time.monotonic() - started < 0.2, f"{pattern!r} on {attack!r}"


def test_cli_run_lone_undefined_is_that_hosts_template_error(tmp_path: Path) -> None:
    """A lone ``{{ expr }}`` that is undefined fails its host with a TemplateError, recorded; not the whole run."""
    inv = write(tmp_path, "all:\n  hosts:\n    s1: {ansible_host: 127.0.0.1}\n", "inv.yml")
    p = write(tmp_path, "name: t\ntargets: all\nsteps:\n  - name: a\n    local: [echo, \"{{ host.vars.nosuch_var }}\"]\n")
    proc = subprocess.run([sys.executable, "-m", "opsflow", "run", str(p), "-i", str(inv), "--db",
                           str(tmp_path / "db.sqlite"), "--json"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={**os.environ, "OPSFLOW_HOME": str(tmp_path / "home")})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "internal error" not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    assert '"error_class": "TemplateError"' in proc.stdout
    assert "undefined variable in '{{ host.vars.nosuch_var }}'" in proc.stdout
