"""Users, API tokens, console sessions and logins in a real store, on SQLite and PostgreSQL (sql_store).

No secret is kept in clear (the whole database is searched for it), tokens stop working when revoked,
expired or their user is disabled, a token never has more than its user's role, failed logins are rate
limited per user and peer, sessions end, every change is audited with who made it, and the store's one
decision point for approvals refuses four-eyes violations.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from opsflow.auth.store import FAILURE_WINDOW, MAX_FAILURES, TooManyAttempts
from opsflow.errors import FourEyesRefused, UsageError
from opsflow.store.base import RunRecord
from opsflow.store.sql import SqlStore

PASSWORD = "correct horse battery staple"
AUTH_TABLES = ("users", "api_tokens", "sessions", "login_attempts", "audit")


def everything_stored(store: SqlStore) -> str:
    """Every row of every table the auth code writes, as text (and, on SQLite, the database files' bytes)."""
    text = "".join(repr(store._exec(f"SELECT * FROM {table}")) for table in AUTH_TABLES)
    if store._dialect == "sqlite":
        from pathlib import Path

        for suffix in ("", "-wal"):
            path = Path(store._raw_url + suffix)
            if path.exists():
                text += path.read_bytes().decode("latin-1")
    return text


def audit_of(store: SqlStore, action: str) -> list[tuple[str, str | None, str | None]]:
    return [(r["actor"], r["target"], r["detail"]) for r in reversed(store.audit_search(action=action))]


def test_users_are_added_listed_and_checked(sql_store: SqlStore) -> None:
    alice = sql_store.add_user("Alice", "approver", "root@box", runbooks=["web-*"], groups=["web"],
                               contact="alice@example.com", password=PASSWORD)
    assert (alice.name, alice.role, alice.runbooks, alice.groups, alice.has_password) == (
        "alice", "approver", ("web-*",), ("web",), True)
    sql_store.add_user("ci", "operator", "root@box")  # no password: tokens only
    assert [u.name for u in sql_store.list_users()] == ["alice", "ci"]
    assert sql_store.get_user("ALICE") == alice and sql_store.get_user("nobody") is None
    with pytest.raises(UsageError, match="user alice exists"):
        sql_store.add_user("alice", "viewer", "root@box")
    with pytest.raises(UsageError, match="contact 'call me'"):
        sql_store.add_user("carol", "viewer", "root@box", contact="call me")
    with pytest.raises(UsageError, match="at least 12 characters"):
        sql_store.add_user("dave", "viewer", "root@box", password="hunter2")
    assert sql_store.get_user("dave") is None  # nothing of a refused user kept
    (stored,) = sql_store._exec("SELECT password_hash FROM users WHERE name = 'alice'")[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in everything_stored(sql_store)
    assert audit_of(sql_store, "user_add") == [
        ("root@box", "alice", "role=approver runbooks=web-* groups=web password"), ("root@box", "ci", "role=operator")]


def test_tokens_are_kept_hashed_and_act_as_their_user(sql_store: SqlStore) -> None:
    sql_store.add_user("alice", "admin", "root@box", runbooks=["web-*"])
    token_id, text = sql_store.create_token("alice", "root@box", role="operator", name="ci", expires=3600)
    assert text.startswith(f"ofp_{token_id}_")
    secret = text.split("_", 2)[2]
    stored = everything_stored(sql_store)
    assert token_id in stored and "alice" in stored  # the search sees what is there …
    assert len(secret) >= 43 and secret not in stored  # … and the secret is not
    who = sql_store.authenticate_token(text)
    assert who is not None
    assert (who.name, who.role, who.runbooks, who.token, who.via) == ("alice", "operator", ("web-*",), token_id, "token")
    assert sql_store.authenticate_token(text[:-1] + ("A" if text[-1] != "A" else "B")) is None  # wrong secret
    assert sql_store.authenticate_token(f"ofp_{'0' * 12}_{secret}") is None  # unknown id
    assert sql_store.authenticate_token("not a token") is None
    [listed] = sql_store.list_tokens()
    assert listed["state"] == "active" and listed["name"] == "ci" and "token_hash" not in listed
    assert secret not in repr(listed)
    sql_store.add_user("bob", "viewer", "root@box")
    with pytest.raises(UsageError, match=r"a token of bob \(viewer\) cannot have the role admin"):
        sql_store.create_token("bob", "root@box", role="admin")
    with pytest.raises(UsageError, match="no user 'nobody'"):
        sql_store.create_token("nobody", "root@box")


def test_last_use_is_written_at_most_once_a_minute(sql_store: SqlStore) -> None:
    sql_store.add_user("ci", "operator", "root@box")
    token_id, text = sql_store.create_token("ci", "root@box")
    assert sql_store.list_tokens()[0]["last_used_at"] is None
    assert sql_store.authenticate_token(text) is not None
    first = sql_store.list_tokens()[0]["last_used_at"]
    assert first is not None
    assert sql_store.authenticate_token(text) is not None
    assert sql_store.list_tokens()[0]["last_used_at"] == first  # not again within the minute
    sql_store._exec("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (first - 61, token_id))
    assert sql_store.authenticate_token(text) is not None
    assert sql_store.list_tokens()[0]["last_used_at"] > first - 61


def test_revoked_expired_and_disabled_tokens_are_refused(sql_store: SqlStore) -> None:
    sql_store.add_user("ci", "approver", "root@box")
    revoked_id, revoked = sql_store.create_token("ci", "root@box")
    expired_id, expired = sql_store.create_token("ci", "root@box", expires=3600)
    _, live = sql_store.create_token("ci", "root@box", expires=None)
    assert all(sql_store.authenticate_token(t) for t in (revoked, expired, live))
    assert sql_store.revoke_token(revoked_id, "admin@box") is True
    assert sql_store.revoke_token(revoked_id, "admin@box") is False  # already: not audited twice
    with pytest.raises(UsageError, match="no token 'nope'"):
        sql_store.revoke_token("nope", "admin@box")
    sql_store._exec("UPDATE api_tokens SET expires_at = ? WHERE id = ?", (time.time() - 1, expired_id))
    assert sql_store.authenticate_token(revoked) is None and sql_store.authenticate_token(expired) is None
    assert sql_store.authenticate_token(live) is not None
    states = {t["id"]: t["state"] for t in sql_store.list_tokens()}
    assert states[revoked_id] == "revoked" and states[expired_id] == "expired"
    assert sql_store.disable_user("ci", "admin@box") is True
    assert sql_store.authenticate_token(live) is None
    with pytest.raises(UsageError, match="user ci is disabled"):
        sql_store.create_token("ci", "admin@box")
    assert sql_store.enable_user("ci", "admin@box") is True
    assert sql_store.authenticate_token(live) is not None
    sql_store._exec("UPDATE users SET role = 'viewer' WHERE name = 'ci'")  # the user was demoted
    assert sql_store.authenticate_token(live).role == "viewer"  # type: ignore[union-attr]
    assert audit_of(sql_store, "token_revoke") == [("admin@box", revoked_id, "user=ci")]
    assert [a[:2] for a in audit_of(sql_store, "user_disable")] == [("admin@box", "ci")]


def test_passwords_and_the_rate_limit_of_failed_logins(sql_store: SqlStore) -> None:
    sql_store.add_user("alice", "approver", "root@box", groups=["web"], password=PASSWORD)
    sql_store.add_user("ci", "operator", "root@box")  # no password
    who = sql_store.check_password("alice", PASSWORD, peer="10.0.0.1")
    assert who is not None and (who.name, who.role, who.groups, who.via) == ("alice", "approver", ("web",), "session")
    assert sql_store.check_password("ci", "", "10.0.0.1") is None
    assert sql_store.check_password("nobody", PASSWORD, "10.0.0.1") is None
    for _ in range(MAX_FAILURES):
        assert sql_store.check_password("alice", "wrong password!", peer="10.0.0.1") is None
    with pytest.raises(TooManyAttempts, match=r"too many failed logins of alice from 10.0.0.1: try again in \d+ s"):
        sql_store.check_password("alice", PASSWORD, peer="10.0.0.1")  # even the right one, for a while
    assert sql_store.check_password("alice", PASSWORD, peer="10.0.0.2") is not None  # another peer
    assert [(a, t) for a, t, _ in audit_of(sql_store, "login_refused")] == [("alice", "alice")]
    sql_store._exec("UPDATE login_attempts SET at = at - ?", (FAILURE_WINDOW + 1,))  # the window passed
    assert sql_store.check_password("alice", PASSWORD, peer="10.0.0.1") is not None
    assert sql_store._exec("SELECT COUNT(*) FROM login_attempts WHERE key = 'alice|10.0.0.1'")[0][0] == 0
    sql_store.set_password("alice", "another long password", "root@box")
    assert sql_store.check_password("alice", PASSWORD, "10.0.0.3") is None
    assert sql_store.check_password("alice", "another long password", "10.0.0.3") is not None
    sql_store.disable_user("alice", "root@box")
    assert sql_store.check_password("alice", "another long password", "10.0.0.3") is None
    stored = everything_stored(sql_store)
    assert PASSWORD not in stored and "another long password" not in stored
    assert [a[:2] for a in audit_of(sql_store, "user_passwd")] == [("root@box", "alice")]


def test_console_sessions(sql_store: SqlStore) -> None:
    sql_store.add_user("alice", "operator", "root@box", password=PASSWORD)
    cookie, csrf = sql_store.create_session("alice")
    assert cookie not in everything_stored(sql_store) and csrf not in everything_stored(sql_store)
    session = sql_store.get_session(cookie)
    assert session is not None and session.principal.name == "alice" and session.principal.via == "session"
    assert session.csrf == csrf and session.csrf_ok(csrf)
    tampered = csrf[:-1] + ("1" if csrf.endswith("0") else "0")  # always one character off
    assert not session.csrf_ok("") and not session.csrf_ok(None) and not session.csrf_ok(tampered)
    assert sql_store.get_session(cookie + "x") is None and sql_store.get_session("") is None
    sql_store.delete_session(cookie)  # logout
    assert sql_store.get_session(cookie) is None
    short, _ = sql_store.create_session("alice", ttl=3600)
    sql_store._exec("UPDATE sessions SET expires_at = ?", (time.time() - 1,))
    assert sql_store.get_session(short) is None
    kept, _ = sql_store.create_session("alice")
    assert sql_store.get_session(kept) is not None
    sql_store.set_password("alice", "a new long password", "root@box")  # a new password ends every session
    assert sql_store.get_session(kept) is None
    again, _ = sql_store.create_session("alice")
    sql_store.disable_user("alice", "root@box")
    assert sql_store.get_session(again) is None
    with pytest.raises(UsageError, match="user alice is disabled"):
        sql_store.create_session("alice")


def _waiting_run(store: SqlStore, run_id: str, started_by: str, four_eyes: bool = True) -> None:
    store.create_run(RunRecord(id=run_id, runbook="rb", runbook_path="rb.yaml", runbook_hash="h", params={},
                               trigger="cli", started_by=started_by, started_at=time.time()))
    store.request_approval(run_id, 1, "go?", "restart?", time.time() + 600, four_eyes=four_eyes)


def test_four_eyes_at_the_one_decision_point(sql_store: SqlStore) -> None:
    _waiting_run(sql_store, "r1", "alice@laptop")
    with pytest.raises(FourEyesRefused, match="run r1: alice started this run and cannot approve it too"):
        sql_store.decide("r1", True, "alice", "lgtm")  # the service's alice is the CLI's alice@laptop
    pending: dict[str, Any] = sql_store.approval("r1", 1)  # type: ignore[assignment]
    assert pending["state"] == "pending" and pending["four_eyes"] is True and pending["decided_by"] is None
    decided = sql_store.decide("r1", True, "bob@desk", "checked")
    assert decided is not None and (decided["state"], decided["decided_by"], decided["comment"]) == (
        "approved", "bob@desk", "checked")
    _waiting_run(sql_store, "r2", "alice@laptop")
    denied = sql_store.decide("r2", False, "alice@desk", "changed my mind")  # one may always stop one's own run
    assert denied is not None and denied["state"] == "denied"
    _waiting_run(sql_store, "r3", "alice@laptop", four_eyes=False)
    relaxed = sql_store.decide("r3", True, "alice@laptop", None)
    assert relaxed is not None and relaxed["state"] == "approved" and relaxed["four_eyes"] is False
