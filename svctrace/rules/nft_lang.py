"""The nft rule language → libnftables-json statements (what `nft -j` prints for the rule).

Reads both spellings: what `nft list` prints (`meta mark set meta mark | 0x00004000`, also
`-n` numeric and `-s` stateless) and what people and kube-proxy write for `nft -f` (`mark set
mark or 0x4000`, `dnat ip addr . port to …`, `{ 203.0.113.0/25 }`), and normalises values as
nft does when it lists them: ports and marks numeric, protocols and flags by name, prefixes
as `{"prefix": …}`, a one-element anonymous set as its element, /32 as a plain address.

A rule part this module does not know becomes `{"unknown": "<the rest of the rule>"}`; a
malformed value of a known expression is a located RuleSyntaxError quoting the token.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from typing import Any

from svctrace.errors import RuleSyntaxError
from svctrace.model.nftables import NftElement, Statement
from svctrace.rules.nft_deps import drop_dependencies
from svctrace.rules.nft_fast import IPV4, NUMBER, fast_items
from svctrace.rules.nft_symbols import (
    BITMASKS,
    CT_DIRECTIONS,
    CT_TYPES,
    FIB_FLAGS,
    FIB_RESULTS,
    INET_PROTOS,
    META_TYPES,
    PAYLOAD_TYPES,
    PROTO_ALIASES,
    REJECT_CODES,
    SERVICES,
    SYMBOLS,
    UNQUALIFIED_META_INPUT,
    VERDICT_WORDS,
)

TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|!=|==|<=|>=|<<|>>|[{}(),|&^<>]|[^\s{}(),"|&^<>]+|"')
OPS = frozenset({"==", "!=", "<", ">", "<=", ">="})
BINOPS = {"&": "&", "and": "&", "|": "|", "or": "|", "^": "^", "xor": "^",
          "<<": "<<", "lshift": "<<", ">>": ">>", "rshift": ">>"}
NAT_FLAGS = frozenset({"random", "fully-random", "persistent", "netmap"})
LOG_KEYS = frozenset({"prefix", "level", "group", "snaplen", "queue-threshold", "flags"})
ELEMENT_OPTIONS = frozenset({"timeout", "expires", "comment", "counter"})
DEFAULT_REJECT = {"ip": "icmp", "ip6": "icmpv6"}
DURATION = re.compile(r"(\d+)(d|h|ms|m|s)")


def unquote(token: str) -> str:
    return token[1:-1].replace('\\"', '"').replace("\\\\", "\\") if token[:1] == '"' else token


def parse_duration(text: str) -> int | None:
    """`3h`, `10800s`, `2h59m42s128ms` → whole seconds (as nft -j prints them); None if bad."""
    if not text or DURATION.sub("", text):
        return int(text) if text.isdigit() else None
    ms = 0
    for amount, unit in DURATION.findall(text):
        ms += int(amount) * {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000,
                             "ms": 1}[unit]
    return ms // 1000


def dtype_of(expr: Any, family: str = "ip") -> Any:
    """The data type of an expression: a name, or a list of names for a concatenation."""
    if not isinstance(expr, dict):
        return None
    if "payload" in expr:
        p = expr["payload"]
        return PAYLOAD_TYPES.get(p.get("protocol", ""), {}).get(p.get("field", ""))
    if "meta" in expr:
        return META_TYPES.get(expr["meta"]["key"])
    if "ct" in expr:
        key = expr["ct"]["key"]
        if key in ("saddr", "daddr") and expr["ct"].get("family", family) == "ip6":
            return "ipv6_addr"
        return CT_TYPES.get(key)
    if "fib" in expr:
        return FIB_RESULTS.get(expr["fib"]["result"])
    if "numgen" in expr:
        return "integer"
    if "concat" in expr:
        return [dtype_of(e, family) for e in expr["concat"]]
    for op in ("&", "|", "^", "<<", ">>"):
        if op in expr:
            return dtype_of(expr[op][0], family)
    return None


class RuleParser:
    """A recursive-descent reader of one rule's (or one element list's) tokens."""

    def __init__(self, text: str, family: str, source: str, line: int | None) -> None:
        self.toks: list[str] = TOKEN.findall(text)
        self.i = 0
        self.text, self.family, self.source, self.line = text, family, source, line or 0
        for tok in self.toks:
            if tok == '"':
                raise self.fail("unterminated string", tok)

    # -- tokens ---------------------------------------------------------------------------
    def fail(self, message: str, token: str | None = None) -> RuleSyntaxError:
        """A located error quoting `token`, on the line of the text where it stands."""
        where = f' "{token}"' if token is not None else " at the end of the rule"
        text = " ".join(self.text.split())
        context = f" in: {text}" if len(text) <= 200 else ""
        offset = self.text.find(token) if token else -1
        line = self.line + (self.text.count("\n", 0, offset) if offset > 0 else 0)
        return RuleSyntaxError(self.source, line, f"{message}{where}{context}")

    def peek(self, ahead: int = 0) -> str | None:
        j = self.i + ahead
        return self.toks[j] if j < len(self.toks) else None

    def next(self, what: str = "a value") -> str:
        if self.i >= len(self.toks):
            raise self.fail(f"expected {what}")
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, word: str) -> None:
        tok = self.peek()
        if tok != word:
            raise self.fail(f'expected "{word}"', tok)
        self.i += 1

    def accept(self, word: str) -> bool:
        if self.peek() == word:
            self.i += 1
            return True
        return False

    # -- rules ----------------------------------------------------------------------------
    def rule(self) -> tuple[tuple[Statement, ...], str | None]:
        statements: list[Statement] = []
        comment = None
        while self.i < len(self.toks):
            if self.accept("comment"):
                comment = unquote(self.next("a comment string"))
                continue
            statements.append(self.statement())
        return tuple(drop_dependencies(statements, self.family)), comment

    def statement(self) -> Statement:
        tok = self.toks[self.i]
        if tok in VERDICT_WORDS or tok == "notrack":
            self.i += 1
            return {tok: None}
        if tok in ("jump", "goto"):
            self.i += 1
            return {tok: {"target": unquote(self.next("a chain name"))}}
        handler = STATEMENTS.get(tok)
        if handler is not None and (tok not in ("add", "update", "delete")
                                    or (self.peek(1) or "").startswith("@")):
            self.i += 1
            return handler(self)
        start = self.i
        left = self.expression()
        if left is None:
            return self.unknown(start)
        if self.accept("set"):
            return {"mangle": {"key": left, "value": self.operand(dtype_of(left, self.family))}}
        if self.accept("vmap"):
            return {"vmap": {"key": left, "data": self.map_data(left, verdicts=True)}}
        return self.match(left)

    def unknown(self, start: int) -> Statement:
        """The rest of the rule as `{"unknown": text}`, leaving a final verdict (and a
        comment) to be read as such."""
        toks, end = self.toks, start
        while end < len(toks) and toks[end] != "comment":
            end += 1
        if end - 1 > start and toks[end - 1] in VERDICT_WORDS:
            end -= 1
        elif end - 2 > start and toks[end - 2] in ("jump", "goto"):
            end -= 2
        self.i = max(end, start + 1)
        return {"unknown": " ".join(self.toks[start:self.i])}

    # -- expressions ----------------------------------------------------------------------
    def expression(self) -> Any:
        """A primary expression with binary operations and concatenations, or None."""
        parts: list[Any] = []
        while True:
            expr = self.primary()
            if expr is None:
                return None if not parts else self._fail_here("expected an expression after .")
            expr = self.binops(expr)
            parts.append(expr)
            if self.peek() != ".":
                break
            self.i += 1
        return parts[0] if len(parts) == 1 else {"concat": parts}

    def _fail_here(self, message: str) -> Any:
        raise self.fail(message, self.peek())

    def binops(self, expr: Any) -> Any:
        while self.peek() in BINOPS and self.peek(1) is not None:
            op = BINOPS[self.next()]
            expr = {op: [expr, self.value(dtype_of(expr, self.family))]}
        return expr

    def primary(self) -> Any:
        tok, nxt = self.peek(), self.peek(1)
        if tok is None:
            return None
        if tok in PAYLOAD_TYPES and nxt in PAYLOAD_TYPES[tok]:
            self.i += 2
            return {"payload": {"protocol": tok, "field": nxt}}
        if tok == "meta" and nxt in META_TYPES:
            self.i += 2
            return {"meta": {"key": nxt}}
        if tok in UNQUALIFIED_META_INPUT:
            self.i += 1
            return {"meta": {"key": tok}}
        parse = PRIMARIES.get(tok)
        if parse is not None:
            start = self.i
            self.i += 1
            expr = parse(self)
            if expr is None:                # a form this reader does not know: not an error
                self.i = start
            return expr
        return None

    def ct(self) -> Any:
        ct: dict[str, Any] = {}
        if self.peek() in CT_DIRECTIONS:
            ct["dir"] = self.next()
        if self.peek() in ("ip", "ip6") and self.peek(1) in ("saddr", "daddr"):
            ct["family"] = self.next()
        key = self.next("a ct key")
        if key not in CT_TYPES:
            return None                     # e.g. `ct timeout set "…"`: kept as data
        return {"ct": {"key": key, **ct}}

    def fib(self) -> Any:
        flags = [self.next("a fib flag")]
        while self.accept("."):
            flags.append(self.next("a fib flag"))
        bad = [f for f in flags if f not in FIB_FLAGS]
        if bad:
            raise self.fail("unknown fib flag", bad[0])
        result = self.next("a fib result")
        if result not in FIB_RESULTS:
            raise self.fail("unknown fib result", result)
        return {"fib": {"result": result, "flags": flags}}

    def numgen(self) -> Any:
        mode = self.next("random or inc")
        if mode not in ("random", "inc"):
            raise self.fail("unknown numgen mode", mode)
        self.expect("mod")
        out = {"mode": mode, "mod": self.integer(), "offset": 0}
        if self.accept("offset"):
            out["offset"] = self.integer()
        return {"numgen": out}

    def hash(self, kind: str) -> Any:
        """`jhash EXPR mod N [seed S] [offset O]`, `symhash mod N [offset O]`."""
        expr = None
        if kind == "jhash":
            expr = self.expression()
            if expr is None:
                raise self.fail("expected an expression after jhash", self.peek())
        self.expect("mod")
        out: dict[str, Any] = {"mod": self.integer()}
        for option in ("seed", "offset"):
            if self.accept(option):
                out[option] = self.integer()
        if expr is not None:
            out["expr"] = expr
        return {kind: out}

    def integer(self) -> int:
        tok = self.next("a number")
        if not NUMBER.match(tok):
            raise self.fail("not a number", tok)
        return int(tok, 0)

    # -- matches and values ---------------------------------------------------------------
    def match(self, left: Any) -> Statement:
        dtype = dtype_of(left, self.family)
        op = self.next() if self.peek() in OPS else None
        right = self.value(dtype, collapse=True)
        if _is_flags(dtype) and self.peek() == ",":
            right = self.flag_list(dtype, right)
        if self.peek() == "/" and _is_flags(dtype):            # `tcp flags syn / fin,syn`
            self.i += 1
            left = {"&": [left, self.flag_list(dtype, self.value(dtype))]}
            return {"match": {"op": op or "==", "left": left, "right": right}}
        if op is None:
            op = "in" if _is_flags(dtype) and not (isinstance(right, dict)
                                                     and "set" in right) else "=="
        return {"match": {"op": op, "left": left, "right": right}}

    def flag_list(self, dtype: Any, first: Any) -> Any:
        """`a,b,c` flags, in nft's order (by bit)."""
        items = first if isinstance(first, list) else [first]
        while self.accept(","):
            items.append(self.value(dtype))
        order = {name: bit for bit, name in BITMASKS[dtype].items()}
        return sorted(items, key=lambda name: order.get(name, 1 << 30))

    def operand(self, dtype: Any) -> Any:
        """What a mangle sets: an expression (`meta mark | 0x4000`) or a value."""
        expr = self.expression()
        return expr if expr is not None else self.value(dtype)

    def value(self, dtype: Any, collapse: bool = False) -> Any:
        tok = self.next()
        if tok == "{":
            items = self.set_items(dtype, None)
            # nft lists a one-element anonymous set as its element, except a concatenation
            single = len(items) == 1 and not (isinstance(items[0], dict) and "concat" in items[0])
            return items[0] if collapse and single else {"set": items}
        if tok == "(":
            items = [self.value(dtype)]
            while self.accept("|"):
                items.append(self.value(dtype))
            self.expect(")")
            return items
        if isinstance(dtype, list) or (dtype is None and self.peek() == "."):
            return self.concat_value(tok, dtype or [])
        return self.literal(tok, dtype)

    def concat_value(self, tok: str, dtypes: list[Any]) -> Any:
        parts = [self.literal(tok, dtypes[0] if dtypes else None)]
        while self.accept("."):
            dtype = dtypes[len(parts)] if len(parts) < len(dtypes) else None
            parts.append(self.literal(self.next(), dtype))
        return {"concat": parts} if len(parts) > 1 else parts[0]

    def literal(self, tok: str, dtype: Any) -> Any:
        if tok[:1] == '"':
            return unquote(tok)
        if tok[:1] == "@" or tok in ("{", "}", ",", ":"):
            if tok in ("{", "}", ",", ":"):
                raise self.fail("expected a value", tok)
            return tok
        conv = LITERALS.get(dtype) if isinstance(dtype, str) else None
        if conv is not None:
            return conv(self, tok, dtype)
        return _number_or_range(tok)

    def set_items(self, dtype: Any, data_type: Any, verdicts: bool = False) -> list[Any]:
        """Elements of an anonymous set or map, after its `{`, through its `}`."""
        toks, start = self.toks, self.i
        end = toks.index("}", start) if "}" in toks[start:] else -1
        if end >= 0 and "{" not in toks[start:end]:
            fast = fast_items(" ".join(toks[start:end]), dtype, data_type, verdicts)
            if fast is not None:
                self.i = end + 1
                return [list(item) if isinstance(item, tuple) else item for item in fast]
        items: list[Any] = []
        while not self.accept("}"):
            key = self.value(dtype)
            key = self.element_options(key)
            if self.accept(":"):
                items.append([key, self.verdict() if verdicts else self.value(data_type)])
            else:
                items.append(key)
            if not self.accept(","):
                self.expect("}")
                break
        return items

    def element_options(self, key: Any) -> Any:
        opts: dict[str, Any] = {}
        while self.peek() in ELEMENT_OPTIONS:
            word = self.next()
            if word == "counter":
                self.counter()
                continue
            text = self.next(f"a value after {word}")
            opts[word] = unquote(text) if word == "comment" else self.duration(text)
        return {"elem": {"val": key, **opts}} if opts else key

    def duration(self, tok: str) -> int:
        seconds = parse_duration(tok)
        if seconds is None:
            raise self.fail("bad time", tok)
        return seconds

    def verdict(self) -> Statement:
        tok = self.next("a verdict")
        if tok in VERDICT_WORDS:
            return {tok: None}
        if tok in ("jump", "goto"):
            return {tok: {"target": unquote(self.next("a chain name"))}}
        raise self.fail("expected a verdict", tok)

    def map_data(self, key: Any, verdicts: bool, data_type: Any = None) -> Any:
        tok = self.next("a map")
        if tok.startswith("@"):
            return tok
        if tok != "{":
            raise self.fail("expected @map or {", tok)
        return {"set": self.set_items(dtype_of(key, self.family), data_type, verdicts)}

    # -- statements -----------------------------------------------------------------------
    def counter(self) -> Statement:
        if self.accept("name"):
            return {"counter": unquote(self.next("a counter name"))}
        if self.accept("packets"):
            packets = self.integer()
            self.expect("bytes")
            return {"counter": {"packets": packets, "bytes": self.integer()}}
        return {"counter": None}

    def log(self) -> Statement:
        opts: dict[str, Any] = {}
        while self.peek() in LOG_KEYS:
            key = self.next()
            tok = self.next(f"a value after {key}")
            opts[key] = unquote(tok) if key in ("prefix", "level", "flags") else \
                _number_or_range(tok)
        return {"log": opts or None}

    def limit(self) -> Statement:
        if self.peek() != "rate":           # `limit name "l1"`: a named limit, kept as data
            return self.unknown(self.i - 1)
        self.expect("rate")
        out: dict[str, Any] = {}
        if self.accept("over"):
            out["inv"] = True
        tok = self.next("a rate")
        rate, _, per = tok.partition("/")
        unit = None
        if not per:                                  # `10 mbytes/second`
            unit, _, per = self.next("a unit").partition("/")
        if not NUMBER.match(rate) or not per:
            raise self.fail("bad limit rate", tok)
        out.update({"rate": int(rate), "burst": 5 if unit is None else 0, "per": per})
        if unit is not None:
            out["rate_unit"] = unit
        if self.accept("burst"):
            out["burst"] = self.integer()
            self.accept("packets") or self.accept("bytes")
        return {"limit": out}

    def reject(self) -> Statement:
        if not self.accept("with"):
            return {"reject": {"type": DEFAULT_REJECT.get(self.family, "icmpx"),
                               "expr": "port-unreachable"}}
        kind = self.next("icmp, icmpv6, icmpx or tcp")
        if kind == "tcp":
            self.expect("reset")
            return {"reject": {"type": "tcp reset"}}
        if kind not in ("icmp", "icmpv6", "icmpx"):
            raise self.fail("unknown reject type", kind)
        self.accept("type")
        code = self.next("a reject code")
        if NUMBER.match(code):
            code = REJECT_CODES[kind].get(int(code, 0), code)
        return {"reject": {"type": kind, "expr": code}}

    def nat(self, name: str) -> Statement:
        out: dict[str, Any] = {}
        family = self.next() if self.peek() in ("ip", "ip6") else None
        if self.peek() == "addr" and self.peek(1) == "." and self.peek(2) == "port":
            self.i += 3
        if self.accept("to"):
            start = self.i
            expr = self.expression()
            if expr is not None:
                self.expect("map")
                addr = "ipv6_addr" if (family or self.family) == "ip6" else "ipv4_addr"
                data = self.map_data(expr, False, [addr, "inet_service"])
                out["addr"] = {"map": {"key": expr, "data": data}}
            else:
                self.i = start
                tok = self.next("an address")
                # `redirect to 8080` (input) is `redirect to :8080` (listed)
                out.update(self.nat_target(f":{tok}" if name == "redirect" and
                                           tok[:1].isdigit() else tok))
        if family is not None and (self.family == "inet" or "map" in (out.get("addr") or {})):
            out = {"family": family, **out}
        flags: list[str] = []
        while self.peek() in NAT_FLAGS:
            flags.append(self.next())
            self.accept(",")
        if flags:
            out["flags"] = flags[0] if len(flags) == 1 else flags
        return {name: out or None}

    def nat_target(self, tok: str) -> dict[str, Any]:
        if tok.startswith("["):
            addr, _, port = tok[1:].partition("]:")
            return {"addr": self.address(addr.rstrip("]"), "ipv6_addr"),
                    **({"port": _port(self, port)} if port else {})}
        if tok.startswith(":"):
            return {"port": _port(self, tok[1:])}
        if tok.count(":") == 1:
            addr, port = tok.split(":")
            return {"addr": self.address(addr, "ipv4_addr"), "port": _port(self, port)}
        if self.peek() == ".":                        # dnat to addr . port (concat)
            self.i += 1
            return {"addr": tok, "port": _port(self, self.next("a port"))}
        return {"addr": self.address(tok, "ipv6_addr" if ":" in tok else "ipv4_addr")}

    def set_statement(self, op: str) -> Statement:
        name = self.next("@set")
        self.expect("{")
        elem = self.expression()
        if elem is None:
            raise self.fail("expected an expression", self.peek())
        elem = self.element_options(elem)
        self.expect("}")
        return {"set": {"op": op, "elem": elem, "set": name}}

    def xt(self) -> Statement:
        kind = self.next("match or target")
        return {"xt": {"type": kind, "name": unquote(self.next("a name"))}}

    # -- typed literals -------------------------------------------------------------------
    def address(self, tok: str, dtype: str) -> Any:
        if "/" in tok:
            addr, _, bits = tok.partition("/")
            try:
                net = ipaddress.ip_network(tok, strict=False)
            except ValueError:
                raise self.fail("bad prefix", tok) from None
            addr = _address_text(net.network_address)
            if net.prefixlen == net.max_prefixlen:
                return addr
            return {"prefix": {"addr": addr, "len": net.prefixlen}}
        if "-" in tok:
            low, _, high = tok.partition("-")
            return {"range": [self.address(low, dtype), self.address(high, dtype)]}
        if dtype == "ipv4_addr" and IPV4.match(tok):
            return tok
        try:
            return _address_text(ipaddress.ip_address(tok))
        except ValueError:
            raise self.fail(f"bad {'IPv4' if dtype == 'ipv4_addr' else 'IPv6'} address",
                            tok) from None


def _address_text(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """As nft prints it: inet_ntop's spelling (`::ffff:0.0.0.0`, not `::ffff:0:0`)."""
    if addr.version == 4:
        return str(addr)
    return socket.inet_ntop(socket.AF_INET6, addr.packed)


def _number_or_range(tok: str) -> Any:
    if NUMBER.match(tok):
        return int(tok, 0)
    low, dash, high = tok.partition("-")
    if dash and NUMBER.match(low) and NUMBER.match(high):
        return {"range": [int(low, 0), int(high, 0)]}
    return tok


def _port(p: RuleParser, tok: str) -> Any:
    value = _number_or_range(tok)
    if isinstance(value, str):
        if tok in SERVICES:
            return SERVICES[tok]
        raise p.fail("bad port", tok)
    return value


def _proto(p: RuleParser, tok: str, _: str) -> Any:
    if NUMBER.match(tok):
        return INET_PROTOS.get(int(tok, 0), int(tok, 0))
    return PROTO_ALIASES.get(tok, tok)


def _bitmask(p: RuleParser, tok: str, dtype: str) -> Any:
    if not NUMBER.match(tok):
        return tok
    value, names = int(tok, 0), BITMASKS[dtype]
    found = [name for bit, name in names.items() if value & bit]
    if not found or sum(b for b, n in names.items() if n in found) != value:
        raise p.fail(f"unknown {dtype} bits", tok)
    return found[0] if len(found) == 1 else found


def _symbol(p: RuleParser, tok: str, dtype: str) -> Any:
    if NUMBER.match(tok):
        return SYMBOLS[dtype].get(int(tok, 0), int(tok, 0))
    return tok


def _boolean(p: RuleParser, tok: str, _: str) -> Any:
    if tok in ("exists", "missing"):
        return tok == "exists"
    return _number_or_range(tok)


LITERALS: dict[str, Callable[[RuleParser, str, str], Any]] = {
    "ipv4_addr": lambda p, tok, dtype: p.address(tok, dtype),
    "ipv6_addr": lambda p, tok, dtype: p.address(tok, dtype),
    "inet_service": lambda p, tok, _: _port(p, tok),
    "inet_proto": _proto,
    "boolean": _boolean,
    "ifname": lambda p, tok, _: tok,
    **{name: _bitmask for name in BITMASKS},
    **{name: _symbol for name in SYMBOLS},
}

PRIMARIES: dict[str, Callable[[RuleParser], Any]] = {
    "ct": RuleParser.ct,
    "fib": RuleParser.fib,
    "numgen": RuleParser.numgen,
    "jhash": lambda p: p.hash("jhash"),
    "symhash": lambda p: p.hash("symhash"),
}

STATEMENTS: dict[str, Callable[[RuleParser], Statement]] = {
    "counter": RuleParser.counter,
    "log": RuleParser.log,
    "limit": RuleParser.limit,
    "reject": RuleParser.reject,
    "dnat": lambda p: p.nat("dnat"),
    "snat": lambda p: p.nat("snat"),
    "masquerade": lambda p: p.nat("masquerade"),
    "redirect": lambda p: p.nat("redirect"),
    "update": lambda p: p.set_statement("update"),
    "add": lambda p: p.set_statement("add"),
    "delete": lambda p: p.set_statement("delete"),
    "xt": RuleParser.xt,
}


def parse_rule(text: str, family: str, source: str, line: int | None) -> tuple[
        tuple[Statement, ...], str | None]:
    """(statements, comment) of one rule's text."""
    return RuleParser(text, family, source, line).rule()


def parse_elements(text: str, family: str, key_type: tuple[str, ...],
                   data_type: tuple[str, ...] | None, source: str,
                   line: int | None) -> list[NftElement]:
    """The elements of `{ … }` (text without the braces) for a set of `key_type`."""
    key = list(key_type) if len(key_type) > 1 else key_type[0] if key_type else None
    data = None if data_type is None else (
        list(data_type) if len(data_type) > 1 else data_type[0])
    verdicts = data_type == ("verdict",)
    fast = fast_items(text, key, None if verdicts else data, verdicts, as_list=True)
    if fast is not None:
        if data_type is None:
            return [NftElement(k) for k in fast]
        return [NftElement(k, v) for k, v in fast]
    p = RuleParser(text + " }", family, source, line)
    p.text = text
    items = p.set_items(key, data, verdicts=verdicts)
    if p.i != len(p.toks):
        raise p.fail("unexpected text after the elements", p.peek())
    return [_element(item, data_type is not None, p) for item in items]


def _element(item: Any, is_map: bool, p: RuleParser) -> NftElement:
    value = None
    if is_map:
        if not isinstance(item, list):
            raise p.fail("map element without a value", str(item))
        item, value = item
    elif isinstance(item, list):
        raise p.fail("set element with a value", str(item[0]))
    opts: dict[str, Any] = {}
    if isinstance(item, dict) and "elem" in item:
        opts = dict(item["elem"])
        item = opts.pop("val")
    return NftElement(_plain(item), _plain(value), opts.get("comment"), opts.get("timeout"),
                      opts.get("expires"))


def _plain(value: Any) -> Any:
    if isinstance(value, dict) and "concat" in value:
        return list(value["concat"])
    return value


def _is_flags(dtype: Any) -> bool:
    return isinstance(dtype, str) and dtype in BITMASKS
