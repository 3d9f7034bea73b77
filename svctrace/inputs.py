"""Reading an input (rules, a snapshot) from a file, a FIFO, a device or stdin, with a size limit.

The limit is checked while reading, chunk by chunk: `/dev/zero`, `yes | svctrace … -` or a FIFO
that never ends stop at the limit (or at the first NUL byte) instead of filling memory. Only
errors.py is imported: the rules and cluster adapters both read through here.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import BinaryIO

from svctrace.errors import RulesError, SnapshotError, SvctraceError, UsageError

DEFAULT_MAX_INPUT = 512 * 2**20          # well above the largest real node's iptables-save
CHUNK = 1 << 20

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"([0-9]+)([kmgt]?)(?:i?b)?", re.ASCII | re.IGNORECASE)


@dataclass(frozen=True)
class InputKind:
    """What is read, for messages: its description, the option naming it, its error class."""

    what: str                       # "iptables-save output"
    option: str                     # "--rules"
    error: type[SvctraceError]
    lead: str = ""                  # before the reason a file cannot be opened

    @property
    def cannot(self) -> str:
        return self.lead or "cannot read: "

    def fail(self, source: str, reason: str, hint: str | None = None) -> SvctraceError:
        return self.error(f"{source}: {reason}", hint)


RULES_INPUT = InputKind("iptables-save output", "--rules", RulesError)
SNAPSHOT_INPUT = InputKind("a snapshot", "--snapshot", SnapshotError, "cannot read snapshot: ")


def parse_size(text: str, option: str = "--max-input-size") -> int:
    """`512M`, `2G`, `100k`, `64MiB` or plain bytes (binary units) → bytes; UsageError else."""
    found = _SIZE.fullmatch(text.strip())
    size = int(found[1]) * _UNITS[found[2].lower()] if found else 0
    if size <= 0:
        raise UsageError(f"{option} {text!r}: expected a positive size such as 512M, 2G or "
                         "100000 (bytes)")
    return size


def format_size(size: int) -> str:
    """The largest binary unit that divides `size` exactly: 536870912 → 512M, 1000 → 1000B."""
    for unit in ("T", "G", "M", "k"):
        scale = _UNITS[unit.lower()]
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"


def read_input(path: str, max_bytes: int, kind: InputKind) -> tuple[bytearray, str]:
    """(content, source name) of `path` ('-' is stdin), at most `max_bytes` long."""
    if path == "-":
        return _read_stdin(max_bytes, kind), "<stdin>"
    try:
        with open(path, "rb") as fh:
            return _read_limited(fh, path, max_bytes, kind), path
    except IsADirectoryError:
        raise kind.fail(path, f"{kind.lead}is a directory, not {kind.what}") from None
    except FileNotFoundError:
        raise kind.fail(path, f"{kind.lead}no such file") from None
    except OSError as err:
        raise kind.fail(path, f"{kind.cannot}{err.strerror or err}") from None


def decode_input(data: bytearray, source: str, kind: InputKind) -> str:
    """The content as text; a located error when it is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise kind.fail(f"{source}:{line}", f"not text (invalid UTF-8 at byte {err.start}): "
                        f"this is not {kind.what}") from None


_stdin_read: list[tuple[BinaryIO, bytearray]] = []   # stdin holds one input: read it once


def _read_stdin(max_bytes: int, kind: InputKind) -> bytearray:
    """stdin's content; a second reader (explain reads a snapshot twice when --node names a
    Node its Service does not need) gets the same content, not an empty stream."""
    stream = _stdin(kind)
    if not _stdin_read or _stdin_read[0][0] is not stream:
        _stdin_read[:] = [(stream, _read_limited(stream, "<stdin>", max_bytes, kind))]
    return _stdin_read[0][1]


def _stdin(kind: InputKind) -> BinaryIO:
    # `<&-` closes fd 0: Python then has no sys.stdin at all (or one that fails on read)
    stream = sys.stdin.buffer if sys.stdin is not None else None
    if stream is None or stream.closed:
        raise kind.error(f"{kind.option} -: stdin is closed, nothing to read",
                         f"pipe {kind.what} in, or give {kind.option} FILE")
    return stream


def _read_limited(fh: BinaryIO, source: str, max_bytes: int, kind: InputKind) -> bytearray:
    data = bytearray()
    while True:
        try:
            chunk = fh.read(min(CHUNK, max_bytes + 1 - len(data)))
        except OSError as err:
            raise kind.fail(source, f"{kind.cannot}{err.strerror or err}") from None
        if not chunk:
            return data
        nul = chunk.find(b"\x00")
        if nul >= 0:
            line = data.count(b"\n") + chunk.count(b"\n", 0, nul) + 1
            raise kind.fail(f"{source}:{line}", f"binary data (NUL byte): this is not {kind.what}")
        data += chunk
        if len(data) > max_bytes:
            raise kind.fail(source, f"larger than {format_size(max_bytes)} "
                            f"(--max-input-size): stopped reading; is it {kind.what}?",
                            f"raise the limit if it is: --max-input-size "
                            f"{format_size(max_bytes * 2)}")
