"""RunRequest → Plan: the one funnel every trigger (CLI, CI, event, schedule) goes through.

Building a plan loads the inventory and the runbook, validates both together,
types the params and resolves each step's hosts. A plan is what a dry run prints.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from opsflow.actions import ACTIONS
from opsflow.errors import Diagnostic, InventoryError, RunbookError, UsageError, WindowClosed
from opsflow.inventory import Inventory, load_inventory_cached
from opsflow.redact import MASK, MIN_SECRET, Redactor
from opsflow.runbook.models import Param, Step
from opsflow.runbook.validate import LoadedRunbook, load_runbook_cached, resolve_playbook

TRIGGERS = ("cli", "ci", "event", "schedule", "api")


def default_inventory() -> str:
    from opsflow.settings import current

    return current().inventory


def who() -> str:
    """The CLI's actor: ``$OPSFLOW_USER`` when set (a shared account, CI, tests), else ``user@host``."""
    if os.environ.get("OPSFLOW_USER", "").strip():
        return os.environ["OPSFLOW_USER"].strip()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class RunRequest:
    """Everything needed to start a run, whoever asks for it."""

    runbook: str
    params: dict[str, Any] = field(default_factory=dict)
    inventory: str = field(default_factory=default_inventory)
    limit: str | None = None
    trigger: str = "cli"
    started_by: str = field(default_factory=who)
    check: bool = False
    strict: bool = False  # with check: refuse when a step cannot be checked
    parent_run: str | None = None
    resume_of: str | None = None  # continue this run: skip what it (and its ancestors) completed
    lock_owners: frozenset[str] = frozenset()  # runs whose locks count as ours (a sub-runbook's parents)
    override_window: str | None = None  # why this run may start in a blackout / outside its window (audited)
    windows_checked: bool = False  # the scheduler already decided this slot against its calendars


@dataclass(frozen=True)
class PlannedStep:
    index: int
    step: Step
    hosts: list[str]
    phase: str = "main"


@dataclass
class Plan:
    request: RunRequest
    loaded: LoadedRunbook
    inventory: Inventory
    params: dict[str, Any]
    secrets: list[str]
    targets: list[str]
    steps: list[PlannedStep]
    on_failure: list[PlannedStep]
    window_override: str | None = None  # the window verdict an override let the run past (audited)

    @property
    def name(self) -> str:
        return self.loaded.runbook.name

    def public_params(self) -> dict[str, Any]:
        """The params as recorded: secret ones masked, and any secret inside the others too."""
        spec = self.loaded.runbook.params
        masked = {k: (MASK if spec.get(k, Param()).secret else v) for k, v in self.params.items()}
        return Redactor(self.secrets).value(masked)

    @property
    def batches(self) -> list[list[str]]:
        return batches(self.targets, self.loaded.runbook.serial)

    def describe(self) -> list[dict[str, Any]]:
        return [{"index": ps.index, "name": ps.step.name, "action": ps.step.action, "hosts": ps.hosts,
                 "phase": ps.phase, "check_mode": check_support(ps.step)[1],
                 "rollback": [r.name for r in ps.step.rollback]} for ps in self.steps + self.on_failure]


def batches(hosts: list[str], serial: Any) -> list[list[str]]:
    """Split hosts into rolling batches: 2, "25%", or [1, "25%", "100%"] (the last size repeats)."""
    if serial is None or not hosts:
        return [list(hosts)]
    sizes = serial if isinstance(serial, list) else [serial]
    total, out, i, k = len(hosts), [], 0, 0
    while i < len(hosts):
        spec = sizes[min(k, len(sizes) - 1)]
        if isinstance(spec, str):
            size = max(1, int(total * float(spec.strip()[:-1]) / 100))
        else:
            size = int(spec)
        out.append(hosts[i:i + size])
        i += size
        k += 1
    return out


def check_support(step: Step) -> tuple[bool, str]:
    """Whether a step can run in check mode, and how it behaves there."""
    return ACTIONS[step.action].check_support(step.spec)


def ssh_sessions(plan: Plan) -> int:
    """A rough count of SSH sessions a run opens per server: one needs no shared connection."""
    total = 1 if plan.loaded.runbook.gather_facts else 0
    steps = [ps.step for ps in plan.steps + plan.on_failure]
    steps += [r for s in steps for r in s.rollback]
    for step in steps:
        sessions = ACTIONS[step.action].sessions
        per_try = len(step.verify or []) if sessions < 0 else sessions
        total += per_try * (1 + step.retries)
    return total


def coerce(name: str, param: Param, value: Any) -> Any:
    """Type a param value (strings from -e or the environment are parsed)."""
    kind = param.type
    try:
        if kind == "str":
            return value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "yes", "1", "on"):
                return True
            if text in ("false", "no", "0", "off"):
                return False
            raise ValueError
        parsed = _yaml_value(value) if isinstance(value, str) else value
        if kind == "list" and isinstance(parsed, list):
            return parsed
        if kind == "dict" and isinstance(parsed, dict):
            return parsed
        raise ValueError
    except (ValueError, TypeError):
        shown = "the value given (secret, not shown)" if param.secret else repr(str(value)[:60])
        raise UsageError(f"param {name!r}: {shown} is not a valid {kind}") from None


def _yaml_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError(text) from None


def resolve_params(lrb: LoadedRunbook, given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    rb, problems, out, secrets = lrb.runbook, [], {}, []
    unknown = sorted(set(given) - set(rb.params))
    if unknown:
        declared = ", ".join(rb.params) or "none"
        raise UsageError(f"{lrb.path}: unknown param(s) {', '.join(unknown)} (the runbook declares: {declared})")
    for name, param in rb.params.items():
        if name in given:
            value = given[name]
        elif f"OPSFLOW_PARAM_{name.upper()}" in os.environ:
            value = os.environ[f"OPSFLOW_PARAM_{name.upper()}"]
        elif param.default is not None:
            value = param.default
        elif param.is_required:
            line, col = lrb.where("params", name)
            problems.append(Diagnostic(str(lrb.path), line, col,
                                       f"missing required param {name!r}: pass -e {name}=VALUE"
                                       + (f" or set OPSFLOW_PARAM_{name.upper()}" if param.secret else "")))
            continue
        else:
            value = None
        if value is not None:
            try:
                value = coerce(name, param, value)
            except UsageError as exc:
                line, col = lrb.where("params", name)
                problems.append(Diagnostic(str(lrb.path), line, col, str(exc)))
                continue
            if param.choices is not None and value not in param.choices:
                line, col = lrb.where("params", name)
                shown = "the value given (secret, not shown)" if param.secret else repr(value)
                choices = f"{len(param.choices)} allowed values" if param.secret else str(param.choices)
                problems.append(Diagnostic(str(lrb.path), line, col,
                                           f"param {name!r}: {shown} is not one of {choices}"))
                continue
            if param.secret:
                if len(str(value)) < MIN_SECRET:
                    line, col = lrb.where("params", name)
                    problems.append(Diagnostic(str(lrb.path), line, col,
                                               f"param {name!r} is secret and shorter than {MIN_SECRET} "
                                               "characters: it could not be masked in records and output"))
                    continue
                secrets.append(str(value))
        out[name] = value
    if problems:
        raise RunbookError(problems)
    return out, secrets


def build_plan(request: RunRequest) -> Plan:
    if request.trigger not in TRIGGERS:
        raise UsageError(f"unknown trigger {request.trigger!r} (one of {', '.join(TRIGGERS)})")
    inventory = load_inventory_cached(request.inventory)
    lrb = load_runbook_cached(request.runbook, inventory)
    params, secrets = resolve_params(lrb, request.params)
    rb = lrb.runbook
    targets = inventory.select_or_fail(rb.targets, "targets")
    limit = set(inventory.select_or_fail(request.limit, "--limit")) if request.limit else None
    if limit is not None:
        targets = [h for h in targets if h in limit]
        if not targets:
            raise InventoryError(f"--limit {request.limit!r} leaves no host of targets {rb.targets!r}")

    def plan_steps(steps: list[Step], phase: str, offset: int) -> list[PlannedStep]:
        out = []
        for i, step in enumerate(steps):
            hosts = inventory.select_or_fail(step.hosts, f"step {step.name!r} hosts") if step.hosts else list(targets)
            if limit is not None:
                hosts = [h for h in hosts if h in limit]
            if step.ansible:
                playbook = resolve_playbook(lrb.root, lrb.path, step.ansible.playbook)
                step = step.model_copy(update={"ansible": step.ansible.model_copy(update={"playbook": str(playbook)})})
            out.append(PlannedStep(index=offset + i, step=step, hosts=hosts, phase=phase))
        return out

    overridden = check_windows(request, rb.name, targets, inventory)
    main = plan_steps(rb.steps, "main", 0)
    if request.check and request.strict:
        refused = [f"{ps.step.name!r} ({check_support(ps.step)[1]})" for ps in main + plan_steps(rb.on_failure, "", 0)
                   if not check_support(ps.step)[0]]
        if refused:
            raise UsageError(f"--check --strict refused: {len(refused)} step(s) cannot be checked: "
                             + "; ".join(refused))
    return Plan(request=request, loaded=lrb, inventory=inventory, params=params,
                secrets=secrets + inventory.secrets(), targets=targets, steps=main,
                on_failure=plan_steps(rb.on_failure, "on_failure", len(main)), window_override=overridden)


def check_windows(request: RunRequest, runbook: str, targets: list[str], inventory: Inventory) -> str | None:
    """Refuse a run that a scoped calendar holds back now (WindowClosed), unless overridden; return the
    verdict an override let it past. Scheduled runs were decided by the scheduler; a sub-runbook by its parent."""
    if request.windows_checked or (request.parent_run and not request.resume_of):
        return None
    from datetime import UTC, datetime

    from opsflow.settings import current

    settings = current()
    calendars = scoped_calendars(settings.schedules, settings.runbooks)
    if not calendars:
        return None
    from opsflow.schedule.governance import verdict

    names = set(targets) | {g for h in targets for g in inventory.hosts[h].groups}
    why = verdict(calendars, runbook, names, datetime.now(UTC))
    if why is None:
        return None
    if not request.override_window:
        raise WindowClosed(f"{runbook} not started: {why}. To run it anyway: --override-window --reason TEXT "
                           "(recorded with who did it)")
    return why


def scoped_calendars(schedules: str, runbooks: str) -> list[Any]:
    """The calendars governing every run (``governing_calendars``), kept on disk (:mod:`opsflow.diskcache`)
    while the schedules directory and the code that reads it are unchanged: a run does not parse the
    directory (YAML, iCalendar files, the schedule models) again."""
    path = Path(schedules)
    if not path.is_dir():
        return []
    from opsflow import diskcache

    tree = diskcache.tree_stamp(path, limit=5000)
    key = diskcache.digest(("calendars", str(path.resolve()), str(runbooks), tree, _schedule_code()))
    if key in _CALENDARS:  # a long-running process (daemon, service): their windows already computed
        return _CALENDARS[key]
    found = diskcache.get("calendars", key) if tree is not None else None
    if not isinstance(found, list):
        from opsflow.schedule.governance import governing_calendars

        found = governing_calendars(path, runbooks)
        if tree is not None:
            diskcache.put("calendars", key, found)
    if len(_CALENDARS) > 16:
        _CALENDARS.clear()
    _CALENDARS[key] = found
    return found


_CALENDARS: dict[str, list[Any]] = {}


@lru_cache(maxsize=1)
def _schedule_code() -> tuple[Any, ...]:
    from opsflow import diskcache

    return (*diskcache.code_stamp(Path(__file__).parent / "schedule"), diskcache.package_stamp("icalendar"),
            diskcache.package_stamp("dateutil"))


def project_file(lrb: LoadedRunbook, name: str) -> str:
    """A path named in a runbook, relative to the runbook or the project root."""
    for candidate in (Path(name), lrb.path.parent / name, lrb.root / name):
        if candidate.exists():
            return str(candidate.resolve())
    return name
