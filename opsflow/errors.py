"""The one exception root of opsflow.

OpsflowError
 ├── UsageError            bad input from the user (exit code 2)
 │    ├── RunbookError     a runbook file is invalid; carries Diagnostics (file:line:col)
 │    ├── InventoryError   an inventory cannot be loaded or a pattern does not resolve
 │    ├── WindowClosed     a blackout is in force, or the run is outside its maintenance window
 │    ├── FourEyesRefused  (approvals) the one who started a run may not approve it too
 │    └── TooManyAttempts  (opsflow.auth.store) too many failed logins of a user from a peer: wait
 ├── EnvironmentProblem    the machine lacks something (a package, root); exit code 2
 ├── LabError              the local lab could not be built or driven
 ├── StoreError            the run store cannot be opened or written
 ├── TemplateError         a template failed to render (undefined variable, sandbox)
 ├── BackupError           (opsflow.backup.repo) a config version cannot be stored or read
 │    └── ConfigIntegrityError   a stored version fails its checksum: refused
 ├── LockHeld              (opsflow.executor.core) another run holds a lock
 └── RunFailed             ``RunResult.raise_on_error()``: the run did not succeed (carries the result)

Library errors are translated at the boundary: ``raise X(...) from exc``. A failure on one host is
not an exception but data: a StepResult whose ``error_class`` is an ``opsflow.results.ErrorKind``;
a whole run's is ``RunResult.error_kind`` (``opsflow.results.RunError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class OpsflowError(Exception):
    """Root of every error opsflow raises on purpose."""

    exit_code = 1


class UsageError(OpsflowError):
    exit_code = 2


@dataclass(frozen=True)
class Diagnostic:
    """One problem in one file, at one place."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class RunbookError(UsageError):
    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


class InventoryError(UsageError):
    pass


class WindowClosed(UsageError):
    """A scoped calendar holds the run back now (``--override-window --reason`` to run it anyway)."""


class FourEyesRefused(UsageError):
    """Four-eyes: the approval of a run is decided by someone other than who started it."""


class EnvironmentProblem(OpsflowError):
    exit_code = 2


class LabError(OpsflowError):
    exit_code = 2


class StoreError(OpsflowError):
    exit_code = 2


class TemplateError(OpsflowError):
    pass




class RunFailed(OpsflowError):
    """A run that did not succeed, raised on request by ``RunResult.raise_on_error()``."""

    def __init__(self, result: Any) -> None:
        self.result = result
        hosts = ", ".join(result.failed_hosts) or "none"
        super().__init__(f"run {result.run_id} of {result.runbook} {result.status}; failed hosts: {hosts}"
                         + (f"; {result.error}" if result.error else ""))
