"""Result vocabulary: Status; StepResult (one step on one host) → RunResult."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class HostStatus(StrEnum):
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    SKIPPED = "skipped"
    TIMEOUT = "timeout"


class RunStatus(StrEnum):
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELED = "canceled"
    ABANDONED = "abandoned"  # the process running it died (found by a later start)
    CRASHED = "crashed"  # a failure of opsflow itself, not of the work: a bug to report
    INTERRUPTED = "interrupted"  # a worker died in a step that is not idempotent: a person resumes or abandons


class ErrorKind(StrEnum):
    """Why a host failed a step: the ``error_class`` of a :class:`StepResult`."""

    COMMAND_FAILED = "CommandFailed"
    TASK_FAILED = "TaskFailed"
    FAILED_WHEN = "FailedWhen"
    TEMPLATE = "TemplateError"
    UNREACHABLE = "TargetUnreachable"
    CONNECTION_LOST = "ConnectionLost"
    AUTHENTICATION = "AuthenticationFailed"
    HOST_KEY = "HostKeyVerificationFailed"  # the target's host key is unknown or changed: never retried
    TIMEOUT = "StepTimeout"
    CANCELED = "Canceled"
    WRONG_TARGET = "WrongTarget"
    NOT_APPROVED = "NotApproved"
    VERIFICATION_FAILED = "VerificationFailed"
    CONFIG_REJECTED = "ConfigRejected"
    INVALID_CONFIG = "InvalidConfig"
    BACKUP_ERROR = "BackupError"
    BACKUP_FAILED = "BackupFailed"
    ARCHIVE_CORRUPT = "ArchiveCorrupt"
    CONFIG_INTEGRITY = "ConfigIntegrityError"
    RESTORE_FAILED = "RestoreFailed"
    RESTORE_NOT_VERIFIED = "RestoreNotVerified"
    SUB_RUNBOOK_FAILED = "SubRunbookFailed"
    NOT_RUN = "NotRun"
    INTERRUPTED = "Interrupted"  # in flight on a worker that died; not idempotent, so not run again by itself
    INVALID = "InvalidInput"  # an opsflow error (bad input) found while running the step
    INTERNAL = "InternalError"  # a bug of opsflow or a library it drives: the message names the exception


class RunError(StrEnum):
    """Why a whole run ended without succeeding (``RunResult.error_kind``), beside the text of ``error``."""

    HOSTS_FAILED = "hosts_failed"  # the work failed on some or all hosts
    LOCK_HELD = "lock_held"  # another run holds a lock: nothing was started
    MAX_FAIL = "max_fail_percentage"  # a batch failed past the limit: later batches not started
    TIMEOUT = "timeout"  # the runbook's timeout was reached
    CANCELED = "canceled"  # a signal or a person stopped it
    WINDOW_CLOSED = "window_closed"  # its maintenance window ended (on_window_close: finish_step / rollback)
    INVALID = "invalid"  # an opsflow error while running it (bad input found late)
    INTERNAL = "internal"  # a bug of opsflow (status crashed)


NEVER_RETRIED = frozenset({ErrorKind.HOST_KEY, ErrorKind.WRONG_TARGET})

FAILING = frozenset({HostStatus.FAILED, HostStatus.UNREACHABLE, HostStatus.TIMEOUT})
TERMINAL_RUN = frozenset(RunStatus) - {RunStatus.RUNNING, RunStatus.WAITING}
OUTPUT_LIMIT = 64 * 1024  # bytes of stdout/stderr kept per step and host


def bound(text: str, limit: int = OUTPUT_LIMIT) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n… [{len(text) - limit} characters cut] …\n{text[-half:]}"


@dataclass
class StepResult:
    """The outcome of one step on one host."""

    step: str
    host: str
    status: HostStatus
    step_index: int = 0
    action: str = ""
    changed: bool = False
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    error_class: str | None = None
    error: str | None = None
    started_at: float = 0.0
    ended_at: float = 0.0
    attempts: int = 1
    phase: str = "main"  # main | on_failure

    @property
    def duration(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    def registered(self) -> dict[str, Any]:
        """What `register:` exposes to later templates."""
        return {"status": str(self.status), "changed": self.changed, "failed": self.failed, "rc": self.rc,
                "stdout": self.stdout, "stderr": self.stderr, "stdout_lines": self.stdout.splitlines(),
                **self.data}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = str(self.status)
        out["duration"] = round(self.duration, 6)
        return out


@dataclass
class RunResult:
    run_id: str
    runbook: str
    status: RunStatus
    started_at: float
    ended_at: float
    hosts: dict[str, HostStatus]
    steps: list[StepResult]
    error: str | None = None
    error_kind: RunError | None = None

    @property
    def duration(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @property
    def exit_code(self) -> int:
        return 0 if self.status == RunStatus.SUCCEEDED else 1

    @property
    def failed_hosts(self) -> list[str]:
        """The hosts whose outcome is failed, unreachable or timed out, in target order."""
        return [h for h, s in self.hosts.items() if s in FAILING]

    @property
    def failed(self) -> bool:
        return self.status != RunStatus.SUCCEEDED

    def raise_on_error(self) -> None:
        """Raise :class:`~opsflow.errors.RunFailed` unless the run succeeded (as Nornir's AggregatedResult)."""
        from opsflow.errors import RunFailed

        if self.failed:
            raise RunFailed(self)


def host_outcome(results: list[StepResult]) -> HostStatus:
    """A host's overall status from its step results (main phase decides)."""
    main = [r for r in results if r.phase == "main"]
    if not main:
        return HostStatus.SKIPPED
    for bad in (HostStatus.UNREACHABLE, HostStatus.TIMEOUT, HostStatus.FAILED):
        if any(r.status == bad and not r.data.get("ignored") for r in main):
            return bad
    if any(r.changed for r in main):
        return HostStatus.CHANGED
    if main and all(r.status == HostStatus.SKIPPED for r in main):
        return HostStatus.SKIPPED
    return HostStatus.OK


def run_outcome(hosts: dict[str, HostStatus], error: str | None = None) -> RunStatus:
    if error is not None:
        return RunStatus.FAILED
    failing = [h for h, s in hosts.items() if s in FAILING]
    if not failing:
        return RunStatus.SUCCEEDED
    return RunStatus.FAILED if len(failing) == len(hosts) else RunStatus.PARTIAL
