"""An nftables ruleset: tables → chains → rules, and the tables' sets and maps.

Statements and expressions are kept in the libnftables-json schema (`man libnftables-json`,
what `nft -j` prints): a statement is a mapping such as `{"jump": {"target": "services"}}`.
The text readers build the same structures nft -j would for the same rule, so the three
forms (`nft list` text, `nft -j` JSON, `nft -f` input) give equal models. An expression a
reader does not understand is kept as `{"unknown": "<text>"}`.

Equality compares what the kernel would run: provenance (source, line, handle, the printed
text) and what nft 1.0.6's JSON leaves out (table and chain comments, the set flag
`dynamic`, element `expires`) are kept but not compared.

Rules and set elements are read lazily when a reader hands over a parser: a 10,000-Service
node has 60,000 map elements and a trace looks at a handful. `NftRuleset.check()` parses
everything, raising the first located error.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from svctrace.model.ruleset import Ruleset

FAMILIES = ("ip", "ip6", "inet", "arp", "bridge", "netdev")
FORMATS = ("nft-text", "nft-json", "nft-f")

Statement = Mapping[str, Any]
# reads a rule's text into (statements, comment), raising a located error
RuleParser = Callable[["NftRule"], tuple[tuple[Statement, ...], "str | None"]]


class NftRule:
    """One rule of a chain; `number` is 1-based in listing order (handles are not in order).

    `text` is the rule as nft printed it (without `# handle N`); for JSON input it is
    rendered from the statements in nft's own spelling. A plain slotted class: a big node
    has tens of thousands of rules, parsed only when someone asks for `statements`.
    """

    __slots__ = ("family", "table", "chain", "number", "handle", "line", "_text", "source",
                 "_comment", "_statements", "_parser", "_printer")

    def __init__(self, family: str, table: str, chain: str, number: int, handle: int | None,
                 line: int | None, text: str | None, source: str,
                 statements: tuple[Statement, ...] | None = None, comment: str | None = None,
                 parser: RuleParser | None = None,
                 printer: Callable[[NftRule], str] | None = None) -> None:
        self.family, self.table, self.chain, self.number = family, table, chain, number
        self.handle, self.line, self._text, self.source = handle, line, text, source
        self._comment = comment
        self._statements, self._parser, self._printer = statements, parser, printer

    @property
    def text(self) -> str:
        """The rule as nft prints it (for JSON input: printed from the statements when first
        asked)."""
        if self._text is None:
            assert self._printer is not None, "rule has neither text nor printer"
            self._text = self._printer(self)
        return self._text

    @property
    def statements(self) -> tuple[Statement, ...]:
        if self._statements is None:
            assert self._parser is not None, "rule has neither statements nor parser"
            self._statements, self._comment = self._parser(self)
        return self._statements

    @property
    def comment(self) -> str | None:
        """The rule's `comment "…"` (parsing the rule if it has not been yet)."""
        if self._statements is None:
            self.statements  # noqa: B018 - parsing sets the comment
        return self._comment

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else self.source

    def _key(self) -> tuple[Any, ...]:
        return (self.family, self.table, self.chain, self.number, self.comment,
                _canonical(self.statements))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NftRule):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"NftRule({self.family} {self.table} {self.chain} #{self.number}: {self.text!r})"


def _canonical(value: Any) -> Any:
    """`value` with the members of every anonymous set in a stable order (nft lists some
    sets sorted and others in the kernel's hash order; the order never changes a match) and
    counters without their values (`nft -s` leaves them out)."""
    if isinstance(value, Mapping):
        if "counter" in value and len(value) == 1 and not isinstance(value["counter"], str):
            return {"counter": None}            # packets and bytes are state, not rules
        out = {k: _canonical(v) for k, v in value.items()}
        if isinstance(out.get("set"), list):
            out["set"] = sorted(out["set"], key=lambda m: json.dumps(m, sort_keys=True))
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def key_text(key: Any) -> str | None:
    """An element key as nft prints it when it is plain values (`10.96.0.10 . tcp . 80`);
    None for prefixes, ranges and other structured keys."""
    parts = key if isinstance(key, list) else [key]
    if not all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in parts):
        return None
    return " . ".join(str(p) for p in parts)


@dataclass(frozen=True, slots=True)
class NftElement:
    """One element of a set or map. `key` is json-shaped: a value (`"10.96.0.1"`, `80`), a
    `{"prefix": …}`, a `{"range": [a, b]}` or a concatenation as a list; `value` is a map's
    data (`{"goto": {"target": "…"}}`, `{"drop": None}`, a value or a list)."""

    key: Any
    value: Any | None = None
    comment: str | None = None
    timeout: int | None = None                                  # seconds
    expires: float | None = field(default=None, compare=False)  # seconds, changes as it runs


class NftSet:
    """A named set (`map is None`) or map (`map` = its data type parts, ("verdict",) for a
    vmap). `type` lists the key's concatenation parts (`("ipv4_addr", "inet_proto",
    "inet_service")`). Elements keep the kernel's order as listed."""

    __slots__ = ("name", "family", "table", "type", "map", "flags", "timeout", "size",
                 "comment", "handle", "line", "dynamic", "typeof", "_elements", "_parser",
                 "_index")

    def __init__(self, name: str, family: str, table: str, type: tuple[str, ...],
                 map: tuple[str, ...] | None = None, flags: frozenset[str] = frozenset(),
                 elements: tuple[NftElement, ...] | None = (), timeout: int | None = None,
                 size: int | None = None, comment: str | None = None,
                 handle: int | None = None, line: int | None = None, dynamic: bool = False,
                 typeof: str | None = None,
                 parser: Callable[[NftSet], tuple[NftElement, ...]] | None = None) -> None:
        self.name, self.family, self.table, self.type, self.map = name, family, table, type, map
        self.flags, self.timeout, self.size, self.comment = flags, timeout, size, comment
        self.handle, self.line, self.dynamic, self.typeof = handle, line, dynamic, typeof
        self._elements, self._parser = elements, parser
        self._index: dict[str, NftElement | Callable[[], NftElement]] | None = None

    def lookup(self, key: Any) -> NftElement | None:
        """The element whose key is exactly `key` (a value, or a list for a concatenation),
        or None. Meant for sets without intervals (a prefix or range element is not found by
        an address inside it). When the reader can index the elements' text, only the
        element found is read: a trace looks up one key in maps of 10,000."""
        text = key_text(key)
        if text is None:
            return next((e for e in self.elements if e.key == key), None)
        if self._index is None:
            keyed = getattr(self._parser, "keyed", None) if self._elements is None else None
            index = keyed(self) if keyed is not None else None
            if index is None:
                index = {t: e for e in self.elements if (t := key_text(e.key)) is not None}
            self._index = index
        found = self._index.get(text)
        if found is None or isinstance(found, NftElement):
            return found if found is not None and found.key == key else None
        element = found()
        self._index[text] = element
        return element if element.key == key else None

    @property
    def is_map(self) -> bool:
        return self.map is not None

    @property
    def is_vmap(self) -> bool:
        return self.map == ("verdict",)

    @property
    def interval(self) -> bool:
        return "interval" in self.flags

    @property
    def elements(self) -> tuple[NftElement, ...]:
        if self._elements is None:
            assert self._parser is not None, "set has neither elements nor parser"
            self._elements = self._parser(self)
        return self._elements

    def _key(self) -> tuple[Any, ...]:
        return (self.name, self.family, self.table, self.type, self.map, self.flags,
                self.timeout, self.size, self.comment,
                sorted(self.elements, key=lambda e: json.dumps([e.key, e.value])))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NftSet):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        kind = "map" if self.map is not None else "set"
        return f"NftSet({kind} {self.family} {self.table} {self.name})"


@dataclass(frozen=True, slots=True)
class NftChain:
    """A chain; a base chain iff `hook` is set. `priority` is a number: named priorities
    (`dstnat - 10`) are resolved per family and hook as nft does."""

    name: str
    table_family: str
    table_name: str
    type: str | None = None
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None
    device: str | None = field(default=None, compare=False)  # not in nft 1.0.6's JSON
    rules: tuple[NftRule, ...] = ()
    comment: str | None = field(default=None, compare=False)
    handle: int | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)

    @property
    def is_base(self) -> bool:
        return self.hook is not None


@dataclass(frozen=True, slots=True)
class NftTable:
    family: str
    name: str
    chains: dict[str, NftChain]
    sets: dict[str, NftSet]
    flags: frozenset[str] = field(default=frozenset(), compare=False)  # garbage in 1.0.6 JSON
    comment: str | None = field(default=None, compare=False)
    handle: int | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)

    def chain(self, name: str) -> NftChain | None:
        return self.chains.get(name)

    def set(self, name: str) -> NftSet | None:
        """A set or map by name, with or without the leading `@`."""
        return self.sets.get(name[1:] if name.startswith("@") else name)


@dataclass(frozen=True, slots=True)
class NftRuleset:
    """Every table read from one source; `format` is how it was written (FORMATS)."""

    tables: tuple[NftTable, ...]
    source: str = field(compare=False)
    format: str = field(compare=False)

    def table(self, family: str, name: str) -> NftTable | None:
        return next((t for t in self.tables if t.family == family and t.name == name), None)

    def chains(self) -> Iterator[NftChain]:
        for table in self.tables:
            yield from table.chains.values()

    def base_chains(self, hook: str | None = None,
                    families: tuple[str, ...] | None = None) -> list[NftChain]:
        """Base chains (at `hook`, in tables of `families`, if given) in the order the kernel
        runs them: by priority; equal priorities keep listing order. An IPv4 packet meets
        the chains of families ("ip", "inet"). A `dormant` table's chains are not run
        (`man nft`: a dormant table is not evaluated); nft 1.0.6's JSON cannot say so."""
        live = [t for t in self.tables if "dormant" not in t.flags]
        found = [c for t in live for c in t.chains.values() if c.hook is not None
                 and (hook is None or c.hook == hook)
                 and (families is None or c.table_family in families)]
        return sorted(found, key=lambda c: c.priority or 0)

    def rules(self) -> Iterator[NftRule]:
        for chain in self.chains():
            yield from chain.rules

    def check(self) -> None:
        """Parse every rule and set element now, raising the first located error."""
        for table in self.tables:
            for nft_set in table.sets.values():
                nft_set.elements  # noqa: B018 - parsing is the point
        for rule in self.rules():
            rule.statements  # noqa: B018 - parsing is the point


@dataclass(frozen=True, slots=True)
class ModeSplit:
    """A node holding rules of both kube-proxy modes (a mode switch that left the old mode's
    rules behind), or nft tables beside iptables rules. Both see every packet: at each hook
    the kernel runs the iptables chains (iptables-nft's tables sit at the classic priorities)
    and the nft base chains in priority order."""

    nft: NftRuleset
    iptables: Ruleset
    source: str = field(compare=False)

    @property
    def format(self) -> str:
        return f"iptables-save+{self.nft.format}"
