"""Strings from the cluster, the rules or a child process, made safe to show on a terminal.

A Service name, a container's waiting reason, a rule comment or a line of exec stderr is
data, never markup or terminal control: `web[bold red]x` prints as `web[bold red]x`, and an
ESC sequence in a rule comment prints as `\\x1b[2J`, not as a cleared screen. `printable`
escapes control characters (C0, DEL, C1 and the bidirectional overrides that reorder what
a reader sees); `text` wraps the result in a rich Text, which rich never parses as markup.
JSON output needs neither: the encoder escapes control characters itself.

Standard library only at module level: the error boundary uses `printable` on every error
line, and rich is not imported for those.
"""

from __future__ import annotations

import re
from typing import Any

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Cc (C0, DEL, C1), and the bidi embeddings/overrides/isolates (U+202A-202E, U+2066-2069)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEPING_NEWLINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object) -> str:
    """`value` as text with every control character written as an escape (`\\x1b`, `\\n`)."""
    return _UNSAFE.sub(_escape, str(value))


def printable_lines(value: object) -> str:
    """Like `printable`, but line breaks stay line breaks (for text made of whole lines)."""
    return _UNSAFE_KEEPING_NEWLINES.sub(_escape, str(value))


def text(value: object, style: str = "") -> Any:
    """A rich Text showing `value` literally (no markup, control characters escaped)."""
    from rich.text import Text
    return Text(printable(value), style=style)
