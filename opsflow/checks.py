"""Pure evaluation of verify checks against observed values (no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from opsflow.runbook.models import Check


@dataclass
class CheckOutcome:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def describe(check: Check) -> str:
    if check.name:
        return check.name
    target = getattr(check, check.kind)
    if isinstance(target, bool):
        return check.kind
    if isinstance(target, list):
        target = " ".join(target)
    return f"{check.kind} {target}"


def text_assertions(check: Check, text: str) -> list[str]:
    """Failures of contains / not_contains / matches / value against a text."""
    problems = []
    if check.contains is not None and check.contains not in text:
        problems.append(f"does not contain {check.contains!r}")
    if check.not_contains is not None and check.not_contains in text:
        problems.append(f"contains {check.not_contains!r}")
    if check.matches is not None and not re.search(check.matches, text, re.M):
        problems.append(f"does not match /{check.matches}/")
    if check.value is not None:
        m = re.search(check.value, text, re.M)
        if not m:
            problems.append(f"value /{check.value}/ not found")
        else:
            raw = m.group(1) if m.groups() else m.group(0)
            problems += compare(raw, check)
    return problems


def compare(raw: str, check: Check) -> list[str]:
    problems = []
    if check.eq is not None and str(raw).strip() != str(check.eq).strip():
        try:
            equal = float(raw) == float(check.eq)
        except ValueError:
            equal = False
        if not equal:
            problems.append(f"value {raw!r} != {check.eq!r}")
    if check.ge is not None or check.le is not None:
        try:
            number = float(raw)
        except ValueError:
            return [*problems, f"value {raw!r} is not a number"]
        if check.ge is not None and number < float(check.ge):
            problems.append(f"value {number:g} < {float(check.ge):g}")
        if check.le is not None and number > float(check.le):
            problems.append(f"value {number:g} > {float(check.le):g}")
    return problems


def expect(flag: bool | None, actual: bool, what: str) -> list[str]:
    """An expectation like ``running: true`` (defaulting to true when not given)."""
    wanted = True if flag is None else flag
    if actual == wanted:
        return []
    return [f"{what} is {'not ' if wanted else ''}true"]


def outcome(check: Check, problems: list[str], observed: str = "") -> CheckOutcome:
    name = describe(check)
    if problems:
        return CheckOutcome(name, False, "; ".join(problems))
    return CheckOutcome(name, True, observed or "ok")
