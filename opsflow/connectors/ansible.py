"""Playbooks through ansible-runner, sharing the run's SSH config and multiplexed connections.

Per-host results are built from the runner's event stream (the events are not also written to its
artifacts). Extra vars are written with Ansible's ``!unsafe`` tag, so values from params or events are
never templated by Ansible. The runner's private directory (its artifacts hold full task results) is
removed after each step.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from opsflow.connectors.base import Emit, HostTask, RunContext
from opsflow.connectors.ssh import host_key_message, host_key_problem
from opsflow.results import ErrorKind, HostStatus, StepResult, bound

_RANK = {"ok": 0, "skipped": 0, "changed": 1, "failed": 2, "unreachable": 3}


class _Unsafe(str):
    pass


class _UnsafeDumper(yaml.SafeDumper):
    pass


_UnsafeDumper.add_representer(_Unsafe, lambda d, v: d.represent_scalar("!unsafe", str(v)))


def _unsafe(value: Any) -> Any:
    if isinstance(value, str):
        return _Unsafe(value)
    if isinstance(value, dict):
        return {k: _unsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_unsafe(v) for v in value]
    return value


def _inventory(tasks: list[HostTask]) -> dict[str, Any]:
    hosts = {}
    for t in tasks:
        hvars = {k: v for k, v in t.host.vars.items() if not k.startswith("opsflow_")}
        hvars.setdefault("ansible_host", t.host.address)
        hosts[t.host.name] = hvars
    return {"all": {"hosts": hosts}}


def _close_without_delay() -> None:
    """ansible-runner closes its pexpect child once the child has exited, and ptyprocess then still sleeps
    ``delayafterclose`` (0.1 s, "to give the kernel time") before it looks: a tenth of a second added to
    every ansible step. The children spawned through pexpect in this process get no such delay (one still
    alive at close is terminated as before: that path has its own waits)."""
    import pexpect

    spawn: Any = pexpect.spawn
    if getattr(spawn, "_opsflow_close_at_once", False):
        return
    original = spawn._spawnpty

    def _spawnpty(self: Any, args: Any, **kwargs: Any) -> Any:
        proc = original(self, args, **kwargs)
        proc.delayafterclose = 0.0
        return proc

    spawn._spawnpty = _spawnpty
    spawn._opsflow_close_at_once = True


class AnsibleConnector:
    def run(self, tasks: list[HostTask], ctx: RunContext, emit: Emit) -> None:
        import ansible_runner

        _close_without_delay()
        first = tasks[0]
        spec = first.spec
        private = Path(tempfile.mkdtemp(prefix="ansible-", dir=ctx.workdir))
        (private / "inventory").mkdir()
        (private / "inventory" / "hosts.json").write_text(json.dumps(_inventory(tasks)))
        vars_file = private / "extra_vars.yml"
        vars_file.write_text(yaml.dump(_unsafe(spec.extra_vars), Dumper=_UnsafeDumper))
        vars_file.chmod(0o600)
        # ansible-playbook of the same environment as opsflow, even when that is not on PATH
        bindir = str(Path(sys.executable).parent)
        env = {
            "PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_SSH_ARGS": f"-F {ctx.ssh_config}",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(ctx.control_dir),
            "ANSIBLE_SSH_CONTROL_PATH": f"{ctx.control_dir}/%%C",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_TIMEOUT": "10",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "True",
            "ANSIBLE_FORKS": str(ctx.concurrency),
            "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            "ANSIBLE_PYTHON_INTERPRETER": "auto_silent",
        }
        cmdline = [f"-e @{vars_file}"]
        if first.check:
            cmdline += ["--check", "--diff"]
        if spec.tags:
            cmdline.append(f"--tags {','.join(spec.tags)}")
        per_host: dict[str, dict[str, Any]] = {t.host.name: {"status": "ok", "tasks": [], "msg": None,
                                                             "host_key": None} for t in tasks}
        started = time.time()

        def on_event(event: dict[str, Any]) -> bool:
            kind = event.get("event", "")
            data = event.get("event_data", {})
            host = data.get("host")
            if host not in per_host or not kind.startswith("runner_on_"):
                return False
            state = kind.removeprefix("runner_on_")
            if state not in ("ok", "failed", "unreachable", "skipped"):
                return False
            res = data.get("res", {}) or {}
            if state == "ok" and res.get("changed"):
                state = "changed"
            if state == "failed" and data.get("ignore_errors"):
                state = "ok"
            entry = per_host[host]
            entry["tasks"].append({"task": data.get("task"), "status": state,
                                   "duration": data.get("duration"), "changed": bool(res.get("changed")),
                                   **({"diff": res["diff"]} if first.check and res.get("diff") else {})})
            if _RANK[state] > _RANK[entry["status"]]:
                entry["status"] = state
            if state in ("failed", "unreachable"):
                entry["msg"] = res.get("msg") or res.get("stderr") or str(res)[:500]
                if state == "unreachable" and host_key_problem(str(entry["msg"])):
                    entry["host_key"] = str(entry["msg"])  # ssh refused the host key: not a network problem
            return False  # kept here, not written to the artifacts too (full task results, secrets included)

        try:
            runner = ansible_runner.run(
                private_data_dir=str(private), playbook=str(spec.playbook), inventory=str(private / "inventory"),
                envvars=env, cmdline=" ".join(cmdline), quiet=True, event_handler=on_event,
                timeout=int(first.timeout) if first.timeout else None,
                suppress_env_files=True, cancel_callback=ctx.hard_cancel.is_set,
            )
            rc, runner_status = runner.rc, runner.status
            tail = ""
            if runner_status not in ("successful", "failed"):
                tail = (runner.stdout.read() if runner.stdout else "")[-2000:]
        finally:
            shutil.rmtree(private, ignore_errors=True)
        ended = time.time()
        red = ctx.redactor
        for t in tasks:
            entry = per_host[t.host.name]
            status = entry["status"]
            if runner_status == "timeout":
                hs = HostStatus.TIMEOUT
            elif not entry["tasks"] and runner_status != "successful":
                hs = HostStatus.FAILED
            else:
                hs = {"ok": HostStatus.OK, "changed": HostStatus.CHANGED, "failed": HostStatus.FAILED,
                      "unreachable": HostStatus.UNREACHABLE, "skipped": HostStatus.OK}[status]
            lines = [f"{x['status']:<11} {x['task']} ({(x['duration'] or 0):.2f}s)" for x in entry["tasks"]]
            error = entry["msg"] or (f"ansible-runner {runner_status} (rc {rc}) {tail.strip()[-300:]}"
                                     if hs in (HostStatus.FAILED, HostStatus.TIMEOUT) else None)
            kind = {HostStatus.UNREACHABLE: ErrorKind.UNREACHABLE, HostStatus.FAILED: ErrorKind.TASK_FAILED,
                    HostStatus.TIMEOUT: ErrorKind.TIMEOUT}.get(hs)
            stderr = ""
            if entry["host_key"] and hs == HostStatus.UNREACHABLE:
                hs, kind = HostStatus.FAILED, ErrorKind.HOST_KEY
                error, stderr = host_key_message(t.host, entry["host_key"]), entry["host_key"]
            emit(StepResult(step=t.step_name, host=t.host.name, status=hs, step_index=t.step_index,
                            action=t.action, changed=status == "changed", rc=rc,
                            stdout=bound(red.text("\n".join(lines))), stderr=bound(red.text(stderr)),
                            data=red.value({"tasks": entry["tasks"], "runner_status": runner_status,
                                            "check_mode": first.check}),
                            error_class=str(kind) if kind else None,
                            error=red.text(str(error)) if error else None, started_at=started, ended_at=ended))
