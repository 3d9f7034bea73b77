"""Literals and set elements of nft rules, ready to be compared with a packet's values.

`normalize()` turns a literal (libnftables-json shape) of a given kind into a comparable value
or a pattern (prefix, range, interface wildcard); `holds()` compares; `SetIndex` answers a
lookup in a set, a map or a verdict map. A kind is what an expression yields: "addr", "int",
"proto", "str", a flag kind ("ctstate", "ctstatus", "tcpflags"), or a tuple of kinds for a
concatenation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 33: "dccp", 58: "ipv6-icmp", 132: "sctp",
               136: "udplite"}
PROTO_ALIASES = {"icmpv6": "ipv6-icmp"}
CT_STATE = {"invalid": 1, "established": 2, "related": 4, "new": 8, "untracked": 64}
CT_STATUS = {"expected": 1, "seen-reply": 2, "assured": 4, "confirmed": 8, "snat": 16,
             "dnat": 32, "dying": 512}
TCP_FLAGS = {"fin": 1, "syn": 2, "rst": 4, "psh": 8, "ack": 16, "urg": 32, "ecn": 64, "cwr": 128}
FLAG_NAMES = {"ctstate": CT_STATE, "ctstatus": CT_STATUS, "tcpflags": TCP_FLAGS}
SET_TYPE_KINDS = {"ipv4_addr": "addr", "ipv6_addr": "addr", "inet_service": "int",
                  "inet_proto": "proto", "mark": "int", "ifname": "str", "ct_state": "ctstate",
                  "ct_status": "ctstatus", "integer": "int", "tcp_flag": "tcpflags"}
L4 = ("tcp", "udp", "sctp", "dccp", "udplite")


@dataclass(frozen=True, slots=True)
class Net:
    net: Any

    def holds(self, value: Any) -> bool:
        return isinstance(value, (IPv4Address, IPv6Address)) and value in self.net


@dataclass(frozen=True, slots=True)
class Range:
    low: Any
    high: Any

    def holds(self, value: Any) -> bool:
        try:
            return bool(self.low <= value <= self.high)
        except TypeError:
            return False


@dataclass(frozen=True, slots=True)
class Glob:
    prefix: str

    def holds(self, value: Any) -> bool:
        return isinstance(value, str) and value.startswith(self.prefix)


Pattern = Net | Range | Glob


@functools.lru_cache(maxsize=65536)
def _literal_text(text: str) -> Any:
    if "/" in text:
        try:
            return Net(ip_network(text, strict=False))
        except ValueError:
            return text
    if text[:1].isdigit() or ":" in text:
        try:
            return ip_address(text)
        except ValueError:
            return text
    if text.endswith("*") and not text.endswith("\\*"):
        return Glob(text[:-1])
    return text


def normalize(raw: Any, kind: Any) -> Any:
    """A literal (as JSON) of the given kind → a comparable value or a Pattern."""
    if isinstance(kind, tuple):
        parts = raw.get("concat") if isinstance(raw, Mapping) else raw
        if not isinstance(parts, (list, tuple)) or len(parts) != len(kind):
            return raw if not isinstance(raw, list) else tuple(raw)
        return tuple(normalize(p, k) for p, k in zip(parts, kind, strict=True))
    if isinstance(raw, Mapping):
        if "elem" in raw:
            return normalize(raw["elem"].get("val"), kind)
        if "prefix" in raw:
            p = raw["prefix"]
            return Net(ip_network(f"{p['addr']}/{p['len']}", strict=False))
        if "range" in raw:
            low, high = (normalize(v, kind) for v in raw["range"])
            return Range(low, high)
        return repr(raw)
    names = FLAG_NAMES.get(kind) if isinstance(kind, str) else None
    if names is not None:
        if isinstance(raw, list):
            bits = 0
            for r in raw:
                bits |= names.get(r, 0) if isinstance(r, str) else int(r)
            return bits
        return names.get(raw, -1) if isinstance(raw, str) else raw
    if kind == "proto":
        if isinstance(raw, int):
            return PROTO_NAMES.get(raw, raw)
        return PROTO_ALIASES.get(raw, raw)
    if isinstance(raw, str):
        if kind == "int" and raw.isdigit():
            return int(raw)
        return _literal_text(raw)
    return raw


def holds(value: Any, pattern: Any) -> bool:
    """Is `value` equal to (or inside) the normalized literal `pattern`?"""
    if isinstance(pattern, (Net, Range, Glob)):
        return pattern.holds(value)
    if isinstance(pattern, tuple) and isinstance(value, tuple):
        return len(pattern) == len(value) and all(
            holds(v, p) for v, p in zip(value, pattern, strict=True))
    return bool(value == pattern)


def _exact(key: Any) -> bool:
    if isinstance(key, tuple):
        return all(_exact(k) for k in key)
    return not isinstance(key, (Net, Range, Glob))


def _addr_part(raw: Any) -> Any:
    if type(raw) is str and "/" not in raw and "-" not in raw:
        return raw if ":" not in raw else _canonical_v6(raw)
    return None


def _int_part(raw: Any) -> Any:
    if type(raw) is int:
        return raw
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def _proto_part(raw: Any) -> Any:
    if type(raw) is str:
        return PROTO_ALIASES.get(raw, raw)
    return PROTO_NAMES.get(raw, raw) if isinstance(raw, int) else None


def _str_part(raw: Any) -> Any:
    return raw if type(raw) is str and not raw.endswith("*") else None


# a plain element key part → its lookup form (addresses as canonical text, ports as ints,
# protocols by name); None when it needs the full normalize() (prefixes, ranges, wildcards)
_FAST_PARTS: dict[str, Callable[[Any], Any]] = {
    "addr": _addr_part, "int": _int_part, "proto": _proto_part, "str": _str_part}


@functools.lru_cache(maxsize=65536)
def _canonical_v6(text: str) -> str | None:
    try:
        return str(ip_address(text))
    except ValueError:
        return None


def _fast_keys(items: list[tuple[Any, Any]], kind: Any) -> list[Any]:
    """The lookup form of each element key (None where it needs normalize()); a big node's
    maps hold tens of thousands of elements, so this is one tight loop per set."""
    if not isinstance(kind, tuple):
        one = _FAST_PARTS.get(kind)
        return [one(raw) if one else None for raw, _ in items]
    parts = [_FAST_PARTS.get(k) for k in kind]
    if None in parts:
        return [None] * len(items)
    width = len(parts)
    out: list[Any] = []
    for raw, _ in items:
        if type(raw) is not list or len(raw) != width:
            out.append(None)
            continue
        key = tuple([fn(p) for fn, p in zip(parts, raw, strict=True)])  # type: ignore[misc]
        out.append(None if None in key else key)
    return out


def lookup_form(value: Any) -> Any:
    """A packet's value as SetIndex keys it: addresses by their canonical text."""
    if isinstance(value, (IPv4Address, IPv6Address)):
        return str(value)
    if isinstance(value, tuple):
        return tuple(lookup_form(v) for v in value)
    return value


class SetIndex:
    """A set or map's elements ready for lookups: exact keys hashed (a big node's maps hold
    tens of thousands; plain keys are indexed without parsing their addresses), the rest
    (prefixes, ranges, wildcards) normalized and scanned."""

    __slots__ = ("exact", "patterns")

    def __init__(self, items: list[tuple[Any, Any]], kind: Any) -> None:
        self.exact: dict[Any, Any] = {}
        self.patterns: list[tuple[Any, Any]] = []
        for (raw, data), fast in zip(items, _fast_keys(items, kind), strict=True):
            if fast is not None:
                self.exact.setdefault(fast, data)
                continue
            key = normalize(raw, kind)
            if _exact(key):
                self.exact.setdefault(lookup_form(key), data)
            else:
                self.patterns.append((key, data))

    def lookup(self, value: Any) -> tuple[bool, Any]:
        """(found, data of the element); data is None for a plain set."""
        try:
            key = lookup_form(value)
            if key in self.exact:
                return True, self.exact[key]
        except TypeError:
            pass
        for pattern, data in self.patterns:
            if holds(value, pattern):
                return True, data
        return False, None


def anonymous_items(body: Any) -> list[tuple[Any, Any]]:
    """`{"set": [...]}` of a rule → (key, data) pairs; map elements are [key, data] lists."""
    items = body if isinstance(body, list) else [body]
    out: list[tuple[Any, Any]] = []
    for item in items:
        if isinstance(item, list) and len(item) == 2:
            out.append((item[0], item[1]))
        else:
            out.append((item, None))
    return out


def kind_of_type(type_parts: tuple[str, ...] | list[str] | str) -> Any:
    """A set's declared type (`ipv4_addr . inet_proto . inet_service`) → the kinds of its key."""
    parts = [type_parts] if isinstance(type_parts, str) else list(type_parts)
    kinds = tuple(SET_TYPE_KINDS.get(p, "str") for p in parts)
    return kinds[0] if len(kinds) == 1 else kinds
