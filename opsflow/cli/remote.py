"""The CLI through ``opsflow serve`` (``--server URL``, ``OPSFLOW_SERVER``, the project file's ``server``).

run, resume, approve, deny, history and show call the service's API (opsflow.client) instead of opening
the store: a team shares one store and one set of locks without sharing a database password. Runs are
followed on their stream, host × step results printed as they arrive, and end with the exit code of a
local run (0 succeeded, else 1). This module imports httpx only when a server is in use.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from opsflow.errors import UsageError
from opsflow.results import RunStatus
from opsflow.textsafe import for_terminal as safe

if TYPE_CHECKING:
    from opsflow.client import Client

RECONNECTS = 3


def connect(server: str | None, ca_file: str | None) -> Client | None:
    """A client of the server in force (option, else OPSFLOW_SERVER, else the project file), or None: local."""
    from opsflow.settings import current

    settings = current()
    url = server or settings.server
    if not url:
        return None
    from opsflow.client import Client, read_token_file

    token = settings.token or (read_token_file(settings.token_file) if settings.token_file else None)
    if not token:
        raise UsageError(f"--server {url}: no token; set OPSFLOW_TOKEN_FILE (or `token_file` in the project file) to "
                         "a file of mode 0600 holding one from `opsflow token create`, or OPSFLOW_TOKEN")
    return Client(url, token, ca_file or settings.ca_file)


def exit_code(status: str) -> int:
    """As a local run's (RunResult.exit_code): 0 when it succeeded, else 1."""
    return 0 if status == RunStatus.SUCCEEDED else 1


def refuse_local(options: dict[str, Any]) -> None:
    """Options that only mean something to a local run: refused with --server rather than silently ignored."""
    given = [name for name, value in options.items() if value]
    if given:
        raise UsageError(f"{', '.join(given)}: not with --server (the server uses its own inventory and store)")


def run(client: Client, runbook: str, params: dict[str, Any], limit: str | None, check: bool, as_json: bool,
        junit: str | None, quiet: bool) -> None:
    """POST /runs, then follow its stream; exit with the run's code."""
    path = Path(runbook)
    name = path.stem if path.suffix in (".yml", ".yaml") and path.is_file() else runbook  # the server resolves it
    with client:
        started = client.start_run(name, params, limit, check)
        _follow(client, started["id"], as_json, junit, quiet)


def resume(client: Client, run_id: str, params: dict[str, Any], force: bool, as_json: bool, junit: str | None,
           quiet: bool) -> None:
    """POST /runs/{id}/resume (the server resumes it from its runbooks directory), then follow the new run."""
    with client:
        started = client.resume(run_id, params, force)
        if not quiet:
            click.echo(safe(f"run {started['id']} resumes run {started.get('resumes', run_id)}"), err=True)
        _follow(client, started["id"], as_json, junit, quiet)


def decide(client: Client, run_id: str, approved: bool, comment: str | None) -> None:
    with client:
        out = client.decide(run_id, approved, comment)
    decision = out["approval"]
    click.echo(safe(f"run {out['id']}: step {decision['step']!r} {decision['state']} by {decision['decided_by']}"))


def history(client: Client, runbook: str | None, status: str | None, since: float | None,
            limit: int) -> list[dict[str, Any]]:
    """The runs of GET /runs, as the store's history gives them."""
    with client:
        return client.list_runs(limit, runbook=runbook, status=status, since=since)


def detail(client: Client, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """(record, results, event) of GET /runs/{id}, as the store gives them."""
    with client:
        return _detail_of(client, run_id)


def _follow(client: Client, run_id: str, as_json: bool, junit: str | None, quiet: bool) -> None:
    printer = _Printer(client.url, run_id, quiet)
    seen: set[str] = set()
    end: dict[str, Any] | None = None
    attempts = 0
    try:
        while end is None:
            try:
                end = _read(client, run_id, printer, seen)
            except _Dropped as dropped:
                attempts += 1
                if attempts > RECONNECTS:
                    raise dropped.error from None
                click.echo(f"opsflow: {safe(dropped.error)}; reconnecting", err=True)
                time.sleep(2.0 * attempts)
    except KeyboardInterrupt:
        click.echo(safe(f"\nopsflow: no longer following; run {run_id} goes on on the server: "
                        f"`opsflow show {run_id} --server {client.url}`"), err=True)
        raise
    status = str(end.get("status"))
    if as_json or junit:
        record, results, _ = _detail_of(client, run_id)
        if as_json:
            from opsflow.cli.render import run_json

            click.echo(run_json(record, results))
        if junit:
            from opsflow.cli.render import junit as junit_xml

            Path(junit).write_bytes(junit_xml(record, results))
    sys.exit(exit_code(status))


class _Dropped(Exception):  # noqa: N818 - internal signal, never leaves this module
    def __init__(self, error: Exception) -> None:
        self.error = error


def _read(client: Client, run_id: str, printer: _Printer, seen: set[str]) -> dict[str, Any] | None:
    """Events of the stream not seen before (a reconnect replays them); the end's data, or None."""
    import json

    from opsflow.client import Unreachable

    try:
        for kind, data in client.stream(run_id):
            key = json.dumps([kind, data], sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            printer.event(kind, data)
            if kind == "end":
                return data
    except Unreachable as exc:
        raise _Dropped(exc) from None
    return None


def _detail_of(client: Client, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    body = client.get_run(run_id)
    return body["run"], body["results"], body.get("event")


class _Printer:
    """Host lines as results arrive, a line per step, the wait for an approval, the end: on stderr."""

    def __init__(self, url: str, run_id: str, quiet: bool) -> None:
        self.url, self.run_id, self.quiet = url, run_id, quiet
        self.step: tuple[Any, ...] | None = None

    def _say(self, text: str) -> None:
        if not self.quiet:
            click.echo(safe(text), err=True)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "started":
            self._say(f"run {data.get('run_id')} {data.get('runbook')} on {len(data.get('hosts') or [])} host(s) "
                      f"at {self.url}")
        elif kind == "result":
            step = (data.get("phase"), data.get("step_index"))
            if step != self.step:
                self.step = step
                label = "" if data.get("phase") in (None, "main") else f"{data.get('phase')}: "
                self._say(f"▶ {label}{data.get('step')} ({data.get('action')})")
            error = f"  {data['error']}" if data.get("error") else ""
            tries = f" (attempt {data['attempts']})" if (data.get("attempts") or 1) > 1 else ""
            self._say(f"  {str(data.get('status')):<11} {str(data.get('host')):<16} "
                      f"{float(data.get('duration') or 0):7.2f}s{tries}{error}")
        elif kind == "waiting":
            left = max(0.0, float(data.get("deadline") or 0) - time.time())
            self._say(f"⏸ waiting for approval: {data.get('message')} — `opsflow approve {self.run_id} --server "
                      f"{self.url}` or `opsflow deny …` by someone else (times out in {left:.0f} s)")
        elif kind == "end":
            error = f": {data['error']}" if data.get("error") else ""
            self._say(f"run {data.get('run_id', self.run_id)} {data.get('status')}{error}")
