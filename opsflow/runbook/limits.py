"""Bounds on what a runbook may ask of the loader, the validator and the daemon.

The YAML limits live with the loader (:mod:`opsflow.yamlpos`: file size, nesting, values
with aliases expanded, integer length), those of one template with the renderer
(:mod:`opsflow.runbook.sandbox`); the per-runbook ones are here. This module also checks
the regular expressions a runbook gives the daemon (``triggers:``), which run against text sent from outside:
a pattern that can backtrack exponentially — a repeat inside a repeat like ``(a+)+``,
or a repeated alternation whose branches match the same text like ``(a|a)*`` — is
refused when the runbook is validated, with the reason.
"""

from __future__ import annotations

import re

# the parser of the re module itself (sre_parse before Python 3.11)
from re import _constants as _c  # type: ignore[attr-defined]
from re import _parser as _p  # type: ignore[attr-defined]
from typing import Any

MAX_TEMPLATES = 1000  # template strings checked in one runbook (compiling one takes about a millisecond)
MAX_DIAGNOSTICS = 200  # problems reported for one file; then how many more there are
MAX_REGEX_CHARS = 1000  # one regular expression
_WIDE = 100  # a repeat allowing this many or more is treated as unbounded
_ALL = frozenset(range(256))
_REPEATS = (_c.MAX_REPEAT, _c.MIN_REPEAT)
_DIGIT = frozenset(c for c in range(256) if chr(c).isdigit())
_WORD = frozenset(c for c in range(256) if chr(c).isalnum() or c == ord("_"))
_SPACE = frozenset(c for c in range(256) if chr(c).isspace())
_CATEGORIES = {_c.CATEGORY_DIGIT: _DIGIT, _c.CATEGORY_NOT_DIGIT: _ALL - _DIGIT, _c.CATEGORY_WORD: _WORD,
               _c.CATEGORY_NOT_WORD: _ALL - _WORD, _c.CATEGORY_SPACE: _SPACE, _c.CATEGORY_NOT_SPACE: _ALL - _SPACE}


def check_regex(text: str) -> str:
    """The pattern, when it compiles and cannot backtrack exponentially; ValueError saying why not."""
    if len(text) > MAX_REGEX_CHARS:
        raise ValueError(f"regular expression of {len(text)} characters; the limit is {MAX_REGEX_CHARS}")
    try:
        re.compile(text)
        parsed = _p.parse(text)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {text!r}: {exc}") from None
    except (RecursionError, OverflowError, MemoryError, ValueError) as exc:
        raise ValueError(f"regular expression {text!r} cannot be used: {type(exc).__name__}") from None
    problem = _catastrophic(list(parsed), outer=None)
    if problem:
        raise ValueError(f"regular expression {text!r} can take exponential time on some input ({problem}); "
                         "rewrite it without a repeat inside a repeat, e.g. (a+)+ as a+, or make the inner "
                         "repeat possessive (a++) or atomic (?>...)")
    return text


def _children(op: Any, av: Any) -> list[list[Any]]:
    if op in _REPEATS or op == _c.POSSESSIVE_REPEAT:
        return [list(av[2])]
    if op == _c.SUBPATTERN:
        return [list(av[3])]
    if op == _c.BRANCH:
        return [list(b) for b in av[1]]
    if op == _c.ATOMIC_GROUP or op in (_c.ASSERT, _c.ASSERT_NOT):
        return [list(av if op == _c.ATOMIC_GROUP else av[1])]
    if op == _c.GROUPREF_EXISTS:
        return [list(b) for b in av[1:] if b is not None]
    return []


def _catastrophic(seq: list[Any], outer: tuple[int, int] | None) -> str | None:
    """Why a parsed pattern can backtrack exponentially, or None. ``outer``: the enclosing repeat's bounds."""
    for op, av in seq:
        if op in _REPEATS:
            lo, hi = av[0], av[1]
            if outer is not None and hi > lo and (hi >= _WIDE or outer[1] >= _WIDE):
                return "a repeat inside a repeat"
            inner = (lo, hi) if hi > 1 else outer
            if hi > 1 and _delimited(list(av[2])):
                inner = None  # each repetition is marked by a character its inner repeat cannot take
            why = _catastrophic(list(av[2]), inner)
            if why:
                return why
            continue
        if op == _c.BRANCH and outer is not None and outer[1] > 1:
            branches = [list(b) for b in av[1]]
            firsts = [_first(b) for b in branches]
            for i in range(len(firsts)):
                for j in range(i + 1, len(firsts)):
                    (fi, ni), (fj, nj) = firsts[i], firsts[j]
                    if (fi & fj) or ni or nj:
                        return "a repeated alternation whose branches can match the same text"
        for child in _children(op, av):
            why = _catastrophic(child, outer)
            if why:
                return why
    return None


def _unwrap(seq: list[Any]) -> list[Any]:
    while len(seq) == 1 and seq[0][0] == _c.SUBPATTERN:
        seq = list(seq[0][1][3])
    return seq


def _delimited(body: list[Any]) -> bool:
    """A repeated body like ``-[a-z]+`` or ``[a-z0-9-]+\\.``: one inner repeat of one character class, and a
    character that starts or ends every repetition which that repeat cannot take (so there is one way to split)."""
    body = _unwrap(body)
    repeats = [(op, av) for op, av in body if op in _REPEATS or op == _c.POSSESSIVE_REPEAT]
    if len(repeats) != 1 or len(body) < 2:
        return False
    op, av = repeats[0]
    inner = list(av[2])
    if len(inner) != 1 or inner[0][0] not in (_c.LITERAL, _c.IN, _c.CATEGORY):
        return False
    taken, _ = _first_item(*inner[0])
    for end in (body[0], body[-1]):
        if end[0] in (_c.LITERAL, _c.IN, _c.CATEGORY):
            chars, _ = _first_item(*end)
            if chars and not chars & taken:
                return True
    return False


def _first(seq: list[Any]) -> tuple[frozenset[int], bool]:
    """(characters, as codes < 256 or all, that can start a match of seq; whether it can match empty)."""
    out: set[int] = set()
    for op, av in seq:
        chars, nullable = _first_item(op, av)
        out |= chars
        if not nullable:
            return frozenset(out), False
    return frozenset(out), True


def _first_item(op: Any, av: Any) -> tuple[frozenset[int], bool]:
    if op == _c.LITERAL:
        return frozenset({av}) if av < 256 else _ALL, False
    if op == _c.IN:
        chars: set[int] = set()
        for o, a in av:
            if o == _c.LITERAL:
                chars.add(a if a < 256 else 0)
            elif o == _c.RANGE:
                chars |= set(range(a[0], min(a[1], 255) + 1))
            elif o == _c.CATEGORY and a in _CATEGORIES:
                chars |= _CATEGORIES[a]
            else:  # NEGATE, a unicode category …: anything
                return _ALL, False
        return frozenset(chars), False
    if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
        return frozenset(), True
    if op in _REPEATS or op == _c.POSSESSIVE_REPEAT:
        chars_, nullable = _first(list(av[2]))
        return chars_, nullable or av[0] == 0
    if op == _c.SUBPATTERN:
        return _first(list(av[3]))
    if op == _c.ATOMIC_GROUP:
        return _first(list(av))
    if op == _c.BRANCH:
        out: set[int] = set()
        any_empty = False
        for b in av[1]:
            c, n = _first(list(b))
            out |= c
            any_empty = any_empty or n
        return frozenset(out), any_empty
    if op == _c.CATEGORY and av in _CATEGORIES:
        return _CATEGORIES[av], False
    return _ALL, False  # ANY, NOT_LITERAL, GROUPREF …: anything
