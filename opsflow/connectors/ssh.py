"""Commands on servers over OpenSSH, multiplexed per run (one connection per host, reused by every step).

The argv is quoted word by word, so the remote shell sees exactly the words given:
``$(id)``, backticks or ``;`` in a value reach the command literally.
"""

from __future__ import annotations

import re
import shlex
import time

from opsflow.connectors.base import HostTask, PerHostConnector, RunContext, command_result, run_process
from opsflow.results import HostStatus, StepResult

_UNREACHABLE = re.compile(
    r"ssh: connect to host|Connection timed out|Connection refused|No route to host|Network is unreachable|"
    r"Could not resolve hostname|Connection closed by|Connection reset|kex_exchange_identification|"
    r"Timeout, server .* not responding|banner exchange|mux_client_request_session|Broken pipe"
)
_HOSTKEY = re.compile(r"Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|"
                      r"No (?:ED25519|RSA|ECDSA)? ?host key is known")


def remote_command(argv: list[str], env: dict[str, str] | None = None, chdir: str | None = None) -> str:
    words = [shlex.quote(a) for a in argv]
    if env:
        words = ["env"] + [shlex.quote(f"{k}={v}") for k, v in env.items()] + words
    cmd = " ".join(words)
    if chdir:
        cmd = f"cd {shlex.quote(chdir)} && {cmd}"
    return cmd


def classify_ssh_failure(stderr: str) -> tuple[HostStatus, str] | None:
    """An rc of 255 is ssh's own failure only when its stderr says so."""
    if _HOSTKEY.search(stderr):
        return HostStatus.FAILED, "HostKeyVerificationFailed"
    if _UNREACHABLE.search(stderr):
        return HostStatus.UNREACHABLE, "TargetUnreachable"
    if "Permission denied" in stderr:
        return HostStatus.UNREACHABLE, "AuthenticationFailed"
    return None


class CommandConnector(PerHostConnector):
    @staticmethod
    def _connection_lost(task: HostTask, ctx: RunContext) -> tuple[HostStatus, str] | None:
        """rc 255 with nothing said: ssh's own failure only if the shared connection is gone."""
        rc, _, _, _ = run_process(["ssh", "-F", str(ctx.ssh_config), "-O", "check", task.host.name], None, 5)
        return (HostStatus.UNREACHABLE, "ConnectionLost") if rc != 0 else None

    def run_one(self, task: HostTask, ctx: RunContext) -> StepResult:
        spec = task.spec
        argv = ["ssh", "-F", str(ctx.ssh_config), task.host.name, "--",
                remote_command(spec.argv, spec.env, spec.chdir)]
        started = time.time()
        outcome = run_process(argv, spec.stdin, task.timeout, track=ctx.inflight)
        return command_result(task, ctx, outcome, started,
                              lambda err: classify_ssh_failure(err) or self._connection_lost(task, ctx))
