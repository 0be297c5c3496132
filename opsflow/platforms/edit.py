"""What configuration commands do to a configuration tree (pure): the model of each platform's config mode.

Used to preview ``network.config --check`` (the candidate = the running tree with the lines applied)
and by the lab's device simulator (its running config is such a tree). A ``Dialect`` says how a
platform's config mode reads lines: which lines open a sub-mode, which settings are single-valued
(a new value replaces the old), which keywords of ``set`` syntax take a name (Junos ``unit 0``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from opsflow.platforms.tree import Node

NEVER = re.compile(r"(?!)")


@dataclass(frozen=True)
class Dialect:
    syntax: str  # indent | braces | forti | routeros
    openers: re.Pattern[str] = NEVER  # lines that open a sub-mode from the top level
    sub_openers: re.Pattern[str] = NEVER  # lines that open a sub-mode inside another one
    single: tuple[str, ...] = ()  # keys whose new value replaces the old one ("hostname ", "description ")
    shown_negations: tuple[str, ...] = ()  # "no X" lines the device shows (NX-OS "no shutdown")
    pairs: frozenset[str] = field(default_factory=frozenset)  # set syntax: keywords followed by a name
    multi: frozenset[str] = field(default_factory=frozenset)  # set syntax: leaf keys that may repeat
    roots: tuple[tuple[str, tuple[str, ...]], ...] = ()  # set syntax: first word → where its path starts


def apply(root: Node, lines: Iterable[str], d: Dialect) -> list[str]:
    """Apply configuration lines to ``root`` in place; return the lines it could not make sense of."""
    editor = Editor(root, d)
    return [line for line in lines if not editor.feed(line)]


class Editor:
    """A config-mode session on a tree, line by line: keeps the current sub-mode (``context``)."""

    def __init__(self, root: Node, d: Dialect) -> None:
        self.root, self.d = root, d
        self.stack: list[tuple[int, Node]] = [(-1, root)]
        self.indented = False  # the current block got indented lines (a pasted config)
        self.tentative: Node | None = None  # the last line, a block only if indented lines follow

    @property
    def context(self) -> list[str]:
        return [n.text for _, n in self.stack[1:] if n is not self.tentative]

    def feed(self, raw: str) -> bool:
        if self.d.syntax == "indent":
            self._indent(raw)
            return True
        if self.d.syntax == "braces":
            return apply_set(self.root, raw, self.d)
        if self.d.syntax == "forti":
            return _forti(self.stack, raw)
        return _routeros(self.root, self.stack, raw)

    def _indent(self, raw: str) -> None:
        text = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        if not text or text.startswith("!"):
            return
        if self.stack[-1][1] is self.tentative and not indent:
            self.stack.pop()  # the previous line took no indented lines: it was not a block
        self.tentative = None
        if text == "end":
            self.stack = self.stack[:1]
            return
        if text in ("exit", "exit-address-family", "exit-vrf"):
            if len(self.stack) > 1:
                self.stack.pop()
            return
        if indent:
            self.indented = True
            while self.stack[-1][0] >= indent:
                self.stack.pop()
        elif self.indented or self.d.openers.match(text):
            self.stack, self.indented = self.stack[:1], False
        parent = self.stack[-1][1]
        if text.startswith("no "):
            _negate_in(parent, text[3:], self.d)
            return
        node = _set_in(parent, text, self.d)
        if indent or self.d.openers.match(text) or (len(self.stack) > 1 and self.d.sub_openers.match(text)):
            self.stack.append((indent, node))
        else:  # a block only if indented lines follow (a pasted config)
            self.stack.append((indent, node))
            self.tentative = node


def _negate_in(parent: Node, target: str, d: Dialect) -> None:
    """``no X`` removes X (and ``X …``); when there was nothing to remove it is a setting the device
    lists as such (``no aaa root``, ``no switchport``, NX-OS ``no shutdown``) and is kept."""
    kept = [c for c in parent.children if c.text != target and not c.text.startswith(target + " ")]
    removed = len(kept) != len(parent.children)
    parent.children = kept
    if f"no {target}" in d.shown_negations or not removed:
        parent.add(f"no {target}")


def _set_in(parent: Node, text: str, d: Dialect) -> Node:
    key = next((k for k in d.single if text.startswith(k)), None)
    if key is not None:
        parent.children = [c for c in parent.children if not c.text.startswith(key) or c.text == text]
    parent.children = [c for c in parent.children if c.text != f"no {text}"]
    return parent.add(text)


# ---- Junos / PAN-OS set syntax on a braces tree ---------------------------------------------------

def words(line: str) -> list[str]:
    try:
        return shlex.split(line, posix=False)
    except ValueError:
        return line.split()


def _descend(node: Node, rest: list[str], d: Dialect, create: bool) -> tuple[Node | None, list[str]]:
    """Walk a set path: existing blocks first (one word, or a ``keyword name`` pair), then new blocks;
    the last one or two words are the leaf (``host-name r1``)."""
    while len(rest) > 1:
        two = node.child(" ".join(rest[:2])) if len(rest) > 2 else None
        if two is not None:
            node, rest = two, rest[2:]
            continue
        one = node.child(rest[0])
        if one is not None and (one.children or len(rest) > 2):
            node, rest = one, rest[1:]
            continue
        if len(rest) <= 2:
            break
        if not create:
            return None, rest
        take = 2 if rest[0] in d.pairs and len(rest) > 3 else 1
        node, rest = node.add(" ".join(rest[:take])), rest[take:]
    return node, rest


def apply_set(root: Node, line: str, d: Dialect) -> bool:
    """``set a b c`` / ``delete a b`` on a braces tree; False when the line is neither."""
    w = words(line.strip())
    if len(w) < 2 or w[0] not in ("set", "delete"):
        return False
    start: Node | None = root
    for word, prefix in d.roots:
        if w[1] == word:
            for p in prefix:
                start = start.add(p) if w[0] == "set" and start is not None else start and start.child(p)
            break
    if start is None:
        return True
    node, rest = _descend(start, w[1:], d, create=w[0] == "set")
    if node is None:
        return w[0] == "delete"  # deleting what is not there: nothing to do
    leaf = " ".join(rest)
    if w[0] == "delete":
        node.children = [c for c in node.children if c.text != leaf and not c.text.startswith(leaf + " ")]
        return True
    if rest and rest[0] not in d.multi and len(rest) > 1:
        node.children = [c for c in node.children if not c.text.startswith(rest[0] + " ") or c.text == leaf]
    node.add(leaf)
    return True


# ---- FortiOS ------------------------------------------------------------------------------------

def _forti(stack: list[tuple[int, Node]], raw: str) -> bool:
    text = raw.strip()
    if not text:
        return True
    w = text.split(None, 2)
    top = stack[-1][1]
    if w[0] in ("config", "edit") and len(w) > 1:
        stack.append((0, top.add(text)))
    elif w[0] in ("next", "end"):
        if len(stack) > 1:
            stack.pop()
    elif w[0] == "set" and len(w) > 2:
        top.children = [c for c in top.children if not c.text.startswith(f"set {w[1]} ")]
        top.add(text)
    elif w[0] == "unset" and len(w) > 1:
        top.children = [c for c in top.children if not c.text.startswith(f"set {w[1]} ")]
    elif w[0] == "delete" and len(w) > 1:
        top.children = [c for c in top.children if c.text != f"edit {w[1]}"]
    elif w[0] == "purge":
        top.children = []
    else:
        return False
    return True


# ---- RouterOS -----------------------------------------------------------------------------------

_ROS_VERBS = ("add", "set", "remove")


def kv(line: str, inside: bool = False) -> dict[str, str]:
    """The ``key=value`` words of a RouterOS line: outside its ``[ find … ]`` selector, or (``inside``) in it."""
    m = re.search(r"\[([^\]]*)\]", line)
    line = (m.group(1) if m else "") if inside else (line[:m.start()] + line[m.end():] if m else line)
    out = {}
    for w in words(line):
        if "=" in w:
            k, _, v = w.partition("=")
            out[k] = v
    return out


def selector(line: str) -> str:
    """``set [ find default-name=ether1 ] mtu=1500`` → ``[ find default-name=ether1 ]``; plain ``set`` → ``""``."""
    m = re.match(r"set\s+(\[[^\]]*\]|\S+(?==)?)", line)
    if not m or "=" in m.group(1) and not m.group(1).startswith("["):
        return ""
    return m.group(1)


def _ros_set(section: Node, text: str) -> None:
    sel = selector(text)
    old = next((c for c in section.children if c.text.startswith("set ") and selector(c.text) == sel), None)
    merged = {**(kv(old.text) if old else {}), **kv(text)}
    line = " ".join(["set", *([sel] if sel else []), *(f"{k}={v}" for k, v in merged.items())])
    if old is not None:
        old.text = line
    else:
        section.children.append(Node(line))


def _routeros(root: Node, stack: list[tuple[int, Node]], raw: str) -> bool:
    text = " ".join(raw.split())
    if not text or text.startswith("#"):
        return True
    if text.startswith("/"):
        w = text.split()
        verb = next((i for i, x in enumerate(w) if x in _ROS_VERBS), len(w))
        del stack[1:]
        if w[:verb] != ["/"]:
            stack.append((0, root.add(" ".join(w[:verb]))))
        text = " ".join(w[verb:])
        if not text:
            return True
    section = stack[-1][1]
    if section is root or not text.startswith(_ROS_VERBS):
        return False
    if text.startswith("add "):
        if not any(c.text == text for c in section.children):
            section.children.append(Node(text))
    elif text.startswith("set "):
        _ros_set(section, text)
    else:
        want = kv(text, inside=True)
        section.children = [c for c in section.children
                            if not (c.text.startswith("add ") and want and want.items() <= kv(c.text).items())]
    return True
