"""Load a ``services/`` directory: every problem as ``file:line:col``, all of them at once.

Each ``*.yaml``/``*.yml`` file holds ``services:``. Checked besides the shape: service names are
unique across the directory and objective names within a service; runbook names (or fnmatch
patterns) match a runbook of the runbooks directory; the calendars named by ``hours`` and
``corrections`` exist in the schedules directory, and so do the schedule entries listed.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from opsflow.errors import Diagnostic, RunbookError, UsageError
from opsflow.modelerrors import diagnostics
from opsflow.slo import models as m
from opsflow.yamlpos import PosDict, load_text, position, read_text


@dataclass
class ServiceSet:
    """The services of a directory, validated; ``runbook_names`` are every runbook known."""

    directory: Path | None
    services: dict[str, m.ServiceSpec] = field(default_factory=dict)
    runbook_names: tuple[str, ...] = ()

    def service(self, name: str) -> m.ServiceSpec:
        if name not in self.services:
            close = difflib.get_close_matches(name, list(self.services), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f" (services: {', '.join(sorted(self.services)) or 'none — see services/'})"
            raise UsageError(f"no service {name!r}{hint}")
        return self.services[name]

    def runbooks_of(self, service: m.ServiceSpec, objective: m.Objective | None = None) -> list[str]:
        """The runbook names a service (or one of its objectives) covers, patterns expanded."""
        patterns = objective.runbooks if objective is not None and objective.runbooks else service.runbooks
        out = [n for n in self.runbook_names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
        out += [p for p in patterns if not _is_pattern(p) and p not in out]  # runs recorded of a runbook since removed
        return sorted(out)


def _is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def find_service_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if not p.is_dir():
        return []
    return sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file())


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    return m.ServicesFile if len(loc) < 2 else m.ServiceSpec if len(loc) == 2 else m.Objective


def _kind(err: dict[str, Any], loc: tuple[Any, ...]) -> str | None:
    if err["type"] != "literal_error" or not loc or loc[-1] != "kind":
        return None
    got = err.get("input")
    close = difflib.get_close_matches(str(got), m.KINDS, n=1)
    return f"unknown objective kind {got!r}" + (f"; did you mean {close[0]!r}?" if close else "") + \
        f" (kinds: {', '.join(m.KINDS)})"


def _diagnostics(exc: ValidationError, tree: Any, filename: str) -> list[Diagnostic]:
    return diagnostics(exc, tree, filename, model_at=_model_at, special=_kind,
                       noise=lambda part: part.startswith(("function-", "lax-")))


def _runbook_names(runbooks: Path) -> tuple[str, ...]:
    """Names of the runbooks in a directory: the ``name:`` of each file (its stem when unreadable)."""
    from opsflow.yamlpos import load_file

    names: set[str] = set()
    if runbooks.is_dir():
        for f in sorted(runbooks.rglob("*")):
            if f.suffix in (".yaml", ".yml") and f.is_file():
                try:
                    tree = load_file(f)
                except RunbookError:
                    names.add(f.stem)
                    continue
                names.add(str(tree.get("name", f.stem)) if isinstance(tree, dict) else f.stem)
    return tuple(sorted(names))


def load_services(path: str | Path, runbooks: str | Path | None = None, schedules: str | Path | None = None,
                  calendars: dict[str, Any] | None = None, entries: set[str] | None = None) -> ServiceSet:
    """Load and check a services directory (or one file); RunbookError with every problem found.

    ``calendars``/``entries`` are those of the schedules directory (loaded from ``schedules`` when None).
    """
    directory = Path(path)
    base = directory if directory.is_dir() else directory.parent
    runbooks_dir = Path(runbooks) if runbooks else base.parent / "runbooks"
    out = ServiceSet(directory=directory, runbook_names=_runbook_names(runbooks_dir))
    problems: list[Diagnostic] = []
    items: list[tuple[m.ServiceSpec, Path, PosDict, int]] = []
    for f in find_service_files(directory):
        try:
            text = read_text(f)
            tree = load_text(text, str(f))
        except RunbookError as exc:
            problems += exc.diagnostics
            continue
        if tree is None:
            continue
        if not isinstance(tree, PosDict):
            problems.append(Diagnostic(str(f), 1, 1, "a services file is a YAML mapping with services:"))
            continue
        try:
            parsed = m.ServicesFile.model_validate(tree)
        except ValidationError as exc:
            problems += _diagnostics(exc, tree, str(f))
            continue
        items += [(s, f, tree, i) for i, s in enumerate(parsed.services)]
    if items and (calendars is None or entries is None):
        calendars, entries = _schedule_names(schedules, base)
    for spec, f, tree, i in items:
        def add(loc: tuple[str | int, ...], message: str, spec_file: Path = f, spec_tree: PosDict = tree,
                index: int = i) -> None:
            line, col = position(spec_tree, ("services", index, *loc), True)
            problems.append(Diagnostic(str(spec_file), line, col, message))

        if spec.name in out.services:
            add(("name",), f"service {spec.name!r} is defined twice")
            continue
        _check_service(spec, out.runbook_names, calendars or {}, entries or set(), runbooks_dir, add)
        out.services[spec.name] = spec
    if problems:
        problems.sort(key=lambda d: (d.file, d.line, d.col))
        raise RunbookError(problems)
    return out


def _schedule_names(schedules: str | Path | None, base: Path) -> tuple[dict[str, Any], set[str]]:
    from opsflow.schedule.loader import load_schedules

    sched = Path(schedules) if schedules else base.parent / "schedules"
    if not sched.exists():
        return {}, set()
    try:
        loaded = load_schedules(sched, check_runbooks=False)
    except RunbookError as exc:
        raise UsageError(f"the schedules directory {sched} has {len(exc.diagnostics)} problem(s); "
                         f"see `opsflow validate {sched}`") from exc
    return dict(loaded.calendars), set(loaded.entries)


def _hint(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(known)) or 'none'})"


def _check_service(spec: m.ServiceSpec, names: tuple[str, ...], calendars: dict[str, Any], entries: set[str],
                   runbooks_dir: Path, add: Any) -> None:
    for j, pattern in enumerate(spec.runbooks):
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            add(("runbooks", j), f"no runbook {pattern!r} in {runbooks_dir}{_hint(pattern, names)}")
    if spec.hours is not None and spec.hours not in calendars:
        add(("hours",), f"no calendar {spec.hours!r} (operational hours are a calendar of the schedules "
            f"directory){_hint(spec.hours, calendars)}")
    for j, cal in enumerate(spec.corrections):
        if cal not in calendars:
            add(("corrections", j), f"no calendar {cal!r}{_hint(cal, calendars)}")
    for j, entry in enumerate(spec.schedules):
        if entry not in entries:
            add(("schedules", j), f"no schedule entry {entry!r}{_hint(entry, entries)}")
    seen: set[str] = set()
    for j, obj in enumerate(spec.objectives):
        if obj.name in seen:
            add(("objectives", j, "name"), f"objective {obj.name!r} is defined twice in service {spec.name!r}")
        seen.add(obj.name)
        for k, pattern in enumerate(obj.runbooks or []):
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                add(("objectives", j, "runbooks", k), f"no runbook {pattern!r}{_hint(pattern, names)}")
        if obj.kind in ("backup_age", "restore_drill") and not spec.groups:
            add(("objectives", j, "kind"), f"a {obj.kind} objective needs the service's groups: (the hosts "
                "and devices whose backups it measures)")


def load_configured(services: str | Path | None = None, runbooks: str | Path | None = None,
                    schedules: str | Path | None = None) -> ServiceSet:
    """The services of the settings in force (an empty set when the directory does not exist)."""
    from opsflow.settings import current

    cfg = current()
    path = Path(services or cfg.services)
    if not path.exists():
        return ServiceSet(directory=None, runbook_names=_runbook_names(Path(runbooks or cfg.runbooks)))
    return load_services(path, runbooks or cfg.runbooks, schedules or cfg.schedules)


def validate_services(path: str | Path, runbooks: str | Path | None = None) -> list[Diagnostic]:
    try:
        load_services(path, runbooks)
    except RunbookError as exc:
        return list(exc.diagnostics)
    return []


__all__ = ["ServiceSet", "find_service_files", "load_configured", "load_services", "validate_services"]
