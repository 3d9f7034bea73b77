"""One small function per nft statement: what it does to a branch, and how the rule goes on.

A statement returns True (go on with the next statement), False (the rule does not match:
the next rule runs), an Unknown (not evaluated: the rule is assumed not to match, and the
trace says so) or a Verdict. NAT statements are terminal like `accept` (nft_nat sets the
verdict of the base chain). Semantics follow nft(8) and libnftables-json(5).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any, Protocol

from svctrace.model.packet import format_endpoint
from svctrace.trace.nft_expr import MISS, Context, Miss, evaluate
from svctrace.trace.nft_values import FLAG_NAMES, holds, normalize
from svctrace.trace.state import Unknown

Verdict = tuple[str, str | None]          # ("accept" | "drop" | "jump" | …, chain or None)
StmtResult = bool | Unknown | Verdict
VERDICTS = ("accept", "drop", "continue", "return", "jump", "goto", "reject")
_IGNORED = ("counter", "log", "comment")


class Lookups(Protocol):
    """What statements need from the engine: the sets of the rule's table, resolved and cached."""

    def find(self, ref: Any, value: Any, kind: Any) -> tuple[bool, Any] | Unknown:
        """Is `value` in `@name` or an anonymous `{"set": …}`, and the element's data."""

    def dynamic(self, ref: Any) -> bool:
        """Is `@name` a set the kernel fills at run time (affinity)?"""

    def member(self, ref: Any, value: Any) -> bool:
        """Does the dynamic set `@name` hold `value` for this trace?"""

    def remember(self, ref: str, value: Any, add: bool) -> None:
        """`update @S { … }` / `add` / `delete`: change the dynamic set for this branch."""


def lookup(look: Lookups, ctx: Context, ref: Any, value: Any, kind: Any) -> tuple[bool, Any] | \
        Unknown:
    if isinstance(ref, str) and look.dynamic(ref):
        return look.member(ref, value), None
    return look.find(ref, value, kind)


_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}


def _compare(op: str, value: Any, right: Any, kind: Any) -> bool | Unknown:
    flags = isinstance(kind, str) and kind in FLAG_NAMES
    pattern = normalize(right, kind)
    if flags and (op == "in" or isinstance(right, list)):
        return bool(value & pattern) != (op == "!=")
    if op in ("==", "in"):
        return holds(value, pattern)
    if op == "!=":
        return not holds(value, pattern)
    fn = _ORDER.get(op)
    try:
        return bool(fn(value, pattern)) if fn else Unknown(f"operator {op!r}")
    except TypeError:
        return Unknown(f"operator {op!r} on {right!r}")


def _miss_or(result: Miss | Unknown) -> bool | Unknown:
    """An expression that does not apply makes the rule not match; an unknown one is said."""
    return False if isinstance(result, Miss) else result


def s_match(look: Lookups, ctx: Context, body: Mapping[str, Any]) -> StmtResult:
    left = evaluate(ctx, body.get("left"))
    if isinstance(left, (Miss, Unknown)):
        return _miss_or(left)
    value, kind = left
    op, right = body.get("op", "=="), body.get("right")
    if (isinstance(right, str) and right.startswith("@")) or \
            (isinstance(right, Mapping) and "set" in right):
        ref = right if isinstance(right, str) else right["set"]
        found = lookup(look, ctx, ref, value, kind)
        if isinstance(found, Unknown):
            return found
        return found[0] if op != "!=" else not found[0]
    return _compare(op, value, right, kind)


def s_vmap(look: Lookups, ctx: Context, body: Mapping[str, Any]) -> StmtResult:
    key = evaluate(ctx, body.get("key"))
    if isinstance(key, (Miss, Unknown)):
        return _miss_or(key)
    data = body.get("data")
    found = lookup(look, ctx, data["set"] if isinstance(data, Mapping) else data, *key)
    if isinstance(found, Unknown):
        return found
    if not found[0]:
        return False                      # a key the map does not hold: the rule does not match
    return verdict_of(found[1])


def verdict_of(data: Any) -> Verdict | Unknown:
    if isinstance(data, Mapping) and len(data) == 1:
        ((name, body),) = data.items()
        if name in ("jump", "goto"):
            return name, body["target"]
        if name in VERDICTS:
            return name, None
    return Unknown(f"verdict {data!r}")


def _value(look: Lookups, ctx: Context, expr: Any) -> Any:
    """A statement's argument: a literal, an expression, or a map lookup; None on a miss."""
    if isinstance(expr, Mapping) and "map" in expr:
        key = evaluate(ctx, expr["map"].get("key"))
        if isinstance(key, (Miss, Unknown)):
            return None if key is MISS else key
        data = expr["map"].get("data")
        found = lookup(look, ctx, data["set"] if isinstance(data, Mapping) else data, *key)
        if isinstance(found, Unknown):
            return found
        return found[1] if found[0] else None
    if isinstance(expr, Mapping) and not set(expr) & {"concat", "range", "prefix"}:
        r = evaluate(ctx, expr)
        return r if isinstance(r, Unknown) else (None if r is MISS else r[0])  # type: ignore[index]
    return expr


def s_mangle(look: Lookups, ctx: Context, body: Mapping[str, Any]) -> StmtResult:
    key = body.get("key")
    target = next(iter(key), None) if isinstance(key, Mapping) else None
    what = key[target].get("key") if target in ("meta", "ct") else None   # type: ignore[index]
    if what != "mark":
        return Unknown(f"setting {key!r}")
    value = _value(look, ctx, body.get("value"))
    if isinstance(value, Unknown):
        return value
    if isinstance(value, str):
        value = int(value, 0)
    if not isinstance(value, int):
        return Unknown(f"mark value {body.get('value')!r}")
    if target == "meta":
        ctx.state.mark = value & 0xFFFFFFFF
    else:
        ctx.state.ctmark = value & 0xFFFFFFFF
    return True


def s_set(look: Lookups, ctx: Context, body: Mapping[str, Any]) -> StmtResult:
    op, ref = body.get("op"), body.get("set")
    if op not in ("add", "update", "delete") or not isinstance(ref, str):
        return Unknown(f"set statement {op!r}")
    value = evaluate(ctx, body.get("elem"))
    if isinstance(value, (Miss, Unknown)):
        return _miss_or(value)
    look.remember(ref, value[0], op != "delete")
    return True


def _address(raw: Any) -> IPv4Address | IPv6Address | None | Unknown:
    if raw is None:
        return None
    try:
        return ip_address(raw)
    except (ValueError, TypeError):
        return Unknown(f"NAT to {raw!r} (a range or an expression): the kernel picks per "
                       f"connection")


def _nat_target(look: Lookups, ctx: Context, body: Mapping[str, Any]) -> \
        tuple[Any, Any] | None | Unknown:
    addr = _value(look, ctx, body.get("addr"))
    if isinstance(addr, Unknown) or (addr is None and body.get("addr") is not None):
        return addr                       # a map without this key: the rule does not match
    port = body.get("port")
    if isinstance(addr, Mapping) and "concat" in addr:
        addr, port = addr["concat"]
    elif isinstance(addr, list) and len(addr) == 2:
        addr, port = addr
    address = _address(addr)
    if isinstance(address, Unknown):
        return address
    if port is not None and not isinstance(port, int):
        port = int(port) if isinstance(port, str) and port.isdigit() else \
            Unknown(f"NAT to port {port!r}")
    return address, port


def s_dnat(look: Lookups, ctx: Context, body: Mapping[str, Any]) -> StmtResult:
    target = _nat_target(look, ctx, body or {})
    if target is None or isinstance(target, Unknown):
        return False if target is None else target
    address, port = target
    if isinstance(port, Unknown):
        return port
    st = ctx.state
    address = address or st.packet.dst
    if address.version != st.packet.family:
        return False
    st.packet = st.packet.with_destination(address, port)
    st.dnat = format_endpoint(st.packet.dst, st.packet.dport)
    return "accept", None


def s_redirect(look: Lookups, ctx: Context, body: Mapping[str, Any]) -> StmtResult:
    st = ctx.state
    fam = st.packet.family
    if ctx.local_out:
        address: IPv4Address | IPv6Address = ip_address("127.0.0.1" if fam == 4 else "::1")
    else:
        nets = [n for n in st.node.local if n.version == fam]
        if not nets:
            return Unknown("redirect: the address of the input interface is unknown")
        address = nets[0].network_address
    port = (body or {}).get("port")
    st.packet = st.packet.with_destination(address, port if isinstance(port, int) else None)
    st.dnat = format_endpoint(st.packet.dst, st.packet.dport)
    return "accept", None


def s_snat(look: Lookups, ctx: Context, body: Mapping[str, Any]) -> StmtResult:
    target = _nat_target(look, ctx, body or {})
    if target is None or isinstance(target, Unknown):
        return False if target is None else target
    address, port = target
    ctx.state.snat = True
    if address is not None:
        ctx.state.snat_to = format_endpoint(address, port) if isinstance(port, int) else \
            str(address)
    return "accept", None


def s_masquerade(look: Lookups, ctx: Context, body: Any) -> StmtResult:
    ctx.state.snat = True
    return "accept", None


def s_reject(look: Lookups, ctx: Context, body: Any) -> StmtResult:
    body = body or {}
    kind = body.get("type") or ("icmp" if ctx.state.packet.family == 4 else "icmpv6")
    ctx.state.reject_with = kind if kind == "tcp reset" else \
        f"{kind} {body.get('expr') or 'port-unreachable'}"
    return "reject", None


def s_notrack(look: Lookups, ctx: Context, body: Any) -> StmtResult:
    ctx.state.notrack = True
    return True


def s_verdict(name: str) -> Callable[[Lookups, Context, Any], StmtResult]:
    def run(look: Lookups, ctx: Context, body: Any) -> StmtResult:
        return name, (body or {}).get("target") if name in ("jump", "goto") else None
    return run


def s_ignore(look: Lookups, ctx: Context, body: Any) -> StmtResult:
    return True


STATEMENTS: dict[str, Callable[[Lookups, Context, Any], StmtResult]] = {
    "match": s_match, "vmap": s_vmap, "mangle": s_mangle, "set": s_set, "dnat": s_dnat,
    "snat": s_snat, "masquerade": s_masquerade, "redirect": s_redirect, "reject": s_reject,
    "notrack": s_notrack,
    **{v: s_verdict(v) for v in ("accept", "drop", "continue", "return", "jump", "goto")},
    **{name: s_ignore for name in _IGNORED},
}


def describe(stmt: Any) -> str:
    if isinstance(stmt, Mapping) and len(stmt) == 1:
        ((name, body),) = stmt.items()
        return f"statement {name!r}" if name != "unknown" else f"{body!r}"
    return f"statement {stmt!r}"
