"""Load a ``schedules/`` directory: every problem as ``file:line:col``, all of them at once.

Each ``*.yaml``/``*.yml`` file holds ``calendars:`` and/or ``schedules:``; names are unique across the
directory. Checked besides the shape: calendar names an entry lists exist, runbooks resolve (a name
in the runbooks directory, or a path), params are params of the runbook, ``after`` entries exist and
form no cycle, zones are IANA zones, cron and RRULE expressions are valid, ``.ics`` files read. A
report entry (``report:`` instead of ``runbook:``) names a calendar that exists as its ``hours`` and
has a notify target that hears of ``succeeded`` (where its report goes).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from opsflow.errors import Diagnostic, RunbookError
from opsflow.modelerrors import diagnostics
from opsflow.schedule import models as m
from opsflow.schedule import tz as tzmod
from opsflow.schedule.calendars import Calendar, DateRange, Event, Recurrence, Scope
from opsflow.schedule.intervals import parse_interval
from opsflow.schedule.slots import Entry
from opsflow.schedule.triggers import EPOCH, CronTrigger, EveryTrigger, RRuleTrigger, Trigger
from opsflow.yamlpos import PosDict, PosList, load_text, position, read_text

MAX_PROBLEMS = 200


@dataclass
class ScheduleSet:
    """Everything in a schedules directory, validated and ready to compute with."""

    directory: Path
    calendars: dict[str, Calendar] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)

    def entry(self, name: str) -> Entry:
        from opsflow.errors import UsageError

        if name not in self.entries:
            raise UsageError(f"no schedule entry {name!r}{_hint(name, self.entries)}")
        return self.entries[name]

    def calendar(self, name: str) -> Calendar:
        from opsflow.errors import UsageError

        if name not in self.calendars:
            raise UsageError(f"no calendar {name!r}{_hint(name, self.calendars)}")
        return self.calendars[name]


def _hint(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f" (known: {', '.join(sorted(known)) or 'none'})"


def find_schedule_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        return sorted(x for x in p.rglob("*") if x.suffix in (".yaml", ".yml") and x.is_file())
    return [p] if p.exists() else []


# ---- YAML 1.1 reads 17:00 and 1:5 as base-60 integers; Alertmanager (YAML 1.1 without them) as text
_SEXAGESIMAL = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+")


def _raw_scalar(lines: list[str], pos: tuple[int, int]) -> str | None:
    line = lines[pos[0] - 1] if 0 < pos[0] <= len(lines) else ""
    m = _SEXAGESIMAL.match(line, pos[1] - 1)
    return m.group(0) if m else None


def _restore_sexagesimal(tree: Any, lines: list[str]) -> None:
    """Inside time_intervals, an integer written as ``17:00`` or ``1:5`` becomes that text again."""
    cals = tree.get("calendars") if isinstance(tree, PosDict) else None
    if not isinstance(cals, PosList):
        return

    def fix(node: Any) -> None:
        if isinstance(node, PosDict):
            for k in list(node):
                v = node[k]
                if isinstance(v, int) and not isinstance(v, bool):
                    raw = _raw_scalar(lines, node.value_pos[k])
                    if raw and ":" in raw:
                        node[k] = raw
                else:
                    fix(v)
        elif isinstance(node, PosList):
            for i, v in enumerate(node):
                if isinstance(v, int) and not isinstance(v, bool):
                    raw = _raw_scalar(lines, node.item_pos[i])
                    if raw and ":" in raw:
                        node[i] = raw
                else:
                    fix(v)

    for cal in cals:
        if isinstance(cal, PosDict) and isinstance(cal.get("time_intervals"), PosList):
            fix(cal["time_intervals"])


def _restore_on_keys(tree: Any, lines: list[str]) -> None:
    """YAML 1.1 reads the key ``on`` (of ``notify: [{to, on}]``) as true: make it ``on`` again."""
    entries = tree.get("schedules") if isinstance(tree, PosDict) else None
    for entry in entries if isinstance(entries, PosList) else []:
        notify = entry.get("notify") if isinstance(entry, PosDict) else None
        for item in notify if isinstance(notify, PosList) else []:
            if not isinstance(item, PosDict) or "True" not in item or "on" in item:
                continue
            line, col = item.key_pos["True"]
            raw = lines[line - 1][col - 1:col + 1] if 0 < line <= len(lines) else ""
            if raw.lower() == "on":
                item["on"] = item.pop("True")
                item.key_pos["on"], item.value_pos["on"] = item.key_pos.pop("True"), item.value_pos.pop("True")


# ---- pydantic errors at their place in the file ---------------------------------------------------
_TYPE_PARTS = re.compile(r"[\[\(]|^(str|int|float|bool|dict|list|none|function-.*|lax-or-strict)$")
_MODELS = {c.__name__ for c in (m.DateSpan, m.RecurrenceSpec, m.ScopeSpec, m.CalendarSpec, m.Misfire, m.After,
                                m.Notify, m.ReportSpec, m.EntrySpec, m.ScheduleFile)}


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    if not loc:
        return m.ScheduleFile
    if len(loc) == 2:
        top: dict[str, type[BaseModel]] = {"calendars": m.CalendarSpec, "schedules": m.EntrySpec}
        return top.get(str(loc[0]))
    if loc[0] == "schedules" and len(loc) in (3, 4):
        subs: dict[str, type[BaseModel]] = {"misfire": m.Misfire, "after": m.After, "notify": m.Notify,
                                            "report": m.ReportSpec}
        sub = subs.get(str(loc[2]))
        return sub if sub not in (m.Misfire, m.ReportSpec) or len(loc) == 3 else None
    if loc[0] == "calendars" and len(loc) == 4 and loc[2] == "recurrences":
        return m.RecurrenceSpec
    return None


def _diagnostics(exc: ValidationError, tree: Any, filename: str) -> list[Diagnostic]:
    return diagnostics(exc, tree, filename, model_at=_model_at,
                       noise=lambda part: bool(_TYPE_PARTS.search(part)) or part in _MODELS)


# ---- loading -----------------------------------------------------------------------------------------
@dataclass
class _Item:
    spec: Any
    file: Path
    tree: PosDict
    index: int

    def where(self, section: str, *loc: str | int, value: bool = False) -> tuple[int, int]:
        return position(self.tree, (section, self.index, *loc), value)


class _Problems(list[Diagnostic]):
    def add(self, item: _Item, section: str, loc: tuple[str | int, ...], message: str, value: bool = True) -> None:
        line, col = item.where(section, *loc, value=value)
        self.append(Diagnostic(str(item.file), line, col, message))


def _read_files(files: list[Path], problems: list[Diagnostic]) -> tuple[list[_Item], list[_Item]]:
    cals: list[_Item] = []
    entries: list[_Item] = []
    for f in files:
        try:
            text = read_text(f)
            tree = load_text(text, str(f))
        except RunbookError as exc:
            problems += exc.diagnostics
            continue
        if tree is None:
            continue
        if not isinstance(tree, PosDict):
            problems.append(Diagnostic(str(f), 1, 1, "a schedules file is a YAML mapping with calendars: "
                                                     "and/or schedules:"))
            continue
        lines = text.splitlines()
        _restore_sexagesimal(tree, lines)
        _restore_on_keys(tree, lines)
        try:
            parsed = m.ScheduleFile.model_validate(tree)
        except ValidationError as exc:
            problems += _diagnostics(exc, tree, str(f))
            continue
        cals += [_Item(c, f, tree, i) for i, c in enumerate(parsed.calendars)]
        entries += [_Item(e, f, tree, i) for i, e in enumerate(parsed.schedules)]
    return cals, entries


def _local(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=None)


def _build_calendar(item: _Item, problems: _Problems) -> Calendar:
    spec: m.CalendarSpec = item.spec
    scope = None
    if spec.scope == "all":
        scope = Scope(all=True)
    elif isinstance(spec.scope, m.ScopeSpec):
        scope = Scope(runbooks=frozenset(spec.scope.runbooks), groups=frozenset(spec.scope.groups),
                      hosts=frozenset(spec.scope.hosts))
    dates = []
    for d in spec.dates:
        if isinstance(d, str):
            dates.append(DateRange(date.fromisoformat(d), date.fromisoformat(d)))
        else:
            dates.append(DateRange(date.fromisoformat(d.from_), date.fromisoformat(d.to)))
    recs = tuple(Recurrence(rule=r.rrule, start=_local(r.start), duration=timedelta(seconds=r.duration),
                            exdates=tuple(_local(x) for x in r.exdates), label=r.name) for r in spec.recurrences)
    events: list[Event] = []
    paths = [spec.ics] if isinstance(spec.ics, str) else list(spec.ics or [])
    for i, rel in enumerate(paths):
        loc: tuple[str | int, ...] = ("ics",) if isinstance(spec.ics, str) else ("ics", i)
        path = Path(rel) if Path(rel).is_absolute() else item.file.parent / rel
        from opsflow.schedule.ics import IcsError, parse_events

        try:
            events += parse_events(path.read_text(encoding="utf-8"))
        except OSError as exc:
            problems.add(item, "calendars", loc, f"cannot read {rel!r} ({path}): {exc.strerror or exc}")
        except (IcsError, UnicodeDecodeError) as exc:
            problems.add(item, "calendars", loc, f"{rel}: {exc}")
    return Calendar(name=spec.name, mode=spec.mode, location=spec.location, scope=scope,
                    intervals=tuple(parse_interval(dict(ti)) for ti in spec.time_intervals), dates=tuple(dates),
                    recurrences=recs, events=tuple(events))


def _runbook_path(name: str, runbooks: Path, here: Path) -> Path | None:
    if "/" in name or name.endswith((".yaml", ".yml")):
        p = Path(name)
        for cand in ([p] if p.is_absolute() else [here / p, runbooks / p, runbooks.parent / p]):
            if cand.is_file():
                return cand
        return None
    for suffix in (".yaml", ".yml"):
        if (runbooks / f"{name}{suffix}").is_file():
            return runbooks / f"{name}{suffix}"
    if runbooks.is_dir():
        from opsflow.yamlpos import load_file

        for cand in sorted(runbooks.rglob("*")):
            if cand.suffix in (".yaml", ".yml") and cand.is_file():
                try:
                    tree = load_file(cand)
                except RunbookError:
                    continue
                if isinstance(tree, dict) and tree.get("name") == name:
                    return cand
    return None


_TERMS = re.compile(r"[:,&!\s]+")


def span_text(seconds: float) -> str:
    """7d, 36h, 90m, 45s: the largest unit that divides ``seconds``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def report_label(report: m.ReportSpec) -> str:
    """What a report entry does, where a runbook entry shows its runbook: ``report (html, 7d)``."""
    scope = "".join(f", {k} {v}" for k, v in (("service", report.service), ("hours", report.hours)) if v)
    return f"report ({report.format}, {span_text(report.since)}{scope})"


def _check_report(item: _Item, calendars: dict[str, Calendar], problems: _Problems) -> None:
    spec: m.EntrySpec = item.spec
    assert spec.report is not None
    if spec.report.hours is not None and spec.report.hours not in calendars:
        problems.add(item, "schedules", ("report", "hours"), f"report hours: no calendar {spec.report.hours!r}"
                     f"{_hint(spec.report.hours, calendars)}")
    if not any("succeeded" in n.on or "any" in n.on for n in spec.notify):
        problems.add(item, "schedules", ("notify",) if spec.notify else ("report",), "a report entry sends its "
                     "report to the notify targets that hear of succeeded: add notify: [{to: …, on: [succeeded]}]",
                     value=False)


def _build_entry(item: _Item, calendars: dict[str, Calendar], runbooks: Path, problems: _Problems,
                 check_runbooks: bool) -> Entry:
    spec: m.EntrySpec = item.spec
    for i, name in enumerate(spec.calendars):
        if name not in calendars:
            problems.add(item, "schedules", ("calendars", i), f"no calendar {name!r}{_hint(name, calendars)}")
    runbook_name, path_text, targets_text = spec.runbook or "", None, spec.limit or ""
    if spec.report is not None:
        runbook_name = report_label(spec.report)
        _check_report(item, calendars, problems)
    elif check_runbooks and spec.runbook is not None:
        path = _runbook_path(spec.runbook, runbooks, item.file.parent)
        if path is None:
            problems.add(item, "schedules", ("runbook",), f"runbook {spec.runbook!r} not found (a name in "
                         f"{runbooks}, or a path relative to it or to {item.file.parent})")
        else:
            from opsflow.runbook.validate import load_runbook_cached

            path_text = str(path)
            try:
                rb = load_runbook_cached(path).runbook
            except RunbookError as exc:
                problems.add(item, "schedules", ("runbook",), f"runbook {spec.runbook!r} ({path}) is invalid: "
                             f"{len(exc.diagnostics)} problem(s) (see opsflow validate {path})")
            else:
                runbook_name = rb.name
                targets_text = spec.limit or rb.targets
                for key in spec.params:
                    if key not in rb.params:
                        problems.add(item, "schedules", ("params", key), f"{key!r} is not a param of runbook "
                                     f"{rb.name!r}{_hint(key, rb.params)}", value=False)
                for key, param in rb.params.items():
                    if param.is_required and not param.secret and key not in spec.params:
                        problems.add(item, "schedules", ("params",), f"runbook {rb.name!r} requires param "
                                     f"{key!r}; give it under params:", value=False)
    trigger: Trigger
    tz = spec.timezone
    anchor = _local(spec.start) if spec.start else None
    if spec.cron is not None:
        trigger = CronTrigger(spec.cron, tz)
    elif spec.rrule is not None:
        trigger = RRuleTrigger(spec.rrule, tz, anchor or datetime(2024, 1, 1))
    else:
        assert spec.every is not None
        trigger = EveryTrigger(spec.every, tzmod.to_utc(anchor, tzmod.zone(tz)) if anchor else EPOCH)
    targets = frozenset(t for t in _TERMS.split(targets_text) if t)
    listed = [calendars[n] for n in spec.calendars if n in calendars]
    scoped = [c for c in calendars.values()  # a scope governs runs of runbooks: a report follows only its own
              if c.scope is not None and c not in listed and spec.report is None
              and c.scope.covers(runbook_name, targets)]
    line, _ = item.where("schedules")
    return Entry(name=spec.name, spec=spec, trigger=trigger, calendars=tuple(listed + scoped), runbook=runbook_name,
                 runbook_path=path_text, targets=targets, file=str(item.file), line=line)


def _cycles(entries: list[_Item], problems: _Problems) -> None:
    graph = {e.spec.name: [a.entry for a in e.spec.after] for e in entries}
    items = {e.spec.name: e for e in entries}
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    item = items[node]
                    idx = [a.entry for a in item.spec.after].index(nxt)
                    problems.add(item, "schedules", ("after", idx, "entry"),
                                 f"dependency cycle: {' -> '.join(cycle)}")
            elif state.get(nxt) is None:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


def load_schedules(path: str | Path, runbooks: str | Path | None = None, check_runbooks: bool = True) -> ScheduleSet:
    """Load and check a schedules directory (or one file); RunbookError with every problem found.

    ``runbooks`` is the runbooks directory (default: ``runbooks/`` beside the schedules directory).
    """
    directory = Path(path)
    runbooks_dir = Path(runbooks) if runbooks else (directory if directory.is_dir() else directory.parent).parent / "runbooks"
    problems = _Problems()
    cal_items, entry_items = _read_files(find_schedule_files(directory), problems)
    calendars: dict[str, Calendar] = {}
    for item in cal_items:
        if item.spec.name in calendars:
            problems.add(item, "calendars", ("name",), f"calendar {item.spec.name!r} is defined twice")
            continue
        calendars[item.spec.name] = _build_calendar(item, problems)
    out = ScheduleSet(directory=directory, calendars=calendars)
    names = {e.spec.name for e in entry_items}
    for item in entry_items:
        if item.spec.name in out.entries:
            problems.add(item, "schedules", ("name",), f"schedule entry {item.spec.name!r} is defined twice")
            continue
        for i, dep in enumerate(item.spec.after):
            if dep.entry not in names:
                problems.add(item, "schedules", ("after", i, "entry"), f"no schedule entry {dep.entry!r}"
                             f"{_hint(dep.entry, names)}")
            elif dep.entry == item.spec.name:
                problems.add(item, "schedules", ("after", i, "entry"), "an entry cannot come after itself")
        out.entries[item.spec.name] = _build_entry(item, calendars, runbooks_dir, problems, check_runbooks)
    _cycles(entry_items, problems)
    if problems:
        problems.sort(key=lambda d: (d.file, d.line, d.col))
        if len(problems) > MAX_PROBLEMS:
            last = problems[MAX_PROBLEMS]
            raise RunbookError([*problems[:MAX_PROBLEMS], Diagnostic(last.file, last.line, last.col,
                                f"… and {len(problems) - MAX_PROBLEMS} more problems")])
        raise RunbookError(list(problems))
    return out


def validate_schedules(path: str | Path, runbooks: str | Path | None = None) -> list[Diagnostic]:
    """Every problem of a schedules directory or file (empty when it is valid), for ``opsflow validate``."""
    try:
        load_schedules(path, runbooks)
    except RunbookError as exc:
        return list(exc.diagnostics)
    return []


__all__ = ["ScheduleSet", "find_schedule_files", "load_schedules", "report_label", "span_text", "validate_schedules"]
