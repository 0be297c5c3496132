"""Positioned trees: the mappings and sequences a YAML document loads as, each with the 1-based
file:line:col of itself and of its keys and items; where a path into such a tree points; a file's text
within the size limit.

No YAML here: :mod:`opsflow.yamlpos` parses (and re-exports these), so a tree kept by a cache (see
:mod:`opsflow.runbook.cache`) is read back without importing the parser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opsflow.errors import Diagnostic, RunbookError

Pos = tuple[int, int]

MAX_FILE_BYTES = 1024 * 1024  # a runbook is text written by people; the largest shipped one is a few kB


class PosDict(dict[str, Any]):
    pos: Pos = (1, 1)
    key_pos: dict[str, Pos]
    value_pos: dict[str, Pos]


class PosList(list[Any]):
    pos: Pos = (1, 1)
    item_pos: list[Pos]


def mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size} bytes"


def read_text(path: str | Path) -> str:
    """A file's text, refused when larger than MAX_FILE_BYTES (read no further than that)."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                try:
                    size = max(p.stat().st_size, len(data))
                except OSError:
                    size = len(data)
                raise RunbookError([Diagnostic(str(p), 1, 1, f"the file is {mb(size)}; the limit is "
                                               f"{mb(MAX_FILE_BYTES)} (split it, or move data out of it)")])
        return data.decode("utf-8")
    except OSError as exc:
        raise RunbookError([Diagnostic(str(p), 1, 1, f"cannot read file: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise RunbookError([Diagnostic(str(p), 1, 1, f"not UTF-8 text: {exc.reason}")]) from exc


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
