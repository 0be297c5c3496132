"""Options and parsers shared by the CLI's command modules (so none of them imports another)."""

from __future__ import annotations

import re
import time

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
