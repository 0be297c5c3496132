"""Commands on the machine running opsflow (once per targeted host, with that host's context)."""

from __future__ import annotations

import time

from opsflow.connectors.base import HostTask, PerHostConnector, RunContext, run_process
from opsflow.results import HostStatus, StepResult, bound


class LocalConnector(PerHostConnector):
    def run_one(self, task: HostTask, ctx: RunContext) -> StepResult:
        spec = task.spec
        started = time.time()
        rc, out, err, timed_out = run_process(list(spec.argv), spec.stdin, task.timeout, spec.env or None,
                                              spec.chdir, track=ctx.inflight)
        red = ctx.redactor
        common = {"stdout": bound(red.text(out)), "stderr": bound(red.text(err)), "started_at": started,
                  "ended_at": time.time()}
        if ctx.hard_cancel.is_set() and (rc is None or rc < 0 or rc == 255):
            return task.result(HostStatus.FAILED, rc=rc, error_class="Canceled",
                               error="stopped in flight: the run was canceled", **common)
        if timed_out:
            return task.result(HostStatus.TIMEOUT, error_class="StepTimeout",
                               error=f"no answer within {task.timeout:g} s", **common)
        ok = rc == 0
        return task.result(HostStatus.CHANGED if ok else HostStatus.FAILED, rc=rc, changed=ok,
                           error_class=None if ok else "CommandFailed",
                           error=None if ok else f"command exited with rc {rc}", **common)
