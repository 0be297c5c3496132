"""Commands on the machine running opsflow (once per targeted host, with that host's context)."""

from __future__ import annotations

import time

from opsflow.connectors.base import HostTask, PerHostConnector, RunContext, command_result, run_process
from opsflow.results import StepResult


class LocalConnector(PerHostConnector):
    def run_one(self, task: HostTask, ctx: RunContext) -> StepResult:
        spec = task.spec
        started = time.time()
        outcome = run_process(list(spec.argv), spec.stdin, task.timeout, spec.env or None, spec.chdir,
                              track=ctx.inflight)
        return command_result(task, ctx, outcome, started)
