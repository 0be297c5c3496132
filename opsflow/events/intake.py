"""Payloads → Events (pure): Alertmanager webhook v4, generic JSON, CloudEvents (structured), syslog.

A payload of the wrong shape raises ``PayloadError`` with the reason; nothing of it is used. A request
is checked whole before any event of it is returned: besides its shape, no text in it may hold what a
store cannot keep — a lone UTF-16 surrogate (``"\\ud800"`` is valid JSON, not valid Unicode) or a NUL
(PostgreSQL text cannot hold one) — and it nests at most ``MAX_DEPTH`` levels. Such a request is
refused (400), with where; the same on SQLite and PostgreSQL. Syslog, which cannot be refused, has a
NUL replaced by U+FFFD, as undecodable bytes are.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from opsflow.errors import UsageError
from opsflow.events.models import Event

try:  # optional: the standard library's json does the same, slower
    import orjson as _orjson
except ImportError:  # pragma: no cover - installed with opsflow
    _orjson = None  # type: ignore[assignment]

MAX_EVENTS = 5000  # events per request
MAX_DEPTH = 32  # nesting of arrays and objects in a request body
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


class PayloadError(UsageError):
    """A request body that is not JSON, or not of the expected shape."""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "replace")).hexdigest()[:16]


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected an object of strings, got {type(value).__name__}")
    out = {}
    for k, v in value.items():
        if not isinstance(v, str | int | float | bool):
            raise PayloadError(f"{where}.{k}: expected a string, got {type(v).__name__}")
        out[str(k)] = v if isinstance(v, str) else json.dumps(v)  # 3 → "3", true → "true"
    return out


def _str(value: Any, where: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise PayloadError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _show(value: Any, limit: int = 60) -> str:
    """A sender's value in an error message: repr, cut short."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "…"


def _where(path: tuple[str | int, ...]) -> str:
    text = "body" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
    return text if len(text) <= 120 else text[:120] + "…"


def check_text(doc: Any) -> None:
    """Refuse text a store cannot keep (lone surrogates, NUL) anywhere in a document, and deep nesting."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(doc, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            bad = _UNSTORABLE.search(value)
            if bad:
                char = bad.group()
                what = "a NUL character" if char == "\x00" else f"a lone surrogate \\u{ord(char):04x} (not Unicode)"
                raise PayloadError(f"{_where(path)}: text with {what} at character {bad.start()}, which "
                                   "cannot be stored; send valid Unicode text")
            continue
        if not isinstance(value, dict | list):
            continue
        if len(path) >= MAX_DEPTH:
            raise PayloadError(f"{_where(path)}: nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value))
            continue
        for k, v in value.items():
            bad = _UNSTORABLE.search(k)
            if bad:
                raise PayloadError(f"{_where(path)}: a key with a lone surrogate or NUL ({_show(k)}), which "
                                   "cannot be stored; send valid Unicode text")
            stack.append((v, (*path, k)))


def _plain(doc: Any) -> bool:
    """Whether no array or object of orjson's document nests ``MAX_DEPTH`` levels deep, and no number in it
    is a float that may have been an integer of more than 64 bits in the body (orjson reads those as floats)."""
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if depth >= MAX_DEPTH:
            return False
        for v in value.values() if isinstance(value, dict) else value:
            if isinstance(v, dict | list):
                stack.append((v, depth + 1))
            elif isinstance(v, float) and abs(v) >= 9.2e18:
                return False
    return True


def load_json(body: bytes) -> Any:
    """The JSON document of a body, checked by ``check_text``.

    orjson, when installed, parses it (a few times faster) and refuses what is not valid Unicode itself;
    a body it refuses for any reason (a lone surrogate, NaN, an integer over 64 bits, bad JSON) takes the
    standard library's path, so what is accepted and the message of a refusal are the same either way.
    Without a NUL escape, too deep a nesting or a number orjson may have read differently (an integer over
    64 bits: the standard library's path keeps it exact), its document needs no ``check_text``."""
    if _orjson is not None:
        try:
            doc = _orjson.loads(body)
        except _orjson.JSONDecodeError:
            pass
        else:
            if isinstance(doc, dict | list):
                if _plain(doc):
                    return doc if b"\\u0000" not in body else _checked(doc)
            elif not isinstance(doc, float) or abs(doc) < 9.2e18:
                return doc if b"\\u0000" not in body else _checked(doc)
    try:
        doc = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise PayloadError(f"body is nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # a number of more than 4300 digits
        raise PayloadError(f"body is not usable JSON: {str(exc).split(';')[0]}") from None
    return _checked(doc)


def _checked(doc: Any) -> Any:
    check_text(doc)
    return doc


# ---- Alertmanager --------------------------------------------------------------------
def alertmanager(body: bytes) -> list[Event]:
    """Alertmanager's webhook payload (version 4): one event per alert, firing or resolved."""
    doc = load_json(body)
    if not isinstance(doc, dict):
        raise PayloadError(f"expected an Alertmanager webhook object, got {type(doc).__name__}")
    if str(doc.get("version")) != "4":
        raise PayloadError(f"unsupported Alertmanager webhook version {_show(doc.get('version'))} (expected \"4\")")
    alerts = doc.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError("alerts: expected a list")
    if len(alerts) > MAX_EVENTS:
        raise PayloadError(f"alerts: {len(alerts)} alerts in one request (at most {MAX_EVENTS})")
    common = _str_map(doc.get("commonLabels"), "commonLabels")
    events = []
    for i, alert in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(alert, dict):
            raise PayloadError(f"{where}: expected an object, got {type(alert).__name__}")
        status = _str(alert.get("status"), f"{where}.status")
        if status not in ("firing", "resolved"):
            raise PayloadError(f"{where}.status: expected firing or resolved, got {_show(status)}")
        labels = {**common, **_str_map(alert.get("labels"), f"{where}.labels")}
        if not labels.get("alertname"):
            raise PayloadError(f"{where}.labels.alertname: missing")
        annotations = _str_map(alert.get("annotations"), f"{where}.annotations")
        fingerprint = _str(alert.get("fingerprint"), f"{where}.fingerprint") or _digest(
            *(f"{k}={v}" for k, v in sorted(labels.items())))
        events.append(Event(
            source="alertmanager", name=labels["alertname"], status=status,
            host=labels.get("instance") or labels.get("host") or labels.get("hostname") or "",
            severity=labels.get("severity", ""),
            message=annotations.get("summary") or annotations.get("description") or annotations.get("message", ""),
            labels=labels, annotations=annotations,
            data={k: alert[k] for k in ("startsAt", "endsAt", "generatorURL") if isinstance(alert.get(k), str)}
            | {"receiver": doc.get("receiver"), "groupKey": doc.get("groupKey")},
            fingerprint=fingerprint, occurrence=_str(alert.get("startsAt"), f"{where}.startsAt")))
    return events


# ---- generic JSON and CloudEvents ----------------------------------------------------
_GENERIC_KEYS = {"name", "status", "host", "severity", "message", "labels", "annotations", "data", "fingerprint",
                 "id", "source", "time"}
_CE_REQUIRED = ("id", "source", "specversion", "type")
_CE_CONTEXT = {"id", "source", "specversion", "type", "subject", "time", "datacontenttype", "dataschema", "data",
               "data_base64"}


def _generic(doc: dict[str, Any], where: str) -> Event:
    unknown = sorted(set(doc) - _GENERIC_KEYS)
    if unknown:
        raise PayloadError(f"{where}: unknown key(s) {_show(', '.join(unknown), 200)} "
                           f"(allowed: {', '.join(sorted(_GENERIC_KEYS))})")
    name = _str(doc.get("name"), f"{where}.name")
    if not name:
        raise PayloadError(f"{where}.name: missing")
    status = _str(doc.get("status"), f"{where}.status", "firing")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"{where}.status: expected firing or resolved, got {_show(status)}")
    data = doc.get("data") or {}
    if not isinstance(data, dict):
        raise PayloadError(f"{where}.data: expected an object, got {type(data).__name__}")
    data = {**data, **{k: doc[k] for k in ("source", "time") if k in doc}}  # the sender's own, kept as data
    labels = _str_map(doc.get("labels"), f"{where}.labels")
    host = _str(doc.get("host"), f"{where}.host")
    key = _str(doc.get("fingerprint"), f"{where}.fingerprint") or _str(doc.get("id"), f"{where}.id")
    return Event(source="webhook", name=name, status=status, host=host,
                 severity=_str(doc.get("severity"), f"{where}.severity"),
                 message=_str(doc.get("message"), f"{where}.message"), labels=labels,
                 annotations=_str_map(doc.get("annotations"), f"{where}.annotations"), data=data,
                 fingerprint=key or _digest(name, host, *(f"{k}={v}" for k, v in sorted(labels.items()))))


def _cloudevent(doc: dict[str, Any], where: str) -> Event:
    missing = [k for k in _CE_REQUIRED if not isinstance(doc.get(k), str) or not doc.get(k)]
    if missing:
        raise PayloadError(f"{where}: CloudEvent without {', '.join(missing)} (required: {', '.join(_CE_REQUIRED)})")
    if doc["specversion"] != "1.0":
        raise PayloadError(f"{where}.specversion: {_show(doc['specversion'])} is not supported (expected \"1.0\")")
    if "data_base64" in doc:
        raise PayloadError(f"{where}: binary data (data_base64) is not supported; send JSON data")
    raw = doc.get("data")
    data = raw if isinstance(raw, dict) else ({} if raw is None else {"value": raw})
    extensions = _str_map({k: v for k, v in doc.items() if k not in _CE_CONTEXT}, where)
    labels = {**extensions, **_str_map(data.get("labels"), f"{where}.data.labels")}
    status = data.get("status", "firing")
    if status not in ("firing", "resolved"):
        raise PayloadError(f"{where}.data.status: expected firing or resolved, got {_show(status)}")
    return Event(source="cloudevents", name=doc["type"], status=status,
                 host=_str(doc.get("subject"), f"{where}.subject") or _str(data.get("host"), f"{where}.data.host"),
                 severity=_str(data.get("severity"), f"{where}.data.severity"),
                 message=_str(data.get("message"), f"{where}.data.message"), labels=labels,
                 data={**data, "ce_source": doc["source"], "ce_id": doc["id"]},
                 fingerprint=_digest(doc["source"], doc["id"]))


def generic(body: bytes, content_type: str = "application/json") -> list[Event]:
    """A JSON event (or a list of them); CloudEvents 1.0 in structured or batch mode."""
    doc = load_json(body)
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise PayloadError("an empty list holds no event")
    if len(items) > MAX_EVENTS:
        raise PayloadError(f"{len(items)} events in one request (at most {MAX_EVENTS})")
    cloud = content_type.startswith("application/cloudevents")
    out = []
    for i, item in enumerate(items):
        where = f"[{i}]" if isinstance(doc, list) else "event"
        if not isinstance(item, dict):
            raise PayloadError(f"{where}: expected an object, got {type(item).__name__}")
        out.append(_cloudevent(item, where) if cloud or "specversion" in item else _generic(item, where))
    return out


# ---- syslog --------------------------------------------------------------------------
_PRI = re.compile(r"^<(\d{1,3})>")
_RFC5424 = re.compile(r"^1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) (?P<proc>\S+) (?P<msgid>\S+) ?(?P<rest>.*)$", re.S)
_RFC3164 = re.compile(r"^(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<host>\S+) (?P<rest>.*)$", re.S)
_TAG = re.compile(r"^(?P<app>[^\s:\[]{1,48})(?:\[(?P<proc>[^\]]*)\])?: ?(?P<msg>.*)$", re.S)
_SD_ELEMENT = re.compile(r'\[(?P<id>[^\s\]=]+)(?P<params>(?:\s+[^\s=\]]+="(?:[^"\\]|\\.)*")*)\s*\]')
_SD_PARAM = re.compile(r'([^\s=\]]+)="((?:[^"\\]|\\.)*)"')


def _nil(value: str) -> str:
    return "" if value == "-" else value


def _structured_data(rest: str) -> tuple[dict[str, dict[str, str]], str]:
    if rest.startswith("-"):
        return {}, rest[1:].lstrip(" ")
    sd: dict[str, dict[str, str]] = {}
    while rest.startswith("["):
        m = _SD_ELEMENT.match(rest)
        if not m:
            break
        sd[m["id"]] = {k: re.sub(r"\\(.)", r"\1", v) for k, v in _SD_PARAM.findall(m["params"])}
        rest = rest[m.end():]
    return sd, rest.lstrip(" ")


def syslog(packet: bytes, peer: str = "") -> Event:
    """One syslog datagram (RFC 5424, or RFC 3164 / BSD); anything unparsable keeps its text as the message."""
    text = packet.decode("utf-8", "replace").rstrip("\r\n\x00").replace("\x00", "\ufffd")
    pri, facility, severity = 13, 1, "notice"
    m = _PRI.match(text)
    if m and int(m[1]) <= 191:
        pri = int(m[1])
        facility, severity = pri >> 3, SEVERITIES[pri & 7]
        text = text[m.end():]
    host = app = proc = msgid = ""
    sd: dict[str, dict[str, str]] = {}
    m5 = _RFC5424.match(text)
    m3 = None if m5 else _RFC3164.match(text)
    if m5:
        host, app, proc, msgid = _nil(m5["host"]), _nil(m5["app"]), _nil(m5["proc"]), _nil(m5["msgid"])
        sd, message = _structured_data(m5["rest"])
        message = message.removeprefix("\ufeff")
        fmt = "rfc5424"
    elif m3:
        host, message, fmt = m3["host"], m3["rest"], "rfc3164"
        tag = _TAG.match(message)
        if tag:
            app, proc, message = tag["app"], tag["proc"] or "", tag["msg"]
    else:
        message, fmt = text, "unparsed"
    return Event(source="syslog", name=app or "syslog", host=host, severity=severity, message=message,
                 data={"facility": facility, "priority": pri, "app": app, "procid": proc, "msgid": msgid,
                       "format": fmt, "structured_data": sd},
                 fingerprint=_digest(host, app, message), peer=peer)
