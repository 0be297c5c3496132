"""Store rows shaped for the console's pages (pure: no store, no request, no clock read here).

Status is never told by colour alone: each has a symbol and a word (:data:`STATUS`), and the CSS
only adds colour to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from opsflow.auth import Principal, allowed, four_eyes_refusal

# status → (symbol, word, tone): tone picks a colour; the symbol and the word carry the meaning
STATUS: dict[str, tuple[str, str, str]] = {
    "succeeded": ("✓", "succeeded", "good"), "ok": ("✓", "ok", "good"), "changed": ("✎", "changed", "good"),
    "approved": ("✓", "approved", "good"), "run": ("▶", "run", "good"), "fired": ("▶", "fired", "good"),
    "failed": ("✗", "failed", "bad"), "unreachable": ("✗", "unreachable", "bad"), "timeout": ("⌛", "timeout", "bad"),
    "crashed": ("⚠", "crashed", "bad"), "denied": ("✗", "denied", "bad"), "missed": ("✗", "missed", "bad"),
    "partial": ("◐", "partial", "warn"), "abandoned": ("⚠", "abandoned", "warn"), "expired": ("⌛", "expired", "warn"),
    "canceled": ("⊘", "canceled", "muted"), "skipped": ("↷", "skipped", "muted"), "skip": ("↷", "skip", "muted"),
    "defer": ("→", "deferred", "warn"), "deferred": ("→", "deferred", "warn"),
    "running": ("▶", "running", "live"), "waiting": ("‖", "waiting for approval", "wait"),
    "pending": ("·", "pending", "muted"),
}
FINISHED = {"succeeded", "partial", "failed", "canceled", "abandoned", "crashed"}
FAILED_HOST = {"failed", "unreachable", "timeout"}


def status(value: Any) -> dict[str, str]:
    text = str(value or "pending")
    symbol, word, tone = STATUS.get(text, ("•", text, "muted"))
    return {"symbol": symbol, "word": word, "tone": tone, "value": text}


# ---- a run's grid: hosts × steps --------------------------------------------------------------

@dataclass
class Cell:
    status: str
    duration: float | None = None
    attempts: int | None = None
    rc: int | None = None
    changed: bool = False
    error_class: str | None = None
    error: str | None = None
    stdout: str = ""
    stderr: str = ""
    started_at: float | None = None


@dataclass
class Grid:
    hosts: list[str]
    steps: list[tuple[int, str, str]]  # (index, name, phase)
    cells: dict[tuple[str, int, str], Cell] = field(default_factory=dict)

    def cell(self, host: str, index: int, phase: str) -> Cell | None:
        return self.cells.get((host, index, phase))


def grid(run: dict[str, Any], results: list[dict[str, Any]], planned: list[str],
         approvals: list[dict[str, Any]]) -> Grid:
    """The run's hosts (its targets, then any other host a step ran on) × its steps (the runbook's, then any
    other one that recorded a result); each cell the host's last result of the step."""
    hosts = list(run.get("hosts") or {})
    steps: list[tuple[int, str, str]] = [(i, name, "main") for i, name in enumerate(planned)]
    cells: dict[tuple[str, int, str], Cell] = {}
    for r in results:
        host, index, phase = str(r["host"]), int(r["step_index"] or 0), str(r.get("phase") or "main")
        if host not in hosts:
            hosts.append(host)
        column = (index, str(r["step"]), phase)
        if not any(s[0] == index and s[2] == phase for s in steps):
            steps.append(column)
        cells[(host, index, phase)] = Cell(
            status=str(r["status"]), duration=r.get("duration"), attempts=r.get("attempts"), rc=r.get("rc"),
            changed=bool(r.get("changed")), error_class=r.get("error_class"), error=r.get("error"),
            stdout=r.get("stdout") or "", stderr=r.get("stderr") or "", started_at=r.get("started_at"))
    for a in approvals:
        if a.get("state") == "pending":
            for host in hosts:
                cells.setdefault((host, int(a["step_index"]), "main"), Cell(status="waiting"))
    steps.sort(key=lambda s: (s[2] != "main", s[0] if s[2] == "main" else -s[0]))
    return Grid(hosts, steps, cells)


def failed_hosts(run: dict[str, Any]) -> list[str]:
    return [h for h, s in (run.get("hosts") or {}).items() if s in FAILED_HOST]


def param_hints(params: dict[str, Any]) -> list[str]:
    """A runbook's params as the start form shows them: ``name=default`` (``name=`` when required),
    ``(secret)`` and the choices noted; never a secret's default."""
    out = []
    for name, p in params.items():
        default = "" if p.secret or p.default is None else str(p.default)
        notes = [n for n in ("required" if p.is_required else "", "secret" if p.secret else "",
                             f"one of {', '.join(map(str, p.choices))}" if p.choices else "") if n]
        out.append(f"{name}={default}" + (f"  # {'; '.join(notes)}" if notes else ""))
    return out


# ---- what a viewer may do with a run ------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    name: str
    allowed: bool
    reason: str = ""  # why not, when not allowed


def decision_action(principal: Principal, run: dict[str, Any], approval: dict[str, Any] | None,
                    outside: str | None = None) -> Action:
    """Approve/deny of the run's pending approval: approvers in scope (``outside``: why the run's hosts are not
    all in the principal's groups), never the run's starter (four-eyes)."""
    if approval is None or approval.get("state") != "pending":
        return Action("decide", False, "no approval is waiting")
    required = approval.get("four_eyes")
    refusal = four_eyes_refusal(principal.name, run.get("started_by"), required=required is None or bool(required))
    if refusal:
        return Action("decide", False, refusal)
    if not allowed(principal, "approve", run.get("runbook")):
        return Action("decide", False, f"approving needs the approver role for runbook {run.get('runbook')} "
                                        f"(you are {principal.role})")
    if outside:
        return Action("decide", False, outside)
    return Action("decide", True)


def operator_action(principal: Principal, run: dict[str, Any], permission: str, applies: bool,
                    why_not: str, outside: str | None = None) -> Action:
    if not applies:
        return Action(permission, False, why_not)
    if not allowed(principal, permission, run.get("runbook")):
        return Action(permission, False, f"needs the operator role for runbook {run.get('runbook')} "
                                         f"(you are {principal.role})")
    if outside:
        return Action(permission, False, f"needs the run's hosts in your inventory groups: {outside}")
    return Action(permission, True)


# ---- the schedule: coming slots by day, past marks --------------------------------------------

@dataclass
class Day:
    day: date
    windows: list[dict[str, Any]] = field(default_factory=list)
    slots: list[dict[str, Any]] = field(default_factory=list)
    past: list[dict[str, Any]] = field(default_factory=list)


def _hm(t: datetime, z: tzinfo) -> str:
    return t.astimezone(z).strftime("%H:%M")


def calendar_days(fc: Any, z: tzinfo, fires: list[dict[str, Any]], past_days: int) -> list[Day]:
    """Days from ``past_days`` before the forecast's start to its end: each day's windows and blackouts,
    coming slots (run, skip, defer and why) and past fire decisions (fired, skipped, missed, deferred)."""
    first = (fc.start - timedelta(days=past_days)).astimezone(z).date()
    last = (fc.end - timedelta(microseconds=1)).astimezone(z).date()
    days: list[Day] = []
    d = first
    while d <= last:
        days.append(Day(d))
        d += timedelta(days=1)
    index = {x.day: x for x in days}
    for name, mode, a, b in fc.windows:
        d = a.astimezone(z).date()
        while d <= b.astimezone(z).date() and d <= last:
            lo = datetime.combine(d, datetime.min.time(), z)
            hi = lo + timedelta(days=1)
            if d in index and a < hi and b > lo:
                index[d].windows.append({"calendar": name, "blackout": mode != "allowed",
                                         "span": f"{_hm(max(a, lo), z)}–{'24:00' if b >= hi else _hm(b, z)}"})
            d += timedelta(days=1)
    for name, s in fc.slots:
        d = s.at.astimezone(z).date()
        if d in index:
            index[d].slots.append({"entry": name, "at": _hm(s.at, z), "action": s.action, "reason": s.reason,
                                   "to": s.to.astimezone(z).strftime("%a %d %b %H:%M") if s.to else None})
    for f in fires:
        at = datetime.fromtimestamp(float(f["slot"]), z)
        if at.date() in index and at < fc.start:
            index[at.date()].past.append({**f, "at": _hm(at, z), "mark": mark(f)})
    for x in days:
        x.past.sort(key=lambda f: f["at"])
        x.slots = _group(x.slots)
    return days


def mark(fire: dict[str, Any]) -> str:
    """What became of a past slot: fired (and its outcome), skipped, missed or deferred."""
    decision = str(fire.get("decision") or "")
    if decision in ("skipped", "missed", "deferred"):
        return decision
    if decision == "fired":
        return str(fire.get("outcome") or "fired")
    return decision or "pending"


def _group(slots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive alike slots of one entry (an ``every: 15m`` entry) as one row with a count."""
    out: list[dict[str, Any]] = []
    last: dict[str, dict[str, Any]] = {}
    for s in slots:
        prev = last.get(s["entry"])
        if prev is not None and prev is out[-1] and (prev["action"], prev["to"]) == (s["action"], s["to"]):
            prev["count"] += 1
            prev["until"] = s["at"]
            continue
        row = {**s, "count": 1, "until": None}
        out.append(row)
        last[s["entry"]] = row
    return out


__all__ = ["FINISHED", "STATUS", "Action", "Cell", "Day", "Grid", "calendar_days", "decision_action",
           "failed_hosts", "grid", "mark", "operator_action", "param_hints", "status"]
