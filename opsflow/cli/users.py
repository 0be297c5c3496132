"""``opsflow user``, ``opsflow token``, ``opsflow audit``: who may do what, and what was done.

Users and tokens are kept in the store (``opsflow.auth.store``: only hashes of passwords and tokens).
Every change is on the audit log with who made it: ``$OPSFLOW_USER``, else ``user@host``. A new token
is printed once, alone on stdout (its warning on stderr): ``opsflow token create ci > token-file``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any

import click

from opsflow.cli.options import db_opt, parse_since
from opsflow.errors import UsageError
from opsflow.textsafe import for_terminal as safe

ROLE_CHOICE = click.Choice(["viewer", "operator", "approver", "admin"])


def _store(db: str | None) -> Any:
    from opsflow.store import open_store

    return open_store(db, reap=False)


def _actor() -> str:
    from opsflow.planning import who

    return who()


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at)) if at else "-"


def _list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def parse_validity(text: str) -> float | None:
    """Seconds a token is valid: 30d, 12h, 2w, 1y; None for ``never``."""
    if text.strip().lower() == "never":
        return None
    m = re.fullmatch(r"(\d+)\s*([mhdwy])", text.strip())
    if not m or int(m[1]) == 0:
        raise UsageError(f"--expires {text!r}: expected a duration like 12h, 30d, 2w, 1y, or never")
    return int(m[1]) * {"m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 365 * 86400}[m[2]]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        lines = sys.stdin.read().splitlines()
        if not lines or not lines[0]:
            raise UsageError("--password-stdin: no password on standard input")
        return lines[0]
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: give it with --password-stdin")
    password: str = click.prompt("password", hide_input=True, confirmation_prompt=True)
    return password


# ---- users ---------------------------------------------------------------------------
@click.group()
def user() -> None:
    """Users: their role, their scope (runbooks, inventory groups), a password for the console."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=ROLE_CHOICE, required=True, help="viewer < operator < approver < admin")
@click.option("--runbooks", default=None, metavar="P,..", help="only these runbooks (fnmatch patterns)")
@click.option("--groups", default=None, metavar="G,..", help="only hosts of these inventory groups (patterns)")
@click.option("--contact", default=None, metavar="ADDR", help="e-mail or Apprise URL for approval requests")
@click.option("--password-stdin", is_flag=True, help="read a password from stdin (else: API tokens only)")
@db_opt
def add(name: str, role: str, runbooks: str | None, groups: str | None, contact: str | None,
        password_stdin: bool, db: str | None) -> None:
    """Add a user (without a password: API tokens only)."""
    password = _read_password(True) if password_stdin else None
    store = _store(db)
    try:
        added = store.add_user(name, role, _actor(), runbooks=_list(runbooks), groups=_list(groups),
                               contact=contact, password=password)
    finally:
        store.close()
    scope = ", ".join(f"{k} {','.join(v)}" for k, v in (("runbooks", added.runbooks), ("groups", added.groups))
                      if v) or "everything"
    click.echo(safe(f"user {added.name} added: {added.role} on {scope}"
                    + ("" if added.has_password else " (no password: API tokens only)")))


@user.command("list")
@click.option("--json", "as_json", is_flag=True)
@db_opt
def list_users(as_json: bool, db: str | None) -> None:
    """Users (never a password or its hash)."""
    store = _store(db)
    try:
        users = [u.as_dict() for u in store.list_users()]
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(users, indent=2))
        return
    if not users:
        click.echo("no users (opsflow user add NAME --role R)")
    for u in users:
        scope = " ".join(f"{k}={','.join(u[k])}" for k in ("runbooks", "groups") if u[k]) or "-"
        flags = ",".join(f for f, on in (("disabled", u["disabled"]), ("password", u["password"])) if on) or "-"
        click.echo(safe(f"{u['name']:<20} {u['role']:<9} {scope:<30} {flags:<17} {u['contact'] or '-'}  "
                        f"added {_when(u['created_at'])} by {u['created_by']}"))


@user.command("disable")
@click.argument("name")
@db_opt
def disable(name: str, db: str | None) -> None:
    """Disable a user: their tokens and console sessions stop working at once."""
    store = _store(db)
    try:
        changed = store.disable_user(name, _actor())
    finally:
        store.close()
    click.echo(safe(f"user {name} {'disabled' if changed else 'was already disabled'}"))


@user.command("enable")
@click.argument("name")
@db_opt
def enable(name: str, db: str | None) -> None:
    """Enable a disabled user again (their tokens that are neither revoked nor expired work again)."""
    store = _store(db)
    try:
        changed = store.enable_user(name, _actor())
    finally:
        store.close()
    click.echo(safe(f"user {name} {'enabled' if changed else 'was not disabled'}"))


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="read the password from stdin")
@db_opt
def passwd(name: str, password_stdin: bool, db: str | None) -> None:
    """Set a user's password (their console sessions end)."""
    password = _read_password(password_stdin)
    store = _store(db)
    try:
        store.set_password(name, password, _actor())
    finally:
        store.close()
    click.echo(safe(f"password of {name} set"))


# ---- API tokens ----------------------------------------------------------------------
@click.group()
def token() -> None:
    """API tokens of users: created (shown once), listed (never the secret), revoked."""


@token.command("create")
@click.argument("username", metavar="USER")
@click.option("--name", default=None, help="what it is for (e.g. ci-pipeline)")
@click.option("--role", type=ROLE_CHOICE, default=None, help="at most the user's [default: the user's]")
@click.option("--expires", default="90d", show_default=True, help="validity: 12h, 30d, 2w, 1y, or never")
@db_opt
def create(username: str, name: str | None, role: str | None, expires: str, db: str | None) -> None:
    """Create a token: printed once on stdout, never shown again."""
    validity = parse_validity(expires)
    store = _store(db)
    try:
        token_id, text = store.create_token(username, _actor(), role=role, name=name, expires=validity)
        made = next(t for t in store.list_tokens(username) if t["id"] == token_id)
    finally:
        store.close()
    click.echo(safe(f"token {token_id} of {made['username']} (role {made['role']}, expires "
                    f"{_when(made['expires_at']) if made['expires_at'] else 'never'}):"), err=True)
    click.echo(text)
    click.echo("Store it now, e.g. in a secrets manager: it is shown this once and cannot be retrieved "
               f"(lost: opsflow token revoke {token_id}, then create another).", err=True)


@token.command("list")
@click.option("--user", "username", default=None, help="only the tokens of this user")
@click.option("--json", "as_json", is_flag=True)
@db_opt
def list_tokens(username: str | None, as_json: bool, db: str | None) -> None:
    """Tokens, newest first (never their secret)."""
    store = _store(db)
    try:
        rows = store.list_tokens(username)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no tokens (opsflow token create USER)")
    for t in rows:
        click.echo(safe(f"{t['id']}  {t['username']:<16} {t['role']:<9} {t['state']:<8} {t['name'] or '-':<20} "
                        f"created {_when(t['created_at'])} by {t['created_by']}  expires "
                        f"{_when(t['expires_at']) if t['expires_at'] else 'never'}  last used {_when(t['last_used_at'])}"))


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@db_opt
def revoke(token_id: str, db: str | None) -> None:
    """Revoke a token: it stops working at once."""
    store = _store(db)
    try:
        changed = store.revoke_token(token_id, _actor())
    finally:
        store.close()
    click.echo(safe(f"token {token_id} {'revoked' if changed else 'was already revoked'}"))


# ---- the audit log -------------------------------------------------------------------
@click.command()
@click.option("--since", default=None, help="e.g. 12h, 7d, 4w [default: all]")
@click.option("--actor", default=None, help="only what this person did (alice: alice and alice@any-host)")
@click.option("--action", default=None, help="only this action (user_add, token_create, approve, deny, …)")
@click.option("--limit", "-n", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True)
@db_opt
def audit(since: str | None, actor: str | None, action: str | None, limit: int, as_json: bool,
          db: str | None) -> None:
    """The audit log, newest first: who did what, to what, when."""
    store = _store(db)
    try:
        rows = store.audit_search(since=parse_since(since) if since else None, actor=actor, action=action,
                                  limit=limit)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("nothing on the audit log" + (" that matches" if since or actor or action else ""))
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"]))
        click.echo(safe(f"{when}  {r['actor']:<24} {r['action']:<16} {r['target'] or '-'}"
                        + (f"  {r['detail']}" if r["detail"] else "")))
