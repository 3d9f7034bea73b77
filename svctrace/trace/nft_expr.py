"""Values of nft expressions for one packet.

Expressions are in the libnftables-json shape (`man libnftables-json`), the canonical form of
svctrace.model.nftables. `evaluate()` gives the packet's value of a left-hand expression with
its kind; nft_values compares it with literals and set elements.

A value is MISS when the expression does not apply to the packet (`tcp dport` on a UDP packet,
`ip saddr` on an IPv6 packet): nft adds an implicit protocol dependency, so the match is false
whatever its operator. Semantics follow nft(8) and the kernel's nft_payload, nft_meta, nft_ct,
nft_fib and nft_numgen.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svctrace.trace.nft_values import CT_STATE, CT_STATUS, L4, TCP_FLAGS, normalize
from svctrace.trace.state import BranchState, Unknown


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


