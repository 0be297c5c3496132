"""The platform layer on recorded-style configs of each platform (tests/data/platforms/<platform>.txt)."""

from __future__ import annotations

import re

import pytest

from opsflow.platforms import PLATFORMS, InvalidConfig, UnknownPlatform, get
from opsflow.platforms.edit import apply
from opsflow.platforms.tree import changes
from tests.helpers import ROOT

DATA = ROOT / "tests" / "data" / "platforms"

# per platform: what changes between two shows of an unchanged device (regex → replacement),
# a change deep in a hierarchy (old line → new line, both unique in the sample) with its ancestors,
# config-mode lines making that same change, and an error answer of its CLI
CASES: dict[str, dict] = {
    "frr": {"volatile": [(r"Current configuration:", "Current configuration:")],
            "nested": (" network 10.250.0.0/24 area 0", " network 10.251.0.0/24 area 0"), "path": ["router ospf"],
            "error": "% Unknown command: show running-confg"},
    "cisco_ios": {"volatile": [(r"1843 bytes", "1901 bytes"), (r"09:12:50", "11:00:01"), (r"17179852", "17179870")],
                  "nested": ("  neighbor 10.0.0.2 route-map PEER-IN in", "  neighbor 10.0.0.2 route-map PEER-IN2 in"),
                  "path": ["router bgp 65001", "address-family ipv4"],
                  "lines": ["router bgp 65001", "address-family ipv4", "no neighbor 10.0.0.2 route-map PEER-IN in",
                            "neighbor 10.0.0.2 route-map PEER-IN2 in", "exit", "exit"],
                  "error": "                  ^\n% Invalid input detected at '^' marker."},
    "cisco_xe": {"volatile": [(r"1851 bytes", "2040 bytes"), (r"09:12:44", "12:00:00")],
                 "nested": (" ip ospf cost 10", " ip ospf cost 20"), "path": ["interface GigabitEthernet1/0"],
                 "lines": ["interface GigabitEthernet1/0", "ip ospf cost 20"],
                 "error": "% Invalid input detected at '^' marker."},
    "cisco_nxos": {"volatile": [(r"10:01:02", "10:05:09"), (r"09:12:44", "10:04:00")],
                   "nested": ("      route-map PEER-IN in", "      route-map PEER-OUT out"),
                   "path": ["router bgp 65010", "neighbor 10.0.0.2", "address-family ipv4 unicast"],
                   "lines": ["router bgp 65010", "neighbor 10.0.0.2", "address-family ipv4 unicast",
                             "no route-map PEER-IN in", "route-map PEER-OUT out"],
                   "error": "% Invalid command at '^' marker."},
    "cisco_xr": {"volatile": [(r"10:01:02\.114", "10:07:55.921"), (r"09:12:44", "10:07:00")],
                 "nested": ("   route-policy PASS out", "   route-policy DENY out"),
                 "path": ["router bgp 65100", "neighbor 10.0.0.2", "address-family ipv4 unicast"],
                 "lines": ["router bgp 65100", " neighbor 10.0.0.2", "  address-family ipv4 unicast",
                           "   no route-policy PASS out", "   route-policy DENY out"],
                 "error": "% Invalid input detected at '^' marker."},
    "arista_eos": {"volatile": [(r"! Command: show running-config", "! Command: show running-config")],
                   "nested": ("      neighbor 10.9.0.2 remote-as 65009", "      neighbor 10.9.0.2 remote-as 65019"),
                   "path": ["router bgp 65001", "vrf blue"],
                   "lines": ["router bgp 65001", "vrf blue", "no neighbor 10.9.0.2 remote-as 65009",
                             "neighbor 10.9.0.2 remote-as 65019"],
                   "error": "% Invalid input (at token 1: 'running-confg')"},
    "juniper_junos": {"volatile": [(r"2024-03-05 09:12:44 UTC", "2024-03-06 08:00:00 UTC")],
                      "nested": ("                passive;", "                metric 10;"),
                      "path": ["protocols", "ospf", "area 0.0.0.0", "interface lo0.0"],
                      "lines": ["delete protocols ospf area 0.0.0.0 interface lo0.0 passive",
                                "set protocols ospf area 0.0.0.0 interface lo0.0 metric 10"],
                      "error": "                   ^\nsyntax error, expecting <command>.\nerror: unknown command"},
    "fortinet": {"volatile": [(r"user=admin", "user=ops"), (r"4271895732163", "4271895799999"),
                              (r"ENC SH2x\S+", "ENC ZZ9xNewSaltEveryShowQ2b0kYx6ZPPB2nZc4rJcJdKbF5l2hQ7tRnqzWlLw0rFh=")],
                 "nested": ('            set route-map-in "PEER-IN"', '            set route-map-in "PEER-IN2"'),
                 "path": ["config router bgp", "config neighbor", 'edit "10.0.0.2"'],
                 "lines": ["config router bgp", "config neighbor", 'edit "10.0.0.2"', 'set route-map-in "PEER-IN2"',
                           "next", "end", "end"],
                 "error": "command parse error before 'confg'\nCommand fail. Return code -61"},
    "paloalto_panos": {"volatile": [],
                       "nested": ("                  action allow;", "                  action deny;"),
                       "path": ["config", "devices", "localhost.localdomain", "vsys", "vsys1", "rulebase", "security",
                                "rules", "allow-web"],
                       "lines": ["set rulebase security rules allow-web action deny"],
                       "error": "Unknown command: confg"},
    "mikrotik_routeros": {"volatile": [(r"2024-03-05 10:01:02", "2024-03-06 07:00:00")],
                          "nested": ("add action=drop chain=input in-interface=ether1",
                                     "add action=drop chain=input in-interface=ether2"),
                          "path": ["/ip firewall filter"],
                          "lines": ["/ip firewall filter remove [find where action=drop chain=input in-interface=ether1]",
                                    "/ip firewall filter add action=drop chain=input in-interface=ether2"],
                          "error": "bad command name exprt (line 1 column 2)"},
    "aruba_aoscx": {"volatile": [(r"ciphertext \S+", "ciphertext AQBapNEWsaltEachShowL6zZ4c1kkQ7p0F2vI+8WJ7h0xkBYgAAAF5b")],
                    "nested": ("        network 10.10.0.0/24", "        network 10.20.0.0/24"),
                    "path": ["router bgp 65030", "address-family ipv4 unicast"],
                    "lines": ["router bgp 65030", "address-family ipv4 unicast", "no network 10.10.0.0/24",
                              "network 10.20.0.0/24", "exit-address-family", "exit"],
                    "error": "Invalid input: running-confg"},
}


def sample(name: str) -> str:
    return (DATA / f"{name}.txt").read_text()


def later(name: str) -> str:
    """A second show of the same, unchanged device: only its volatile lines differ."""
    text = sample(name)
    for pattern, repl in CASES[name]["volatile"]:
        text = re.sub(pattern, repl, text)
    return text


def changed(name: str) -> str:
    old, new = CASES[name]["nested"]
    text = sample(name)
    assert text.count(old + "\n") == 1, f"{name}: {old!r} is not unique in the sample"
    return text.replace(old + "\n", new + "\n")


ALL = sorted(CASES)


def test_every_platform_is_covered() -> None:
    assert set(ALL) == set(PLATFORMS)
    assert get("cisco_ios_ssh").name == "cisco_ios"
    with pytest.raises(UnknownPlatform, match="huawei.*known:"):
        get("huawei")


@pytest.mark.parametrize("name", ALL)
def test_unchanged_device_normalizes_the_same(name: str) -> None:
    p = get(name)
    first = p.validate(sample(name))
    second = p.stabilize(p.validate(later(name)), first)
    assert second == first
    assert p.compare(sample(name), later(name)) == ""


@pytest.mark.parametrize("name", ALL)
def test_errors_and_truncations_are_never_configs(name: str) -> None:
    p = get(name)
    lines = sample(name).splitlines()
    for bad in ("", CASES[name]["error"], "\n".join(lines[: len(lines) * 2 // 3]), "\n".join(lines[:3])):
        with pytest.raises(InvalidConfig):
            p.validate(bad)
    assert p.error(CASES[name]["error"])


@pytest.mark.parametrize("name", ALL)
def test_a_nested_change_shows_under_its_ancestors(name: str) -> None:
    p = get(name)
    old, new = CASES[name]["nested"]
    diff = p.compare(sample(name), changed(name))
    signed = {(line[0], line[1:].strip()) for line in diff.splitlines() if line[:1] in "+-"}
    assert {("-", old.strip().rstrip(";")), ("+", new.strip().rstrip(";"))} <= signed, diff
    removed = [c for c in changes(p.tree(sample(name)), p.tree(changed(name))) if c.sign == "-"]
    if name != "frr":
        assert [list(c.path) for c in removed] == [CASES[name]["path"]], diff
        for ancestor in CASES[name]["path"]:
            assert ancestor in diff


@pytest.mark.parametrize("name", ALL)
def test_restore_delta_turns_running_into_the_target(name: str) -> None:
    p = get(name)
    running, target = changed(name), sample(name)
    delta = p.delta(running, target)
    assert delta and p.delta(target, target) == []
    tree = p.tree(running)
    assert apply(tree, delta, p.dialect) == []
    assert changes(tree, p.tree(target)) == [], delta


@pytest.mark.parametrize("name", [n for n in ALL if "lines" in CASES[n]])
def test_config_lines_preview_as_the_device_would_apply_them(name: str) -> None:
    p = get(name)
    old, new = CASES[name]["nested"]
    preview = p.candidate(sample(name), CASES[name]["lines"])
    assert new.strip().rstrip(";") in preview and old.strip().rstrip(";") in preview, preview
    assert p.candidate(sample(name), []) == ""


def test_restore_mechanisms() -> None:
    running, target = changed("cisco_xe"), sample("cisco_xe")
    plan = get("cisco_xe").plan(running, target)
    assert plan.mechanism == "configure replace" and plan.apply[0].kind == "stage"
    assert "hostname xe1" in plan.apply[0].text and "Building" not in plan.apply[0].text
    assert plan.apply[1].text == "configure replace flash:opsflow-restore.cfg force"
    assert [s.capture for s in plan.check] == [False, True]
    nx = get("cisco_nxos").plan(changed("cisco_nxos"), sample("cisco_nxos"))
    assert [s.text for s in nx.apply[1:3]] == ["checkpoint", "rollback running-config file bootflash:opsflow-restore.cfg"]
    eos = get("arista_eos").plan(changed("arista_eos"), sample("arista_eos"))
    assert eos.check[-1].text == "abort" and eos.apply[-2].text == "commit"
    assert eos.check[-2].text == "show session-config diffs" and eos.check[-2].capture
    junos = get("juniper_junos").plan(changed("juniper_junos"), sample("juniper_junos"))
    assert [s.text for s in junos.apply if s.kind == "send"][1:] == [
        "load override terminal", "show | compare", "commit check", 'commit confirmed 5 comment "opsflow restore"',
        'commit comment "opsflow restore confirmed"', "exit configuration-mode"]
    assert junos.apply[2].text.endswith("}\n\x04")
    xr = get("cisco_xr").plan(changed("cisco_xr"), sample("cisco_xr"))
    assert xr.apply[1].text == "commit replace" and "end" not in xr.apply[0].lines
    assert "-   route-policy DENY out" in xr.delta and "+   route-policy PASS out" in xr.delta
    ios = get("cisco_ios").plan(changed("cisco_ios"), sample("cisco_ios"))
    assert ios.mechanism == "delta" and ios.apply[-1].kind == "save"
    assert list(ios.apply[0].lines) == ["router bgp 65001", "address-family ipv4",
                                        "no neighbor 10.0.0.2 route-map PEER-IN2 in",
                                        "neighbor 10.0.0.2 route-map PEER-IN in", "exit", "exit"]
    pan = get("paloalto_panos").plan(changed("paloalto_panos"), sample("paloalto_panos"))
    assert pan.delta == ["set rulebase security rules allow-web action allow"]
    assert [s.text for s in pan.apply[1:]] == ["commit", "exit"]


def test_fortios_and_routeros_deltas_read_like_their_cli() -> None:
    forti = get("fortinet")
    running = sample("fortinet").replace('        set alias "wan"\n', "").replace(
        "    edit 1\n        set gateway", "    edit 2\n        set gateway")
    assert forti.delta(running, sample("fortinet")) == [
        "config system interface", 'edit "port1"', 'set alias "wan"', "next", "end",
        "config router static", "delete 2", "edit 1", "set gateway 10.0.0.254", 'set device "port1"', "next", "end"]
    ros = get("mikrotik_routeros")
    assert ros.delta(changed("mikrotik_routeros"), sample("mikrotik_routeros")) == [
        "/ip firewall filter", "remove [find where action=drop chain=input in-interface=ether2]",
        "add action=drop chain=input in-interface=ether1"]
    # a continued line is one line
    assert 'add address=10.1.0.1/24 comment="lan side" interface=bridge1 network=10.1.0.0' in \
        [c.text for c in ros.tree(sample("mikrotik_routeros")).child("/ip address").children]  # type: ignore[union-attr]


def test_frr_keeps_its_flat_diff_and_legacy_candidate() -> None:
    from opsflow.netconfig import candidate_diff, config_diff

    diff = config_diff(sample("frr"), changed("frr"))
    assert diff.startswith("--- running-config (before)") and "+ network 10.251.0.0/24 area 0" in diff
    assert candidate_diff(sample("frr"), ["ip route 10.99.0.0/16 Null0", "ip route 10.98.0.0/16 Null0"]) == \
        "+ip route 10.98.0.0/16 Null0"
