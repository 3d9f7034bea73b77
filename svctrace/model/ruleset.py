"""An iptables ruleset as iptables-save prints it: tables → chains → rules → matches and a target.

Rules keep their original text, file and line, so everything rendered is what iptables-save
printed. Each rule is parsed into (match, target) only when someone looks at it: a trace through
a 230,000-line dump visits a few dozen rules; `Ruleset.check()` parses them all when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat

BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


@dataclass(frozen=True, slots=True)
class Option:
    """One option of a match or target: `! --dport 80` is Option("dport", ("80",), negated=True)."""

    name: str
    values: tuple[str, ...] = ()
    negated: bool = False

    @property
    def value(self) -> str:
        return " ".join(self.values)


def find_option(options: tuple[Option, ...], name: str) -> Option | None:
    """The first option called `name` (iptables keeps options in the order given)."""
    return next((opt for opt in options if opt.name == name), None)


@dataclass(frozen=True, slots=True)
class Match:
    """A match module and its options; basic criteria (-s, -d, -p, -i, -o, -f) are module ""."""

    module: str
    options: tuple[Option, ...]

    def get(self, name: str) -> Option | None:
        return find_option(self.options, name)


@dataclass(frozen=True, slots=True)
class Target:
    """`-j NAME opts` or `-g NAME` (goto). A rule with no target is a pure counter (no-op)."""

    name: str
    options: tuple[Option, ...] = ()
    goto: bool = False

    def get(self, name: str) -> Option | None:
        return find_option(self.options, name)


@dataclass(frozen=True, slots=True)
class ParsedRule:
    matches: tuple[Match, ...]
    target: Target | None


class Rule:
    """One `-A CHAIN …` line; `number` is 1-based in its chain (`iptables -L --line-numbers`).

    A plain slotted class, not a dataclass: a big node has 230,000 of them.
    """

    __slots__ = ("table", "chain", "number", "line", "text", "source", "family", "counters",
                 "_parsed", "_parser")

    def __init__(self, table: str, chain: str, number: int, line: int, text: str, source: str,
                 family: int = 4, counters: tuple[int, int] | None = None,
                 parsed: ParsedRule | None = None,
                 parser: Callable[[Rule], ParsedRule] | None = None) -> None:
        self.table, self.chain, self.number, self.line = table, chain, number, line
        self.text, self.source, self.family, self.counters = text, source, family, counters
        self._parsed, self._parser = parsed, parser

    def __repr__(self) -> str:
        return f"Rule({self.table}/{self.chain} #{self.number} line {self.line}: {self.text!r})"

    @property
    def parsed(self) -> ParsedRule:
        if self._parsed is None:
            assert self._parser is not None, "rule has neither parsed form nor parser"
            self._parsed = self._parser(self)
        return self._parsed

    @property
    def matches(self) -> tuple[Match, ...]:
        return self.parsed.matches

    @property
    def target(self) -> Target | None:
        return self.parsed.target

    @property
    def location(self) -> str:
        return f"{self.source}:{self.line}"


RawRule = tuple[int, str, "tuple[int, int] | None"]     # (line, text, counters)
Segment = tuple[int, int, int]          # (start, end) character offsets, first line number


def _segment_raw(text: str, segment: Segment) -> Iterator[RawRule]:
    start, end, first = segment
    lines = text[start:end - 1].split("\n")
    return zip(range(first, first + len(lines)), lines, repeat(None))


class Chain:
    """A chain and its rules.

    Rules stay as slices of the dump's lines (segments) until someone asks for them: `raw` gives
    (line, text, counters) tuples, `rules` gives Rule objects; both are built once, per chain.
    """

    __slots__ = ("name", "table", "policy", "line", "source", "family", "parser", "_text",
                 "_segments", "_raw", "_rules")

    def __init__(self, name: str, table: str, policy: str | None = None, line: int = 0,
                 source: str = "", family: int = 4,
                 parser: Callable[[Rule], ParsedRule] | None = None) -> None:
        self.name, self.table, self.policy, self.line = name, table, policy, line
        self.source, self.family, self.parser = source, family, parser
        self._text = ""
        self._segments: list[Segment] = []
        self._raw: list[RawRule] | None = None
        self._rules: list[Rule] | None = None

    def __repr__(self) -> str:
        return f"Chain({self.table}/{self.name}, {len(self)} rules)"

    def keep_only(self, rules: list[Rule]) -> Chain:
        """A copy of this chain holding only `rules` (taken from it, numbers and lines kept)."""
        chain = Chain(self.name, self.table, self.policy, self.line, self.source, self.family,
                      self.parser)
        chain._raw = [(r.line, r.text, r.counters) for r in rules]
        chain._rules = list(rules)
        return chain

    @property
    def builtin(self) -> bool:
        return self.policy is not None

    def add_segment(self, text: str, segment: Segment) -> None:
        """Rules `text[start:end]` (whole lines, each ending in a newline), the first of them
        on line `first` of the dump."""
        if self._raw is not None:
            self._raw.extend(_segment_raw(text, segment))
        else:
            self._text = text
            self._segments.append(segment)
        self._rules = None

    @property
    def raw(self) -> list[RawRule]:
        """(line, text, counters) of every rule, in order. The parser edits this list for
        restore commands (-I, -F) before anyone has asked for `rules`."""
        if self._raw is None:
            raw: list[RawRule] = []
            for segment in self._segments:
                raw.extend(_segment_raw(self._text, segment))
            self._raw = raw
            self._segments = []
        return self._raw

    @property
    def rules(self) -> list[Rule]:
        if self._rules is None:
            table, name, source, family, parser = (self.table, self.name, self.source,
                                                   self.family, self.parser)
            self._rules = [Rule(table, name, n, line, text, source, family, counters, None, parser)
                           for n, (line, text, counters) in enumerate(self.raw, 1)]
        return self._rules

    def texts(self) -> list[str]:
        """The rules' text only, without building tuples or Rule objects."""
        if self._raw is not None:
            return [t for _, t, _ in self._raw]
        text = self._text
        if len(self._segments) == 1:
            start, end, _ = self._segments[0]
            return text[start:end - 1].split("\n")
        return [t for start, end, _ in self._segments for t in text[start:end - 1].split("\n")]

    def __len__(self) -> int:
        if self._raw is not None:
            return len(self._raw)
        return sum(self._text.count("\n", start, end) for start, end, _ in self._segments)


class ChainMap(Mapping[str, Chain]):
    """A table's chains by name, in declaration order, created only when looked up.

    A 10,000-Service node declares 60,000 chains; a trace looks at a few dozen. The parser
    records declarations and rule segments here, and a Chain is built on first access.
    """

    def __init__(self, table: str, source: str,
                 parser: Callable[[Rule], ParsedRule] | None) -> None:
        self.table, self.source, self.parser = table, source, parser
        self.family = 4
        self.declared: dict[str, tuple[int, str | None]] = {}    # name → (line, policy)
        self.text = ""                                            # the dump
        self.pending: dict[str, list[Segment]] = {}              # name → rule segments
        self.built: dict[str, Chain] = {}

    def __getitem__(self, name: str) -> Chain:
        chain = self.get(name)
        if chain is None:
            raise KeyError(name)
        return chain

    def get(self, name: str, default: Chain | None = None) -> Chain | None:  # type: ignore[override]
        chain = self.built.get(name)
        if chain is not None:
            return chain
        entry = self.declared.get(name)
        if entry is None:
            return default
        chain = Chain(name, self.table, entry[1], entry[0], self.source, self.family,
                      self.parser)
        segments = self.pending.pop(name, None)
        if segments is not None:
            chain._text, chain._segments = self.text, segments
        self.built[name] = chain
        return chain

    def __contains__(self, name: object) -> bool:
        return name in self.declared

    def __iter__(self) -> Iterator[str]:
        return iter(self.declared)

    def __len__(self) -> int:
        return len(self.declared)

    def declare(self, name: str, line: int, policy: str | None) -> None:
        self.declared[name] = (line, policy)

    def add_segment(self, name: str, segment: Segment) -> None:
        """Rules of chain `name` at `segment` of the dump's text."""
        chain = self.built.get(name)
        if chain is not None:
            chain.add_segment(self.text, segment)
        else:
            self.pending.setdefault(name, []).append(segment)

    def remove(self, name: str) -> None:
        self.declared.pop(name, None)
        self.pending.pop(name, None)
        self.built.pop(name, None)

    def add_built(self, chain: Chain) -> None:
        """Add an already built chain (used to cut a small ruleset out of a big one)."""
        self.declared[chain.name] = (chain.line, chain.policy)
        self.built[chain.name] = chain

    def set_family(self, family: int) -> None:
        self.family = family
        for chain in self.built.values():
            chain.family = family


@dataclass(slots=True)
class Table:
    name: str
    family: int
    chains: ChainMap
    line: int = 0


@dataclass(slots=True)
class Ruleset:
    """All tables of one address family read from one source (a file, stdin, a node)."""

    source: str
    family: int = 4
    tables: dict[str, Table] = field(default_factory=dict)
    backend: str | None = None          # "legacy" / "nf_tables" when the dump header says so
    warnings: list[str] = field(default_factory=list)

    def chain(self, table: str, chain: str) -> Chain | None:
        t = self.tables.get(table)
        return None if t is None else t.chains.get(chain)

    def rules(self) -> Iterator[Rule]:
        for t in self.tables.values():
            for c in t.chains.values():
                yield from c.rules

    def check(self) -> None:
        """Parse every rule now, raising the first located error (lazy parsing defers them)."""
        for rule in self.rules():
            rule.parsed  # noqa: B018 - parsing is the point
