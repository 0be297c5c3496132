"""Secrets never reach the store, logs or output: every text passes a Redactor first."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsflow.results import StepResult

MASK = "********"
MIN_SECRET = 3  # shorter values would mask ordinary text: secret params shorter than this are refused


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in (str(x) for x in secrets):
            if len(secret) < MIN_SECRET:
                continue
            # as written, and as it appears quoted in messages (repr, JSON), e.g. a template error
            self._secrets |= {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1]}
        if self._secrets:
            alts = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in alts))

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def text(self, value: str) -> str:
        if self._pattern is None or not value:
            return value
        return self._pattern.sub(MASK, value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


def redact(result: StepResult, redactor: Redactor) -> StepResult:
    """Mask every secret in what a step result carries out: error, output, data (in place)."""
    if redactor:
        result.error = redactor.text(result.error) if result.error else result.error
        result.stdout = redactor.text(result.stdout)
        result.stderr = redactor.text(result.stderr)
        result.data = redactor.value(result.data)
    return result
