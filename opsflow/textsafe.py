"""Text from targets and events made safe to show: no control characters reach a terminal or a file.

Output of commands, device answers, event messages and error texts are data. Shown raw, an
escape sequence in them could set the terminal's title, clear the screen or move the cursor,
and in XML a control character makes the file unreadable. :func:`for_terminal` replaces every
C0/C1 control character (and DEL) except newline and tab with a visible escape (``\\x1b``);
:func:`for_xml` also removes what XML 1.0 cannot hold. Neither interprets anything: Rich markup
such as ``[link=…]`` stays literal text as long as the caller prints it without markup
(:func:`markup_literal`, or ``markup=False`` / ``rich.text.Text``).

Pure functions, no imports beyond the standard library.
"""

from __future__ import annotations

import re
from typing import Any

# C0 controls but \t and \n, DEL, C1 controls
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# also unpaired surrogates and the two non-characters XML 1.0 excludes
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_LINE_ENDS = re.compile(r"\r\n?")  # CRLF, and a lone CR (it would overwrite the line shown): a line end


def _visible(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()):02x}"


def for_terminal(value: Any) -> str:
    """``value`` as text whose control characters are shown as ``\\xNN``; ``\\r\\n`` and ``\\r`` become ``\\n``."""
    text = value if isinstance(value, str) else str(value)
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(_visible, _LINE_ENDS.sub("\n", text))


def for_xml(value: Any) -> str:
    """``value`` as text XML 1.0 can hold: controls shown as ``\\xNN``, surrogates as ``\\uNNNN``."""
    text = value if isinstance(value, str) else str(value)
    text = _LINE_ENDS.sub("\n", text)
    if not _XML_ILLEGAL.search(text):
        return text
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", text)


def markup_literal(value: Any) -> str:
    """``value`` for a Rich string that has markup of its own: controls escaped, ``[`` never markup."""
    from rich.markup import escape

    return escape(for_terminal(value))
