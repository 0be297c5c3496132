"""Approvals go to the runbook's owners, and escalate when nobody answers in time.

When an approval step starts waiting, :class:`ApprovalNotices` tells the runbook's ``owners`` (through
:mod:`opsflow.notify`, i.e. Apprise) what waits — runbook, run, step, message, who started it, the deadline and
how to approve — and, while the approval is still pending ``after`` each level of the step's ``escalate`` list,
that level's contacts. Each notification is in the audit log (actor ``opsflow``, action ``approval_notified`` or
``approval_escalated``, target the run id, detail the recipients' *names*: never a URL's secrets).

A name resolves, in order, to: a user of the store (its ``contact``: an Apprise URL, or an e-mail address sent
through the SMTP server of the first ``mailto://`` contact of ``[notify]``); a contact (team) of the project
file's ``[notify]`` table; the users whose ``groups`` hold the name; else, with ``://``, an Apprise URL itself.

Sending never blocks nor fails the run: it happens on its own thread, each send bounded by ``timeout``; a
failure is logged (masked) and recorded in the audit detail, nothing more. The thread stops waiting as soon as
the approval is decided (:meth:`ApprovalNotices.stop`), and sends nothing more then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from opsflow.errors import OpsflowError
from opsflow.notify import DEFAULT_TIMEOUT, Kind, Notification, Notifier, Router, masked_url
from opsflow.redact import Redactor

if TYPE_CHECKING:
    from opsflow.store.base import Store

log = logging.getLogger(__name__)

ACTOR = "opsflow"
NOTIFIED = "approval_notified"
ESCALATED = "approval_escalated"


@dataclass(frozen=True)
class Waiting:
    """An approval that waits: what the notifications say about it."""

    run_id: str
    step_index: int
    runbook: str
    step: str
    message: str
    started_by: str
    requested_at: float
    deadline: float


@dataclass(frozen=True)
class Level:
    after: float            # seconds after the request
    to: tuple[str, ...]     # names (users, contacts, teams) or Apprise URLs


def for_humans(seconds: float) -> str:
    """15 min, 2 s, 1.5 h, 2 d."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def _stamp(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(at))


def _notify_settings() -> tuple[dict[str, list[str]], str | None]:
    """The ``[notify]`` contacts and the server URL of the settings in force (none when unreadable)."""
    from opsflow.settings import current

    try:
        settings = current()
        table = dict(getattr(settings, "notify", None) or {})
        contacts = Router.from_config(table).contacts if table else {}
    except OpsflowError as exc:
        log.warning("approval notifications: the [notify] settings are not usable: %s", exc)
        return {}, None
    server = getattr(settings, "server", None)
    return contacts, (str(server).rstrip("/") if server else None)


def _email_url(address: str, contacts: Mapping[str, Sequence[str]]) -> str | None:
    """``address`` through the SMTP server of the first mailto(s):// contact (its ``to`` replaced)."""
    for urls in contacts.values():
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme in ("mailto", "mailtos"):
                query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("to", "cc", "bcc")]
                return urlunsplit(parts._replace(query=urlencode([*query, ("to", address)])))
    return None


class Recipients:
    """Names → Apprise URLs: users of the store, ``[notify]`` contacts, users' groups, Apprise URLs."""

    def __init__(self, store: Store, contacts: Mapping[str, Sequence[str]]) -> None:
        self.store = store
        self.contacts = {k: list(v) for k, v in contacts.items()}

    def _user(self, name: str) -> Any:
        try:
            return self.store.get_user(name)
        except (OpsflowError, AttributeError, ValueError):  # a store without users, or a name no user may have
            return None

    def _contact_of(self, user: Any) -> list[str]:
        contact = getattr(user, "contact", None)
        if not contact or getattr(user, "disabled", False):
            return []
        if "://" in contact:
            return [contact]
        url = _email_url(contact, self.contacts)
        if url is None:
            log.warning("approval notifications: user %s has the e-mail address %s, but no mailto:// contact of "
                        "[notify] says which SMTP server sends it", user.name, contact)
            return []
        return [url]

    def _group(self, name: str) -> list[str]:
        try:
            users = self.store.list_users()
        except (OpsflowError, AttributeError):
            return []
        return [url for u in users if name in u.groups for url in self._contact_of(u)]

    def resolve(self, names: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
        """(URLs, the names shown for them, the names nobody answers to)."""
        urls: list[str] = []
        shown: list[str] = []
        unknown: list[str] = []
        for name in dict.fromkeys(names):
            user = None if "://" in name else self._user(name)
            if user is not None:
                found = self._contact_of(user)
            elif name in self.contacts:
                found = self.contacts[name]
            elif "://" in name:
                found = [name]
            else:
                found = self._group(name)
            if found:
                urls += found
                shown.append(masked_url(name) if "://" in name else name)
            else:
                unknown.append(masked_url(name) if "://" in name else name)
        return list(dict.fromkeys(urls)), shown, unknown


class ApprovalNotices:
    """Tells the owners of one waiting approval, then each escalation level still pending after its time."""

    def __init__(self, store: Store, waiting: Waiting, owners: Sequence[str], levels: Sequence[Level],
                 redactor: Redactor, *, contacts: Mapping[str, Sequence[str]] | None = None,
                 server: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.store = store
        self.waiting = waiting
        self.owners = list(owners)
        self.levels = sorted(levels, key=lambda lv: lv.after)
        self.redactor = redactor
        self.timeout = timeout
        if contacts is None:
            contacts, server = _notify_settings()
        self.recipients = Recipients(store, contacts)
        self.server = server
        self._stop = threading.Event()
        # not a daemon: a notification under way is finished (within ``timeout``) before the process exits
        self._thread = threading.Thread(target=self._run, name=f"opsflow-approval-{waiting.run_id}")

    def start(self) -> ApprovalNotices:
        if self.owners or self.levels:
            self._thread.start()
        return self

    def stop(self) -> None:
        """The approval is decided (or the run ends): no further notification."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ---- the thread ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            if self.owners:
                self._send(self.owners, NOTIFIED, None)
            for level in self.levels:
                if self._stop.wait(max(0.0, self.waiting.requested_at + level.after - time.time())):
                    return
                if not self._pending():
                    return
                self._send(level.to, ESCALATED, level.after)
        except Exception:  # a bug of ours must never reach the run: logged, nothing more
            log.exception("approval notifications of run %s stopped", self.waiting.run_id)

    def _pending(self) -> bool:
        if self._stop.is_set():
            return False
        try:
            decision = self.store.approval(self.waiting.run_id, self.waiting.step_index)
        except OpsflowError as exc:
            log.warning("approval notifications of run %s: %s", self.waiting.run_id, exc)
            return True
        return decision is not None and decision["state"] == "pending"

    def _send(self, names: Sequence[str], action: str, after: float | None) -> None:
        urls, shown, unknown = self.recipients.resolve(names)
        deliveries = Notifier(urls, self.redactor, self.timeout).send(self.notification(after)) if urls else []
        failed = [d for d in deliveries if not d.ok]
        detail = f"to {', '.join(shown) or 'nobody'}"
        if unknown:
            detail += f"; unknown: {', '.join(unknown)}"
            log.warning("approval of run %s: no contact for %s (users, [notify] contacts, groups or Apprise URLs)",
                        self.waiting.run_id, ", ".join(unknown))
        if failed:
            detail += f"; {len(failed)} of {len(deliveries)} deliveries failed"
        try:
            self.store.audit(ACTOR, action, self.waiting.run_id, self.redactor.text(detail))
        except OpsflowError as exc:
            log.warning("approval of run %s: the notification was not audited: %s", self.waiting.run_id, exc)

    def notification(self, after: float | None) -> Notification:
        w = self.waiting
        title = f"approval needed: {w.runbook}, run {w.run_id}, step {w.step}"
        reason = None
        if after is not None:
            reason = f"escalated: not answered in {for_humans(after)}"
            title = f"{reason} — {title}"
        lines = [w.message, "",
                 f"Runbook: {w.runbook}", f"Run: {w.run_id}", f"Step: {w.step}", f"Started by: {w.started_by}",
                 f"Deadline: {_stamp(w.deadline)} (no decision by then means deny)", "",
                 f"Approve: opsflow approve {w.run_id}", f"Deny: opsflow deny {w.run_id}"]
        links = {"console": f"{self.server}/runs/{w.run_id}"} if self.server else {}
        return Notification(Kind.APPROVAL_WAITING, title, body="\n".join(lines), run_id=w.run_id, entry=w.runbook,
                            reason=reason, links=links)


__all__ = ["ESCALATED", "NOTIFIED", "ApprovalNotices", "Level", "Recipients", "Waiting", "for_humans"]
