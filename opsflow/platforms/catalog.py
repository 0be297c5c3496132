"""The platforms opsflow drives, one entry each (pure data): how each shows, checks, compares and restores.

Restore mechanisms (``Platform.plan``):

=============  ==============================================================================
replace-file   IOS-XE: the version is copied to ``flash:`` (SCP, md5 verified), then
               ``configure replace … force``; ``--check``: ``show archive config differences``
checkpoint     NX-OS: copied to ``bootflash:``, ``checkpoint``, ``rollback running-config file``;
               ``--check``: ``show diff rollback-patch``
session        EOS: ``configure session`` + ``rollback clean-config`` + the version, then
               ``commit`` (``--check``: ``show session-config diffs``, then ``abort``)
commit-replace IOS-XR: the version entered in config mode, then ``commit replace``
load-override  Junos: ``load override terminal``, ``commit check``, ``commit confirmed 5``, ``commit``
               (``--check``: ``show | compare``, then ``rollback 0``)
delta          the others: opsflow's computed delta, sent in config mode, then saved / committed
=============  ==============================================================================
"""

from __future__ import annotations

import re

from opsflow.platforms.delta import IndentRules
from opsflow.platforms.edit import Dialect
from opsflow.platforms.model import Plan, Platform, Step

_IOS_OPENERS = re.compile(r"(interface|router|line|route-map \S+( (permit|deny)( \d+)?)?$|vrf (definition|context|instance)|key chain|ip access-list|ipv6 access-list|"
                          r"class-map|policy-map|control-plane|vlan|banner|aaa group|segment-routing|mpls|bfd|"
                          r"archive|crypto isakmp|crypto map|track|ip vrf|netconf|management \S+$|username \S+$)\b")
_IOS_SUB = re.compile(r"(address-family|neighbor \S+$|vrf |template |class |key \d|session-group|"
                      r"neighbor-group|af-group|area |interface )")
_SINGLE = ("hostname ", "description ", "ip address ", "switchname ", "bgp router-id ", "router-id ",
           "ip ospf cost ", "mtu ", "speed ", "duplex ", "domain-name ", "ip domain-name ", "ip domain name ",
           "logging buffered ", "clock timezone ", "banner motd ", "switchport access vlan ", "name ")
_IOS_VOLATILE = (r"Building configuration", r"Current configuration\s*:", r"! Last configuration change",
                 r"! NVRAM config last updated", r"ntp clock-period", r"! No configuration change since")
_IOS_ERRORS = (r"^%\s*(Unknown|Invalid|Ambiguous|Incomplete|Authorization failed|Error|Command incomplete)|"
               r"^\s*% Invalid input detected")
_FRR_ERRORS = (r"^%\s*(Unknown command|Invalid input|Ambiguous command|Incomplete command|Authorization failed|"
               r"Error|Unknown|Invalid|Ambiguous|Incomplete|Command incomplete)")
_HOSTNAME = (r"^hostname \S", "no hostname line")
_IOS_RULES = IndentRules(
    fixed=re.compile(r"^(frr version|frr defaults|end$|!|exit$|exit-address-family$|version \d|"
                     r"boot-start-marker|boot-end-marker)"),
    set_only=("hostname ", "service integrated-vtysh-config", "log file ", "log syslog "),
    block_hint=re.compile(r"^(interface|router|line|route-map|vrf|key|bfd|segment-routing|mpls|address-family)\b"))


def _indent(openers: re.Pattern[str] = _IOS_OPENERS, negations: tuple[str, ...] = ()) -> Dialect:
    return Dialect("indent", openers, _IOS_SUB, _SINGLE, negations)


def _sendable(lines: list[str]) -> tuple[str, ...]:
    """A shown config as lines to type: no comments, no ``end``."""
    return tuple(line for line in lines if line.strip() and not line.strip().startswith("!") and line.strip() != "end")


def _stage(path: str, lines: list[str], verify: str) -> Step:
    return Step("stage", text="\n".join(lines) + "\n", path=path, verify=verify.format(path=path))


def _shown(p: Platform, running: str, lines: list[str]) -> list[str]:
    """What would change, as diff lines (for a platform that restores by replacement)."""
    return [line for line in p.compare(running, "\n".join(lines)).splitlines() if line[:1] in "+-"]


def _xe_plan(p: Platform, running: str, lines: list[str]) -> Plan:
    path = "flash:opsflow-restore.cfg"
    stage = _stage(path, lines, "verify /md5 {path}")
    return Plan("configure replace", _shown(p, running, lines),
                [stage, Step("send", f"show archive config differences {path} system:running-config", capture=True)],
                [stage, Step("send", f"configure replace {path} force"), Step("save")])


def _nxos_plan(p: Platform, running: str, lines: list[str]) -> Plan:
    path = "bootflash:opsflow-restore.cfg"
    stage = _stage(path, lines, "show file {path} md5sum")
    return Plan("checkpoint + rollback", _shown(p, running, lines),
                [stage, Step("send", f"show diff rollback-patch running-config file {path}", capture=True)],
                [stage, Step("send", "checkpoint"), Step("send", f"rollback running-config file {path}"),
                 Step("save")])


def _eos_plan(p: Platform, running: str, lines: list[str]) -> Plan:
    load = [Step("send", "configure session opsflow"), Step("send", "rollback clean-config"),
            Step("config", lines=_sendable(lines), enter=False, leave=False),
            Step("send", "show session-config diffs", capture=True)]
    return Plan("configure session", _shown(p, running, lines), [*load, Step("send", "abort")],
                [*load, Step("send", "commit"), Step("save")])


def _xr_plan(p: Platform, running: str, lines: list[str]) -> Plan:
    body = tuple(line for line in lines if line.strip() != "end")
    return Plan("commit replace", _shown(p, running, lines), [],
                [Step("config", lines=body, leave=False), Step("send", "commit replace", expect=r"\[no\]:?\s*$"),
                 Step("send", "yes"), Step("send", "end")])


def _junos_plan(p: Platform, running: str, lines: list[str]) -> Plan:
    load = [Step("send", "configure private", expect=r"#\s*$"),
            Step("send", "load override terminal", expect=r"\^D"),
            Step("paste", "\n".join(lines) + "\n\x04", expect=r"load complete|error"),
            Step("send", "show | compare", capture=True)]
    leave = Step("send", "exit configuration-mode", expect=r">\s*$")
    return Plan("load override", _shown(p, running, lines), [*load, Step("send", "rollback 0"), leave],
                [*load, Step("send", "commit check"), Step("send", 'commit confirmed 5 comment "opsflow restore"'),
                 Step("send", 'commit comment "opsflow restore confirmed"'), leave])


def _panos_plan(p: Platform, running: str, lines: list[str]) -> Plan:
    delta = p.delta(running, "\n".join(lines))
    steps = [Step("config", lines=tuple(delta), leave=False), Step("send", "commit"), Step("send", "exit")]
    return Plan("set/delete + commit", delta, [], steps if delta else [])


_JUNOS_PAIRS = frozenset({"unit", "family", "group", "area", "term", "policy-statement", "vlan", "routing-instance",
                          "security-zone", "zone", "filter", "prefix-list", "community", "user", "class", "from",
                          "policy"})
_MULTI = frozenset({"neighbor", "address", "interface", "member", "members", "route", "server", "next-hop",
                    "source-address", "destination-address", "application", "name-server", "ssh-ed25519"})
_PANOS_ROOTS = tuple((w, ("config", "devices", "localhost.localdomain")) for w in ("deviceconfig", "network")) + \
    tuple((w, ("config", "devices", "localhost.localdomain", "vsys", "vsys1"))
          for w in ("rulebase", "address", "address-group", "zone", "service", "application-group")) + \
    tuple((w, ("config",)) for w in ("mgt-config", "shared"))


PLATFORMS: dict[str, Platform] = {p.name: p for p in (
    Platform("frr", "cisco_ios", "show running-config", _indent(), _IOS_VOLATILE, _FRR_ERRORS, (_HOSTNAME,),
             last_line="end", delta_rules=_IOS_RULES,
             notes="FRRouting's vtysh, driven as cisco_ios; restore by computed delta + write memory"),
    Platform("cisco_ios", "cisco_ios", "show running-config", _indent(), _IOS_VOLATILE, _IOS_ERRORS, (_HOSTNAME,),
             last_line="end", delta_rules=_IOS_RULES),
    Platform("cisco_xe", "cisco_xe", "show running-config", _indent(), _IOS_VOLATILE, _IOS_ERRORS + r"|Rollback aborted|"
             r"^%?\s*Failed to apply", (_HOSTNAME,), last_line="end", mechanism="configure replace",
             native_check="show archive config differences", delta_rules=_IOS_RULES, plan_fn=_xe_plan),
    Platform("cisco_nxos", "cisco_nxos", "show running-config", _indent(negations=("no shutdown",)),
             (r"!Command: show running-config", r"!Running configuration last done at", r"!Time:",
              r"!No configuration change since"),
             r"^% (Invalid|Incomplete|Ambiguous)|^ERROR:|^Syntax error|Rollback failed|^% Permission denied",
             ((r"^(hostname|switchname) \S", "no hostname line"), (r"^version \S", "no version line"),
              (r"^line vty", "no 'line vty' (the last section of every NX-OS config)")),
             mechanism="checkpoint + rollback", native_check="show diff rollback-patch", delta_rules=_IOS_RULES,
             plan_fn=_nxos_plan),
    Platform("cisco_xr", "cisco_xr", "show running-config", _indent(),
             (r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d+ "
              r"\d\d:\d\d:\d\d", r"Building configuration", r"!! Last configuration change"),
             r"^% (Invalid|Incomplete|Ambiguous)|^\s*% Invalid input|^% Failed to commit|"
             r"^!!% |Configuration failed", (_HOSTNAME,), last_line="end", save=False, commit=True,
             mechanism="commit replace", delta_rules=_IOS_RULES, plan_fn=_xr_plan),
    Platform("arista_eos", "arista_eos", "show running-config", _indent(),
             (r"! Command: show running-config", r"! Startup-config last modified", r"! Time:"),
             r"^% (Invalid|Incomplete|Ambiguous|Unavailable|Error)|^% Session .* (failed|error)",
             (_HOSTNAME,), last_line="end", mechanism="configure session", native_check="show session-config diffs",
             delta_rules=_IOS_RULES, plan_fn=_eos_plan),
    Platform("juniper_junos", "juniper_junos", "show configuration | no-more",
             Dialect("braces", pairs=_JUNOS_PAIRS, multi=_MULTI),
             (r"## Last commit:", r"## Last changed:"),
             r"^error:|^\s*syntax error|^unknown command|^\s*missing mandatory statement|^commit failed",
             ((r"^system \{", "no 'system' stanza"), (r"^\s+host-name \S", "no host-name")), last_line=r"\}",
             save=False, commit=True, mechanism="load override", native_check="show | compare", plan_fn=_junos_plan),
    Platform("fortinet", "fortinet", "show", Dialect("forti"), (r"#config-version=", r"#conf_file_ver="),
             r"^Command fail\. Return code|^command parse error|^Unknown action|^entry not found|^node_check_object fail",
             ((r"^config system global", "no 'config system global'"), (r"set hostname \S", "no hostname")),
             last_line="end", save=False,
             salted=(r"\bENC (\S+)",), notes="ENC secrets are re-encrypted on every show: they are kept stable"),
    Platform("paloalto_panos", "paloalto_panos", "show config running",
             Dialect("braces", multi=_MULTI, roots=_PANOS_ROOTS), (),
             r"^Invalid syntax|^Unknown command|^Server error|^Validation Error|^\s*Commit failed",
             ((r"^\s*deviceconfig \{", "no deviceconfig stanza"), (r"^\s+hostname \S", "no hostname")),
             last_line=r"\}", save=False, commit=True, mechanism="set/delete + commit", plan_fn=_panos_plan),
    Platform("mikrotik_routeros", "mikrotik_routeros", "/export show-sensitive", Dialect("routeros"),
             (r"# \S+ \d\d:\d\d:\d\d by RouterOS",),
             r"^bad command name|^syntax error|^expected end of command|^failure:|^no such item|"
             r"^input does not match|^invalid value",
             ((r"^/system identity", "no /system identity section"), (r"^set name=", "no identity name")),
             save=False),
    Platform("aruba_aoscx", "aruba_aoscx", "show running-config", _indent(negations=("no shutdown",)),
             (r"Current configuration:",), r"^Invalid input|^% Command incomplete|^Unknown command|^% Invalid",
             (_HOSTNAME, (r"^https-server ", "no 'https-server' line (the last section of an AOS-CX config)")),
             salted=(r"ciphertext (\S+)",), delta_rules=_IOS_RULES,
             notes="ciphertext secrets are re-encrypted on every show: they are kept stable"),
)}
