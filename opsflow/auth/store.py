"""Users, API tokens, web console sessions and login rate limiting: a mixin of SqlStore.

Secrets are never kept: a password as its argon2id hash, an API token (``ofp_<id>_<secret>``, 32
random bytes, shown once at creation) as the sha256 of its secret part, a console session as the
sha256 of its cookie value. Every change (user added, disabled, password set, token created or
revoked) is written to the audit log with who made it (``by``).

What a service asks, per request:

- ``authenticate_token(text)`` → :class:`~opsflow.auth.Principal` or None (unknown, revoked,
  expired, or its user disabled);
- ``check_password(user, password, peer)`` → Principal or None; :class:`TooManyAttempts` after
  :data:`MAX_FAILURES` failures of that user from that peer within :data:`FAILURE_WINDOW` seconds;
- ``create_session(user)`` → (cookie value, CSRF token); ``get_session(cookie)`` → :class:`Session`
  or None; ``Session.csrf_ok(token)``; ``delete_session(cookie)`` (logout).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from opsflow.auth import ROLES, Principal, allowed, group_refusal, person
from opsflow.errors import StoreError, UsageError

TOKEN_PREFIX = "ofp_"
MAX_FAILURES = 5  # failed logins of one user from one peer …
FAILURE_WINDOW = 300.0  # … within these seconds: further attempts are refused until the oldest ages out
SESSION_TTL = 12 * 3600.0
MIN_PASSWORD = 12
TOUCH_EVERY = 60.0  # last_used_at / last_seen are written at most this often
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_USER_COLS = ("name", "role", "runbooks", "groups", "password_hash", "disabled", "created_at", "created_by",
              "contact")
_TOKEN_COLS = ("id", "username", "name", "role", "created_at", "created_by", "expires_at", "last_used_at",
               "revoked_at", "revoked_by")  # never token_hash
_AUDIT_COLS = ("id", "at", "actor", "action", "target", "detail")


class TooManyAttempts(UsageError):
    """Too many failed logins of one user from one peer: refused for a while."""


def local_refusal(store: Any, permission: str, runbook: str | None,
                  hosts: Mapping[str, Iterable[str]] | None = None) -> str | None:
    """Why the CLI, on a local store, may not ``permission`` (on that runbook and those hosts); None: it may.

    When ``$OPSFLOW_USER`` names a user of the store, that user's role and scopes apply (a viewer may not
    run, an operator may not approve, a scoped user stays in its runbooks and groups); a disabled user may
    do nothing. Without ``$OPSFLOW_USER``, or with a name the store does not know, the CLI acts as before:
    whoever can write the store's file may run (``opsflow serve`` is where roles bind everyone)."""
    name = os.environ.get("OPSFLOW_USER", "").strip()
    if not name:
        return None
    try:
        user = store.get_user(person(name))
    except (StoreError, UsageError, AttributeError):  # a store without users (older, or not SQL): as before
        return None
    if user is None:
        return None
    if user.disabled:
        return f"$OPSFLOW_USER {name} is a disabled user of the store: it may not {permission}"
    principal = user.principal(via="cli")
    if not allowed(principal, permission, runbook):
        scope = f" (runbooks {', '.join(user.runbooks)})" if user.runbooks else ""
        return (f"$OPSFLOW_USER {name} has the role {user.role}{scope} in the store: it may not {permission}"
                + (f" runbook {runbook}" if runbook else "") + " (an admin changes roles with opsflow user)")
    refusal = group_refusal(principal, permission, hosts or {})
    return f"$OPSFLOW_USER {refusal}" if refusal else None


@dataclass(frozen=True)
class User:
    name: str
    role: str
    runbooks: tuple[str, ...]
    groups: tuple[str, ...]
    has_password: bool
    disabled: bool
    created_at: float
    created_by: str
    contact: str | None

    def principal(self, via: str, role: str | None = None, token: str | None = None) -> Principal:
        return Principal(self.name, role or self.role, self.runbooks, self.groups, token=token, via=via)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "runbooks": list(self.runbooks), "groups": list(self.groups),
                "password": self.has_password, "disabled": self.disabled, "created_at": self.created_at,
                "created_by": self.created_by, "contact": self.contact}


@dataclass(frozen=True)
class Session:
    """A console session: who, until when, and the CSRF token its forms must carry."""

    principal: Principal
    csrf: str
    created_at: float
    expires_at: float

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), (token or "").encode())


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _csrf_of(cookie: str) -> str:
    return hmac.new(cookie.encode(), b"opsflow csrf", hashlib.sha256).hexdigest()


@lru_cache(maxsize=1)
def _hasher() -> Any:
    try:
        from argon2 import PasswordHasher
    except ImportError as exc:  # pragma: no cover - a dependency of opsflow
        from opsflow.errors import EnvironmentProblem

        raise EnvironmentProblem("passwords need argon2-cffi: pip install argon2-cffi") from exc
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when there is no user or no password, so that costs as long as a wrong password."""
    return str(_hasher().hash(secrets.token_urlsafe(16)))


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    return role


def check_name(name: str) -> str:
    clean = name.strip().lower()
    if not _NAME.fullmatch(clean):
        raise UsageError(f"user name {name!r}: 1-64 of a-z 0-9 . _ - (starting with a letter or digit)")
    return clean


def check_password_rules(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise UsageError(f"password too short: at least {MIN_PASSWORD} characters")
    if password != password.strip() or "\n" in password:
        raise UsageError("password: no leading or trailing white space, no line breaks")
    return password


def parse_token(text: str) -> tuple[str, str] | None:
    """(id, secret) of ``ofp_<id>_<secret>``; None when it is not shaped like one."""
    if not text.startswith(TOKEN_PREFIX):
        return None
    token_id, _, secret = text[len(TOKEN_PREFIX):].partition("_")
    if not re.fullmatch(r"[0-9a-f]{12}", token_id) or len(secret) < 32:
        return None
    return token_id, secret


class AuthStoreMixin:
    if TYPE_CHECKING:
        def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]: ...
        def audit(self, actor: str, action: str, target: str | None = None, detail: str | None = None) -> None: ...

    # ---- users -----------------------------------------------------------------------
    def add_user(self, name: str, role: str, by: str, *, runbooks: tuple[str, ...] | list[str] = (),
                 groups: tuple[str, ...] | list[str] = (), contact: str | None = None,
                 password: str | None = None) -> User:
        """A new user (UsageError when the name is taken); without a password: API tokens only."""
        name, role = check_name(name), check_role(role)
        if contact is not None and not ("@" in contact or "://" in contact):
            raise UsageError(f"contact {contact!r}: an e-mail address or an Apprise URL (scheme://…)")
        pw_hash = _hasher().hash(check_password_rules(password)) if password is not None else None
        if self.get_user(name) is not None:
            raise UsageError(f"user {name} exists (opsflow user list)")
        try:
            self._exec("INSERT INTO users (name, role, runbooks, groups, password_hash, disabled, created_at, "
                       "created_by, contact) VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?)",
                       (name, role, json.dumps(list(runbooks)), json.dumps(list(groups)), pw_hash, time.time(), by,
                        contact))
        except StoreError:
            if self.get_user(name) is not None:  # added meanwhile
                raise UsageError(f"user {name} exists (opsflow user list)") from None
            raise
        user = self._existing(name)
        scope = "".join(f" {k}={','.join(v)}" for k, v in (("runbooks", runbooks), ("groups", groups)) if v)
        self.audit(by, "user_add", name, f"role={role}{scope}" + (" password" if pw_hash else ""))
        return user

    def get_user(self, name: str) -> User | None:
        rows = self._exec(f"SELECT {', '.join(_USER_COLS)} FROM users WHERE name = ?", (name.strip().lower(),))
        return self._user(rows[0]) if rows else None

    def list_users(self) -> list[User]:
        return [self._user(r) for r in self._exec(f"SELECT {', '.join(_USER_COLS)} FROM users ORDER BY name")]

    @staticmethod
    def _user(row: tuple[Any, ...]) -> User:
        d = dict(zip(_USER_COLS, row, strict=True))
        return User(d["name"], d["role"], tuple(json.loads(d["runbooks"] or "[]")), tuple(json.loads(d["groups"] or "[]")),
                    d["password_hash"] is not None, bool(d["disabled"]), d["created_at"], d["created_by"],
                    d["contact"])

    def _existing(self, name: str) -> User:
        user = self.get_user(name)
        if user is None:
            raise UsageError(f"no user {name!r} (opsflow user list)")
        return user

    def set_password(self, name: str, password: str, by: str) -> None:
        """Set (or replace) a user's password; their console sessions end."""
        user = self._existing(name)
        self._exec("UPDATE users SET password_hash = ? WHERE name = ?",
                   (_hasher().hash(check_password_rules(password)), user.name))
        self._exec("DELETE FROM sessions WHERE username = ?", (user.name,))
        self.audit(by, "user_passwd", user.name)

    def disable_user(self, name: str, by: str) -> bool:
        """Disable a user: their tokens and sessions stop working at once. False when already disabled."""
        user = self._existing(name)
        if user.disabled:
            return False
        self._exec("UPDATE users SET disabled = 1 WHERE name = ?", (user.name,))
        self._exec("DELETE FROM sessions WHERE username = ?", (user.name,))
        self.audit(by, "user_disable", user.name)
        return True

    def enable_user(self, name: str, by: str) -> bool:
        user = self._existing(name)
        if not user.disabled:
            return False
        self._exec("UPDATE users SET disabled = 0 WHERE name = ?", (user.name,))
        self.audit(by, "user_enable", user.name)
        return True

    # ---- API tokens ------------------------------------------------------------------
    def create_token(self, user: str, by: str, role: str | None = None, name: str | None = None,
                     expires: float | None = None) -> tuple[str, str]:
        """A new token of ``user`` (its role at most theirs; ``expires``: seconds of validity, None: never):
        (its id, the token text ``ofp_<id>_<secret>``, to be shown once and never again)."""
        owner = self._existing(user)
        if owner.disabled:
            raise UsageError(f"user {owner.name} is disabled: no new tokens")
        role = check_role(role) if role else owner.role
        if ROLES.index(role) > ROLES.index(owner.role):
            raise UsageError(f"a token of {owner.name} ({owner.role}) cannot have the role {role}")
        if expires is not None and expires <= 0:
            raise UsageError("a token's validity must be positive")
        now = time.time()
        for _ in range(5):
            token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
            if not self._exec("SELECT 1 FROM api_tokens WHERE id = ?", (token_id,)):
                break
        self._exec("INSERT INTO api_tokens (id, username, token_hash, name, role, created_at, created_by, expires_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (token_id, owner.name, _sha256(secret), name, role, now, by,
                    now + expires if expires is not None else None))
        self.audit(by, "token_create", token_id,
                   f"user={owner.name} role={role}" + (f" name={name}" if name else "")
                   + (time.strftime(" expires=%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + expires)) if expires is not None
                      else " expires=never"))
        return token_id, f"{TOKEN_PREFIX}{token_id}_{secret}"

    def authenticate_token(self, text: str) -> Principal | None:
        """Who the token ``ofp_<id>_<secret>`` acts as; None when unknown, wrong, revoked, expired or its
        user disabled. Its role is the lesser of the token's and the user's now."""
        parsed = parse_token(text.strip())
        if parsed is None:
            return None
        token_id, secret = parsed
        rows = self._exec(f"SELECT t.token_hash, t.role, t.expires_at, t.revoked_at, t.last_used_at, "
                          f"{', '.join('u.' + c for c in _USER_COLS)} FROM api_tokens t JOIN users u "
                          "ON u.name = t.username WHERE t.id = ?", (token_id,))
        if not rows:
            _sha256(secret)  # as long as a wrong secret
            return None
        token_hash, role, expires_at, revoked_at, last_used, *user_row = rows[0]
        if not hmac.compare_digest(str(token_hash), _sha256(secret)):
            return None
        user = self._user(tuple(user_row))
        now = time.time()
        if revoked_at is not None or user.disabled or (expires_at is not None and now >= expires_at):
            return None
        if last_used is None or now - last_used >= TOUCH_EVERY:
            self._exec("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now, token_id))
        lesser = role if ROLES.index(role) <= ROLES.index(user.role) else user.role
        return user.principal("token", role=lesser, token=token_id)

    def revoke_token(self, token_id: str, by: str) -> bool:
        """Revoke a token (it stops working at once); False when there is no such token or it is revoked."""
        rows = self._exec("SELECT username, revoked_at FROM api_tokens WHERE id = ?", (token_id,))
        if not rows:
            raise UsageError(f"no token {token_id!r} (opsflow token list)")
        if rows[0][1] is not None:
            return False
        self._exec("UPDATE api_tokens SET revoked_at = ?, revoked_by = ? WHERE id = ? AND revoked_at IS NULL",
                   (time.time(), by, token_id))
        self.audit(by, "token_revoke", token_id, f"user={rows[0][0]}")
        return True

    def list_tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        """Tokens (never their secret nor its hash), newest first, with their state: active, revoked, expired."""
        where, args = ("WHERE username = ? ", (user.strip().lower(),)) if user else ("", ())
        rows = self._exec(f"SELECT {', '.join(_TOKEN_COLS)} FROM api_tokens {where}ORDER BY created_at DESC", args)
        now, out = time.time(), []
        for row in rows:
            d = dict(zip(_TOKEN_COLS, row, strict=True))
            d["state"] = ("revoked" if d["revoked_at"] is not None else
                          "expired" if d["expires_at"] is not None and now >= d["expires_at"] else "active")
            out.append(d)
        return out

    # ---- passwords and console sessions ----------------------------------------------
    def check_password(self, user: str, password: str, peer: str = "") -> Principal | None:
        """The user's principal when the password is theirs; None when not (or no such user, disabled, or
        no password). Raises TooManyAttempts (recorded in the audit log) after too many failures."""
        name = person(user)
        key = f"{name}|{peer}"
        now = time.time()
        failures = self._exec("SELECT COUNT(*), MIN(at) FROM login_attempts WHERE key = ? AND at >= ?",
                              (key, now - FAILURE_WINDOW))
        count, oldest = failures[0] if failures else (0, None)
        if int(count or 0) >= MAX_FAILURES:
            wait = max(1, int((oldest or now) + FAILURE_WINDOW - now) + 1)
            self.audit(name or "?", "login_refused", name, f"peer={peer or '?'}: {count} failed logins in "
                       f"{FAILURE_WINDOW:g} s")
            raise TooManyAttempts(f"too many failed logins of {name} from {peer or 'this peer'}: "
                                  f"try again in {wait} s")
        from argon2.exceptions import InvalidHashError, VerificationError

        rows = self._exec(f"SELECT {', '.join(_USER_COLS)} FROM users WHERE name = ?", (name,)) if name else []
        stored = rows[0][_USER_COLS.index("password_hash")] if rows else None
        found = self._user(rows[0]) if rows else None
        try:
            ok = bool(_hasher().verify(stored or _dummy_hash(), password)) and stored is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or found is None or found.disabled:
            self._exec("INSERT INTO login_attempts (key, at) VALUES (?, ?)", (key, now))
            self._exec("DELETE FROM login_attempts WHERE at < ?", (now - FAILURE_WINDOW,))
            return None
        self._exec("DELETE FROM login_attempts WHERE key = ?", (key,))
        if _hasher().check_needs_rehash(stored):
            self._exec("UPDATE users SET password_hash = ? WHERE name = ?", (_hasher().hash(password), name))
        return found.principal("session")

    def create_session(self, user: str, ttl: float = SESSION_TTL) -> tuple[str, str]:
        """A console session of ``user``: (the cookie value, its CSRF token). Only a hash of the cookie is kept."""
        owner = self._existing(user)
        if owner.disabled:
            raise UsageError(f"user {owner.name} is disabled")
        now = time.time()
        cookie = secrets.token_urlsafe(32)
        self._exec("DELETE FROM sessions WHERE expires_at < ?", (now,))
        self._exec("INSERT INTO sessions (id, username, csrf, created_at, expires_at, last_seen) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (_sha256(cookie), owner.name, _sha256(_csrf_of(cookie)), now,
                                                 now + ttl, now))
        return cookie, _csrf_of(cookie)

    def get_session(self, cookie: str) -> Session | None:
        """The live session of that cookie value; None when unknown, expired, or its user disabled."""
        if not cookie:
            return None
        rows = self._exec(f"SELECT s.created_at, s.expires_at, s.last_seen, {', '.join('u.' + c for c in _USER_COLS)} "
                          "FROM sessions s JOIN users u ON u.name = s.username WHERE s.id = ?", (_sha256(cookie),))
        if not rows:
            return None
        created, expires, last_seen, *user_row = rows[0]
        user, now = self._user(tuple(user_row)), time.time()
        if user.disabled or now >= expires:
            return None
        if last_seen is None or now - last_seen >= TOUCH_EVERY:
            self._exec("UPDATE sessions SET last_seen = ? WHERE id = ?", (now, _sha256(cookie)))
        return Session(user.principal("session"), _csrf_of(cookie), created, expires)

    def delete_session(self, cookie: str) -> None:
        self._exec("DELETE FROM sessions WHERE id = ?", (_sha256(cookie),))

    # ---- the audit log, searched -----------------------------------------------------
    def audit_search(self, since: float | None = None, actor: str | None = None, action: str | None = None,
                     limit: int = 1000) -> list[dict[str, Any]]:
        """Audit entries, newest first; ``actor`` matches the person (``alice`` finds ``alice@host`` too)."""
        where: list[str] = ["at >= ?"]
        args: list[Any] = [since or 0.0]
        if actor:
            who = person(actor)
            esc = who.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append("(LOWER(actor) = ? OR LOWER(actor) LIKE ? ESCAPE '\\')")
            args += [who, esc + "@%"]
        if action:
            where.append("action = ?")
            args.append(action)
        rows = self._exec(f"SELECT {', '.join(_AUDIT_COLS)} FROM audit WHERE {' AND '.join(where)} "
                          "ORDER BY at DESC, id DESC LIMIT ?", (*args, limit))
        return [dict(zip(_AUDIT_COLS, r, strict=True)) for r in rows]
