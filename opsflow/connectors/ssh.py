"""Commands on servers over OpenSSH, multiplexed per run (one connection per host, reused by every step).

The argv is quoted word by word, so the remote shell sees exactly the words given:
``$(id)``, backticks or ``;`` in a value reach the command literally.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from functools import lru_cache
from typing import Any

from opsflow.connectors.base import HostTask, PerHostConnector, RunContext, command_result, run_process
from opsflow.inventory.models import Host
from opsflow.results import ErrorKind, HostStatus, StepResult

_UNREACHABLE = re.compile(
    r"ssh: connect to host|Connection timed out|Connection refused|No route to host|Network is unreachable|"
    r"Could not resolve hostname|Connection closed by|Connection reset|kex_exchange_identification|"
    r"Timeout, server .* not responding|banner exchange|mux_client_request_session|Broken pipe"
)
# what OpenSSH (and paramiko, netmiko, ansible, which pass its words on) say of a host key
_KEY_CHANGED = re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed|"
                          r"Host key for server \S+ does not match|BadHostKeyException")
_KEY_UNKNOWN = re.compile(r"No (?:[A-Z0-9-]+ )?host key is known|not found in known_hosts")
_HOSTKEY = re.compile(f"{_KEY_CHANGED.pattern}|{_KEY_UNKNOWN.pattern}|Host key verification failed")


def remote_command(argv: list[str], env: dict[str, str] | None = None, chdir: str | None = None) -> str:
    words = [shlex.quote(a) for a in argv]
    if env:
        words = ["env"] + [shlex.quote(f"{k}={v}") for k, v in env.items()] + words
    cmd = " ".join(words)
    if chdir:
        cmd = f"cd {shlex.quote(chdir)} && {cmd}"
    return cmd


def classify_ssh_failure(stderr: str) -> tuple[HostStatus, str] | None:
    """An rc of 255 is ssh's own failure only when its stderr says so.

    A host key that is unknown or changed is ``failed`` (never ``unreachable``): retrying cannot fix it.
    """
    if _HOSTKEY.search(stderr):
        return HostStatus.FAILED, ErrorKind.HOST_KEY
    if _UNREACHABLE.search(stderr):
        return HostStatus.UNREACHABLE, ErrorKind.UNREACHABLE
    if "Permission denied" in stderr:
        return HostStatus.UNREACHABLE, ErrorKind.AUTHENTICATION
    return None


def host_key_problem(text: str) -> str | None:
    """``changed``, ``unknown`` or ``unverified`` when ``text`` (ssh's stderr, an error) says a host key failed."""
    if _KEY_CHANGED.search(text):
        return "changed"
    if _KEY_UNKNOWN.search(text):
        return "unknown"
    if _HOSTKEY.search(text):
        return "unverified"
    return None


def host_key_message(host: Host, text: str) -> str:
    """What failed, for which host, and what to do: the error of every host-key failure."""
    known = host.known_hosts or "~/.ssh/known_hosts"
    what = {"changed": "does not match", "unknown": "is not in"}.get(host_key_problem(text) or "",
                                                                     "could not be verified against")
    return (f"host key of {host.name} ({host.address}:{host.port}) {what} known_hosts {known}: "
            "verify the host's key, then update known_hosts")


def ssh_failure(task: HostTask, rc: int | None, err: str, **kw: Any) -> StepResult | None:
    """The result of ssh failing on its own (rc 255 and its stderr ``err`` saying why), or None when the command ran."""
    failure = classify_ssh_failure(err) if rc == 255 else None
    if failure is None:
        return None
    status, kind = failure
    error = host_key_message(task.host, err) if kind == ErrorKind.HOST_KEY else (
        err.strip().splitlines()[-1] if err.strip() else "connection to the host lost")
    return task.result(status, rc=rc, error_class=str(kind), error=error, **kw)


@lru_cache(maxsize=1)
def ssh_client() -> str:
    """OpenSSH's client, looked up on PATH once (subprocess would search PATH again for every host)."""
    return shutil.which("ssh") or "ssh"


class CommandConnector(PerHostConnector):
    @staticmethod
    def _connection_lost(task: HostTask, ctx: RunContext) -> tuple[HostStatus, str] | None:
        """rc 255 with nothing said: ssh's own failure only if the shared connection is gone."""
        rc, _, _, _ = run_process([ssh_client(), "-F", str(ctx.ssh_config), "-O", "check", task.host.name], None, 5)
        return (HostStatus.UNREACHABLE, "ConnectionLost") if rc != 0 else None

    def run_one(self, task: HostTask, ctx: RunContext) -> StepResult:
        spec = task.spec
        argv = [ssh_client(), "-F", str(ctx.ssh_config), task.host.name, "--",
                remote_command(spec.argv, spec.env, spec.chdir)]
        started = time.time()
        outcome = run_process(argv, spec.stdin, task.timeout, track=ctx.inflight)
        result = command_result(task, ctx, outcome, started,
                                lambda err: classify_ssh_failure(err) or self._connection_lost(task, ctx))
        if result.error_class == ErrorKind.HOST_KEY:
            result.error = host_key_message(task.host, outcome[2])
        return result
