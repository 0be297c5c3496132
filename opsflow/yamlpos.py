"""YAML loading that remembers where each value came from (file:line:col).

Mappings load as :class:`PosDict` and sequences as :class:`PosList`; both are
plain ``dict``/``list`` subclasses that also carry the 1-based position of the
node itself and of each key and item, so validators can point at the text.

The document is built from the parser's events by a loop, never by recursion, and
the work is bounded whatever the input: the file size (:data:`MAX_FILE_BYTES`), the
nesting (:data:`MAX_DEPTH`), the number of values once aliases are expanded
(:data:`MAX_VALUES`, which stops alias bombs) and the length of integers
(:data:`MAX_INT_CHARS`). Every problem — a bad tag, a value its tag cannot
read, a limit — is a :class:`~opsflow.errors.Diagnostic` at the node's position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

from opsflow.errors import Diagnostic, RunbookError
from opsflow.postree import MAX_FILE_BYTES, Pos, PosDict, PosList, mb, position, read_text

# the trees, positions and file reading live in opsflow.postree (no YAML there); these names stay here too
__all__ = ["MAX_DEPTH", "MAX_FILE_BYTES", "MAX_INT_CHARS", "MAX_VALUES", "Pos", "PosDict", "PosList", "load_file",
           "load_text", "position", "read_text"]

MAX_DEPTH = 64  # nested mappings/sequences
MAX_VALUES = 100_000  # values in the document once every alias is expanded
MAX_INT_CHARS = 64  # characters of an integer literal (a longer one is text: quote it)

_MAP_TAG = yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG
_SEQ_TAG = yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG
_INT_TAG = "tag:yaml.org,2002:int"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str", "binary",
                                                            "timestamp"))


class _TooMuch(Exception):
    """A limit was passed: stop reading the document at once."""


def _mark(mark: Any) -> Pos:
    return (mark.line + 1, mark.column + 1)


def _short(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")


# libyaml's parser when present (about 8x faster); positions come from its events alike
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    pass


@dataclass
class _Frame:
    """A mapping or sequence being built."""

    value: PosDict | PosList
    anchor: str | None
    size: int = 1  # values inside, aliases expanded, itself included
    key: Any = None  # a mapping's key waiting for its value
    key_pos: Pos = (1, 1)
    has_key: bool = False
    merges: list[tuple[Any, Pos]] = field(default_factory=list)


class _Composer:
    def __init__(self, text: str, filename: str):
        self.loader = _Loader(text)
        self.filename = filename
        self.problems: list[Diagnostic] = []
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, expanded size)
        self.total = 0

    def problem(self, pos: Pos, message: str) -> None:
        self.problems.append(Diagnostic(self.filename, pos[0], pos[1], message))

    def fatal(self, pos: Pos, message: str) -> _TooMuch:
        self.problem(pos, message)
        return _TooMuch()

    def count(self, size: int, pos: Pos) -> None:
        self.total += size
        if self.total > MAX_VALUES:
            raise self.fatal(pos, f"the document has more than {MAX_VALUES} values once its YAML aliases are "
                                  "expanded (an alias bomb?); the limit is per runbook: use fewer aliases")

    def scalar(self, ev: ScalarEvent) -> Any:
        pos = _mark(ev.start_mark)
        tag = ev.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, ev.value, ev.implicit)
        if tag == _INT_TAG and len(ev.value) > MAX_INT_CHARS:
            self.problem(pos, f"integer of {len(ev.value)} characters; the limit is {MAX_INT_CHARS} "
                              "(quote it if it is text)")
            return ev.value
        if tag == _MERGE_TAG:
            return _MERGE
        if tag not in _SCALAR_TAGS:
            self.problem(pos, f"YAML tag {_tag_name(tag)} is not supported on a value in a runbook; remove it")
            return ev.value
        marks: Any = (ev.start_mark, ev.end_mark)  # libyaml's marks serve as well as PyYAML's
        node = yaml.ScalarNode(tag, ev.value, marks[0], marks[1], style=ev.style)
        try:
            return self.loader.yaml_constructors[tag](self.loader, node)
        except (yaml.YAMLError, ValueError, TypeError, ArithmeticError, LookupError) as exc:
            what = getattr(exc, "problem", None) or str(exc)
            self.problem(pos, f"cannot read {_short(ev.value)} as {_tag_name(tag)}: {what}")
            return ev.value

    def compose(self) -> Any:
        """The single document's value (None for an empty stream)."""
        ld = self.loader
        ld.get_event()  # StreamStart
        if ld.check_event(StreamEndEvent):
            return None
        ld.get_event()  # DocumentStart
        stack: list[_Frame] = []
        while True:
            ev = ld.get_event()
            pos = _mark(ev.start_mark)
            if isinstance(ev, MappingStartEvent | SequenceStartEvent):
                stack.append(self.start(ev, pos, depth=len(stack)))
                continue
            if isinstance(ev, ScalarEvent):
                value, size, anchor = self.scalar(ev), 1, ev.anchor
                self.count(1, pos)
            elif isinstance(ev, AliasEvent):
                anchor = None
                if ev.anchor in self.anchors:
                    value, size = self.anchors[ev.anchor]
                else:
                    self.problem(pos, f"alias *{ev.anchor} names no anchor defined before it (an anchor "
                                      "cannot be used inside itself)")
                    value, size = None, 1
                self.count(size, pos)
            elif isinstance(ev, MappingEndEvent | SequenceEndEvent):
                frame = stack.pop()
                if frame.merges:
                    self.merge(frame)
                value, size, anchor, pos = frame.value, frame.size, frame.anchor, frame.value.pos
            else:  # pragma: no cover - the parser sends nothing else inside a document
                raise self.fatal(pos, f"unexpected YAML event {type(ev).__name__}")
            if anchor is not None:
                self.anchors[anchor] = (value, size)
            if not stack:
                break
            self.add(stack[-1], value, size, pos)
        ld.get_event()  # DocumentEnd
        if not ld.check_event(StreamEndEvent):
            ev = ld.get_event()
            raise self.fatal(_mark(ev.start_mark), "a runbook file holds one YAML document; found a second")
        return None if value is _MERGE else value

    def start(self, ev: MappingStartEvent | SequenceStartEvent, pos: Pos, depth: int) -> _Frame:
        mapping = isinstance(ev, MappingStartEvent)
        if ev.tag not in (None, "!", _MAP_TAG if mapping else _SEQ_TAG):
            self.problem(pos, f"YAML tag {_tag_name(ev.tag)} is not supported on a "
                              f"{'mapping' if mapping else 'sequence'} in a runbook; remove it")
        if depth >= MAX_DEPTH:
            raise self.fatal(pos, f"nesting deeper than {MAX_DEPTH} levels (mappings and lists inside each "
                                  "other); flatten the structure")
        container: PosDict | PosList
        if mapping:
            container = PosDict()
            container.key_pos, container.value_pos = {}, {}
        else:
            container = PosList()
            container.item_pos = []
        container.pos = pos
        self.count(1, pos)
        return _Frame(container, ev.anchor)

    def add(self, frame: _Frame, value: Any, size: int, pos: Pos) -> None:
        frame.size += size
        out = frame.value
        if value is _MERGE and not (isinstance(out, PosDict) and not frame.has_key):
            value = "<<"  # a merge key only merges in a key's place
        if isinstance(out, PosList):
            out.append(value)
            out.item_pos.append(pos)
            return
        if not frame.has_key:
            frame.key, frame.key_pos, frame.has_key = value, pos, True
            return
        key, frame.has_key = frame.key, False
        if key is _MERGE:
            frame.merges.append((value, pos))
            return
        if isinstance(key, dict | list):
            self.problem(frame.key_pos, "a mapping key must be a plain value, not a mapping or a list")
            return
        if not isinstance(key, str):
            key = str(key)
        if key in out:
            self.problem(frame.key_pos, f"duplicate key {_short(key)}")
            return
        out[key] = value
        out.key_pos[key] = frame.key_pos
        out.value_pos[key] = pos

    def merge(self, frame: _Frame) -> None:
        """``<<: *base`` (or a list of them): keys not given here come from the merged mappings."""
        out = frame.value
        assert isinstance(out, PosDict)
        for value, pos in frame.merges:
            for source in value if isinstance(value, list) else [value]:
                if not isinstance(source, PosDict):
                    self.problem(pos, "a merge key << takes a mapping or a list of mappings")
                    continue
                for k, v in source.items():
                    if k not in out:
                        out[k] = v
                        out.key_pos[k] = source.key_pos[k]
                        out.value_pos[k] = source.value_pos[k]


_MERGE = object()


def _tag_name(tag: str) -> str:
    return "!!" + tag.rsplit(":", 1)[-1] if tag.startswith("tag:yaml.org,2002:") else tag


def load_text(text: str, filename: str) -> Any:
    """Parse YAML text; every problem becomes a RunbookError with the position."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise RunbookError([Diagnostic(filename, 1, 1, f"the file is {mb(size)}; the limit is "
                                       f"{mb(MAX_FILE_BYTES)} (split it, or move data out of the runbook)")])
    composer = _Composer(text, filename)
    try:
        value = composer.compose()
    except _TooMuch:
        value = None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or str(exc)
        if exc.context:
            what = f"{exc.context}, {what}"
        raise RunbookError([Diagnostic(filename, line, col, f"YAML syntax error: {what}")]) from exc
    except yaml.YAMLError as exc:
        raise RunbookError([Diagnostic(filename, 1, 1, f"YAML error: {exc}")]) from exc
    finally:
        composer.loader.dispose()
    if composer.problems:
        raise RunbookError(composer.problems)
    return value


def load_file(path: str | Path) -> Any:
    return load_text(read_text(path), str(path))
