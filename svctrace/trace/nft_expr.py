"""Values of nft expressions for one packet, and the sets and maps they are looked up in.

Expressions and literals are in the libnftables-json shape (`man libnftables-json`), the
canonical form of svctrace.model.nftables. `evaluate()` gives the packet's value of a left-hand
expression with its kind; `normalize()` turns a literal of that kind into something the value
can be compared with; `SetIndex` answers a lookup in a set, a map or a verdict map.

A value is MISS when the expression does not apply to the packet (`tcp dport` on a UDP packet,
`ip saddr` on an IPv6 packet): nft adds an implicit protocol dependency, so the match is false
whatever its operator. Semantics follow nft(8) and the kernel's nft_payload, nft_meta, nft_ct,
nft_fib and nft_numgen.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

from svctrace.trace.state import BranchState, Unknown

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


class Miss:
    """The expression does not apply to this packet: every match on it is false."""


MISS = Miss()


class Fork(Exception):
    """A random (or per-packet counter) expression: the branch must fork, one way per value."""

    def __init__(self, expr: Mapping[str, Any], values: int) -> None:
        super().__init__("fork")
        self.expr = expr
        self.values = values


@dataclass
class Context:
    """Where an expression is evaluated: the branch, the hook, the numgen values chosen."""

    state: BranchState
    hook: str                     # prerouting, input, forward, output, postrouting
    local_out: bool
    reentry: bool = False         # a locally generated packet coming back in through lo
    bindings: dict[int, int] = field(default_factory=dict)


Value = tuple[Any, Any]           # (value, kind); kind is a str or a tuple of kinds (concat)
Result = Value | Miss | Unknown


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


def _payload(ctx: Context, body: Mapping[str, Any]) -> Result:
    pkt = ctx.state.packet
    proto, fld = body.get("protocol"), body.get("field")
    if proto in ("ip", "ip6"):
        if (proto == "ip") != (pkt.family == 4):
            return MISS
        if fld in ("saddr", "daddr"):
            return (pkt.src if fld == "saddr" else pkt.dst), "addr"
        if fld in ("protocol", "nexthdr"):
            return pkt.protocol, "proto"
    elif proto == "th" or proto in L4:
        if proto != "th" and proto != pkt.protocol:
            return MISS
        if fld in ("sport", "dport"):
            return (pkt.sport if fld == "sport" else pkt.dport), "int"
        if proto == "tcp" and fld == "flags":
            return TCP_FLAGS["syn"], "tcpflags"          # a new connection's first packet
    elif proto in ("icmp", "icmpv6"):
        return MISS                                       # we trace tcp, udp and sctp only
    return Unknown(f"payload expression {proto} {fld}")


def _interface_name(ctx: Context, which: str) -> Result:
    pkt = ctx.state.packet
    if which == "iifname":
        if ctx.reentry:
            return "lo", "str"
        if ctx.local_out or ctx.hook == "output":
            return "", "str"                              # locally generated: no input device
        if pkt.in_interface is None:
            return Unknown("meta iifname (the input interface is unknown: give --in-interface)")
        return pkt.in_interface, "str"
    if ctx.hook in ("prerouting", "input") or ctx.reentry:
        return "", "str"                                  # not routed out yet
    if pkt.out_interface is None:
        return Unknown(f"meta {which} (the output interface is unknown)")
    return pkt.out_interface, "str"


def _meta(ctx: Context, body: Mapping[str, Any]) -> Result:
    key = body.get("key")
    pkt = ctx.state.packet
    if key == "l4proto":
        return pkt.protocol, "proto"
    if key == "nfproto":
        return ("ipv4" if pkt.family == 4 else "ipv6"), "str"
    if key == "protocol":
        return ("ip" if pkt.family == 4 else "ip6"), "str"
    if key == "mark":
        return ctx.state.mark, "int"
    if key in ("iifname", "oifname"):
        return _interface_name(ctx, key)
    return Unknown(f"meta {key}")


def _ct(ctx: Context, body: Mapping[str, Any]) -> Result:
    key = body.get("key")
    st = ctx.state
    if key == "state":
        return (CT_STATE["untracked"] if st.notrack else CT_STATE["new"]), "ctstate"
    if st.notrack:
        return MISS
    if key == "status":
        bits = (CT_STATUS["dnat"] if st.dnat else 0) | (CT_STATUS["snat"] if st.snat else 0)
        return bits | (CT_STATUS["confirmed"] if ctx.reentry else 0), "ctstatus"
    if key == "mark":
        return st.ctmark, "int"
    if key == "direction":
        return "original", "str"
    return Unknown(f"ct {key}")


def _fib(ctx: Context, body: Mapping[str, Any]) -> Result:
    flags = body.get("flags") or []
    flags = [flags] if isinstance(flags, str) else list(flags)
    result = body.get("result")
    pkt = ctx.state.packet
    address = pkt.src if "saddr" in flags else pkt.dst
    local = ctx.state.node.is_local(address)
    if result == "type":
        if "iif" in flags or "oif" in flags:
            if not local:
                return "unicast", "str"
            return Unknown("fib … iif/oif type: the node's interfaces are not known")
        if address.is_multicast:
            return "multicast", "str"
        return ("local" if local else "unicast"), "str"
    if result in ("oif", "oifname") and local and "iif" not in flags:
        return "lo", "str"
    return Unknown(f"fib {' . '.join(flags)} {result}: the node's routing table is not known")


def _numgen(ctx: Context, body: Mapping[str, Any]) -> Result:
    if body.get("mode") not in ("random", "inc"):
        return Unknown(f"numgen {body.get('mode')}")
    mod = int(body.get("mod", 0))
    if mod <= 0:
        return Unknown("numgen without a modulus")
    chosen = ctx.bindings.get(id(body))
    if chosen is None:
        raise Fork(body, mod)
    return chosen + int(body.get("offset", 0) or 0), "int"


def _concat(ctx: Context, parts: list[Any]) -> Result:
    values, kinds = [], []
    for part in parts:
        r = evaluate(ctx, part)
        if isinstance(r, (Miss, Unknown)):
            return r
        values.append(r[0])
        kinds.append(r[1])
    return tuple(values), tuple(kinds)


_BINARY: dict[str, Callable[[int, int], int]] = {
    "&": lambda a, b: a & b, "|": lambda a, b: a | b, "^": lambda a, b: a ^ b,
    "<<": lambda a, b: (a << b) & 0xFFFFFFFF, ">>": lambda a, b: a >> b}


def _binary(ctx: Context, op: str, args: list[Any]) -> Result:
    left = evaluate(ctx, args[0])
    if isinstance(left, (Miss, Unknown)):
        return left
    value, kind = left
    for arg in args[1:]:
        if isinstance(arg, Mapping) and not set(arg) & {"prefix", "range", "set"}:
            r = evaluate(ctx, arg)
            if isinstance(r, (Miss, Unknown)):
                return r
            operand = r[0]
        else:
            operand = normalize(arg, kind)
        if not isinstance(value, int) or not isinstance(operand, int):
            return Unknown(f"operator {op} on {value!r}")
        value = _BINARY[op](value, operand)
    return value, kind


_EXPRESSIONS: dict[str, Callable[[Context, Any], Result]] = {
    "payload": _payload, "meta": _meta, "ct": _ct, "fib": _fib, "numgen": _numgen,
    "concat": _concat,
}


def evaluate(ctx: Context, expr: Any) -> Result:
    """The packet's value of a left-hand (or key) expression, with its kind."""
    if isinstance(expr, Mapping) and len(expr) == 1:
        ((name, body),) = expr.items()
        if name in _BINARY:
            return _binary(ctx, name, list(body))
        fn = _EXPRESSIONS.get(name)
        if fn is not None:
            return fn(ctx, body)
        if name == "map":
            return Unknown("a map lookup used as a match's left side")
        return Unknown(f"expression {name!r}")
    return Unknown(f"expression {expr!r}")


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
