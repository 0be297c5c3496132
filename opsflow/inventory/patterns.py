"""Ansible host patterns, evaluated on resolved inventory data (pure; never imports Ansible).

The semantics are Ansible's (``InventoryManager.get_hosts``), checked against
``ansible --list-hosts`` by tests/test_inventory_compat.py:

* ``a,b`` splits on commas; without a comma, a pattern that is one host address (``h:22``,
  an IPv6 address, ``web[1:3]``) is one term, otherwise ``:`` separates terms;
* plain terms are applied first (a union, in order), then ``&`` terms (intersection), then
  ``!`` terms (exclusion); with no plain term, the selection starts from ``all``;
* a term matches group names first (all their hosts), then — when no group matched or the
  term is a glob (``* ? [ .``) or a ``~regex`` — host names; globs and regexes match from
  the start (``re.match``), case-sensitively;
* ``group[0]``, ``group[1:3]``, ``group[-1]``, ``group[2:]`` pick hosts of the match by index;
* a term matching nothing, an invalid ``~regex`` or a subscript out of range match no host, with
  a warning (``ansible`` too selects no host for them); ``localhost`` (``127.0.0.1``,
  ``::1``) not in the inventory is Ansible's implicit localhost.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LOCALHOST = ("127.0.0.1", "localhost", "::1")
_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?\d+)|(\d+)([:-])(\d*))\]$")
_TERMS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_RANGE = re.compile(r"\[[0-9a-zA-Z]+:[0-9a-zA-Z]+(?::[0-9]+)?\]")
_LABEL_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_LABEL_RANGE})(?:[\w-]|{_LABEL_RANGE})*(?<![_-])"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.I)
_V4_PART = r"(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]{1,2}|\[[0-9]+:[0-9]+(?::[0-9]+)?\])"
_IPV4 = re.compile(rf"(?:{_V4_PART}\.){{3}}{_V4_PART}")
_HOSTPORT = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)")
_BRACKETED = re.compile(r"\[(.+)\]:([0-9]+)")


def _is_ipv6(text: str) -> bool:
    plain = _RANGE.sub("0", text)  # a hex range stands for one group
    if "." in plain:  # only the IPv4-mapped forms ::ffff:a.b.c.d, ::a.b.c.d, 0:0:0:0:0:[ffff:]a.b.c.d
        head, _, v4 = plain.rpartition(":")
        if not _IPV4.fullmatch(v4) or head.lower() not in ("", ":", "::ffff", "0:0:0:0:0:0", "0:0:0:0:0:ffff"):
            return False
        plain = head + ":0:0" if head not in ("", ":") else "::0:0"
    try:
        ipaddress.IPv6Address(plain)
    except ValueError:
        return False
    return True


def is_address(text: str) -> bool:
    """Whether ``text`` is one host (name, IPv4 or IPv6, with ranges and an optional :port)."""
    for pattern in (_BRACKETED, _HOSTPORT):  # both, in turn: "[h]:1" is h, "[h:1]:2" is h too
        m = pattern.fullmatch(text)
        if m:
            text = m.group(1)
    return bool(_IPV4.fullmatch(text) or _is_ipv6(text) or _HOSTNAME.fullmatch(text))


def split_pattern(pattern: str) -> list[str]:
    """``'a,b[1], c[2:3] , d'`` → ``['a', 'b[1]', 'c[2:3]', 'd']``; ``a:!b`` → ``['a', '!b']``."""
    if "," in pattern:
        parts = pattern.split(",")
    elif is_address(pattern):
        parts = [pattern]
    else:
        parts = _TERMS.findall(pattern)
    return [p.strip() for p in parts if p.strip()]


def order_terms(terms: Sequence[str]) -> list[str]:
    plain = [t for t in terms if t[0] not in "!&"]
    return (plain or ["all"]) + [t for t in terms if t[0] == "&"] + [t for t in terms if t[0] == "!"]


def _subscript(term: str) -> tuple[str, tuple[int, int | None] | None, bool]:
    """``web[1:3]`` → ``('web', (1, 3), False)``; the flag says the old ``[x-y]`` form was used."""
    if term.startswith("~"):
        return term, None, False
    m = _SUBSCRIPT.match(term)
    if not m:
        return term, None, False
    base, index, start, sep, end = m.groups()
    if index:
        return base, (int(index), None), False
    return base, (int(start), int(end) if end else -1), sep == "-"


def _compile(term: str) -> re.Pattern[str] | None:
    try:
        return re.compile(term[1:] if term.startswith("~") else fnmatch.translate(term))
    except re.error:
        return None


@dataclass
class PatternIndex:
    """What patterns look at: names in Ansible's order, and each group's hosts."""

    host_order: list[str]
    group_hosts: dict[str, list[str]]  # group → hosts (transitively), Ansible's group order
    implicit: Callable[[str], str | None] = field(default=lambda name: None)  # implicit localhost
    _hosts: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._hosts = set(self.host_order)

    def select(self, pattern: str, warnings: list[str] | None = None) -> list[str]:
        """The hosts ``pattern`` selects; Ansible's warnings about it are added to ``warnings``."""
        out = warnings if warnings is not None else []
        terms = split_pattern(pattern)
        hosts: list[str] = []
        for term in order_terms(terms):
            if term in self._hosts:
                hosts.append(term)
                continue
            that = self.match_term(term, out)
            if term[0] == "!":
                gone = set(that)
                hosts = [h for h in hosts if h not in gone]
            elif term[0] == "&":
                keep = set(that)
                hosts = [h for h in hosts if h in keep]
            else:
                have = set(hosts)
                hosts.extend(h for h in that if h not in have)
        return list(dict.fromkeys(hosts))

    def match_term(self, term: str, warnings: list[str]) -> list[str]:
        if term[0] in "!&":
            term = term[1:]
        expr, sub, old = _subscript(term)
        if old:
            warnings.append("Use [x:y] inclusive subscripts instead of [x-y] which has been removed")
        hosts = self._enumerate(expr, warnings)
        if not hosts or sub is None:
            return hosts
        start, end = sub
        try:
            if end is None:
                return [hosts[start]]
            return hosts[start:(len(hosts) - 1 if end == -1 else end) + 1]
        except IndexError:  # Ansible: an error, which `ansible` reports as "No hosts matched"
            warnings.append(f"No hosts matched the subscripted pattern '{term}'")
            return []

    def _enumerate(self, expr: str, warnings: list[str]) -> list[str]:
        rx = _compile(expr)
        if rx is None:  # Ansible: an error, which `ansible` reports as "No hosts matched"
            warnings.append(f"Invalid host list pattern: {expr}")
            return []
        results: list[str] = []
        groups = [g for g in self.group_hosts if rx.match(g)]
        for g in groups:
            results.extend(self.group_hosts[g])
        if not groups or expr[0] == "~" or any(c in expr for c in ".?*["):
            results.extend(h for h in self.host_order if rx.match(h))
        if not results and expr in LOCALHOST:
            name = self.implicit(expr)
            if name:
                results.append(name)
        if not results and not groups and expr != "all":
            warnings.append(f"Could not match supplied host pattern, ignoring: {expr}")
        return results  # duplicates kept, as Ansible's subscripts count them
