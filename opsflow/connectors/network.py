"""Network devices through Nornir + Netmiko: show commands, configuration with diffs, device checks, backups.

Nornir runs a step's devices in parallel (up to the run's concurrency); each device's Netmiko session is
opened once per run and reused by every step (``netsession``). Host keys are checked against the inventory's known_hosts.
"""

from __future__ import annotations

import re
import time
from typing import Any

from opsflow.checks import CheckOutcome, outcome, text_assertions
from opsflow.connectors.base import Emit, HostTask, RunContext
from opsflow.connectors.devconfig import ConfigRejected, apply_config
from opsflow.connectors.netsession import SessionClosed, sessions
from opsflow.connectors.ssh import host_key_message, host_key_problem
from opsflow.netconfig import candidate_diff, config_diff
from opsflow.platforms import Platform, UnknownPlatform, get
from opsflow.results import ErrorKind, HostStatus, StepResult, bound

_CLI_ERROR = re.compile(r"^%\s*(Unknown command|Invalid input|Ambiguous command|Incomplete command)", re.M)


def platform_of(ht: HostTask) -> Platform:
    """The host's platform (``UnknownPlatform`` when opsflow does not know it)."""
    return get(ht.host.platform)


def cli_error(ht: HostTask, output: str) -> bool:
    """Did the device answer a command with an error (its platform's way, IOS-like when unknown)?"""
    try:
        p = platform_of(ht)
    except UnknownPlatform:
        return bool(_CLI_ERROR.search(output))
    return bool(_CLI_ERROR.search(output)) if p.name == "frr" else p.error(output) is not None


def _split_prompt(output: str, base_prompt: str) -> tuple[str, str]:
    """A command's output and the prompt that ends it (as Netmiko's ``strip_prompt`` finds it)."""
    head, _, last = output.rpartition("\n")
    if base_prompt and base_prompt in last:
        return head, last.strip()
    return output, ""


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from or while handling (netmiko wraps paramiko's)."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 8:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _classify(exc: BaseException) -> tuple[HostStatus, str, str]:
    name = type(exc).__name__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else name
    chain = _chain(exc)
    if any(isinstance(e, SessionClosed) for e in chain):
        return HostStatus.UNREACHABLE, ErrorKind.CONNECTION_LOST, text
    if any(type(e).__name__ == "BadHostKeyException" or host_key_problem(str(e)) for e in chain):
        return HostStatus.FAILED, ErrorKind.HOST_KEY, "\n".join(f"{type(e).__name__}: {e}" for e in chain)
    if len(lines) > 1 and lines[0].endswith(":"):
        text = " ".join(lines[:2])  # netmiko: "A paramiko SSHException occurred …:" then the reason
    if name in ("NetmikoTimeoutException", "ConnectionRefusedError", "NoValidConnectionsError", "timeout",
                "TimeoutError", "socket.timeout") or "timed out" in text.lower() or "refused" in text.lower():
        return HostStatus.UNREACHABLE, ErrorKind.UNREACHABLE, text
    if name in ("NetmikoAuthenticationException", "AuthenticationException"):
        return HostStatus.UNREACHABLE, ErrorKind.AUTHENTICATION, text
    if name in ("ReadTimeout",):
        return HostStatus.TIMEOUT, ErrorKind.TIMEOUT, text
    return HostStatus.FAILED, name, text


class NetworkConnector:
    def run(self, tasks: list[HostTask], ctx: RunContext, emit: Emit) -> None:
        live = sessions(ctx)
        by_host = {t.host.name: t for t in tasks}
        done: set[str] = set()

        def one(host: Any) -> None:
            ht = by_host[host.name]
            started = time.time()
            try:
                result = self._attempt(live.get(host), ht, ctx)
            except Exception as exc:  # noqa: BLE001 - classified into a host status
                if live.has(host):
                    # a stale or dropped session (device restarted, link bounced): reconnect once
                    live.drop(host)
                    try:
                        result = self._attempt(live.get(host), ht, ctx)
                    except Exception as exc2:  # noqa: BLE001
                        live.drop(host)  # its state is unknown: never reused
                        result = self._failure(ht, exc2, ctx)
                else:
                    result = self._failure(ht, exc, ctx)
            result.started_at, result.ended_at = started, time.time()
            done.add(host.name)
            emit(result)

        live.run(set(by_host), one)
        for name, ht in by_host.items():  # a device Nornir did not run (not in its inventory) is not lost
            if name not in done:
                emit(ht.result(HostStatus.FAILED, error_class=ErrorKind.COMMAND_FAILED,
                               error=f"{name} is not a network device of the inventory"))

    def _failure(self, ht: HostTask, exc: BaseException, ctx: RunContext) -> StepResult:
        status, cls, text = _classify(exc)
        if cls == ErrorKind.HOST_KEY:  # what is wrong and what to do; the library's words go to stderr
            return ht.result(status, error_class=str(cls), error=host_key_message(ht.host, text),
                             stderr=ctx.redactor.text(text))
        return ht.result(status, error_class=str(cls), error=ctx.redactor.text(text))

    def _attempt(self, conn: Any, ht: HostTask, ctx: RunContext) -> StepResult:
        red = ctx.redactor
        timeout = ht.timeout or 60
        if ht.action == "network.command":
            outputs: dict[str, str] = {}
            shown = []
            for cmd in ht.spec.commands:  # the prompt as the device printed it (no extra round trip to find it)
                out, prompt = _split_prompt(str(conn.send_command(cmd, read_timeout=timeout, strip_prompt=False)),
                                            str(conn.base_prompt))
                outputs[cmd] = out
                shown.append(f"{prompt or conn.base_prompt} {cmd}\n{out}")
            text = "\n".join(shown)
            bad = [c for c, o in outputs.items() if cli_error(ht, o)]
            return ht.result(HostStatus.FAILED if bad else HostStatus.OK, stdout=bound(red.text(text)),
                             data={"outputs": red.value(outputs)},
                             error_class=ErrorKind.COMMAND_FAILED if bad else None,
                             error=f"device rejected: {', '.join(bad)}" if bad else None)
        if ht.action in ("network.config", "network.backup", "network.restore"):
            try:
                platform_of(ht)
            except UnknownPlatform as exc:
                return ht.result(HostStatus.FAILED, error_class=ErrorKind.COMMAND_FAILED, error=str(exc))
        if ht.action == "network.config":
            return self._config(conn, ht, ctx, timeout)
        if ht.action in ("network.backup", "network.restore"):
            from opsflow.connectors import netbackup

            return (netbackup.backup if ht.action == "network.backup" else netbackup.restore)(conn, ht, ctx, timeout)
        return self._verify(conn, ht, ctx, timeout)

    def _config(self, conn: Any, ht: HostTask, ctx: RunContext, timeout: float) -> StepResult:
        red = ctx.redactor
        p = platform_of(ht)
        lines = [line for line in ht.spec.lines if line.strip()]  # a line a template rendered empty is not sent
        if not lines:
            return ht.result(HostStatus.OK, stdout="no lines to send", data={"diff": "", "check_mode": ht.check})
        before = conn.send_command(p.show_config, read_timeout=timeout)
        if ht.check:
            diff = candidate_diff(before, lines, p.name)
            return ht.result(HostStatus.OK, changed=bool(diff), stdout=red.text(diff),
                             data={"diff": red.text(diff), "check_mode": True})
        out = apply_config(conn, lines, timeout, p)
        if isinstance(out, ConfigRejected):
            return ht.result(HostStatus.FAILED, error_class=ErrorKind.CONFIG_REJECTED, error=red.text(out.reason),
                             stdout=bound(red.text(out.output)))
        after = conn.send_command(p.show_config, read_timeout=timeout)
        diff = config_diff(before, after, p.name)
        saved = None
        if ht.spec.save and diff and p.save:
            saved = conn.save_config()
        return ht.result(HostStatus.CHANGED if diff else HostStatus.OK, changed=bool(diff),
                         stdout=bound(red.text(diff or "no change")),
                         stderr=bound(red.text(out)) if cli_error(ht, out) else "",
                         data={"diff": red.text(diff), "saved": bool(saved)})

    def _verify(self, conn: Any, ht: HostTask, ctx: RunContext, timeout: float) -> StepResult:
        outcomes: list[CheckOutcome] = []
        for check in ht.spec:
            if check.kind != "show":
                outcomes.append(CheckOutcome(check.name or check.kind, False,
                                             f"check kind {check.kind!r} does not apply to a network device"))
                continue
            out = conn.send_command(check.show, read_timeout=timeout)
            problems = ["device rejected the command"] if cli_error(ht, out) else []
            outcomes.append(outcome(check, problems + text_assertions(check, out), "ok"))
        failed = [o for o in outcomes if not o.passed]
        lines = [f"{'PASS' if o.passed else 'FAIL'} {o.name}: {o.detail}" for o in outcomes]
        return ht.result(HostStatus.FAILED if failed else HostStatus.OK, stdout=ctx.redactor.text("\n".join(lines)),
                         data={"checks": [o.to_dict() for o in outcomes]},
                         error_class=ErrorKind.VERIFICATION_FAILED if failed else None,
                         error="; ".join(f"{o.name}: {o.detail}" for o in failed) or None)
