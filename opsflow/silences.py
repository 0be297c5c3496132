"""Alertmanager silences for maintenance: the hosts' alerts are silenced while a run works on them.

:class:`SilenceClient` speaks Alertmanager's API v2 (``POST /api/v2/silences``,
``GET /api/v2/silence/{id}``, ``GET /api/v2/silences``, ``DELETE /api/v2/silence/{id}``) with the
standard library alone. :func:`maintenance_silence` is what a run uses::

    with maintenance_silence(client, ["srv1", "srv2"], duration=3600, created_by="opsflow",
                             comment=f"opsflow run {run_id}") as silence:
        ...                       # silence.id is the silence, or None and silence.error says why

It creates **one** silence whose matcher is ``instance=~"(srv1|srv2)(:[0-9]+)?"`` (hosts
regex-escaped; Alertmanager anchors regex matchers, so ``srv1`` does not match ``srv10``; the
optional port matches the ``host:port`` form of Prometheus' ``instance`` label; the label name is
configurable), lasting ``duration`` — a bound should the run's process die — and expires it when the
block ends, by exception too. It renews nothing. Alertmanager being unreachable or refusing is logged
as a warning and reported on the yielded :class:`MaintenanceSilence`; it never fails the run.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from opsflow.errors import OpsflowError
from opsflow.textsafe import for_terminal

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


class SilenceError(OpsflowError):
    """Alertmanager could not be reached, or refused a silence request."""


@dataclass(frozen=True)
class Matcher:
    """One Alertmanager matcher: ``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex``."""

    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def as_api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    @classmethod
    def from_api(cls, doc: dict[str, Any]) -> Matcher:
        return cls(str(doc["name"]), str(doc["value"]), bool(doc.get("isRegex", False)),
                   bool(doc.get("isEqual", True)))

    def __str__(self) -> str:
        op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[
            (self.is_regex, self.is_equal)]
        return f"{self.name}{op}{json.dumps(self.value)}"


def regex_escape(text: str) -> str:
    """``text`` as a literal in an RE2 (Go) regular expression."""
    return _RE2_SPECIAL.sub(r"\\\1", text)


def hosts_matcher(hosts: Sequence[str], label: str = "instance", with_port: bool = True) -> Matcher:
    """A regex matcher for exactly these hosts (and ``host:port`` when ``with_port``)."""
    if not hosts:
        raise ValueError("no hosts to match")
    alternatives = "|".join(regex_escape(h) for h in dict.fromkeys(hosts))
    return Matcher(label, f"({alternatives})" + ("(:[0-9]+)?" if with_port else ""), is_regex=True)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SilenceClient:
    """Alertmanager's silence API (v2). Every failure is a :class:`SilenceError` with a one-line reason."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT, token: str | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SilenceError(f"Alertmanager URL must be http(s)://host[:port][/prefix], not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = token

    def __repr__(self) -> str:
        return f"SilenceClient({self.base_url!r})"

    def _request(self, method: str, path: str, doc: Any = None) -> Any:
        headers = {"Accept": "application/json"}
        data = None
        if doc is not None:
            data = json.dumps(doc).encode()
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        where = f"Alertmanager {method} {path}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (http(s) only)
                body = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read(2000).decode("utf-8", "replace").strip()
            raise SilenceError(f"{where}: HTTP {exc.code} {_oneline(detail)}".rstrip()) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise SilenceError(f"{where}: cannot reach {self.base_url}: {_oneline(str(reason))}") from None
        if not body.strip():
            return None
        try:
            return json.loads(body)
        except ValueError:
            raise SilenceError(f"{where}: the answer is not JSON: {_oneline(body[:200].decode('utf-8', 'replace'))}") \
                from None

    def create(self, matchers: Sequence[Matcher], starts: datetime, ends: datetime, created_by: str,
               comment: str) -> str:
        """A new silence; its id."""
        if not matchers:
            raise SilenceError("a silence needs at least one matcher")
        if ends <= starts:
            raise SilenceError("a silence must end after it starts")
        doc = {"matchers": [m.as_api() for m in matchers], "startsAt": _timestamp(starts),
               "endsAt": _timestamp(ends), "createdBy": created_by, "comment": comment}
        answer = self._request("POST", "/api/v2/silences", doc)
        if not isinstance(answer, dict) or not answer.get("silenceID"):
            raise SilenceError(f"Alertmanager POST /api/v2/silences: no silenceID in the answer: {answer!r:.200}")
        return str(answer["silenceID"])

    def get(self, silence_id: str) -> dict[str, Any]:
        """The silence as Alertmanager gives it (``status.state``: active, pending or expired)."""
        answer = self._request("GET", f"/api/v2/silence/{quote(silence_id, safe='')}")
        if not isinstance(answer, dict):
            raise SilenceError(f"Alertmanager GET /api/v2/silence/{silence_id}: not a silence: {answer!r:.200}")
        return answer

    def expire(self, silence_id: str) -> None:
        """End the silence now (an already expired one is left as it is)."""
        self._request("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}")

    def active(self, created_by: str | None = None) -> list[dict[str, Any]]:
        """The silences in force now, optionally only those created by ``created_by``."""
        answer = self._request("GET", "/api/v2/silences")
        if not isinstance(answer, list):
            raise SilenceError(f"Alertmanager GET /api/v2/silences: not a list: {answer!r:.200}")
        return [s for s in answer if isinstance(s, dict) and s.get("status", {}).get("state") == "active"
                and (created_by is None or s.get("createdBy") == created_by)]


def _oneline(text: str) -> str:
    return " ".join(for_terminal(text).split())[:300]


@dataclass
class MaintenanceSilence:
    """What :func:`maintenance_silence` did: the silence's id, or why there is none; whether it was expired."""

    hosts: list[str]
    matcher: Matcher | None = None
    id: str | None = None
    ends: datetime | None = None
    error: str | None = None
    expired: bool = False

    @property
    def ok(self) -> bool:
        return self.id is not None and self.error is None


@contextmanager
def maintenance_silence(client: SilenceClient, hosts: Sequence[str], *, duration: float | timedelta,
                        created_by: str = "opsflow", comment: str = "opsflow maintenance",
                        label: str = "instance", with_port: bool = True) -> Iterator[MaintenanceSilence]:
    """Silence the hosts' alerts for the block (at most ``duration``); expired on exit, by exception too.

    Never raises for Alertmanager: a failure to create or to expire is logged as a warning and put in
    the yielded record's ``error``; the block runs in any case.
    """
    record = MaintenanceSilence(list(dict.fromkeys(hosts)))
    span = duration if isinstance(duration, timedelta) else timedelta(seconds=duration)
    if record.hosts:
        record.matcher = hosts_matcher(record.hosts, label, with_port)
        starts = datetime.now(UTC)
        record.ends = starts + span
        try:
            record.id = client.create([record.matcher], starts, record.ends, created_by, comment)
            log.info("silenced alerts of %s in Alertmanager until %s (silence %s)", ", ".join(record.hosts),
                     _timestamp(record.ends), record.id)
        except SilenceError as exc:
            record.error = f"alerts of {', '.join(record.hosts)} not silenced: {exc}"
            log.warning("%s", record.error)
    try:
        yield record
    finally:
        if record.id is not None:
            try:
                client.expire(record.id)
                record.expired = True
                log.info("silence %s expired: alerts of %s are heard again", record.id, ", ".join(record.hosts))
            except SilenceError as exc:
                record.error = (f"silence {record.id} not expired (it ends by itself at "
                                f"{_timestamp(record.ends or datetime.now(UTC))} at the latest): {exc}")
                log.warning("%s", record.error)
