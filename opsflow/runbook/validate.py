"""Runbook validation: schema, unknown keys, types, templates, playbooks, targets.

Every problem is reported as ``file:line:col: message``; all problems of a file at once.
"""

from __future__ import annotations

import difflib
import hashlib
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from opsflow.errors import Diagnostic, InventoryError, RunbookError
from opsflow.inventory.models import Inventory
from opsflow.postree import PosDict, PosList, position, read_text
from opsflow.runbook import cache, render
from opsflow.runbook.cache import TemplateUse
from opsflow.runbook.limits import MAX_DIAGNOSTICS, MAX_TEMPLATES
from opsflow.runbook.models import Check, Runbook, Step


@dataclass(frozen=True)
class LoadedRunbook:
    """A validated runbook together with where it came from."""

    runbook: Runbook
    path: Path
    tree: PosDict
    text: str

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def root(self) -> Path:
        return project_root(self.path)

    def where(self, *loc: str | int, value: bool = False) -> tuple[int, int]:
        return position(self.tree, loc, value)


def project_root(path: Path) -> Path:
    """The directory holding runbooks/ and playbooks/ (nearest ancestor with playbooks/)."""
    for parent in path.resolve().parents:
        if (parent / "playbooks").is_dir():
            return parent
    return path.resolve().parent.parent if path.resolve().parent.name == "runbooks" else path.resolve().parent


def resolve_playbook(root: Path, runbook_path: Path, name: str) -> Path | None:
    for candidate in (Path(name), runbook_path.parent / name, root / "playbooks" / name):
        if candidate.is_file():
            return candidate.resolve()
    return None


def resolve_runbook(root: Path, runbook_path: Path, name: str) -> Path | None:
    for candidate in (Path(name), runbook_path.parent / name, root / "runbooks" / name):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _pydantic_diagnostics(exc: ValidationError, tree: Any, filename: str) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: set[tuple[Any, ...]] = set()
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        tree_loc = tuple(p for p in loc if p not in ("str", "int", "list[str]", "dict[str,any]", "bool", "float"))
        key = (tree_loc, err["type"])
        if key in seen:
            continue
        seen.add(key)
        line, col = position(tree, tree_loc)
        where = ".".join(str(p) for p in tree_loc) or "runbook"
        if err["type"] == "extra_forbidden":
            name = str(tree_loc[-1])
            model = _model_at(tree_loc[:-1])
            hint = ""
            if model is not None:
                close = difflib.get_close_matches(name, _allowed_keys(model), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {', '.join(_allowed_keys(model))}"
            msg = f"unknown key {name!r}{hint}"
        elif err["type"] == "missing":
            msg = f"missing required key {str(tree_loc[-1])!r}"
        else:
            text = err["msg"].removeprefix("Value error, ")
            msg = f"{where}: {text}"
            if err["type"] not in ("value_error", "assertion_error") and "input" in err:
                msg += f" (got {_kind(err['input'])} {_shown(err['input'])})"
        out.append(Diagnostic(filename, line, col, msg))
    return out


def _kind(value: Any) -> str:
    return "mapping" if isinstance(value, dict) else "list" if isinstance(value, list) else type(value).__name__


def _shown(value: Any) -> str:
    """A value in a message: short, and never failing (a huge int cannot even be turned into text)."""
    try:
        return repr((value if isinstance(value, str) else _REPR.repr(value))[:60])
    except Exception:  # noqa: BLE001
        return "…"


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60


def _model_at(loc: tuple[Any, ...]) -> Any:
    """The model class that validates the mapping at a path of the runbook tree."""
    from opsflow.runbook import models as m

    if not loc:
        return Runbook
    if loc[0] in ("steps", "on_failure"):
        if len(loc) == 2:
            return Step
        if len(loc) >= 3:
            sub = {"ansible": m.AnsibleAction, "command": m.CommandAction, "local": m.CommandAction,
                   "network.command": m.NetworkCommandAction, "network.config": m.NetworkConfigAction,
                   "network.backup": m.NetworkBackupAction, "network.restore": m.NetworkRestoreAction,
                   "backup": m.BackupAction, "restore": m.RestoreAction, "approve": m.ApproveAction,
                   "runbook": m.RunbookAction}
            if loc[2] == "verify":
                return Check
            return sub.get(str(loc[2]))
    if loc[0] == "params" and len(loc) == 2:
        return m.Param
    return None


def template_uses(lrb: LoadedRunbook) -> tuple[TemplateUse, ...]:
    """Every template of the runbook, compiled as a run compiles it: its problem, or the variables it names
    that the runbook itself does not define (these depend on the runbook alone: see opsflow.runbook.cache)."""
    rb = lrb.runbook
    out: list[TemplateUse] = []
    registered: set[str] = set()
    base = set(rb.params) | render.BUILTINS

    def walk(node: Any, loc: tuple[str | int, ...], names: set[str], expr: bool = False) -> None:
        if isinstance(node, str):
            if not (expr or render.is_template(node)) or len(out) > MAX_TEMPLATES:
                return
            if len(out) == MAX_TEMPLATES:
                out.append(TemplateUse(loc, f"more than {MAX_TEMPLATES} templates in one runbook (the limit); "
                                            "split it into runbooks, or move data out of it", frozenset()))
                return
            problem, used = render.check_syntax(node, expression=expr)
            out.append(TemplateUse(loc, problem, frozenset(used - names)))
        elif isinstance(node, dict):
            for k, v in node.items():
                top = len(loc) == 2
                result_names = {"result", "rc", "stdout", "stderr"} if k in ("changed_when", "failed_when") else set()
                walk(v, (*loc, k), names | result_names,
                     expr=top and k in ("when", "changed_when", "failed_when"))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*loc, i), names)

    for section in ("steps", "on_failure"):
        raw = lrb.tree.get(section) or []
        for i, step in enumerate(raw):
            walk(step, (section, i), base | registered)
            if isinstance(step, dict) and isinstance(step.get("register"), str):
                registered.add(step["register"])
    return tuple(out)


def _template_diagnostics(lrb: LoadedRunbook, uses: tuple[TemplateUse, ...], known: set[str] | None) -> list[Diagnostic]:
    """Templates compile; with an inventory, every variable a template names is known."""
    out = []
    for use in uses:
        line, col = lrb.where(*use.loc, value=True)
        if use.problem:
            out.append(Diagnostic(str(lrb.path), line, col, use.problem))
        elif known is not None:
            for name in sorted(use.free - known):
                out.append(Diagnostic(str(lrb.path), line, col,
                                      f"undefined template variable {name!r}: not a param, registered "
                                      "result or inventory variable (declare it under params:)"))
    return out


def _semantic_diagnostics(lrb: LoadedRunbook, inventory: Inventory | None,
                          uses: tuple[TemplateUse, ...]) -> list[Diagnostic]:
    rb, f, out = lrb.runbook, str(lrb.path), []
    known = None
    if inventory is not None and any(u.free for u in uses):
        known = {k for h in inventory.hosts.values() for k in h.vars}
    out += _template_diagnostics(lrb, uses, known)
    for section in ("steps", "on_failure"):
        for i, step in enumerate(getattr(rb, section)):
            if step.ansible and resolve_playbook(lrb.root, lrb.path, step.ansible.playbook) is None:
                line, col = lrb.where(section, i, "ansible")
                out.append(Diagnostic(f, line, col, f"playbook {step.ansible.playbook!r} not found "
                                      f"(looked in {lrb.root / 'playbooks'} and {lrb.path.parent})"))
            if step.runbook and resolve_runbook(lrb.root, lrb.path, step.runbook.path) is None:
                line, col = lrb.where(section, i, "runbook")
                out.append(Diagnostic(f, line, col, f"runbook {step.runbook.path!r} not found "
                                      f"(looked in {lrb.path.parent} and {lrb.root / 'runbooks'})"))
            if step.hosts and inventory is not None:
                try:
                    inventory.select_or_fail(step.hosts, "hosts")
                except InventoryError as exc:
                    line, col = lrb.where(section, i, "hosts", value=True)
                    out.append(Diagnostic(f, line, col, str(exc)))
    if inventory is not None:
        try:
            inventory.select_or_fail(rb.targets, "targets")
        except InventoryError as exc:
            line, col = lrb.where("targets", value=True)
            out.append(Diagnostic(f, line, col, str(exc)))
    for name, param in rb.params.items():
        if param.secret and param.default is not None:
            line, col = lrb.where("params", name, "default")
            out.append(Diagnostic(f, line, col, f"secret param {name!r} must not have a default in the file; "
                                  "pass it with -e or the environment"))
    return out


def _capped(problems: list[Diagnostic]) -> RunbookError:
    """All problems of a file, but no flood: after MAX_DIAGNOSTICS, how many more there are."""
    if len(problems) <= MAX_DIAGNOSTICS:
        return RunbookError(problems)
    last = problems[MAX_DIAGNOSTICS]
    more = Diagnostic(last.file, last.line, last.col, f"… and {len(problems) - MAX_DIAGNOSTICS} more problems")
    return RunbookError([*problems[:MAX_DIAGNOSTICS], more])


def load_runbook(path: str | Path, inventory: Inventory | None = None) -> LoadedRunbook:
    """Load and validate a runbook file; raise RunbookError with every problem found.

    What depends on the file alone comes from the cache of validated runbooks when its text was seen
    before (:mod:`opsflow.runbook.cache`); what depends on the inventory and other files is checked each time.
    """
    p = Path(path)
    try:
        text = read_text(p)  # refuses a file over the size limit
    except RunbookError as exc:
        raise _capped(exc.diagnostics) from None
    entry = cache.get(text)
    if entry is None:
        entry = _validate(text, p)
        if not any(u.problem for u in entry.templates):
            cache.put(text, entry)
    lrb = LoadedRunbook(runbook=entry.runbook, path=p, tree=entry.tree, text=text)
    problems = _semantic_diagnostics(lrb, inventory, entry.templates)
    if problems:
        raise _capped(problems)
    return lrb


def _validate(text: str, p: Path) -> cache.Entry:
    """What can be known of a runbook from its text alone: its model, its tree, its templates."""
    from opsflow.yamlpos import load_text  # the YAML parser: not needed for a runbook from the cache

    try:
        tree = load_text(text, str(p))
    except RunbookError as exc:
        raise _capped(exc.diagnostics) from None
    if not isinstance(tree, PosDict):
        raise RunbookError([Diagnostic(str(p), 1, 1, "a runbook must be a YAML mapping with name, targets, steps")])
    try:
        runbook = Runbook.model_validate(tree)
    except ValidationError as exc:
        raise _capped(_pydantic_diagnostics(exc, tree, str(p))) from None
    return cache.Entry(runbook, tree, template_uses(LoadedRunbook(runbook=runbook, path=p, tree=tree, text=text)))


_CACHE: dict[tuple[str, int, int, int], LoadedRunbook] = {}


def load_runbook_cached(path: str | Path, inventory: Inventory | None = None) -> LoadedRunbook:
    """``load_runbook``, reused while the file and the inventory object are the same."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return load_runbook(p, inventory)
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size, id(inventory))
    hit = _CACHE.get(key)
    if hit is None:
        if len(_CACHE) > 256:
            _CACHE.clear()
        hit = _CACHE[key] = load_runbook(p, inventory)
    return hit


def find_runbooks(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out += sorted(x for x in p.rglob("*") if x.suffix in (".yml", ".yaml") and x.is_file())
        else:
            out.append(p)
    return out


__all__ = ["LoadedRunbook", "PosList", "find_runbooks", "load_runbook", "project_root", "resolve_playbook",
           "resolve_runbook"]
