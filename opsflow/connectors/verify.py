"""Verification of servers with pytest-testinfra over the run's multiplexed SSH connections."""

from __future__ import annotations

import shlex
import sys
import time
from typing import Any

from opsflow.checks import CheckOutcome, compare, describe, expect, outcome, text_assertions
from opsflow.connectors.base import HostTask, PerHostConnector, RunContext, run_process
from opsflow.connectors.ssh import classify_ssh_failure, ssh_failure
from opsflow.results import ErrorKind, HostStatus, StepResult
from opsflow.runbook.models import Check


class _Unreachable(Exception):
    """ssh itself failed (rc 255): the host was not checked."""

    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr


def _ssh_failed(exc: BaseException) -> str | None:
    """testinfra raises ``RuntimeError(CommandResult)`` when ssh exits 255: its stderr, or None."""
    arg = exc.args[0] if len(exc.args) == 1 else None
    if getattr(arg, "exit_status", None) != 255:
        return None
    try:
        return str(arg.stderr)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - undecodable: the raw bytes, escaped
        return repr(getattr(arg, "_stderr", b""))


def _argv(command: str | list[str]) -> str:
    words = shlex.split(command) if isinstance(command, str) else command
    return " ".join(shlex.quote(w) for w in words)


class ServerVerifyConnector(PerHostConnector):
    def _host(self, task: HostTask, ctx: RunContext) -> Any:
        import testinfra

        timeout = int(task.timeout or 30)
        return testinfra.get_host(f"ssh://{task.host.name}", ssh_config=str(ctx.ssh_config), controlpersist=0,
                                  timeout=min(timeout, 10))

    def run_one(self, task: HostTask, ctx: RunContext) -> StepResult:
        started = time.time()
        host = self._host(task, ctx)
        outcomes: list[CheckOutcome] = []
        try:
            try:
                for check in task.spec:
                    outcomes.append(self._check(host, check, task, ctx))
            except RuntimeError as exc:
                stderr = _ssh_failed(exc)
                if stderr is None:
                    raise
                raise _Unreachable(stderr) from exc
        except _Unreachable as exc:
            red = ctx.redactor
            failure = ssh_failure(task, 255, exc.stderr, stderr=red.text(exc.stderr), started_at=started,
                                  ended_at=time.time(), data={"checks": [o.to_dict() for o in outcomes]})
            if failure is None:  # rc 255 that ssh does not explain: the host was still not checked
                last = (exc.stderr.strip().splitlines() or ["ssh exited with rc 255"])[-1]
                failure = task.result(HostStatus.UNREACHABLE, rc=255, error_class=ErrorKind.UNREACHABLE,
                                      error=last, stderr=red.text(exc.stderr), started_at=started,
                                      ended_at=time.time(), data={"checks": [o.to_dict() for o in outcomes]})
            failure.error = red.text(failure.error or "")
            return failure
        failed = [o for o in outcomes if not o.passed]
        lines = [f"{'PASS' if o.passed else 'FAIL'} {o.name}: {o.detail}" for o in outcomes]
        return task.result(HostStatus.FAILED if failed else HostStatus.OK,
                           stdout=ctx.redactor.text("\n".join(lines)),
                           data={"checks": [o.to_dict() for o in outcomes]},
                           error_class=ErrorKind.VERIFICATION_FAILED if failed else None,
                           error=f"{len(failed)} of {len(outcomes)} checks failed: "
                                 + "; ".join(f"{o.name}: {o.detail}" for o in failed) if failed else None,
                           started_at=started, ended_at=time.time())

    def _run(self, host: Any, command: str) -> Any:
        result = host.run(command)
        if result.rc == 255 and classify_ssh_failure(result.stderr):
            raise _Unreachable(result.stderr)
        return result

    def _check(self, host: Any, check: Check, task: HostTask, ctx: RunContext) -> CheckOutcome:
        kind = check.kind
        if kind == "file":
            return self._file(host, check)
        if kind == "command":
            res = self._run(host, _argv(check.command or ""))
            problems = [] if check.rc is None and res.rc == 0 else (
                [] if check.rc == res.rc else [f"rc {res.rc} != {0 if check.rc is None else check.rc}"])
            problems += text_assertions(check, res.stdout)
            return outcome(check, problems, f"rc {res.rc}")
        if kind == "service":
            self._run(host, "true")
            svc = host.service(check.service)
            problems = expect(check.running, svc.is_running, "running")
            if check.enabled is not None:
                problems += expect(check.enabled, svc.is_enabled, "enabled")
            return outcome(check, problems, "running" if not problems else "")
        if kind == "port":
            return self._port(host, check)
        if kind == "package":
            self._run(host, "true")
            return outcome(check, expect(check.installed, host.package(check.package).is_installed,
                                         "installed"), "installed")
        if kind == "process":
            res = self._run(host, f"pgrep -x {shlex.quote(check.process or '')}")
            return outcome(check, expect(check.running, res.rc == 0, "running"), "running")
        if kind == "disk_free":
            return self._disk(host, check)
        if kind == "memory_free":
            res = self._run(host, "cat /proc/meminfo")
            avail = next((int(line.split()[1]) for line in res.stdout.splitlines()
                          if line.startswith("MemAvailable:")), 0) / 1024
            need = float(check.min_mb or 0)
            problems = [f"{avail:.0f} MB available < {need:g} MB"] if avail < need else []
            return outcome(check, problems, f"{avail:.0f} MB available")
        if kind == "testinfra":
            return self._testinfra(host, check, task, ctx)
        return CheckOutcome(describe(check), False, f"check kind {kind!r} does not apply to a server")

    def _file(self, host: Any, check: Check) -> CheckOutcome:
        f = host.file(check.file)
        exists = f.exists
        if check.exists is False:
            return outcome(check, [] if not exists else ["exists"], "absent")
        if not exists:
            return outcome(check, ["does not exist"])
        problems: list[str] = []
        if check.is_directory is not None:
            problems += expect(check.is_directory, f.is_directory, "is a directory")
        if check.mode is not None and f.mode != int(check.mode, 8):
            problems.append(f"mode {f.mode:04o} != {check.mode}")
        if check.owner is not None and f.user != check.owner:
            problems.append(f"owner {f.user} != {check.owner}")
        if any(x is not None for x in (check.contains, check.not_contains, check.matches, check.value)):
            problems += text_assertions(check, f.content_string)
        return outcome(check, problems, "exists")

    def _port(self, host: Any, check: Check) -> CheckOutcome:
        """Listening on the port on any address (``22``, ``udp:53``), or a testinfra socket URL."""
        spec = str(check.port)
        if "://" in spec:
            self._run(host, "true")
            return outcome(check, expect(check.listening, host.socket(spec).is_listening, "listening"), "listening")
        proto, _, port = spec.rpartition(":")
        flag = "-Hlnu" if proto == "udp" else "-Hlnt"
        res = self._run(host, f"ss {flag}")
        if res.rc != 0:
            return outcome(check, [f"ss failed: {res.stderr.strip()}"])
        local = [line.split()[3] for line in res.stdout.splitlines() if len(line.split()) >= 4]
        found = [a for a in local if a.rsplit(":", 1)[-1] == port]
        return outcome(check, expect(check.listening, bool(found), "listening"),
                       f"listening on {', '.join(found)}" if found else "not listening")

    def _disk(self, host: Any, check: Check) -> CheckOutcome:
        res = self._run(host, f"df -Pk {shlex.quote(check.disk_free or '/')}")
        rows = res.stdout.strip().splitlines()
        if res.rc != 0 or len(rows) < 2:
            return outcome(check, [f"df failed: {res.stderr.strip()}"])
        cols = rows[-1].split()
        total_kb, avail_kb = int(cols[1]), int(cols[3])
        free_mb, pct = avail_kb / 1024, 100.0 * avail_kb / max(total_kb, 1)
        problems = []
        if check.min_mb is not None and free_mb < float(check.min_mb):
            problems.append(f"{free_mb:.0f} MB free < {float(check.min_mb):g} MB")
        if check.min_percent is not None and pct < float(check.min_percent):
            problems.append(f"{pct:.1f}% free < {float(check.min_percent):g}%")
        if check.ge is not None or check.le is not None:
            problems += compare(str(free_mb), check)
        return outcome(check, problems, f"{free_mb:.0f} MB free ({pct:.1f}%)")

    def _testinfra(self, host: Any, check: Check, task: HostTask, ctx: RunContext) -> CheckOutcome:
        self._run(host, "true")  # ssh refused (host key, unreachable) is the host's failure, not the file's
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--no-header",
                f"--hosts=ssh://{task.host.name}", f"--ssh-config={ctx.ssh_config}", str(check.testinfra)]
        rc, out, err, timed_out = run_process(argv, None, task.timeout or 300)
        tail = (out.strip().splitlines() or [""])[-1]
        if timed_out:
            return outcome(check, ["timed out"])
        return outcome(check, [] if rc == 0 else [f"pytest rc {rc}: {tail}"], tail)
