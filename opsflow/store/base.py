"""The store interface (a Protocol) and the record it keeps for a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from opsflow.results import RunStatus, StepResult


@dataclass
class RunRecord:
    id: str
    runbook: str
    runbook_path: str
    runbook_hash: str
    params: dict[str, Any]  # secrets already redacted
    trigger: str
    started_by: str
    started_at: float
    status: RunStatus = RunStatus.RUNNING
    check_mode: bool = False
    inventory: str = ""
    parent_run: str | None = None
    pid: int = 0
    pid_start: str = ""
    node: str = ""
    hosts: dict[str, str] = field(default_factory=dict)


class Store(Protocol):
    url: str

    def create_run(self, record: RunRecord) -> None: ...
    def add_result(self, run_id: str, result: StepResult) -> None: ...
    def finish_run(self, run_id: str, status: RunStatus, ended_at: float, hosts: dict[str, str],
                   error: str | None = None) -> None: ...
    def reap(self) -> list[str]: ...
    def history(self, runbook: str | None = None, status: str | None = None, since: float | None = None,
                limit: int = 50) -> list[dict[str, Any]]: ...
    def get_run(self, run_id: str) -> dict[str, Any] | None: ...
    def results(self, run_id: str) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...
