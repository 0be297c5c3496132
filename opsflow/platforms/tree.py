"""Configuration text as a tree (pure): parse each platform's syntax, render it, compare two trees at any depth.

Four syntaxes cover the platforms:

* ``indent``   IOS-likes (IOS, IOS-XE, NX-OS, IOS-XR, EOS, AOS-CX, FRR): a line's children are the
  lines indented under it; ``!``, ``exit``, ``end`` are punctuation.
* ``braces``   Junos ``show configuration`` and PAN-OS ``show config running``: ``name {`` … ``}``,
  leaves end with ``;``.
* ``forti``    FortiOS: ``config X`` … ``end``, ``edit Y`` … ``next``, leaves ``set``/``unset``.
* ``routeros`` MikroTik ``/export``: ``/ip address`` sections holding ``add``/``set`` lines
  (``\\`` continues a line).

Siblings are keyed by their text: a block appearing twice is one block (its children merged),
so comparing is by set membership at each level, in the order of the newer tree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

INDENT_PUNCTUATION = frozenset({"!", "exit", "end", "exit-address-family", "exit-vrf", "exit-vni"})


@dataclass
class Node:
    text: str
    children: list[Node] = field(default_factory=list)

    def child(self, text: str) -> Node | None:
        for c in self.children:
            if c.text == text:
                return c
        return None

    def add(self, text: str) -> Node:
        """The child of this text, created (at the end) if absent: blocks of one name merge."""
        found = self.child(text)
        if found is None:
            found = Node(text)
            self.children.append(found)
        return found

    def walk(self, depth: int = 0) -> Iterator[tuple[int, Node]]:
        for c in self.children:
            yield depth, c
            yield from c.walk(depth + 1)

    def leaves(self, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
        """(path of ancestors, text) for every node without children."""
        for c in self.children:
            if c.children:
                yield from c.leaves((*path, c.text))
            else:
                yield path, c.text


def parse(text: str, syntax: str) -> Node:
    lines = text.splitlines()
    if syntax == "indent":
        return parse_indent(lines)
    if syntax == "braces":
        return parse_braces(lines)
    if syntax == "forti":
        return parse_forti(lines)
    if syntax == "routeros":
        return parse_routeros(lines)
    raise ValueError(f"unknown config syntax {syntax!r}")


def parse_indent(lines: Iterable[str]) -> Node:
    root = Node("")
    stack: list[tuple[int, Node]] = [(-1, root)]
    for raw in lines:
        line = raw.rstrip()
        text = line.strip()
        if not text or text in INDENT_PUNCTUATION or text.startswith("!"):
            continue
        indent = len(line) - len(line.lstrip())
        while stack[-1][0] >= indent:
            stack.pop()
        node = stack[-1][1].add(text)
        stack.append((indent, node))
    return root


def _strip_comment(line: str) -> str:
    text = line.strip()
    if text.startswith(("#", "/*")):
        return ""
    for mark in (" ## ", " /* "):
        if mark in text:
            text = text[: text.index(mark)].rstrip()
    return text


def parse_braces(lines: Iterable[str]) -> Node:
    root = Node("")
    stack = [root]
    for raw in lines:
        text = _strip_comment(raw)
        if not text:
            continue
        if text == "}":
            if len(stack) > 1:
                stack.pop()
        elif text.endswith("{"):
            stack.append(stack[-1].add(text[:-1].strip()))
        elif text.endswith("{ }") or text.endswith("{}"):
            stack[-1].add(text.rstrip("{} ").strip())
        else:
            stack[-1].add(text.rstrip(";").strip())
    return root


def _joined(lines: Iterable[str], cont: str | None = None) -> Iterator[str]:
    """Logical lines: a RouterOS line ending in ``\\`` continues; a FortiOS quoted value may span lines."""
    pending = ""
    for raw in lines:
        line = raw.rstrip("\r\n")
        if cont == "\\":
            text = line.strip()
            if text.endswith("\\"):
                pending += text[:-1].strip() + " "
                continue
            if pending:
                yield pending + text
                pending = ""
                continue
        elif cont == '"':
            pending = f"{pending}\n{line}" if pending else line
            if (pending.count('"') - pending.count('\\"')) % 2:
                continue
            line, pending = pending, ""
        yield line
    if pending:
        yield pending


def parse_forti(lines: Iterable[str]) -> Node:
    root = Node("")
    stack = [root]
    for raw in _joined(lines, '"'):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        word = text.split(None, 1)[0]
        if word in ("config", "edit"):
            stack.append(stack[-1].add(text))
        elif word in ("end", "next"):
            if len(stack) > 1:
                stack.pop()
        else:
            stack[-1].add(text)
    return root


def parse_routeros(lines: Iterable[str]) -> Node:
    root = Node("")
    section = root
    for raw in _joined(lines, "\\"):
        text = " ".join(raw.split()) if not raw.strip().startswith("#") else ""
        if not text:
            continue
        if text.startswith("/"):
            section = root.add(text)
        elif section is not root:
            section.children.append(Node(text))  # add lines may repeat: keep each
        else:
            root.add(text)
    return root


def render(node: Node, syntax: str, depth: int = 0) -> list[str]:
    """The tree as configuration text in its own syntax (what the device would show)."""
    out: list[str] = []
    for c in node.children:
        if syntax == "braces":
            pad = "    " * depth
            if c.children:
                out += [f"{pad}{c.text} {{", *render(c, syntax, depth + 1), f"{pad}}}"]
            else:
                out.append(f"{pad}{c.text};")
        elif syntax == "forti":
            pad = "    " * depth
            out.append(pad + c.text)
            if c.text.startswith(("config ", "edit ")):
                out += render(c, syntax, depth + 1)
                out.append(pad + ("end" if c.text.startswith("config ") else "next"))
        elif syntax == "routeros":
            if c.text.startswith("/"):
                out += [c.text, *(g.text for g in c.children)]
            else:
                out.append(c.text)
        else:
            out.append(" " * depth + c.text)
            out += render(c, syntax, depth + 1)
            if depth == 0 and c.children:
                out.append("!")
    return out


@dataclass(frozen=True)
class Change:
    sign: str  # "+" or "-"
    path: tuple[str, ...]  # the ancestors' texts
    node: Node


def changes(old: Node, new: Node, path: tuple[str, ...] = ()) -> list[Change]:
    """What differs between two trees, at any depth: removed nodes, added nodes, and inside common blocks."""
    out: list[Change] = []
    new_texts = {c.text for c in new.children}
    old_texts = {c.text for c in old.children}
    out += [Change("-", path, c) for c in old.children if c.text not in new_texts]
    for c in new.children:
        if c.text not in old_texts:
            out.append(Change("+", path, c))
            continue
        before = old.child(c.text)
        if before is not None and (before.children or c.children):
            out += changes(before, c, (*path, c.text))
    return out


def diff_text(old: Node, new: Node, syntax: str) -> str:
    """A hierarchical diff: each change under its unchanged ancestors (shown once), blocks in full."""
    lines: list[str] = []
    shown: tuple[str, ...] = ()
    step = "    " if syntax in ("braces", "forti") else "  " if syntax == "routeros" else " "
    for ch in changes(old, new):
        common = 0
        while common < min(len(shown), len(ch.path)) and shown[common] == ch.path[common]:
            common += 1
        for depth in range(common, len(ch.path)):
            lines.append(" " + step * depth + ch.path[depth] + (" {" if syntax == "braces" else ""))
        shown = ch.path
        depth = len(ch.path)
        lines.append(ch.sign + step * depth + ch.node.text)
        lines += [ch.sign + step * (depth + 1 + d) + n.text for d, n in ch.node.walk()]
    return "\n".join(lines)
