"""The sets and maps of one rule's table, as the statements look things up in them.

Exact-key named sets (a big node's maps hold tens of thousands of elements) are asked for the
one element with the packet's key (NftSet.lookup); interval and flag sets, and the anonymous
sets of rules, are indexed once per trace. Dynamic sets (kube-proxy's affinity sets) are empty
for a new client, hold what the trace itself added (`update @set`), and hold the packet's
source when `--affinity-hit` names them or an endpoint their chain DNATs to.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from svctrace.model.nftables import NftChain, NftRuleset, NftSet, NftTable
from svctrace.model.trace import NodeContext
from svctrace.trace.nft_expr import Context
from svctrace.trace.nft_hooks import label_of
from svctrace.trace.nft_values import SetIndex, anonymous_items, kind_of_type, lookup_form
from svctrace.trace.state import Unknown

EXACT_TYPES = {"ipv4_addr", "ipv6_addr", "inet_proto", "inet_service"}


class SetCache:
    """Indexes built during one trace, by set (or a rule's anonymous set) and key kind."""

    def __init__(self) -> None:
        self.indexes: dict[tuple[int, Any], SetIndex] = {}

    def set_index(self, nft_set: NftSet, kind: Any) -> SetIndex:
        key = (id(nft_set), None)
        index = self.indexes.get(key)
        if index is None:
            items = [(e.key, e.value) for e in nft_set.elements]
            index = self.indexes[key] = SetIndex(items, kind_of_type(nft_set.type))
        return index

    def anonymous_index(self, body: Any, kind: Any) -> SetIndex:
        key = (id(body), kind)
        index = self.indexes.get(key)
        if index is None:
            index = self.indexes[key] = SetIndex(anonymous_items(body), kind)
        return index


class TableSets:
    """The sets of one rule's table, as the statements see them (nft_stmt.Lookups)."""

    def __init__(self, cache: SetCache, ctx: Context, table: NftTable | None) -> None:
        self.cache, self.ctx, self.table = cache, ctx, table

    def _set(self, ref: Any) -> NftSet | None:
        return self.table.set(ref) if isinstance(ref, str) and self.table else None

    def find(self, ref: Any, value: Any, kind: Any) -> tuple[bool, Any] | Unknown:
        if not isinstance(ref, str):
            return self.cache.anonymous_index(ref, kind).lookup(value)
        nft_set = self._set(ref)
        if nft_set is None:
            return Unknown(f"set {ref} (not in the table)")
        key = element_key(nft_set, value)
        if key is not None:            # read only the element with this key (a big map)
            element = nft_set.lookup(key)
            return element is not None, element.value if element is not None else None
        return self.cache.set_index(nft_set, kind).lookup(value)

    def dynamic(self, ref: Any) -> bool:
        nft_set = self._set(ref)
        return nft_set is not None and is_dynamic(nft_set)

    def member(self, ref: Any, value: Any) -> bool:
        name = ref.lstrip("@")
        if name in self.ctx.state.node.affinity_hit:
            return True
        return self._key(name, value) in self.ctx.state.recent

    def remember(self, ref: str, value: Any, add: bool) -> None:
        key = self._key(ref.lstrip("@"), value)
        (self.ctx.state.recent.add if add else self.ctx.state.recent.discard)(key)

    def _key(self, name: str, value: Any) -> str:
        where = label_of(self.table) if self.table else "?"
        return f"{where}/{name}|{value!r}"


def element_key(nft_set: NftSet, value: Any) -> Any:
    """`value` as the key of an exact-key set's element (addresses as text, protocols by name,
    ports as numbers; a list for a concatenation), or None when only a scan can tell: an
    interval set, or a key type compared otherwise (flags, wildcards)."""
    if nft_set.interval or not set(nft_set.type) <= EXACT_TYPES:
        return None
    key = lookup_form(value)
    if isinstance(key, tuple):
        return list(key) if len(key) == len(nft_set.type) > 1 else None
    return key if len(nft_set.type) == 1 else None


def is_dynamic(nft_set: NftSet) -> bool:
    """A set the kernel fills as packets pass (affinity): empty for a new client's trace."""
    return nft_set.dynamic or bool(nft_set.flags & {"dynamic", "timeout"}) or \
        nft_set.timeout is not None


def resolve_affinity(ruleset: NftRuleset, node: NodeContext) -> NodeContext:
    """--affinity-hit may name an endpoint (ip:port): the dynamic sets updated in the chains
    that DNAT to it. Set names are kept as given."""
    wanted = {h for h in node.affinity_hit if ":" in h and not h.startswith("@")}
    if not wanted:
        return node
    names = {h.lstrip("@") for h in node.affinity_hit - wanted}
    for chain in ruleset.chains():
        updated, targets = _chain_affinity(chain)
        if targets & wanted:
            names |= updated
    return replace(node, affinity_hit=frozenset(names))


def _chain_affinity(chain: NftChain) -> tuple[set[str], set[str]]:
    updated: set[str] = set()
    targets: set[str] = set()
    for rule in chain.rules:
        for stmt in rule.statements:
            body: Any = next(iter(stmt.values()), None)
            if "set" in stmt and isinstance(body, dict) and isinstance(body.get("set"), str):
                updated.add(body["set"].lstrip("@"))
            if "dnat" in stmt and isinstance(body, dict) and isinstance(body.get("addr"), str):
                addr, port = body["addr"], body.get("port")
                targets.add(f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}")
    return updated, targets
