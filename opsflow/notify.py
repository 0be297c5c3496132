"""Notifications to the relevant people, through Apprise (e-mail, Slack, Teams, webhooks …).

A :class:`Notification` says what happened (its ``kind``: a task rescheduled, skipped or missed, a
run failed or waiting for approval, a breaker opened, a service level breached, a report); a
:class:`Router` says who hears of which kind (``{to: URL-or-contact, on: [kinds]}`` and named
``contacts``); a :class:`Notifier` sends one notification to its targets and returns one
:class:`Delivery` per target. Channels are Apprise's (its URLs: ``mailto://``, ``mailtos://``,
``slack://``, ``msteams://``, ``json://``, ``form://``, ``xml://`` …), never hand-written.

Guarantees:

- **Secrets never appear.** Every text field (title, body, reason, links, names) and every text
  attachment passes the :class:`~opsflow.redact.Redactor` given to the Notifier; the secrets held in
  the target URLs themselves (passwords, tokens — what Apprise's own ``url(privacy=True)`` hides)
  are added to it, so a token pasted into a body is masked too. ``Delivery.target`` is Apprise's
  privacy form of the URL (``mailto://ops:****@smtp…``), and the records Apprise and urllib3 log
  are masked before any handler sees them.
- **Data is never markup.** Texts are sent as plain text (Apprise escapes them for channels that
  want HTML), control characters are made visible (:mod:`opsflow.textsafe`), a title is one line.
  An HTML report goes as an attached file, never as the body.
- **A channel never fails the caller.** ``send`` never raises for a failing channel: a dead, slow or
  misconfigured target is a failed Delivery with its (masked) error, and every target is sent
  concurrently within ``timeout`` seconds, after which those still going are reported as timed out.

Escalation of an approval nobody answered (a runbook's ``owners``, an approval step's ``escalate``
levels) is :mod:`opsflow.approvals_notify`: its acknowledgement is the approval decided in the store.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from opsflow.errors import UsageError
from opsflow.redact import MASK, MIN_SECRET, Redactor
from opsflow.textsafe import for_terminal

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 15.0
MAX_TEXT_ATTACHMENT = 20 * 1024 * 1024  # text attachments larger than this are sent as they are


class NotifyError(UsageError):
    """The notification configuration is invalid (an unknown kind or contact, a URL no channel takes)."""


class Kind(StrEnum):
    RESCHEDULED = "rescheduled"
    SKIPPED = "skipped"
    MISSED = "missed"
    RUN_FAILED = "run_failed"
    APPROVAL_WAITING = "approval_waiting"
    BREAKER_OPENED = "breaker_opened"
    SLO_BREACHED = "slo_breached"
    REPORT = "report"


KINDS = tuple(k.value for k in Kind)
_SEVERITY = {Kind.RUN_FAILED: "failure", Kind.BREAKER_OPENED: "failure", Kind.SLO_BREACHED: "failure",
             Kind.MISSED: "warning", Kind.SKIPPED: "warning", Kind.RESCHEDULED: "warning",
             Kind.APPROVAL_WAITING: "warning", Kind.REPORT: "info"}


@dataclass
class Notification:
    kind: Kind | str
    title: str
    body: str = ""
    run_id: str | None = None
    entry: str | None = None          # the schedule entry or runbook concerned
    reason: str | None = None
    links: Mapping[str, str] = field(default_factory=dict)   # label → URL, shown as plain text
    attachments: Sequence[str | Path] = ()                    # files, e.g. an HTML report

    def __post_init__(self) -> None:
        self.kind = _kind(self.kind)


def _kind(kind: Kind | str) -> Kind:
    try:
        return Kind(kind)
    except ValueError:
        raise NotifyError(f"unknown notification kind {kind!r} (known: {', '.join(KINDS)})") from None


@dataclass(frozen=True)
class Delivery:
    """The outcome of one notification to one target; ``target`` has its secrets masked."""

    target: str
    ok: bool
    error: str | None = None
    seconds: float = 0.0

    @property
    def status(self) -> str:
        return "ok" if self.ok else "failed"


# ---- URL secrets ---------------------------------------------------------------------------------------------
def _instantiate(url: str) -> Any:
    import apprise

    try:
        return apprise.Apprise.instantiate(url, asset=_asset())
    except Exception:  # an Apprise plugin refusing a URL in any way: the URL is unusable, never fatal
        return None


def masked_url(url: str) -> str:
    """``url`` as Apprise shows it privately (passwords and tokens masked); our own mask where Apprise cannot."""
    plugin = _instantiate(url)
    if plugin is not None:
        try:
            return str(plugin.url(privacy=True))
        except Exception:  # a plugin's url() failing: fall back to the crude mask below
            pass
    return _crude_mask(url)


def _crude_mask(url: str) -> str:
    """scheme://[user:****@]host[:port]/**** — everything but the scheme, user and host is hidden."""
    if "://" not in url:
        return MASK
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return f"{url.partition('://')[0]}://{MASK}"
    user = f"{parts.username}{':****' if parts.password is not None else ''}@" if parts.username else ""
    rest = f"/{MASK}" if (parts.path.strip("/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{user}{host}{port}{rest}"


_SECRET_KEY = re.compile(r"token|key|secret|pass|pwd|auth|signature|sig$|credential|session|cookie", re.I)


def url_secrets(url: str) -> set[str]:
    """The parts of ``url`` that are secret: its password, what Apprise's privacy form of it hides, and
    the values of query parameters named like secrets (``-token=…`` GET parameters and ``+X-Api-Key=…``
    headers of ``json://``/``form://``/``xml://``, which Apprise shows as they are)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return {url}
    query = parse_qsl(parts.query, keep_blank_values=True)
    secrets = {unquote(password)} if password else set()
    secrets |= {value for key, value in query if _SECRET_KEY.search(key.lstrip("+-:"))}
    _log_mask().add(_forms(secrets))  # before Apprise parses the URL: it logs the URL as it sees it
    shown = unquote(masked_url(url))
    path = [unquote(s) for s in re.split(r"[/,]", parts.netloc.rpartition("@")[2] + parts.path)]
    path += [unquote(parts.fragment)] if parts.fragment else []
    secrets |= {c for c in path if c not in shown}
    secrets |= {value for key, value in query if value not in shown and f"{key}=" in shown}
    return _forms(secrets)


def _forms(secrets: set[str]) -> set[str]:
    """The secrets long enough to mask, as written and URL-quoted."""
    secrets = {s for s in secrets if len(s) >= MIN_SECRET}
    return secrets | {quote(s, safe="") for s in secrets}


class _LogMask(logging.Filter):
    """Masks URL secrets in the records of the libraries that carry them (Apprise, urllib3)."""

    def __init__(self) -> None:
        super().__init__()
        self.redactor = Redactor()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self.redactor.add(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redactor:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record: leave it to logging's own error handling
                return True
            record.msg, record.args = self.redactor.text(message), None
        return True


_LOG_MASK: _LogMask | None = None
_MASKED_LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.util.retry", "requests")
_mask_lock = threading.Lock()


def _log_mask() -> _LogMask:
    global _LOG_MASK
    with _mask_lock:
        if _LOG_MASK is None:
            _LOG_MASK = _LogMask()
            for name in _MASKED_LOGGERS:
                logging.getLogger(name).addFilter(_LOG_MASK)
        return _LOG_MASK


def _asset() -> Any:
    import apprise

    return apprise.AppriseAsset(app_id="opsflow", app_desc="opsflow notifications",
                                storage_mode="memory", secure_logging=True)


class _Combined(Redactor):
    """The caller's Redactor, then the target URLs' secrets."""

    def __init__(self, first: Redactor | None, secrets: Iterable[str]) -> None:
        super().__init__(secrets)
        self._first = first

    def __bool__(self) -> bool:
        return super().__bool__() or bool(self._first)

    def text(self, value: str) -> str:
        return super().text(self._first.text(value) if self._first is not None else value)


# ---- texts ----------------------------------------------------------------------------------------------------
def _line(text: str) -> str:
    return " ".join(for_terminal(text).split())


def render(notification: Notification, redactor: Redactor) -> tuple[str, str]:
    """(title, body) as plain text, redacted, control characters made visible."""
    n = notification
    title = _line(redactor.text(n.title)) or str(n.kind)
    lines = [redactor.text(n.body)] if n.body else []
    facts = [("kind", str(n.kind)), ("run", n.run_id), ("entry", n.entry), ("reason", n.reason)]
    details = [f"{name}: {_line(redactor.text(value))}" for name, value in facts if value]
    links = [f"{_line(redactor.text(label))}: {_line(redactor.text(url))}" for label, url in n.links.items()]
    attached = [f"attached: {_line(redactor.text(Path(p).name))}" for p in n.attachments]
    for block in (details, links, attached):
        if block:
            lines.append("\n".join(block))
    return title, for_terminal("\n\n".join(lines))


def _prepare_attachments(paths: Sequence[str | Path], redactor: Redactor, workdir: Path) -> tuple[list[str], list[str]]:
    """Redacted copies of text attachments (binary ones as they are); and the problems met."""
    ready: list[str] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        try:
            if not path.is_file():
                problems.append(f"attachment {path.name} is not a readable file")
                continue
            if redactor and path.stat().st_size <= MAX_TEXT_ATTACHMENT:
                data = path.read_bytes()
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    ready.append(str(path))
                    continue
                copy = workdir / str(len(ready)) / path.name
                copy.parent.mkdir()
                copy.write_text(redactor.text(text), encoding="utf-8")
                ready.append(str(copy))
            else:
                ready.append(str(path))
        except OSError as exc:
            problems.append(f"attachment {path.name}: {exc.strerror}")
    return ready, problems


# ---- sending -------------------------------------------------------------------------------------------------
class Notifier:
    """Sends notifications to Apprise URLs; ``send`` returns one Delivery per target and never raises."""

    def __init__(self, targets: Sequence[str], redactor: Redactor | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.targets = list(dict.fromkeys(targets))
        self.timeout = timeout
        secrets: set[str] = set()
        for url in self.targets:
            secrets |= url_secrets(url)
        _log_mask().add(secrets)
        self.redactor: Redactor = _Combined(redactor, secrets)  # the caller's secrets, and the URLs' own
        self.shown = {url: self.redactor.text(masked_url(url)) for url in self.targets}

    def __repr__(self) -> str:
        return f"Notifier({list(self.shown.values())!r})"

    def send(self, notification: Notification) -> list[Delivery]:
        if not self.targets:
            return []
        try:
            title, body = render(notification, self.redactor)
        except Exception as exc:  # a bug of ours must not fail the run that notifies
            log.warning("notification %s not sent: %s", notification.kind, self.redactor.text(str(exc)))
            return [Delivery(self.shown[u], False, "the notification could not be rendered") for u in self.targets]
        with tempfile.TemporaryDirectory(prefix="opsflow-notify-") as tmp:
            attach, problems = _prepare_attachments(notification.attachments, self.redactor, Path(tmp))
            if problems:
                body += "\n\n" + "\n".join(_line(self.redactor.text(p)) for p in problems)
            severity = _SEVERITY[_kind(notification.kind)]
            deadline = time.monotonic() + self.timeout
            pool = cf.ThreadPoolExecutor(max_workers=min(8, len(self.targets)), thread_name_prefix="opsflow-notify")
            try:
                futures = {pool.submit(self._send_one, url, title, body, severity, attach): url
                           for url in self.targets}
                cf.wait(futures, timeout=self.timeout + 1.0)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
            deliveries = []
            for future, url in futures.items():
                if future.done() and not future.cancelled() and future.exception() is None:
                    deliveries.append(future.result())
                else:
                    waited = max(0.0, self.timeout - max(0.0, deadline - time.monotonic()))
                    deliveries.append(Delivery(self.shown[url], False, f"timed out after {waited:.1f} s"))
        for d in deliveries:
            if d.ok:
                log.info("notification %s sent to %s", notification.kind, d.target)
            else:
                log.warning("notification %s to %s failed: %s", notification.kind, d.target, d.error)
        return deliveries

    def _send_one(self, url: str, title: str, body: str, severity: str, attach: list[str]) -> Delivery:
        import apprise

        shown, started = self.shown[url], time.monotonic()
        try:
            ap = apprise.Apprise(asset=_asset())
            if not ap.add(url):
                return Delivery(shown, False, "not a notification URL Apprise can use")
            attachments = apprise.AppriseAttachment(asset=_asset())
            for path in attach:
                attachments.add(path)
            result = ap.notify(body=body, title=title, notify_type=severity, body_format=apprise.NotifyFormat.TEXT,
                               attach=attachments if attach else None, interpret_escapes=False,
                               timeout=self.timeout)
            ok = bool(result)
            error = None if ok else self._error(result)
        except Exception as exc:  # a plugin failing in a way Apprise did not catch: one failed delivery
            ok, error = False, f"{type(exc).__name__}: {exc}"
        return Delivery(shown, ok, self.redactor.text(error) if error else None, round(time.monotonic() - started, 3))

    @staticmethod
    def _error(result: Any) -> str:
        messages: list[str] = []
        logs = getattr(result, "logs", None)
        if callable(logs):
            for entry in logs():
                if str(getattr(entry, "level", "")).upper() in ("WARNING", "ERROR", "CRITICAL"):
                    messages.append(str(entry.message))
        status = getattr(result, "status", None)
        if not messages and status is not None:
            messages.append(f"delivery {getattr(status, 'name', status)}".lower())
        return "; ".join(dict.fromkeys(_line(m) for m in messages)) or "delivery failed"


# ---- routing -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    to: str                     # an Apprise URL or a contact name
    on: frozenset[Kind]


class Router:
    """Who hears of which kind: routes ``{to: URL-or-contact, on: [kinds]}`` and named contacts.

    Config (e.g. the ``[notify]`` table, or YAML)::

        contacts:
          ops-team: ["mailtos://ops:PASSWORD@smtp.example.org?to=ops@example.org", "json://hooks.example.org/ops"]
        routes:
          - {to: ops-team, on: [run_failed, breaker_opened, slo_breached]}
          - {to: "slack://T000/B000/XXXX/#ops"}        # no ``on``: every kind
    """

    def __init__(self, routes: Sequence[Route], contacts: Mapping[str, Sequence[str]] | None = None) -> None:
        self.contacts = {name: list(urls) for name, urls in (contacts or {}).items()}
        self.routes = list(routes)
        for route in self.routes:
            self._expand(route.to)  # an unknown contact is refused now, not when something happens

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                    contacts: Mapping[str, Sequence[str]] | None = None) -> Router:
        """From ``{"routes": [...], "contacts": {...}}``, or a list of routes and ``contacts``."""
        if isinstance(config, Mapping):
            unknown = sorted(set(config) - {"routes", "contacts"})
            if unknown:
                raise NotifyError(f"notify: unknown key(s) {', '.join(unknown)} (known: routes, contacts)")
            contacts = config.get("contacts", contacts) or {}
            raw_routes = config.get("routes", []) or []
        else:
            raw_routes = config
        if not isinstance(contacts or {}, Mapping):
            raise NotifyError("notify: contacts must map names to lists of URLs")
        checked: dict[str, list[str]] = {}
        for name, urls in (contacts or {}).items():
            urls = [urls] if isinstance(urls, str) else urls
            if not isinstance(urls, list | tuple) or not all(isinstance(u, str) and "://" in u for u in urls):
                raise NotifyError(f"notify: contact {name!r} must be a list of notification URLs")
            checked[str(name)] = list(urls)
        if not isinstance(raw_routes, list | tuple):
            raise NotifyError("notify: routes must be a list of {to, on}")
        return cls([_route(i, r) for i, r in enumerate(raw_routes, 1)], checked)

    def _expand(self, to: str) -> list[str]:
        if "://" in to:
            return [to]
        if to in self.contacts:
            return self.contacts[to]
        known = ", ".join(sorted(self.contacts)) or "none defined"
        raise NotifyError(f"notify: {to!r} is neither a URL nor a contact (contacts: {known})")

    def targets(self, kind: Kind | str) -> list[str]:
        """The URLs that hear of ``kind``, each once, in configuration order."""
        kind = _kind(kind)
        urls: list[str] = []
        for route in self.routes:
            if kind in route.on:
                urls += self._expand(route.to)
        return list(dict.fromkeys(urls))

    def unusable(self) -> list[str]:
        """The configured URLs no Apprise channel takes, masked (for a config check)."""
        every = {u for r in self.routes for u in self._expand(r.to)}
        return sorted(masked_url(u) for u in every if _instantiate(u) is None)

    def send(self, notification: Notification, redactor: Redactor | None = None,
             timeout: float = DEFAULT_TIMEOUT) -> list[Delivery]:
        """Send ``notification`` to the targets of its kind; never raises for a failing channel."""
        return Notifier(self.targets(notification.kind), redactor, timeout).send(notification)


def _route(index: int, raw: Any) -> Route:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("to"), str) or not raw["to"]:
        raise NotifyError(f"notify: route {index} needs 'to' (a URL or a contact name)")
    unknown = sorted(set(raw) - {"to", "on"})
    if unknown:
        raise NotifyError(f"notify: route {index}: unknown key(s) {', '.join(unknown)} (known: to, on)")
    on = raw.get("on")
    if on is None:
        kinds = frozenset(Kind)
    else:
        on = [on] if isinstance(on, str) else on
        bad = [k for k in on if k not in KINDS] if isinstance(on, list | tuple) else [on]
        if bad:
            raise NotifyError(f"notify: route {index}: unknown kind(s) {', '.join(map(str, bad))} "
                              f"(known: {', '.join(KINDS)})")
        kinds = frozenset(Kind(k) for k in on)
    return Route(raw["to"], kinds)
