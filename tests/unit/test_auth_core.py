"""opsflow.auth, pure: roles are ordered, permissions need a least role, scopes narrow what a principal may
do, four-eyes refuses the one who started a run (alice@host and alice are one person); token texts parse."""

from __future__ import annotations

import pytest

from opsflow.auth import PERMISSIONS, ROLES, Principal, allowed, four_eyes_refusal, person
from opsflow.auth.store import check_name, check_password_rules, check_role, parse_token
from opsflow.errors import UsageError


def test_each_role_includes_the_ones_before_it() -> None:
    for i, role in enumerate(ROLES):
        p = Principal("x", role)
        assert [p.at_least(r) for r in ROLES] == [j <= i for j in range(len(ROLES))]


@pytest.mark.parametrize(("role", "may"), [
    ("viewer", {"read"}),
    ("operator", {"read", "run", "cancel", "resume", "review"}),
    ("approver", {"read", "run", "cancel", "resume", "review", "approve"}),
    ("admin", set(PERMISSIONS)),
])
def test_permissions_by_role(role: str, may: set[str]) -> None:
    assert {perm for perm in PERMISSIONS if allowed(Principal("x", role), perm)} == may


def test_an_unknown_permission_is_a_bug_not_a_no() -> None:
    with pytest.raises(ValueError, match="unknown permission 'fly'"):
        allowed(Principal("x", "admin"), "fly")


def test_scope_by_runbook_and_group() -> None:
    web = Principal("alice", "operator", runbooks=("web-*",), groups=("web", "lb*"))
    assert allowed(web, "run", "web-restart", ("web",))
    assert allowed(web, "run", "web-restart", ("lb-eu", "db"))  # one group of the hosts in scope is enough
    assert not allowed(web, "run", "db-restart", ("web",))  # runbook outside the scope
    assert not allowed(web, "run", "web-restart", ("db",))  # hosts outside the scope
    assert allowed(web, "read", "db-restart", ("db",))  # outside its scope it is still a viewer
    everything = Principal("root", "operator")
    assert allowed(everything, "run", "anything", ("any",))


def test_person_of_an_actor() -> None:
    assert person("alice@laptop") == person("Alice") == person(" alice ") == "alice"
    assert person(None) == person("") == ""
    assert person("schedule:nightly") == "schedule:nightly"


@pytest.mark.parametrize(("decider", "started_by", "required", "refused"), [
    ("alice", "alice@laptop", True, True),  # the service's alice and the CLI's alice@laptop: one person
    ("alice@desk", "alice@laptop", True, True),
    ("ALICE", "alice", True, True),
    ("bob", "alice@laptop", True, False),
    ("alice", "alice@laptop", False, False),  # the step relaxed it: four_eyes: false
    ("alice", None, True, False),  # nobody on record started it
    ("alice", "schedule:nightly", True, False),
    ("alicia", "alice", True, False),
])
def test_four_eyes(decider: str, started_by: str | None, required: bool, refused: bool) -> None:
    why = four_eyes_refusal(decider, started_by, required)
    assert (why is not None) == refused
    if why:
        assert "four-eyes" in why and decider in why


def test_token_text_shape() -> None:
    secret = "A" * 43
    assert parse_token(f"ofp_0123456789ab_{secret}") == ("0123456789ab", secret)
    assert parse_token(f"ofp_0123456789ab_a_b{secret}") == ("0123456789ab", f"a_b{secret}")  # "_" in the secret
    for bad in ("", "ofp_", f"xyz_0123456789ab_{secret}", f"ofp_0123456789AB_{secret}", f"ofp_0123_{secret}",
                "ofp_0123456789ab_short", f"Bearer ofp_0123456789ab_{secret}"):
        assert parse_token(bad) is None, bad


def test_names_roles_and_passwords_are_checked_with_clear_messages() -> None:
    assert check_name(" Alice ") == "alice"
    assert check_role("admin") == "admin"
    assert check_password_rules("correct horse battery") == "correct horse battery"
    for call, message in [
        (lambda: check_name("alice@host"), "user name 'alice@host'"),
        (lambda: check_name(""), "user name ''"),
        (lambda: check_role("root"), "unknown role 'root' (roles: viewer, operator, approver, admin)"),
        (lambda: check_password_rules("short"), "at least 12 characters"),
        (lambda: check_password_rules(" padded password "), "no leading or trailing white space"),
    ]:
        with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
            call()
