"""YAML read with bounds: snapshots and kubeconfigs come from files anyone may have crafted.

Before a document is built, one pass over the parser's events (libyaml's when present; the
parser keeps its own stack, so depth cannot exhaust ours) refuses:

- nesting deeper than MAX_DEPTH (libyaml's composer recurses in C: 100,000 `[` crash the
  interpreter outright, and PyYAML's pure composer raises RecursionError);
- aliases that make up too much of a document once expanded ("billion laughs": nine levels
  of nine aliases are a few hundred bytes and 387 million nodes once walked). The rule is
  go-yaml's, so that svctrace reads what kubectl reads: past 100 aliased nodes and 1,000
  nodes in all, aliases may make up 99 % of a document of up to 400,000 nodes, falling to
  10 % at 4,000,000;
- an alias inside the node it names (a cycle no JSON-like object can hold).

Real objects nest a few dozen levels at most and `kubectl get -o yaml` writes no aliases at
all, so the bounds only ever meet crafted files.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 200


class YamlRefused(ValueError):
    """A YAML document refused before it was built (too deep, or an alias bomb); `line` is
    where (1-based), 0 when unknown."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.line = mark.line + 1 if mark is not None else 0

    def located(self, source: str) -> str:
        """`source:LINE: message`."""
        return f"{source}:{self.line}: {self.message}" if self.line else \
            f"{source}: {self.message}"


def _loader() -> Any:
    import yaml
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of `text`, built only after the bounds were checked. yaml.YAMLError for
    malformed YAML (with its mark), YamlRefused for what the bounds refuse."""
    import yaml
    check_yaml_bounds(text)
    return list(yaml.load_all(text, Loader=_loader()))


def check_yaml_bounds(text: str) -> None:
    """Walk the events of `text` once; YamlRefused when a bound is exceeded."""
    import yaml
    counts = _Counts()
    for event in yaml.parse(text, Loader=_loader()):
        if isinstance(event, yaml.ScalarEvent):
            counts.node(event.anchor, 1)
        elif isinstance(event, yaml.CollectionStartEvent):
            counts.open(event.anchor, event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            counts.close()
        elif isinstance(event, yaml.AliasEvent):
            counts.alias(event.anchor, event.start_mark)
        elif isinstance(event, yaml.DocumentStartEvent):
            counts = _Counts()


class _Counts:
    """Expanded node counts of the open collections of one document, and of its anchors."""

    def __init__(self) -> None:
        self.stack: list[list[Any]] = [[None, 0]]        # [anchor, nodes so far]
        self.sizes: dict[str, int] = {}
        self.from_aliases = 0
        self.total = 0

    def node(self, anchor: str | None, size: int) -> None:
        if anchor is not None:
            self.sizes[anchor] = size
        self.stack[-1][1] += size
        self.total += 1

    def open(self, anchor: str | None, mark: Any) -> None:
        if len(self.stack) > MAX_DEPTH:
            raise YamlRefused(f"nested more than {MAX_DEPTH} levels deep", mark)
        if anchor is not None:
            self.sizes.pop(anchor, None)             # redefined: not usable until closed
        self.stack.append([anchor, 1])

    def close(self) -> None:
        anchor, size = self.stack.pop()
        self.node(anchor, size)

    def alias(self, anchor: str, mark: Any) -> None:
        if anchor not in self.sizes:
            if any(entry[0] == anchor for entry in self.stack):
                raise YamlRefused(f"alias *{anchor[:40]} refers to a node that contains it",
                                  mark)
            return                                   # undefined: the composer says so
        size = self.sizes[anchor]
        self.from_aliases += size
        self.total += size
        if self.from_aliases > 100 and self.total > 1000 and \
                self.from_aliases / self.total > allowed_alias_ratio(self.total):
            raise YamlRefused(f"YAML aliases expand to {self.from_aliases:,} of "
                              f"{self.total:,} nodes so far (an alias bomb?)", mark)
        self.stack[-1][1] += size


def allowed_alias_ratio(nodes: int) -> float:
    """The share of a document's nodes aliases may make up (go-yaml's allowedAliasRatio)."""
    if nodes <= 400_000:
        return 0.99
    if nodes >= 4_000_000:
        return 0.10
    return 0.99 - 0.89 * (nodes - 400_000) / 3_600_000

