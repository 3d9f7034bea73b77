"""`nft -j list ruleset` (or `list table …`) → NftRuleset.

The JSON is a flat list: metainfo, then per table the table, its sets and maps, its chains,
then its rules grouped by chain. Rule order within a chain is list order (handles are not in
rule order). Statements are kept as nft printed them: the JSON schema is our in-memory form.
Set elements are normalised (a concatenation becomes a list, `{"elem": …}` wrappers become
NftElement fields) so that they equal what the text readers build.

Anything that is not nft's schema is a RulesError naming the object (`FILE:1: nftables[12]
(rule): …`); nft prints its JSON on one line, so the index locates it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from svctrace.errors import RuleSyntaxError
from svctrace.model.nftables import (
    FAMILIES,
    NftChain,
    NftElement,
    NftRule,
    NftRuleset,
    NftSet,
    NftTable,
)
from svctrace.rules.nft_fast import paused_gc
from svctrace.rules.nft_format import format_rule

# named stateful objects nft may list; svctrace keeps none of them (no packet path uses them
# except through statements, which keep the name)
SKIPPED_OBJECTS = frozenset({"metainfo", "counter", "quota", "ct helper", "limit", "ct timeout",
                             "ct expectation", "secmark", "synproxy", "flowtable"})
TABLE_FLAGS = frozenset({"dormant", "owner", "persist"})


@dataclass
class _TableDraft:
    family: str
    name: str
    flags: frozenset[str]
    handle: int | None
    comment: str | None
    sets: dict[str, NftSet] = field(default_factory=dict)
    chains: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: dict[str, list[NftRule]] = field(default_factory=dict)


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tables: dict[tuple[str, str], _TableDraft] = {}
        self.where = ""

    def fail(self, message: str) -> RuleSyntaxError:
        return RuleSyntaxError(self.source, 1, f"{self.where}: {message}",
                               "expected the output of `nft -j list ruleset`")

    def text(self, obj: Mapping[str, Any], key: str) -> str:
        value = obj.get(key)
        if not isinstance(value, str) or not value:
            raise self.fail(f"missing or invalid \"{key}\": {json.dumps(value)}")
        return value

    def table_of(self, obj: Mapping[str, Any]) -> _TableDraft:
        family, name = self.text(obj, "family"), self.text(obj, "table")
        draft = self.tables.get((family, name))
        if draft is None:
            raise self.fail(f"table {family} {name} is not declared before its contents")
        return draft

    def read(self, items: list[Any]) -> None:
        for index, item in enumerate(items):
            if not isinstance(item, dict) or len(item) != 1:
                self.where = f"nftables[{index}]"
                raise self.fail(f"not an nft object: {json.dumps(item)[:80]}")
            (kind, obj), = item.items()
            self.where = f"nftables[{index}] ({kind})"
            if kind in SKIPPED_OBJECTS:
                continue
            handler = _HANDLERS.get(kind)
            if handler is None:
                raise self.fail(f"unknown object \"{kind}\"")
            if not isinstance(obj, dict):
                raise self.fail(f"\"{kind}\" is not an object")
            handler(self, obj)

    def add_table(self, obj: Mapping[str, Any]) -> None:
        family, name = self.text(obj, "family"), self.text(obj, "name")
        if family not in FAMILIES:
            raise self.fail(f"unknown family \"{family}\"")
        # nft 1.0.6 prints garbage for table flags in JSON; keep only real flag names
        flags = obj.get("flags", [])
        flags = [flags] if isinstance(flags, str) else flags
        self.tables[(family, name)] = _TableDraft(
            family, name, frozenset(f for f in flags if f in TABLE_FLAGS), obj.get("handle"),
            obj.get("comment"))

    def add_chain(self, obj: Mapping[str, Any]) -> None:
        draft = self.table_of(obj)
        name = self.text(obj, "name")
        prio = obj.get("prio")
        if prio is not None and not isinstance(prio, int):
            raise self.fail(f"chain {name}: priority is not a number: {json.dumps(prio)}")
        draft.chains[name] = dict(obj)
        draft.rules.setdefault(name, [])

    def add_set(self, obj: Mapping[str, Any], is_map: bool) -> None:
        draft = self.table_of(obj)
        name = self.text(obj, "name")
        flags = obj.get("flags", [])
        flags = frozenset([flags] if isinstance(flags, str) else flags)
        map_type = _type_parts(obj["map"]) if is_map and "map" in obj else None
        if is_map and map_type is None:
            raise self.fail(f"map {name} has no \"map\" data type")
        elements = tuple(_element(e, is_map, self) for e in obj.get("elem", []))
        draft.sets[name] = NftSet(
            name, draft.family, draft.name, _type_parts(obj.get("type", ())), map_type,
            flags - {"dynamic"}, elements, obj.get("timeout"), obj.get("size"),
            obj.get("comment"), obj.get("handle"), None, "dynamic" in flags)

    def add_rule(self, obj: Mapping[str, Any]) -> None:
        draft = self.table_of(obj)
        chain = self.text(obj, "chain")
        rules = draft.rules.get(chain)
        if rules is None:
            raise self.fail(f"rule for undeclared chain {chain}")
        expr = obj.get("expr")
        if not isinstance(expr, list) or not all(isinstance(s, dict) and len(s) == 1
                                                 for s in expr):
            raise self.fail(f"rule in chain {chain}: \"expr\" is not a list of statements")
        statements = tuple(expr)
        comment = obj.get("comment")
        rules.append(NftRule(draft.family, draft.name, chain, len(rules) + 1, obj.get("handle"),
                             None, None, self.source, statements, comment, printer=_print))

    def ruleset(self) -> NftRuleset:
        return NftRuleset(tuple(_table(d) for d in self.tables.values()), self.source, "nft-json")


def _print(rule: NftRule) -> str:
    return format_rule(rule.statements, rule.family, rule.comment)


def _type_parts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(p.strip() for p in value.split(" . "))
    return tuple(str(v) for v in value)


def _element(item: Any, is_map: bool, reader: _Reader) -> NftElement:
    value = None
    if is_map:
        if not isinstance(item, list) or len(item) != 2:
            raise reader.fail(f"map element is not a [key, value] pair: {json.dumps(item)}")
        item, value = item
        value = _plain(value)
    if isinstance(item, dict) and "elem" in item:
        elem = item["elem"]
        return NftElement(_plain(elem.get("val")), value, elem.get("comment"),
                          elem.get("timeout"), elem.get("expires"))
    return NftElement(_plain(item), value)


def _plain(value: Any) -> Any:
    """A concatenation as a list (what the model uses for element keys and map data)."""
    if isinstance(value, dict) and "concat" in value:
        return [_plain(v) for v in value["concat"]]
    return value


def _table(draft: _TableDraft) -> NftTable:
    chains = {}
    for name, obj in draft.chains.items():
        chains[name] = NftChain(name, draft.family, draft.name, obj.get("type"), obj.get("hook"),
                                obj.get("prio"), obj.get("policy"), obj.get("dev"),
                                tuple(draft.rules[name]), obj.get("comment"), obj.get("handle"))
    return NftTable(draft.family, draft.name, chains, draft.sets, draft.flags, draft.comment,
                    draft.handle)


_HANDLERS: dict[str, Any] = {
    "table": _Reader.add_table,
    "chain": _Reader.add_chain,
    "set": lambda r, o: r.add_set(o, False),
    "map": lambda r, o: r.add_set(o, True),
    "rule": _Reader.add_rule,
}


def parse_nft_json(text: str, source: str) -> NftRuleset:
    """Parse `nft -j list ruleset` output."""
    with paused_gc():
        return _parse(text, source)


def _parse(text: str, source: str) -> NftRuleset:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise RuleSyntaxError(source, err.lineno, f"not JSON: {err.msg} (column {err.colno})",
                              "expected the output of `nft -j list ruleset`") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("nftables"), list):
        raise RuleSyntaxError(source, 1, "JSON without a top-level \"nftables\" list: this is "
                              "not `nft -j` output")
    reader = _Reader(source)
    reader.read(doc["nftables"])
    return reader.ruleset()
