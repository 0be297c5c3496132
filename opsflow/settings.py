"""Settings in one place, with one documented precedence.

    defaults  →  project file  →  environment  →  command line      (later wins)

- **Project file**: the nearest ``opsflow.toml`` walking up from the working directory, or, where
  none is found first, a ``pyproject.toml`` with a ``[tool.opsflow]`` table. Relative paths in it
  are relative to the file's directory.
- **Environment**: ``OPSFLOW_HOME``, ``OPSFLOW_DB``, ``OPSFLOW_INVENTORY``, ``OPSFLOW_RUNBOOKS``,
  ``OPSFLOW_SCHEDULES``, ``OPSFLOW_SERVICES``, ``OPSFLOW_BACKUPS``, ``OPSFLOW_BROKER``, ``OPSFLOW_SERVER``,
  ``OPSFLOW_TOKEN_FILE``, ``OPSFLOW_CA_FILE``; ``OPSFLOW_PROJECT`` names the project file explicitly
  (``none`` to use none). ``OPSFLOW_TOKEN`` (the API token itself) is read from the environment only —
  never from a file that may be committed — and wins over ``token_file``; it is never shown.
- **Command line**: options such as ``--db`` and ``--inventory`` (passed in as ``overrides``).

Keys (file / environment / default):

=========== ====================== ===========================================
home        OPSFLOW_HOME           ``~/.opsflow``
db          OPSFLOW_DB             ``<home>/opsflow.db`` (a path or ``postgresql://…``)
inventory   OPSFLOW_INVENTORY      ``inventory``
runbooks    OPSFLOW_RUNBOOKS       ``runbooks``
schedules   OPSFLOW_SCHEDULES      ``schedules``
services    OPSFLOW_SERVICES       ``services`` (service levels)
backups     OPSFLOW_BACKUPS        ``<home>/backups``
broker      OPSFLOW_BROKER         none (``amqp://…`` RabbitMQ or ``redis://…``: where dispatched runs go)
dispatch    OPSFLOW_DISPATCH       ``local`` (runs in this process); ``celery``: to ``opsflow worker`` s
server      OPSFLOW_SERVER         none (the CLI uses the store; a URL: through that opsflow serve)
token_file  OPSFLOW_TOKEN_FILE     none (the API token, in a file only its owner may read)
ca_file     OPSFLOW_CA_FILE        none (the system's CAs verify the server's certificate)
[daemon]    —                      listen, token_file, hmac_secret_file … (daemon options)
[notify]    —                      contacts = {name = [Apprise URLs]}, routes = [{to, on = [kinds]}]
=========== ====================== ===========================================

Pure apart from reading the project file; :func:`current` caches by working directory and
environment, so every module asks here and nobody reads ``os.environ`` for these again.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from opsflow.errors import UsageError

PROJECT_FILE = "opsflow.toml"
PATH_KEYS = ("home", "inventory", "runbooks", "schedules", "services", "backups", "token_file", "ca_file")
KEYS = ("home", "db", "inventory", "runbooks", "schedules", "services", "backups", "broker", "server", "token_file",
        "ca_file", "dispatch")
DISPATCH = ("local", "celery")
OPTIONAL = ("broker", "server", "token_file", "ca_file")  # no default: None when not set
ENV = {key: f"OPSFLOW_{key.upper()}" for key in KEYS}
TOKEN_ENV = "OPSFLOW_TOKEN"
SECTIONS = ("daemon", "notify")


@dataclass(frozen=True)
class Settings:
    home: Path
    db: str
    inventory: str
    runbooks: str
    schedules: str
    services: str
    backups: Path
    broker: str | None
    project_file: Path | None
    server: str | None = None  # an opsflow serve URL: the CLI goes through its API
    token_file: str | None = None
    ca_file: str | None = None
    token: str | None = field(default=None, repr=False)  # OPSFLOW_TOKEN: never shown
    dispatch: str = "local"  # or celery: runs go to the broker's workers (opsflow.dispatch)
    daemon: Mapping[str, Any] = field(default_factory=dict)
    notify: Mapping[str, Any] = field(default_factory=dict)  # {contacts: {name: [apprise URLs]}, routes: [{to, on}]}
    sources: Mapping[str, str] = field(default_factory=dict)  # key → "default", the file, "OPSFLOW_…", "command line"

    def as_dict(self) -> dict[str, Any]:
        return {"home": str(self.home), "db": _redact_url(self.db), "inventory": self.inventory,
                "runbooks": self.runbooks, "schedules": self.schedules, "services": self.services,
                "backups": str(self.backups),
                "broker": _redact_url(self.broker) if self.broker else None,
                "project_file": str(self.project_file) if self.project_file else None,
                "server": self.server, "token_file": self.token_file, "ca_file": self.ca_file,
                "token": "****" if self.token else None, "dispatch": self.dispatch,
                "daemon": dict(self.daemon), "notify": {"contacts": sorted(self.notify.get("contacts", {})),
                                                        "routes": len(self.notify.get("routes", []))},
                "sources": dict(self.sources)}


def _redact_url(url: str) -> str:
    """A URL with its password masked (``postgresql://u:****@h/db``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':****' if colon else ''}@{host}"


def find_project_file(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest opsflow.toml (or pyproject.toml with [tool.opsflow]) from ``start`` upwards."""
    for directory in (start, *start.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate, _read(candidate)
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            table = _read(pyproject).get("tool", {}).get("opsflow")
            if isinstance(table, dict):
                return pyproject, table
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the project file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc} (fix the TOML, or set OPSFLOW_PROJECT=none to ignore it)") from exc


def _check(path: Path, table: Mapping[str, Any]) -> None:
    unknown = sorted(set(table) - set(KEYS) - set(SECTIONS))
    if unknown:
        raise UsageError(f"{path}: unknown setting(s) {', '.join(unknown)} "
                         f"(known: {', '.join(KEYS + SECTIONS)})")
    for key in KEYS:
        if key in table and not isinstance(table[key], str):
            raise UsageError(f"{path}: setting {key!r} must be a string, not {type(table[key]).__name__}")
    for section in SECTIONS:
        if section in table and not isinstance(table[section], dict):
            raise UsageError(f"{path}: [{section}] must be a table")


def resolve(overrides: Mapping[str, Any] | None = None, cwd: Path | None = None,
            env: Mapping[str, str] | None = None) -> Settings:
    """Settings from defaults, the project file, the environment and ``overrides`` (the command line)."""
    env = os.environ if env is None else env
    cwd = cwd or Path.cwd()
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    project: Path | None = None
    table: dict[str, Any] = {}
    named = env.get("OPSFLOW_PROJECT")
    if named and named.lower() != "none":
        project = Path(named)
        table = _read(project)
        if project.name == "pyproject.toml":
            table = table.get("tool", {}).get("opsflow", {})
    elif named is None:
        found = find_project_file(cwd)
        if found:
            project, table = found
    if project is not None:
        _check(project, table)
        for key in KEYS:
            if key in table:
                value = table[key]
                if key in PATH_KEYS:
                    value = str((project.parent / Path(value).expanduser()).resolve())
                values[key], sources[key] = value, str(project)
    for key, var in ENV.items():
        if env.get(var):
            values[key], sources[key] = env[var], var
    for key, value in (overrides or {}).items():
        if key not in KEYS:
            raise ValueError(f"unknown setting {key!r}")
        if value is not None:
            values[key], sources[key] = str(value), "command line"
    home = Path(values.get("home") or Path.home() / ".opsflow").expanduser()
    defaults = {"home": str(home), "db": str(home / "opsflow.db"), "inventory": "inventory",
                "runbooks": "runbooks", "schedules": "schedules", "services": "services",
                "backups": str(home / "backups"), "dispatch": "local"}
    for key, value in defaults.items():
        if key not in values:
            values[key], sources[key] = value, "default"
    for key in OPTIONAL:
        sources.setdefault(key, "default")
    if values["dispatch"] not in DISPATCH:
        raise UsageError(f"dispatch {values['dispatch']!r} (from {sources['dispatch']}): one of {', '.join(DISPATCH)}")
    return Settings(home=home, db=values["db"], inventory=values["inventory"], runbooks=values["runbooks"],
                    schedules=values["schedules"], services=values["services"], backups=Path(values["backups"]).expanduser(),
                    broker=values.get("broker"), project_file=project, server=values.get("server"),
                    token_file=values.get("token_file"), ca_file=values.get("ca_file"), token=env.get(TOKEN_ENV) or None,
                    daemon=dict(table.get("daemon", {})), notify=dict(table.get("notify", {})), sources=sources,
                    dispatch=values["dispatch"])


def current(**overrides: Any) -> Settings:
    """The settings in force now (cached per working directory and environment)."""
    relevant = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("OPSFLOW_")))
    return _cached(str(Path.cwd()), relevant, tuple(sorted(overrides.items())))


@lru_cache(maxsize=32)
def _cached(cwd: str, env: tuple[tuple[str, str], ...], overrides: tuple[tuple[str, Any], ...]) -> Settings:
    return resolve(dict(overrides), Path(cwd), dict(env))
