"""An iptables ruleset as iptables-save prints it: tables → chains → rules → matches and a target.

Rules keep their original text, file and line, so everything rendered is what iptables-save
printed. Each rule is parsed into (match, target) only when someone looks at it: a trace through
a 230,000-line dump visits a few dozen rules; `Ruleset.check()` parses them all when asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

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


@dataclass(frozen=True, slots=True)
class Match:
    """A match module and its options; basic criteria (-s, -d, -p, -i, -o, -f) are module ""."""

    module: str
    options: tuple[Option, ...]

    def get(self, name: str) -> Option | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None


@dataclass(frozen=True, slots=True)
class Target:
    """`-j NAME opts` or `-g NAME` (goto). A rule with no target is a pure counter (no-op)."""

    name: str
    options: tuple[Option, ...] = ()
    goto: bool = False

    def get(self, name: str) -> Option | None:
        for opt in self.options:
            if opt.name == name:
                return opt
        return None


@dataclass(frozen=True, slots=True)
class ParsedRule:
    matches: tuple[Match, ...]
    target: Target | None


@dataclass(slots=True)
class Rule:
    """One `-A CHAIN …` line; `number` is 1-based in its chain (`iptables -L --line-numbers`)."""

    table: str
    chain: str
    number: int
    line: int
    text: str
    source: str
    family: int = 4
    counters: tuple[int, int] | None = None
    _parsed: ParsedRule | None = field(default=None, repr=False)
    _parser: Callable[[Rule], ParsedRule] | None = field(default=None, repr=False, compare=False)

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


@dataclass(slots=True)
class Chain:
    """A chain and its rules. Rules are kept as raw (line, text) until first asked for."""

    name: str
    table: str
    policy: str | None = None          # ACCEPT/DROP for built-in chains, None for user chains
    line: int = 0
    source: str = ""
    family: int = 4
    raw: list[tuple[int, str, tuple[int, int] | None]] = field(default_factory=list)
    parser: Callable[[Rule], ParsedRule] | None = field(default=None, repr=False)
    _rules: list[Rule] | None = field(default=None, repr=False)

    @property
    def builtin(self) -> bool:
        return self.policy is not None

    @property
    def rules(self) -> list[Rule]:
        if self._rules is None:
            self._rules = [Rule(self.table, self.name, n, line, text, self.source, self.family,
                                counters, None, self.parser)
                           for n, (line, text, counters) in enumerate(self.raw, 1)]
        return self._rules

    def __len__(self) -> int:
        return len(self.raw)


@dataclass(slots=True)
class Table:
    name: str
    family: int
    chains: dict[str, Chain] = field(default_factory=dict)
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
