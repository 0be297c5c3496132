"""YAML loading that remembers where each value came from (file:line:col).

Mappings load as :class:`PosDict` and sequences as :class:`PosList`; both are
plain ``dict``/``list`` subclasses that also carry the 1-based position of the
node itself and of each key and item, so validators can point at the text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from opsflow.errors import Diagnostic, RunbookError

Pos = tuple[int, int]


class PosDict(dict[str, Any]):
    pos: Pos = (1, 1)
    key_pos: dict[str, Pos]
    value_pos: dict[str, Pos]


class PosList(list[Any]):
    pos: Pos = (1, 1)
    item_pos: list[Pos]


def _mark(node: yaml.Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


# libyaml's parser when present (about 8x faster); positions come from its nodes alike
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> PosDict:
    loader.flatten_mapping(node)
    out = PosDict()
    out.pos = _mark(node)
    out.key_pos, out.value_pos = {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        if key in out:
            line, col = _mark(key_node)
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_pos[key] = _mark(key_node)
        out.value_pos[key] = _mark(value_node)
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> PosList:
    out = PosList(loader.construct_object(child, deep=True) for child in node.value)
    out.pos = _mark(node)
    out.item_pos = [_mark(child) for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_text(text: str, filename: str) -> Any:
    """Parse YAML text; syntax errors become a RunbookError with the position."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or str(exc)
        if exc.context:
            what = f"{exc.context}, {what}"
        raise RunbookError([Diagnostic(filename, line, col, f"YAML syntax error: {what}")]) from exc
    except yaml.YAMLError as exc:
        raise RunbookError([Diagnostic(filename, 1, 1, f"YAML error: {exc}")]) from exc


def load_file(path: str | Path) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RunbookError([Diagnostic(str(p), 1, 1, f"cannot read file: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise RunbookError([Diagnostic(str(p), 1, 1, f"not UTF-8 text: {exc.reason}")]) from exc
    return load_text(text, str(p))


def position(root: Any, loc: tuple[str | int, ...], value: bool = False) -> Pos:
    """Best position for a path of keys/indexes into a tree loaded by this module.

    Walks as deep as the path exists; a missing key points at its parent mapping.
    """
    node, pos = root, getattr(root, "pos", (1, 1))
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, PosDict) and isinstance(part, str) and part in node:
            pos = node.key_pos[part] if last and not value else node.value_pos[part]
            node = node[part]
        elif isinstance(node, PosList) and isinstance(part, int) and 0 <= part < len(node):
            pos = node.item_pos[part]
            node = node[part]
        else:
            break
    return pos
