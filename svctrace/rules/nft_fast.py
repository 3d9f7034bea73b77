"""A fast reader for the regular element lists that make up most of a big dump.

`10.96.0.10 . udp . 53 : goto service-…, 10.96.10.10 . tcp . 80 : goto …` (named maps) and
`0 : 10.244.1.11 . 8080, 1 : …` (kube-proxy's numgen maps) are read here with string splits;
a list with anything else in it (quotes, braces, prefixes, ranges, element options, a value
this module does not convert) returns None and goes through nft_lang's token reader, which
builds the same values.
"""

from __future__ import annotations

import gc
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from svctrace.rules.nft_symbols import INET_PROTOS, PROTO_ALIASES, VERDICT_WORDS

NUMBER = re.compile(r"(?:0x[0-9a-fA-F]+|\d+)\Z")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}\Z")
PROTO_NAMES = frozenset(INET_PROTOS.values())
_SLOW_MARKS = ('"', "{", "}", "#", "timeout", "expires", "comment", "counter")


@contextmanager
def paused_gc() -> Iterator[None]:
    """Reading a big dump makes hundreds of thousands of objects that all stay alive; the
    cyclic collector would walk them again and again for nothing (a 9 MB `nft -j` dump reads
    5x faster without it)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _slow(text: str) -> bool:
    """Quotes, braces, comments or element options: for the token reader (a chain name
    holding one of the words only costs the fast path)."""
    return any(mark in text for mark in _SLOW_MARKS)


def _ipv4(text: str) -> str | None:
    return text if IPV4.match(text) else None


def _ipv6(text: str) -> str | None:
    try:
        return socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, text))
    except OSError:
        return None


def _proto(text: str) -> str | int | None:
    if text in PROTO_NAMES:
        return text
    if text.isdigit():
        return INET_PROTOS.get(int(text), int(text))
    return PROTO_ALIASES.get(text)


def _number(text: str) -> int | None:
    return int(text, 0) if NUMBER.match(text) else None


CONVERT: dict[str | None, Callable[[str], Any]] = {
    "ipv4_addr": _ipv4,
    "ipv6_addr": _ipv6,
    "inet_proto": _proto,
    "inet_service": lambda text: int(text) if text.isdigit() else None,
    "integer": _number,
    "mark": _number,
}


def _reader(dtype: Any, as_list: bool) -> Callable[[str], Any] | None:
    """A reader of one value of `dtype` (a concatenation `a . b` when it is a list), giving
    None for text it does not convert; None when it has no converter for the type."""
    types = dtype if isinstance(dtype, list) else [dtype]
    found = [CONVERT.get(t) for t in types]
    converters = [c for c in found if c is not None]
    if len(converters) != len(found):
        return None
    if len(converters) == 1:
        return converters[0]
    count = len(converters)

    def read(text: str) -> Any:
        parts = text.split(" . ")
        if len(parts) != count:
            return None
        values = [convert(part.strip()) for convert, part in zip(converters, parts,
                                                                  strict=True)]
        if None in values:
            return None
        return values if as_list else {"concat": values}
    return read


def _verdict(text: str) -> dict[str, Any] | None:
    words = text.split()
    if len(words) == 1 and words[0] in VERDICT_WORDS:
        return {words[0]: None}
    if len(words) == 2 and words[0] in ("goto", "jump"):
        return {words[0]: {"target": words[1]}}
    return None


def fast_items(text: str, dtype: Any, data_type: Any, verdicts: bool,
               as_list: bool = False) -> list[Any] | None:
    """The items of an element list (without its braces) as nft_lang's `set_items` builds
    them — values, or [key, data] pairs; concatenations as lists if `as_list` — or None when
    the token reader must read it."""
    if _slow(text) or not text.strip():
        return None
    is_map = data_type is not None or verdicts
    read_key = _reader(dtype, as_list)
    read_data = _verdict if verdicts else _reader(data_type, as_list) if is_map else None
    if read_key is None or (is_map and read_data is None):
        return None
    items: list[Any] = []
    for raw in text.split(","):
        if is_map:
            key_text, sep, data_text = raw.partition(" : ")
            key = read_key(key_text.strip())
            data = read_data(data_text.strip()) if sep and read_data else None
            if key is None or data is None:
                return None
            items.append((key, data))
        else:
            key = read_key(raw.strip())
            if key is None or " : " in raw:
                return None
            items.append(key)
    return items


def _canonical_part(text: str, dtype: str) -> str | None:
    """One key part as the model's `key_text` spells the value it reads to."""
    if dtype == "ipv4_addr":
        return text if IPV4.match(text) else None
    if dtype == "ipv6_addr":
        return _ipv6(text)
    if dtype == "inet_proto":
        proto = _proto(text)
        return None if proto is None else str(proto)
    if dtype in ("inet_service", "integer", "mark"):
        number = _number(text)
        return None if number is None else str(number)
    return None


def keyed_items(text: str, key_type: tuple[str, ...]) -> dict[str, str] | None:
    """key text (as the model's `key_text` spells it) → the raw element text, for a regular
    element list; None when it is not regular enough to trust a text index. Addresses are
    not validated here: a malformed one is reported when the element is read."""
    if _slow(text):
        return None
    count = len(key_type)
    protos = [i for i, t in enumerate(key_type) if t == "inet_proto"]
    numbers = [i for i, t in enumerate(key_type) if t in ("inet_service", "integer", "mark")]
    plain = [i for i, t in enumerate(key_type) if t == "ipv4_addr"]
    if len(protos) + len(numbers) + len(plain) != count:
        return None
    out: dict[str, str] = {}
    for raw in text.split(","):
        key = raw.partition(" : ")[0].strip()
        parts = key.split(" . ")
        if len(parts) != count:
            return None
        if all(parts[i] in PROTO_NAMES for i in protos) and \
                all(parts[i].isdigit() and parts[i][0] != "0" for i in numbers):
            out[key] = raw
            continue
        canon = [_canonical_part(p.strip(), t) for p, t in zip(parts, key_type, strict=True)]
        if None in canon:
            return None
        out[" . ".join(canon)] = raw  # type: ignore[arg-type]
    return out
