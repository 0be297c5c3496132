"""Computed restore deltas (pure): the commands that turn a running tree into a target tree, at any depth.

Only for platforms without a replace mechanism of their own (see ``catalog``): IOS-likes by negation
(``no X``), FortiOS by ``unset``/``delete`` inside ``config``/``edit`` blocks, RouterOS by
``remove [find where …]``, PAN-OS by ``set``/``delete`` paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from opsflow.platforms.edit import kv, selector
from opsflow.platforms.tree import Node, changes


@dataclass(frozen=True)
class IndentRules:
    fixed: re.Pattern[str]  # lines describing the software, never removed or re-applied ("frr version")
    set_only: tuple[str, ...]  # single-valued settings: the target value replaces the running one
    block_hint: re.Pattern[str]  # a top-level line that is a block even without children ("router ospf")


def negate(line: str) -> str:
    return line[3:] if line.startswith("no ") else f"no {line}"


def _is_block(node: Node, rules: IndentRules, top: bool) -> bool:
    return bool(node.children) or (top and bool(rules.block_hint.match(node.text)))


def _full(node: Node) -> list[str]:
    out: list[str] = []
    for c in node.children:
        out.append(c.text)
        if c.children:
            out += [*_full(c), "exit"]
    return out


def _inner(have: Node, want: Node, rules: IndentRules) -> list[str]:
    want_texts = {c.text for c in want.children}
    have_texts = {c.text for c in have.children}
    out = [negate(c.text) for c in have.children if c.text not in want_texts]
    out += [c.text for c in want.children if c.text not in have_texts and not c.children]
    for c in want.children:
        if not c.children:
            continue
        old = have.child(c.text)
        if old is None:
            out += [c.text, *_full(c), "exit"]
        else:
            inner = _inner(old, c, rules)
            if inner:
                out += [c.text, *inner, "exit"]
    return out


def indent_delta(running: Node, target: Node, rules: IndentRules) -> list[str]:
    """IOS-like: top-level lines removed (negated) and added, blocks removed, then blocks added or changed
    (recursively, each closed by ``exit``), in the target's order."""
    def split(root: Node) -> tuple[list[str], dict[str, Node]]:
        simple, blocks = [], {}
        for c in root.children:
            if rules.fixed.match(c.text):
                continue
            if _is_block(c, rules, top=True):
                blocks[c.text] = c
            else:
                simple.append(c.text)
        return simple, blocks

    run_simple, run_blocks = split(running)
    tgt_simple, tgt_blocks = split(target)
    out = [negate(s) for s in run_simple if s not in tgt_simple and not s.startswith(rules.set_only)]
    out += [s for s in tgt_simple if s not in run_simple]
    out += [negate(h) for h in run_blocks if h not in tgt_blocks]
    for header, block in tgt_blocks.items():
        have = run_blocks.get(header)
        if have is None:
            out += [header, *_full(block), "exit"]
            continue
        inner = _inner(have, block, rules)
        if inner:
            out += [header, *inner, "exit"]
    return out


# ---- FortiOS ------------------------------------------------------------------------------------

def _forti_close(text: str) -> str:
    return "end" if text.startswith("config ") else "next"


def _forti_full(node: Node) -> list[str]:
    out: list[str] = []
    for c in node.children:
        out.append(c.text)
        if c.text.startswith(("config ", "edit ")):
            out += [*_forti_full(c), _forti_close(c.text)]
    return out


def forti_delta(have: Node, want: Node) -> list[str]:
    out: list[str] = []
    want_texts = {c.text for c in want.children}
    want_keys = {" ".join(c.text.split()[:2]) for c in want.children if c.text.startswith("set ")}
    for c in have.children:
        if c.text in want_texts:
            continue
        words = c.text.split()
        if words[0] == "set" and " ".join(words[:2]) not in want_keys:
            out.append(f"unset {words[1]}")
        elif words[0] == "edit":
            out.append(f"delete {c.text[5:]}")
        elif words[0] == "config":
            inner = forti_delta(c, Node(c.text))
            if inner:
                out += [c.text, *inner, "end"]
    have_texts = {c.text for c in have.children}
    for c in want.children:
        block = c.text.startswith(("config ", "edit "))
        if c.text not in have_texts:
            out += [c.text, *_forti_full(c), _forti_close(c.text)] if block else [c.text]
        elif block:
            old = have.child(c.text)
            inner = forti_delta(old, c) if old is not None else []
            if inner:
                out += [c.text, *inner, _forti_close(c.text)]
    return out


# ---- RouterOS -----------------------------------------------------------------------------------

def _find_where(line: str) -> str:
    return "remove [find where " + " ".join(f"{k}={v}" for k, v in kv(line).items()) + "]"


def routeros_delta(have: Node, want: Node) -> list[str]:
    out: list[str] = []
    for sec in have.children:
        if want.child(sec.text) is None:
            removes = [_find_where(c.text) for c in sec.children if c.text.startswith("add ")]
            out += [sec.text, *removes] if removes else []
    for sec in want.children:
        old = have.child(sec.text) or Node(sec.text)
        old_lines = [c.text for c in old.children]
        new_lines = [c.text for c in sec.children]
        want_sets = {selector(t) for t in new_lines if t.startswith("set ")}
        removes = [_find_where(t) for t in old_lines if t.startswith("add ") and t not in new_lines]
        resets = [t for t in old_lines if t.startswith("set ") and t not in new_lines and selector(t) not in want_sets]
        adds = [t for t in new_lines if t not in old_lines]
        if removes or adds or resets:
            out += [sec.text, *removes, *adds]
    return out


# ---- set/delete paths (PAN-OS) ------------------------------------------------------------------

def _relative(elems: list[str], roots: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    for word, prefix in sorted(roots, key=lambda r: -len(r[1])):
        n = len(prefix)
        if tuple(elems[:n]) == prefix and len(elems) > n and elems[n].split()[0] == word:
            elems = elems[n:]
            break
    return " ".join(elems)


def set_delta(have: Node, want: Node, roots: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> list[str]:
    """``delete`` for what the target lacks (a leaf whose key the target sets again is just re-set),
    then ``set`` for every leaf the target adds, as paths (relative to ``roots``)."""
    out: list[str] = []
    dels: list[str] = []
    for ch in changes(have, want):
        path = list(ch.path)
        if ch.sign == "-":
            key = ch.node.text.split()[0]
            if ch.node.children or not any(c.text.split()[0] == key for c in _at(want, ch.path)):
                dels.append("delete " + _relative([*path, ch.node.text], roots))
            continue
        if not ch.node.children:
            out.append("set " + _relative([*path, ch.node.text], roots))
        for sub, leaf in ch.node.leaves():
            out.append("set " + _relative([*path, ch.node.text, *sub, leaf], roots))
    return dels + out


def _at(root: Node, path: tuple[str, ...]) -> list[Node]:
    node: Node | None = root
    for p in path:
        node = node.child(p) if node is not None else None
    return node.children if node is not None else []
