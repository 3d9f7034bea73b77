"""libnftables-json statements → the text `nft list ruleset` prints for them.

Used to give rules read from `nft -j` JSON the same `text` a listing would show. Follows
nft 1.0.6's spelling for what kube-proxy, firewalld, Docker and CNIs write (checked by listing
rules back in a scratch netns); an expression this module does not know is shown as its JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# meta keys nft prints without the `meta` keyword (meta_key_is_unqualified in nft's meta.c)
UNQUALIFIED_META = frozenset({"iif", "oif", "iifname", "oifname", "iifgroup", "oifgroup"})
# string-typed keys whose values nft prints in double quotes
QUOTED_KEYS = frozenset({"iifname", "oifname", "iif", "oif", "ibrname", "obrname",
                         "ibriport", "obriport", "sdif", "sdifname", "iifkind", "oifkind",
                         "helper"})
MARK_KEYS = frozenset({"mark", "ct mark"})
SIMPLE_VERDICTS = ("accept", "drop", "continue", "return", "notrack")
DEFAULT_REJECT = {"ip": "icmp", "ip6": "icmpv6"}       # other families: icmpx
BINOPS = ("&", "|", "^", "<<", ">>")


def format_rule(statements: tuple[Mapping[str, Any], ...], family: str,
                comment: str | None = None) -> str:
    """One rule as nft lists it (without `# handle`)."""
    parts = [format_statement(s, family) for s in statements]
    if comment is not None:
        parts.append(f"comment {quote(comment)}")
    return " ".join(parts)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _kind(expr: Any) -> str | None:
    """'string' / 'mark' / 'fib' for the left side of a match or mangle, else None."""
    if isinstance(expr, dict):
        if "meta" in expr:
            key = expr["meta"].get("key")
            return "string" if key in QUOTED_KEYS else "mark" if key == "mark" else None
        if "ct" in expr:
            key = expr["ct"].get("key")
            return "mark" if key == "mark" else "string" if key == "helper" else None
        if "fib" in expr:
            return "fib"
        for op in BINOPS:
            if op in expr:
                return _kind(expr[op][0])
    return None


def format_expr(expr: Any, kind: str | None = None) -> str:
    """One expression; `kind` says how plain values print ('string' quoted, 'mark' hex)."""
    if isinstance(expr, bool):
        return "exists" if expr else "missing"
    if isinstance(expr, int):
        return f"0x{expr:08x}" if kind == "mark" else str(expr)
    if isinstance(expr, str):
        return quote(expr) if kind == "string" and not expr.startswith("@") else expr
    if isinstance(expr, list):
        return ",".join(format_expr(e, kind) for e in expr)
    if isinstance(expr, dict) and len(expr) == 1:
        (key, value), = expr.items()
        fmt = _EXPRS.get(key)
        if fmt is not None:
            return str(fmt(value, kind))
        for op in BINOPS:
            if key == op:
                left, right = value
                inner = _kind(left) or kind
                return f"{format_expr(left, inner)} {op} {format_expr(right, inner)}"
    return json.dumps(expr, separators=(",", ":"))


def _set(items: list[Any], kind: str | None) -> str:
    def one(item: Any) -> str:
        if isinstance(item, list) and len(item) == 2:
            return f"{format_expr(item[0], kind)} : {_data(item[1])}"
        return format_expr(item, kind)
    return "{ " + ", ".join(one(i) for i in items) + " }"


def _data(value: Any) -> str:
    """A map's data: a verdict or a value."""
    if isinstance(value, dict) and len(value) == 1 and _is_verdict(value):
        return format_statement(value, "")
    return format_expr(value)


def _is_verdict(stmt: Mapping[str, Any]) -> bool:
    return next(iter(stmt)) in ("accept", "drop", "continue", "return", "jump", "goto")


def _payload(v: Mapping[str, Any], _: str | None) -> str:
    if "protocol" in v:
        return f"{v['protocol']} {v['field']}"
    return f"@{v.get('base')},{v.get('offset')},{v.get('len')}"


def _meta(v: Mapping[str, Any], _: str | None) -> str:
    key = v["key"]
    return key if key in UNQUALIFIED_META else f"meta {key}"


def _ct(v: Mapping[str, Any], _: str | None) -> str:
    parts = ["ct"]
    if "dir" in v:
        parts.append(v["dir"])
    if "family" in v:
        parts.append(v["family"])
    parts.append(v["key"])
    return " ".join(parts)


def _fib(v: Mapping[str, Any], _: str | None) -> str:
    flags = v.get("flags", [])
    flags = [flags] if isinstance(flags, str) else flags
    return f"fib {' . '.join(flags)} {v['result']}"


def _numgen(v: Mapping[str, Any], _: str | None) -> str:
    text = f"numgen {v['mode']} mod {v['mod']}"
    return text + (f" offset {v['offset']}" if v.get("offset") else "")


def _hash(name: str) -> Any:
    def fmt(v: Mapping[str, Any], _: str | None) -> str:
        text = name + (f" {format_expr(v['expr'])}" if "expr" in v else "") + f" mod {v['mod']}"
        if "seed" in v:
            text += f" seed 0x{v['seed']:x}"
        return text + (f" offset {v['offset']}" if v.get("offset") else "")
    return fmt


def _map(v: Mapping[str, Any], kind: str | None) -> str:
    data = v["data"]
    shown = _set(data["set"], kind) if isinstance(data, dict) and "set" in data else \
        format_expr(data)
    return f"{format_expr(v['key'])} map {shown}"


def _elem(v: Mapping[str, Any], kind: str | None) -> str:
    text = format_expr(v["val"], kind)
    if "timeout" in v:
        text += f" timeout {format_duration(v['timeout'])}"
    if "expires" in v:
        text += f" expires {format_duration(v['expires'])}"
    if "comment" in v:
        text += f" comment {quote(v['comment'])}"
    return text


_EXPRS: dict[str, Any] = {
    "payload": _payload,
    "meta": _meta,
    "ct": _ct,
    "fib": _fib,
    "numgen": _numgen,
    "map": _map,
    "jhash": _hash("jhash"),
    "symhash": _hash("symhash"),
    "elem": _elem,
    "set": lambda v, kind: _set(v if isinstance(v, list) else [v], kind),
    "prefix": lambda v, kind: f"{format_expr(v['addr'], kind)}/{v['len']}",
    "range": lambda v, kind: f"{format_expr(v[0], kind)}-{format_expr(v[1], kind)}",
    "concat": lambda v, kind: " . ".join(format_expr(e, kind) for e in v),
    "unknown": lambda v, kind: str(v),
}


def format_duration(seconds: int | float) -> str:
    """nft's humanised time: 10800 → 3h, 610 → 10m10s, 0.5 → 500ms."""
    ms = round(seconds * 1000)
    out = ""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out + (f"{ms}ms" if ms or not out else "")


def format_statement(stmt: Mapping[str, Any], family: str) -> str:
    """One statement (a match, a verdict, NAT, mangle, …)."""
    (key, value), = stmt.items()
    if key in SIMPLE_VERDICTS:
        return key
    fmt = _STATEMENTS.get(key)
    if fmt is None:
        return format_expr(stmt)
    return str(fmt(value, family))


def _match(v: Mapping[str, Any], _: str) -> str:
    left, right, op = v["left"], v["right"], v["op"]
    kind = _kind(left)
    if isinstance(left, dict) and "&" in left and isinstance(left["&"][1], list):
        # a flags test: `tcp flags syn / fin,syn,rst,ack`
        field, mask = left["&"]
        shown = f"{format_expr(field)} {format_expr(right)} / {format_expr(mask)}"
        return shown if op == "==" else f"{format_expr(field)} {op} {shown.split(' ', 2)[2]}"
    if isinstance(right, dict) and "set" in right:
        shown = _set(right["set"], kind)
    else:
        shown = format_expr(right, kind)
    binop = isinstance(left, dict) and any(o in left for o in BINOPS)
    sep = " " if op == "in" or (op == "==" and not binop) else f" {op} "
    return f"{format_expr(left)}{sep}{shown}"


def _nat(name: str) -> Any:
    def fmt(v: Mapping[str, Any] | None, _: str) -> str:
        if not v:
            return name
        parts = [name]
        if "family" in v:
            parts.append(v["family"])
        target = _nat_target(v)
        if target:
            parts.append(f"to {target}")
        flags = v.get("flags")
        if flags:
            parts.append(",".join([flags] if isinstance(flags, str) else flags))
        return " ".join(parts)
    return fmt


def _nat_target(v: Mapping[str, Any]) -> str:
    addr, port = v.get("addr"), v.get("port")
    text = "" if addr is None else format_expr(addr)
    if port is not None:
        if addr is not None and ":" in text:
            text = f"[{text}]"
        text += f":{format_expr(port)}"
    return text


def _reject(v: Mapping[str, Any] | None, family: str) -> str:
    if not v:
        return "reject"
    rtype, code = v.get("type"), v.get("expr")
    if code == "port-unreachable" and rtype == DEFAULT_REJECT.get(family, "icmpx"):
        return "reject"
    return f"reject with {rtype}" + (f" {code}" if code else "")


def _counter(v: Any, _: str) -> str:
    if v is None:
        return "counter"
    if isinstance(v, str):
        return f"counter name {quote(v)}"
    return f"counter packets {v.get('packets', 0)} bytes {v.get('bytes', 0)}"


def _log(v: Mapping[str, Any] | None, _: str) -> str:
    if not v:
        return "log"
    parts = ["log"]
    for key, value in v.items():
        parts.append(f"{key} {quote(value) if key == 'prefix' else format_expr(value)}")
    return " ".join(parts)


def _limit(v: Mapping[str, Any], _: str) -> str:
    over = "over " if v.get("inv") else ""
    unit = f" {v['rate_unit']}" if v.get("rate_unit", "packets") != "packets" else ""
    text = f"limit rate {over}{v['rate']}{unit}/{v.get('per', 'second')}"
    burst = v.get("burst", 5)
    return text + (f" burst {burst} packets" if burst not in (0, 5) else "")


def _vmap_data(data: Any) -> str:
    return _set(data["set"], None) if isinstance(data, dict) else str(data)


def _set_stmt(v: Mapping[str, Any], _: str) -> str:
    return f"{v['op']} {v['set']} {{ {format_expr(v['elem'])} }}"


_STATEMENTS: dict[str, Any] = {
    "match": _match,
    "jump": lambda v, _: f"jump {v['target']}",
    "goto": lambda v, _: f"goto {v['target']}",
    "vmap": lambda v, _: f"{format_expr(v['key'])} vmap {_vmap_data(v['data'])}",
    "mangle": lambda v, _: f"{format_expr(v['key'])} set "
                           f"{format_expr(v['value'], _kind(v['key']))}",
    "dnat": _nat("dnat"),
    "snat": _nat("snat"),
    "masquerade": _nat("masquerade"),
    "redirect": _nat("redirect"),
    "reject": _reject,
    "counter": _counter,
    "log": _log,
    "limit": _limit,
    "set": _set_stmt,
}
