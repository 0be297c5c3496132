"""Notifications of the scheduler: an entry's ``notify:`` list → :class:`opsflow.notify.Router`, sent off the loop.

An entry says ``notify: [{to: URL-or-contact, on: [failed, skipped, …]}]``. The schedule's events map
to notification kinds::

    failed → run_failed      skipped → skipped      deferred → rescheduled     misfired → missed
    window_closed → skipped  started, succeeded → report                        any → every one

Contact names resolve in ``contacts`` (name → Apprise URLs) of the project file's ``[notify]`` table
(``contacts = {ops-oncall = ["mailtos://…"]}``); its ``routes`` hear of every entry's events of their kinds. Sending happens on a
small thread pool: a slow channel never delays a fire, and never fails one. A report entry's report is
the exception: it is delivered in its fire's own thread (:meth:`Notices.deliver`), as its outcome.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from opsflow.notify import Delivery, Kind, Notification, Route, Router
from opsflow.redact import Redactor
from opsflow.schedule.slots import Entry

log = logging.getLogger("opsflow.scheduler")

KIND_OF_EVENT: dict[str, Kind] = {
    "failed": Kind.RUN_FAILED, "skipped": Kind.SKIPPED, "deferred": Kind.RESCHEDULED, "misfired": Kind.MISSED,
    "window_closed": Kind.SKIPPED, "started": Kind.REPORT, "succeeded": Kind.REPORT,
}


def from_settings(settings: Any, **kw: Any) -> Notices:
    """Notices with the project file's ``[notify]`` contacts and routes (routes hear of scheduled events too)."""
    table = getattr(settings, "notify", None) or {}
    router = Router.from_config(dict(table)) if table else Router([])
    return Notices(router.contacts, router.routes, **kw)


class Notices:
    """Sends an entry's notifications for a schedule event (``failed``, ``skipped`` …), in the background."""

    def __init__(self, contacts: Mapping[str, Sequence[str]] | None = None, routes: Sequence[Route] = (),
                 timeout: float = 15.0, workers: int = 4) -> None:
        self.contacts = {k: list(v) for k, v in (contacts or {}).items()}
        self.routes = list(routes)  # the project's own routes: they hear of every entry (reports aside)
        self.timeout = timeout
        self._pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="opsflow-notice")
        self._pending: list[cf.Future[list[Delivery]]] = []

    def problems(self, entries: Mapping[str, Entry]) -> list[str]:
        """Notify targets that name no contact: said at start, never fatal (the runs still run)."""
        out = []
        for name, entry in sorted(entries.items()):
            for n in entry.spec.notify:
                if "://" not in n.to and n.to not in self.contacts:
                    known = ", ".join(sorted(self.contacts)) or "none defined: add a [notify] contacts table"
                    out.append(f"schedule entry {name}: notify to {n.to!r} is neither a URL nor a contact "
                               f"(contacts: {known}); those notifications are not sent")
        return out

    def router(self, entry: Entry, event: str) -> Router | None:
        """The routes of ``entry`` that hear of ``event`` (None: nobody)."""
        kind = KIND_OF_EVENT[event]
        routes = [Route(n.to, frozenset({kind})) for n in entry.spec.notify
                  if (event in n.on or "any" in n.on) and ("://" in n.to or n.to in self.contacts)]
        if kind != Kind.REPORT:
            routes += [r for r in self.routes if kind in r.on]
        if not routes:
            return None
        return Router(routes, self.contacts)

    def send(self, entry: Entry, event: str, title: str, body: str = "", *, run_id: str | None = None,
             reason: str | None = None, redactor: Redactor | None = None) -> cf.Future[list[Delivery]] | None:
        router = self.router(entry, event)
        if router is None:
            return None
        note = Notification(KIND_OF_EVENT[event], title, body=body, run_id=run_id, entry=entry.name, reason=reason)
        try:
            future = self._pool.submit(router.send, note, redactor, self.timeout)
        except RuntimeError:  # the pool was shut down: the service is stopping
            log.warning("notification %s of %s not sent: the service is stopping", event, entry.name)
            return None
        self._pending = [f for f in self._pending if not f.done()] + [future]
        return future

    def deliver(self, entry: Entry, note: Notification, redactor: Redactor | None = None) -> list[Delivery] | None:
        """``note`` (a scheduled report) to the entry's targets that hear of ``succeeded``, now, in the caller's
        thread: the caller records what became of it. None: no target (none is a URL or a known contact)."""
        router = self.router(entry, "succeeded")
        if router is None:
            return None
        return router.send(note, redactor, self.timeout)

    def announce(self, kind: Kind, title: str, body: str = "", *, run_id: str | None = None,
                 reason: str | None = None, redactor: Redactor | None = None) -> cf.Future[list[Delivery]] | None:
        """A notification that belongs to no schedule entry (a breaker opened, a run waiting for approval, a
        failed remediation): to the project's routes for its kind, in the background."""
        routes = [r for r in self.routes if kind in r.on]
        if not routes:
            return None
        note = Notification(kind, title, body=body, run_id=run_id, reason=reason)
        try:
            future = self._pool.submit(Router(routes, self.contacts).send, note, redactor, self.timeout)
        except RuntimeError:
            log.warning("notification %s not sent: the service is stopping", kind)
            return None
        self._pending = [f for f in self._pending if not f.done()] + [future]
        return future

    def close(self, timeout: float = 20.0) -> None:
        """Let notifications under way finish (at most ``timeout`` s), then stop."""
        cf.wait(self._pending, timeout=timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["KIND_OF_EVENT", "Notices", "from_settings"]
