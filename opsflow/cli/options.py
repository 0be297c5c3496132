"""Options and parsers shared by the CLI's command modules (so none of them imports another)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from opsflow.errors import UsageError


def parse_since(text: str) -> float:
    m = re.fullmatch(r"(\d+)\s*([smhdw])", text.strip())
    if not m:
        raise UsageError(f"--since {text!r}: expected a duration like 30m, 12h, 7d, 2w")
    n, unit = int(m[1]), m[2]
    return time.time() - n * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]


inventory_opt = click.option("--inventory", "-i", default=None,
                             help="inventory file or directory [env OPSFLOW_INVENTORY, project file; default ./inventory]")
db_opt = click.option("--db", default=None,
                      help="store: SQLite path or postgresql:// URL [env OPSFLOW_DB, project file]")


F = TypeVar("F", bound=Callable[..., Any])

listen_opt = click.option("--listen", default="127.0.0.1:8080", show_default=True,
                          help="HTTP address (port 0: any free port)")

# the options of the long-running services (`opsflow daemon`, `opsflow serve`) after --listen: one
# definition, one default
SERVICE_OPTIONS: tuple[Callable[[Any], Any], ...] = (
    click.option("--runbooks", default="runbooks", show_default=True, help="directory of runbooks with triggers"),
    inventory_opt,
    db_opt,
    click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 256), help="runs at a time"),
    click.option("--queue", "queue_size", default=100, show_default=True, type=click.IntRange(1, 100000),
                 help="remediations waiting for a worker, at most (more are recorded queue_full)"),
    click.option("--budget", default="20/1h", show_default=True, help="at most RUNS automatic runs per WINDOW"),
    click.option("--drain-timeout", default=60.0, show_default=True, type=click.FloatRange(0),
                 help="on SIGTERM, seconds running runs get to finish before they are canceled"),
    click.option("--grace", default=10.0, show_default=True, type=click.FloatRange(0),
                 help="seconds a canceled run's in-flight step gets before it is killed"),
    click.option("--max-body", default=1 << 20, show_default=True, type=click.IntRange(1), help="bytes per request"),
    click.option("--token-file", default=None, type=click.Path(dir_okay=False),
                 help="bearer token file [or env OPSFLOW_DAEMON_TOKEN]"),
    click.option("--hmac-secret-file", default=None, type=click.Path(dir_okay=False),
                 help="HMAC-SHA256 secret file [or env OPSFLOW_DAEMON_HMAC_SECRET]"),
    click.option("--schedules", "schedules_dir", default=None, metavar="DIR",
                 help="schedules directory whose entries fire [env OPSFLOW_SCHEDULES, project file; default "
                      "./schedules when it exists]"),
    click.option("--no-schedule", is_flag=True, help="events only: fire no schedule entry"),
    click.option("--alertmanager", default=None, metavar="URL",
                 help="Alertmanager to silence the hosts of a scheduled run in, for the run (API v2)"),
    click.option("--check", is_flag=True, help="start runbooks in dry-run mode (try rules safely)"),
    click.option("--insecure", is_flag=True, help="no authentication (only with a loopback --listen)"),
    click.option("--verbose", "-v", is_flag=True, help="log every decision"),
)


def service_options(f: F) -> F:
    """Apply SERVICE_OPTIONS in their order (runbooks, inventory, db, workers, … verbose)."""
    for option in reversed(SERVICE_OPTIONS):
        f = option(f)
    return f


def parse_budget(text: str) -> tuple[int, float]:
    from opsflow.events.models import parse_duration

    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\S+)\s*", text)
    try:
        if not m:
            raise ValueError
        return int(m[1]), parse_duration(m[2])
    except ValueError:
        raise UsageError(f"--budget {text!r}: expected RUNS/WINDOW, e.g. 20/1h") from None


# the CLI through `opsflow serve` (opsflow.cli.remote): run, resume, approve, deny, history, show
REMOTE_OPTIONS: tuple[Callable[[Any], Any], ...] = (
    click.option("--server", default=None, metavar="URL",
                 help="through this opsflow serve's API, not the store [env OPSFLOW_SERVER, project file "
                      "`server`]; the token from OPSFLOW_TOKEN or OPSFLOW_TOKEN_FILE (mode 0600)"),
    click.option("--ca-file", default=None, type=click.Path(dir_okay=False), metavar="PEM",
                 help="with --server: the CA that signed its certificate [env OPSFLOW_CA_FILE; default: the "
                      "system's CAs]"),
)


def remote_options(f: F) -> F:
    """Apply REMOTE_OPTIONS (--server, --ca-file)."""
    for option in reversed(REMOTE_OPTIONS):
        f = option(f)
    return f
