"""What every connector shares: the run context (SSH config, control sockets) and the task shape."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from opsflow.inventory.models import Host, Inventory
from opsflow.redact import Redactor
from opsflow.results import ErrorKind, HostStatus, StepResult, bound
from opsflow.workdir import make_workdir

Emit = Callable[[StepResult], None]


@dataclass
class HostTask:
    host: Host
    spec: Any  # the action's model, rendered for this host
    step_name: str
    step_index: int
    action: str
    timeout: float | None = None
    check: bool = False

    def result(self, status: HostStatus, **kw: Any) -> StepResult:
        return StepResult(step=self.step_name, host=self.host.name, status=status, step_index=self.step_index,
                          action=self.action, **kw)


@dataclass
class RunContext:
    """Per-run resources shared by connectors: one SSH config, one set of multiplexed connections."""

    inventory: Inventory
    redactor: Redactor
    concurrency: int = 20
    run_id: str = ""
    multiplex: bool = True  # one SSH connection per host, reused by every step (off when a run needs one session)
    cancel: threading.Event = field(default_factory=threading.Event)
    workdir: Path = field(default_factory=make_workdir)
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _ssh_config: Path | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    shared: dict[str, Any] = field(default_factory=dict)
    inflight: set[subprocess.Popen[str]] = field(default_factory=set)
    hard_cancel: threading.Event = field(default_factory=threading.Event)

    def kill_inflight(self) -> None:
        """Stop at once: kill every process a connector is waiting for."""
        self.hard_cancel.set()
        for proc in list(self.inflight):
            try:
                os.killpg(proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
        if self._ssh_config is not None:
            self._close_masters()  # ends the remote sessions too, so remote commands stop

    @property
    def control_dir(self) -> Path:
        d = self.workdir / "cm"
        d.mkdir(mode=0o700, exist_ok=True)
        return d

    @property
    def ssh_config(self) -> Path:
        """An OpenSSH client config for every server of the inventory (host keys checked)."""
        with self._lock:
            if self._ssh_config is None:
                self._ssh_config = self.workdir / "ssh_config"
                self._ssh_config.write_text(render_ssh_config(self.inventory, self.control_dir, self.multiplex))
                self._closers.append(self._close_masters)
            return self._ssh_config

    def _close_masters(self) -> None:
        sockets = list(self.control_dir.glob("*"))
        procs = [subprocess.Popen(["ssh", "-o", f"ControlPath={s}", "-O", "exit", "x"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for s in sockets]
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()

    def on_close(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    def close(self) -> None:
        for fn in reversed(self._closers):
            try:
                fn()
            except Exception:  # noqa: BLE001,S110 - closing is best effort
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)


def render_ssh_config(inventory: Inventory, control_dir: Path, multiplex: bool = True) -> str:
    """One ``Host`` block per inventory host, matched by name and by address."""
    blocks = []
    for h in inventory.hosts.values():
        lines = [f"Host {h.name} {h.address}" if h.address != h.name else f"Host {h.name}",
                 f"  HostName {h.address}", f"  Port {h.port}"]
        if h.user:
            lines.append(f"  User {h.user}")
        if h.key_file:
            lines += [f"  IdentityFile {h.key_file}", "  IdentitiesOnly yes"]
        if h.known_hosts:
            lines.append(f"  UserKnownHostsFile {h.known_hosts}")
        ssh_args = str(h.vars.get("opsflow_ssh_options", "")).strip()
        lines += [f"  {opt}" for opt in ssh_args.split(";") if opt.strip()]
        blocks.append("\n".join(lines))
    common = [
        "Host *",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "  PasswordAuthentication no",
        "  KbdInteractiveAuthentication no",
        "  KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org,sntrup761x25519-sha512@openssh.com",
        "  ConnectTimeout 10",
        "  ServerAliveInterval 2",
        "  ServerAliveCountMax 3",
        *(["  ControlMaster auto", f"  ControlPath {control_dir}/%C", "  ControlPersist 120s"]
          if multiplex else ["  ControlMaster no"]),
        "  LogLevel ERROR",
    ]
    return "\n\n".join(blocks + ["\n".join(common)]) + "\n"


class Connector(Protocol):
    def run(self, tasks: list[HostTask], ctx: RunContext, emit: Emit) -> None: ...


class PerHostConnector:
    """A connector whose hosts are independent: run them on a pool, emit as each finishes."""

    def run_one(self, task: HostTask, ctx: RunContext) -> StepResult:
        raise NotImplementedError

    def run(self, tasks: list[HostTask], ctx: RunContext, emit: Emit) -> None:
        def one(task: HostTask) -> None:
            if ctx.cancel.is_set():
                emit(task.result(HostStatus.SKIPPED, error="run canceled", started_at=time.time(),
                                 ended_at=time.time()))
                return
            started = time.time()
            try:
                result = self.run_one(task, ctx)
            except Exception as exc:  # noqa: BLE001 - a connector bug fails the host, not the run
                result = task.result(HostStatus.FAILED, error_class=ErrorKind.INTERNAL,
                                     error=f"{type(exc).__name__}: {exc}")
            if not result.started_at:
                result.started_at = started
            if not result.ended_at:
                result.ended_at = time.time()
            emit(result)

        if len(tasks) == 1:
            one(tasks[0])
            return
        with ThreadPoolExecutor(max_workers=max(1, min(ctx.concurrency, len(tasks))),
                                thread_name_prefix="opsflow-host") as pool:
            for _ in pool.map(one, tasks):
                pass


def command_result(task: HostTask, ctx: RunContext, outcome: tuple[int | None, str, str, bool], started: float,
                   transport_failure: Callable[[str], tuple[HostStatus, str] | None] | None = None) -> StepResult:
    """The result of a command (local or remote): canceled, timed out, unreachable, failed or changed."""
    rc, out, err, timed_out = outcome
    red = ctx.redactor
    common: dict[str, Any] = {"stdout": bound(red.text(out)), "stderr": bound(red.text(err)),
                              "started_at": started, "ended_at": time.time()}
    if ctx.hard_cancel.is_set() and (rc is None or rc < 0 or rc == 255):
        return task.result(HostStatus.FAILED, rc=rc, error_class=ErrorKind.CANCELED,
                           error="stopped in flight: the run was canceled", **common)
    if timed_out:
        return task.result(HostStatus.TIMEOUT, error_class=ErrorKind.TIMEOUT,
                           error=f"no answer within {task.timeout:g} s", **common)
    failure = transport_failure(err) if transport_failure and rc == 255 else None
    if failure:
        status, cls = failure
        msg = err.strip().splitlines()[-1] if err.strip() else "connection to the host lost"
        return task.result(status, rc=rc, error_class=cls, error=red.text(msg), **common)
    ok = rc == 0
    return task.result(HostStatus.CHANGED if ok else HostStatus.FAILED, rc=rc, changed=ok,
                       error_class=None if ok else ErrorKind.COMMAND_FAILED,
                       error=None if ok else f"command exited with rc {rc}", **common)


def _abandon(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Stop reading a process whose pipes another process keeps open."""
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    proc.wait()
    return "", ""


def run_process(argv: list[str], stdin: str | None, timeout: float | None, env: dict[str, str] | None = None,
                cwd: str | None = None, track: set[subprocess.Popen[str]] | None = None,
                ) -> tuple[int | None, str, str, bool]:
    """Run a process without a shell; return (rc, stdout, stderr, timed_out).

    ``track`` holds the process while it runs, so a hard cancel can kill it.
    """
    full_env = {**os.environ, **env} if env else None
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd,
                                text=True, errors="replace", start_new_session=True)
    except OSError as exc:
        return 127, "", f"cannot start {argv[0]}: {exc.strerror}", False
    if track is not None:
        track.add(proc)
    deadline = time.monotonic() + timeout if timeout else None
    exited_at: float | None = None
    pending_input = stdin
    try:
        while True:
            step = 0.5 if deadline is None else max(0.01, min(0.5, deadline - time.monotonic()))
            try:
                data, pending_input = pending_input, None  # input can only be given to the first call
                out, err = proc.communicate(data, timeout=step)
                return proc.returncode, out, err, False
            except subprocess.TimeoutExpired:
                pass
            now = time.monotonic()
            if proc.poll() is not None:
                # the client is gone (killed) but a multiplexing master still holds its pipes
                exited_at = exited_at or now
                if now - exited_at > 1.0:
                    out, err = _abandon(proc)
                    return proc.returncode, out, err, False
            if deadline is not None and now >= deadline:
                break
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        try:
            out, err = proc.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            out, err = _abandon(proc)
        return None, out or "", err or "", True
    finally:
        if track is not None:
            track.discard(proc)
