"""`opsflow run --junit`: files CI systems read — valid against Jenkins' JUnit schema whatever the steps print.

The schema is the one Jenkins' xUnit plugin checks reports with (tests/data/junit-jenkins.xsd, junit-10.xsd);
the file is made by the real CLI from ``local`` steps, no lab needed.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import xmlschema

from opsflow.cli.render import junit
from tests.helpers import Cli, write_runbook

SCHEMA = Path(__file__).resolve().parents[1] / "data" / "junit-jenkins.xsd"
RAW_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
ZONED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)$")

# a step prints colours, NUL, BEL, a title-setting sequence and bytes that are no UTF-8 (an encoded lone surrogate)
_HOSTILE = r"""import sys
sys.stdout.write('\x1b[31mred\x1b[0m nul:\x00 bell:\x07 title:\x1b]0;pwned\x07 ')
sys.stdout.flush()
sys.stdout.buffer.write(b'bytes:\xed\xa0\x80\xff end\n')
sys.stderr.write('warn \x1b[33myellow\x1b[0m\x0c\n')"""


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMA))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The JUnit file of one real run: hostile output, two steps of one name, pass, skip, fail."""
    tmp = tmp_path_factory.mktemp("junit")
    inventory = tmp / "inventory.yml"
    inventory.write_text("all:\n  hosts:\n    web1: {ansible_host: 127.0.0.1}\n    web2: {ansible_host: 127.0.0.2}\n")
    script = tmp / "hostile.py"
    script.write_text(_HOSTILE)
    rb = write_runbook(tmp, "ci-report", f"""\
        name: ci-report
        targets: all
        steps:
          - name: hostile output
            local: [{sys.executable}, {script}]
          - name: same name
            local: [sh, -c, 'echo first']
          - name: same name
            local: [sh, -c, 'echo second; echo second-err >&2']
          - name: never
            when: "1 == 2"
            local: ["true"]
          - name: fails on web2
            local: [sh, -c, 'echo "out of $0"; echo "err of $0" >&2; test "$0" = web1', "{{{{ host.name }}}}"]
    """)
    cli = Cli(home=tmp / "home", inventory=inventory)
    out = tmp / "report.xml"
    cli.run("run", str(rb), "--junit", str(out), check_rc=1)
    return out.read_bytes()


def _cases(data: bytes) -> dict[tuple[str, str], ET.Element]:
    suite = ET.fromstring(data).find("testsuite")
    assert suite is not None
    return {(c.get("classname", ""), c.get("name", "")): c for c in suite.iter("testcase")}


def test_report_is_valid_against_the_jenkins_schema(report: bytes, schema: xmlschema.XMLSchema) -> None:
    schema.validate(report)  # raises with the reason when not valid
    root = ET.fromstring(report)
    texts = [t for el in root.iter() for t in (el.text or "", *el.attrib.values())]
    assert not [t for t in texts if RAW_CONTROL.search(t)]


def test_schema_check_can_fail(schema: xmlschema.XMLSchema) -> None:
    """The schema is not a formality: a test case without a name, or a suite without a count, is refused."""
    assert not schema.is_valid(b"<testsuites><testsuite tests='1'><testcase classname='x'/></testsuite></testsuites>")
    assert not schema.is_valid(b"<testsuites><testsuite name='x'/></testsuites>")


def test_hostile_output_is_kept_escaped(report: bytes) -> None:
    case = _cases(report)[("ci-report.hostile output", "web1")]
    out = case.findtext("system-out") or ""
    assert "\\x1b[31mred\\x1b[0m nul:\\x00 bell:\\x07 title:\\x1b]0;pwned\\x07" in out
    assert "bytes:\ufffd" in out and out.rstrip().endswith("end")  # undecodable bytes: replacement characters
    assert "warn \\x1b[33myellow\\x1b[0m\\x0c" in (case.findtext("system-err") or "")


def test_every_case_has_a_unique_name(report: bytes) -> None:
    suite = ET.fromstring(report).find("testsuite")
    assert suite is not None
    keys = [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")]
    assert len(keys) == len(set(keys)) == 10, keys
    cases = _cases(report)
    assert ("ci-report.same name", "web1") in cases  # the first keeps its plain name
    assert ("ci-report.same name (step 3)", "web1") in cases
    assert cases[("ci-report.same name", "web1")].findtext("system-out") == "first\n"
    assert cases[("ci-report.same name (step 3)", "web1")].findtext("system-out") == "second\n"


def test_passing_cases_carry_their_output(report: bytes) -> None:
    case = _cases(report)[("ci-report.same name (step 3)", "web2")]
    assert case.find("failure") is None and case.find("skipped") is None
    assert case.findtext("system-out") == "second\n" and case.findtext("system-err") == "second-err\n"


def test_counts_failures_and_skips(report: bytes) -> None:
    suite = ET.fromstring(report).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("10", "1", "2", "0")
    cases = _cases(report)
    failed = cases[("ci-report.fails on web2", "web2")]
    failure = failed.find("failure")
    assert failure is not None and failure.get("type") == "CommandFailed" and "err of web2" in (failure.text or "")
    assert failed.findtext("system-out") == "out of web2\n" and failed.findtext("system-err") == "err of web2\n"
    assert cases[("ci-report.fails on web2", "web1")].find("failure") is None
    assert cases[("ci-report.never", "web1")].find("skipped") is not None


def test_timestamps_have_a_zone(report: bytes) -> None:
    root = ET.fromstring(report)
    stamps = [el.get("timestamp") for el in root.iter() if el.tag in ("testsuite", "testcase")]
    assert len(stamps) == 11 and all(s and ZONED.match(s) for s in stamps), stamps
    suite_start = datetime.fromisoformat(stamps[0] or "")
    assert suite_start.tzinfo is not None
    assert all(datetime.fromisoformat(s or "") >= suite_start for s in stamps[1:])


def _record(**extra: Any) -> dict[str, Any]:
    return {"id": "20250101-000000-abcdef", "runbook": "rb\x1b[2J", "status": "failed", "trigger": "ci",
            "started_by": "me\x07", "duration": 1.0, "runbook_hash": "0" * 64, "started_at": 1735689600.0,
            "check_mode": 0, **extra}


def _result(step: str, host: str, index: int, phase: str = "main", **extra: Any) -> dict[str, Any]:
    return {"step": step, "host": host, "step_index": index, "phase": phase, "status": "ok", "rc": 0,
            "duration": 0.1, "started_at": 1735689600.5, "stdout": "", "stderr": "", "error": None,
            "error_class": None, "data": {}, **extra}


def test_records_with_any_text_make_valid_files(schema: xmlschema.XMLSchema) -> None:
    """What no command prints but a record may hold: lone surrogates, U+FFFE, controls in names."""
    bad = "a\ud800b\udfffc\ufffe\x00\x1b[1m"
    results = [_result(bad, "h\x07", 0, stdout=bad, stderr=bad),
               _result(bad, "h\x07", 1, status="failed", error=bad, error_class="CommandFailed"),
               _result(bad, "h\x07", 0, phase="rollback", status="skipped", error=bad)]
    data = junit(_record(error=bad), results)
    schema.validate(data)
    keys = [(c.get("classname"), c.get("name")) for c in ET.fromstring(data).iter("testcase")]
    assert len(set(keys)) == 3, keys


def test_names_stay_unique_when_a_step_is_named_like_a_disambiguated_one() -> None:
    results = [_result("x", "h", 0), _result("x", "h", 1), _result("x (step 2)", "h", 2)]
    keys = [(c.get("classname"), c.get("name")) for c in ET.fromstring(junit(_record(), results)).iter("testcase")]
    assert keys == [("rb\\x1b[2J.x", "h"), ("rb\\x1b[2J.x (step 2)", "h"), ("rb\\x1b[2J.x (step 2) #2", "h")]
