"""Inventory-group scopes: a run's hosts must all lie in the principal's groups (fnmatch patterns)."""

from __future__ import annotations

from opsflow.auth import Principal, group_refusal, hosts_outside


def test_every_host_must_lie_in_one_of_the_principals_groups() -> None:
    web = Principal("wendy", "operator", groups=("web", "lb-*"))
    hosts = {"web1": ("eu", "web"), "lb2": ("lb-eu",), "db1": ("db", "eu"), "lonely": ()}
    assert hosts_outside(web, hosts) == ["db1", "lonely"]
    assert hosts_outside(web, {"web1": ("web",), "lb2": ("lb-eu",)}) == []
    assert hosts_outside(Principal("root", "admin"), hosts) == []  # not scoped to groups: everything
    assert hosts_outside(Principal("all", "operator", groups=("all",)), hosts) == []  # `all` holds every host
    why = group_refusal(web, "cancel", hosts)
    assert why == ("wendy (operator) may not cancel runs on hosts outside its inventory groups (web, lb-*): "
                   "db1, lonely")
    assert group_refusal(web, "run", {"web1": ("web",)}) is None
    many = {f"db{n}": ("db",) for n in range(12)}
    assert str(group_refusal(web, "run", many)).endswith(f"{', '.join(f'db{n}' for n in range(10))} and 2 more")
