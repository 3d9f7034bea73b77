"""The nft language → NftRuleset: one reader for `nft list ruleset` text and `nft -f` input.

Both are the same language. A listing is `table … { … }` blocks (also `nft list table`, with
`-a` handles, `-s`, `-n`); `nft -f` input adds commands, one per line: `add|create table,
chain, set, map, rule, element`, `insert rule`, `flush ruleset|table|chain|set|map`,
`delete|destroy table|chain|set|map|element`, and block form. Commands are applied in order,
as the kernel would in one transaction, so the result is the ruleset after the file.

The structure (tables, chains, sets, chain types/hooks/priorities) is read here, eagerly;
a rule's text and a set's element blocks are kept as text and read by nft_lang when first
used: a 10,000-Service node has 60,000 elements and a trace looks at a few. Call
`NftRuleset.check()` to read everything now. Errors are `FILE:LINE: …` quoting the token.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from svctrace.errors import RuleSyntaxError
from svctrace.model.nftables import (
    FAMILIES,
    NftChain,
    NftElement,
    NftRule,
    NftRuleset,
    NftSet,
    NftTable,
    Statement,
)
from svctrace.rules.nft_fast import keyed_items, paused_gc
from svctrace.rules.nft_lang import parse_duration, parse_elements, parse_rule, unquote
from svctrace.rules.nft_scan import (
    CHAIN_BLOCK,
    CT_OBJECTS,
    FAST_COMMAND,
    HANDLE,
    OBJECT_BLOCKS,
    RULE_HANDLE,
    SET_BLOCK,
    SET_FLAGS,
    SET_UPDATE,
    SPACE,
    ChainDraft,
    Scanner,
    SetDraft,
    TableDraft,
    match_end,
    resolve_priority,
    shown,
)
from svctrace.rules.nft_symbols import TYPEOF_TYPES


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        self.s = Scanner(text, source)
        self.source = source
        self.tables: dict[tuple[str, str], TableDraft] = {}
        self.commands = False
        self.updated: set[str] = set()

    # -- top level ------------------------------------------------------------------------
    def read(self) -> None:
        s = self.s
        while True:
            s.skip_blank_lines()
            if self.fast_command():
                continue
            if s.skip_separators() == "":
                return
            line, tok = s.line, s.token()
            if tok == "table":
                self.table_block(line)
            elif tok in _COMMANDS:
                self.commands = True
                _COMMANDS[tok](self, tok, line)
            else:
                raise s.fail(f"unknown command {shown(tok)}", line,
                             "expected `nft list ruleset` output or `nft -f` input")

    def ref(self, count: int, what: str) -> tuple[str, list[str]]:
        """`[family] name…`: the family (default ip) and `count` names."""
        first = self.s.word(f"a {what} name")
        family = "ip"
        if first in FAMILIES and self.s.peek() not in ("{", "\n", ";", ""):
            family, first = first, self.s.word(f"a {what} name")
        names = [first] + [self.s.word(f"a {what} name") for _ in range(count - 1)]
        return family, [unquote(n) for n in names]

    def table(self, family: str, name: str, line: int, create: bool = False) -> TableDraft:
        t = self.tables.get((family, name))
        if t is None:
            if not create:
                raise self.s.fail(f"table {family} {name} does not exist", line)
            t = self.tables[(family, name)] = TableDraft(family, name, line)
        return t

    def chain(self, t: TableDraft, name: str, line: int, create: bool = False) -> ChainDraft:
        c = t.chains.get(name)
        if c is None:
            if not create:
                raise self.s.fail(f"chain {t.family} {t.name} {name} does not exist", line)
            c = t.chains[name] = ChainDraft(name, line)
        return c

    def set(self, t: TableDraft, name: str, line: int, is_map: bool | None = None,
            create: bool = False) -> SetDraft:
        st = t.sets.get(name)
        if st is None:
            if not create or is_map is None:
                raise self.s.fail(f"set {t.family} {t.name} {name} does not exist", line)
            st = t.sets[name] = SetDraft(name, is_map, line)
        return st

    def trailing_handle(self) -> int | None:
        """`# handle N` right after a `{` (nft -a)."""
        s = self.s
        m = HANDLE.match(s.text, match_end(SPACE, s.text, s.pos))
        if m is None:
            return None
        s.pos = m.end()
        return int(m.group(1))

    def open_block(self, after: str) -> int | None:
        self.s.expect("{", after)
        return self.trailing_handle()

    # -- blocks ---------------------------------------------------------------------------
    def table_block(self, line: int) -> None:
        s = self.s
        family, (name,) = self.ref(1, "table")
        if s.peek() not in ("{",) and family == "ip" and s.peek() not in ("", "\n", ";"):
            raise s.fail(f'unknown family "{name}"', line)
        t = self.table(family, name, line, create=True)
        t.handle = self.open_block(f"table {family} {name}")
        self.table_body(t)

    def table_body(self, t: TableDraft) -> None:
        s = self.s
        while True:
            s.skip_blank_lines()
            if self.fast_block(t):
                continue
            item = s.next_item(f"table {t.family} {t.name}", t.line)
            if item is None:
                return
            line, word = item
            handler = _TABLE_ITEMS.get(word)
            if handler is None:
                raise s.fail(f"unexpected {shown(word)} in table {t.family} {t.name}")
            handler(self, t, line)

    def chain_item(self, t: TableDraft, line: int) -> None:
        c = self.chain(t, unquote(self.s.word("a chain name")), line, create=True)
        c.handle = self.open_block(f"chain {c.name}")
        self.chain_body(t, c)

    def chain_body(self, t: TableDraft, c: ChainDraft) -> None:
        s = self.s
        while True:
            tok = s.skip_separators()
            if tok == "}":
                s.token()
                return
            if tok == "":
                raise s.fail(f'missing "}}" closing chain {c.name}', c.line)
            if tok in ("type", "policy", "comment"):
                line = s.line
                s.token()
                self.chain_spec(t, c, tok, s.words(), line)
                continue
            text, line, handle = s.rule_text()
            if text:
                c.rules.append((text, line, handle))

    def chain_spec(self, t: TableDraft, c: ChainDraft, key: str, words: list[str],
                   line: int) -> None:
        s = self.s
        if key == "comment":
            c.comment = unquote(words[0]) if words else None
        elif key == "policy":
            if words not in (["accept"], ["drop"]):
                raise s.fail(f'bad policy "{" ".join(words)}" for chain {c.name}', line)
            c.policy = words[0]
        else:
            self.base_chain(t, c, words, line)

    def base_chain(self, t: TableDraft, c: ChainDraft, words: list[str], line: int) -> None:
        if not words:
            raise self.s.fail(f"chain {c.name}: type without a value", line)
        c.type = words[0]
        i = 1
        while i < len(words):
            key = words[i]
            if key == "priority":
                text = " ".join(words[i + 1:])
                c.priority = resolve_priority(text, t.family, c.hook)
                if c.priority is None:
                    raise self.s.fail(f'bad priority "{text}" for chain {c.name}', line)
                return
            if key not in ("hook", "device") or i + 1 >= len(words):
                raise self.s.fail(f'unexpected "{key}" in the type of chain {c.name}', line)
            if key == "hook":
                c.hook = words[i + 1]
            else:
                c.device = unquote(words[i + 1])
            i += 2
        if c.hook is not None:
            raise self.s.fail(f"chain {c.name}: hook {c.hook} without a priority", line)

    def set_item(self, t: TableDraft, line: int, kind: str) -> None:
        st = self.set(t, self.s.word(f"a {kind} name"), line, kind == "map", create=True)
        st.handle = self.open_block(f"{kind} {st.name}")
        self.set_body(t, st)

    def set_body(self, t: TableDraft, st: SetDraft) -> None:
        s = self.s
        while (item := s.next_item(f"set {st.name}", st.line)) is not None:
            line, word = item
            if word == "elements":
                s.expect("=", "elements")
                s.expect("{", "elements =")
                text, eline = s.block_text(f"the elements of {st.name}")
                st.chunks.append(("add", text, eline))
                continue
            self.set_spec(st, word, s.words(), line)

    def set_spec(self, st: SetDraft, key: str, words: list[str], line: int) -> None:
        fail = self.s.fail
        if key in ("type", "typeof"):
            parts = " ".join(words).split(" : ")
            key_parts = tuple(p.strip() for p in parts[0].split(" . "))
            data = tuple(p.strip() for p in parts[1].split(" . ")) if len(parts) > 1 else None
            if key == "typeof":
                st.typeof = " ".join(words)
                key_parts = tuple(TYPEOF_TYPES.get(p, p) for p in key_parts)
                data = None if data is None else tuple(TYPEOF_TYPES.get(p, p) for p in data)
            if not words or (st.is_map and data is None):
                raise fail(f'bad type "{" ".join(words)}" for {st.name}', line)
            st.type, st.map = key_parts, data if st.is_map else None
        elif key == "flags":
            flags = frozenset(f for f in "".join(words).split(",") if f)
            bad = sorted(flags - SET_FLAGS)
            if bad:
                raise fail(f'unknown set flag "{bad[0]}" for {st.name}', line)
            st.flags = flags
        elif key in ("timeout", "size"):
            value = parse_duration(words[0]) if words and key == "timeout" else \
                int(words[0]) if words and words[0].isdigit() else None
            if value is None:
                raise fail(f'bad {key} "{" ".join(words)}" for {st.name}', line)
            setattr(st, key, value)
        elif key == "comment":
            st.comment = unquote(words[0]) if words else None
        elif key not in ("gc-interval", "policy", "counter", "auto-merge"):
            raise fail(f'unexpected "{key}" in set {st.name}', line)

    def skip_object(self, t: TableDraft, line: int, kind: str) -> None:
        s = self.s
        if kind == "ct":
            sub = s.word("helper, timeout or expectation")
            if sub not in CT_OBJECTS:
                raise s.fail(f'unexpected "ct {sub}" in table {t.family} {t.name}')
        s.word(f"a {kind} name")
        if s.peek() == "{":
            s.token()
            s.block_text(kind)

    def table_flags(self, t: TableDraft, line: int) -> None:
        t.flags = frozenset(w for w in self.s.words() if w != ",")

    def table_comment(self, t: TableDraft, line: int) -> None:
        words = self.s.words()
        t.comment = unquote(words[0]) if words else None

    # -- fast paths: the shapes `nft list` and kube-proxy print, one line or block at a time;
    # anything else (or anything unusual in them) goes through the token reader above --------
    def fast_block(self, t: TableDraft) -> bool:
        """A whole `chain` or `set`/`map` block as `nft list` prints it."""
        s = self.s
        m = CHAIN_BLOCK.match(s.text, s.pos)
        done = m is not None and self.fast_chain(t, m.group(1), m.group(2), m.group(3))
        if not done:
            m = SET_BLOCK.match(s.text, s.pos)
            done = m is not None and self.fast_set(t, m.group(1), m.group(2), m.group(3),
                                                   m.group(4))
        if done and m is not None:
            s.line += s.text.count("\n", m.start(), m.end())
            s.pos = m.end()
        return done

    def fast_chain(self, t: TableDraft, name: str, handle: str | None, body: str) -> bool:
        line = self.s.line
        specs, rules = [], []
        for number, raw in enumerate(body.split("\n")[:-1], line + 1):
            text = raw.strip()
            if text.split(" ", 1)[0] in ("type", "policy", "comment"):
                specs.append((number, text))
                continue
            rule = fast_rule(text, number)
            if rule is None:
                return False
            rules.append(rule)
        c = self.chain(t, name, line, create=True)
        c.handle = int(handle) if handle else c.handle
        for number, text in specs:
            items = [text] if text.startswith("comment") else text.split(";")
            for item in filter(None, (i.strip() for i in items)):
                key, _, rest = item.partition(" ")
                self.chain_spec(t, c, key, [rest] if key == "comment" else rest.split(),
                                number)
        c.rules.extend(rules)
        return True

    def fast_set(self, t: TableDraft, kind: str, name: str, handle: str | None,
                 body: str) -> bool:
        line = self.s.line
        lines = body.split("\n")[:-1]
        start = next((i for i, raw in enumerate(lines)
                      if raw.lstrip().startswith("elements = {")), len(lines))
        block = "\n".join(lines[start:]).strip()
        if block and not block.endswith("}"):
            return False
        st = self.set(t, name, line, kind == "map", create=True)
        st.handle = int(handle) if handle else st.handle
        for number, raw in enumerate(lines[:start], line + 1):
            key, _, rest = raw.strip().partition(" ")
            self.set_spec(st, key, [rest] if key == "comment" else rest.split(), number)
        if block:
            st.chunks.append(("add", block[len("elements = {"):-1], line + 1 + start))
        return True

    def fast_command(self) -> bool:
        """One `add rule|element|chain` line as kube-proxy writes it."""
        s = self.s
        if not s.text.startswith("add ", s.pos):
            return False
        end = s.text.find("\n", s.pos)
        end = s.n if end < 0 else end
        m = FAST_COMMAND.match(s.text, s.pos, end)
        if m is None:
            return False
        verb, family, table, name, rest = m.groups()
        line = s.line
        t = self.table(family, table, line)
        if verb == "rule":
            rule = fast_rule(rest.strip(), line)
            if rule is None or rule[0].split(" ", 1)[0] in ("index", "position", "handle"):
                return False
            self.chain(t, name, line).rules.append(rule)
        elif verb == "element":
            inner = rest.strip()
            if not (inner.startswith("{") and inner.endswith("}")) or \
                    inner.count("{") != 1 or inner.count("}") != 1:
                return False
            self.set(t, name, line).chunks.append(("add", inner[1:-1], line))
        elif rest.strip():
            return False
        else:
            self.chain(t, name, line, create=True)
        s.pos, self.commands = end, True
        return True

    # -- commands -------------------------------------------------------------------------
    def add(self, verb: str, line: int) -> None:
        kind = self.s.word("table, chain, set, map, rule or element")
        if verb == "insert" and kind != "rule":
            raise self.s.fail(f'cannot insert "{kind}": only rules are inserted', line)
        if kind == "table":
            family, (name,) = self.ref(1, "table")
            self.new(verb, (family, name) in self.tables, f"table {family} {name}", line)
            t = self.table(family, name, line, create=True)
            if self.s.peek() == "{":
                self.s.token()
                self.table_body(t)
        elif kind == "chain":
            family, (tname, cname) = self.ref(2, "chain")
            t = self.table(family, tname, line)
            self.new(verb, cname in t.chains, f"chain {family} {tname} {cname}", line)
            c = self.chain(t, cname, line, create=True)
            if self.s.peek() == "{":
                self.s.token()
                self.chain_body(t, c)
        elif kind in ("set", "map"):
            family, (tname, sname) = self.ref(2, kind)
            t = self.table(family, tname, line)
            self.new(verb, sname in t.sets, f"{kind} {family} {tname} {sname}", line)
            st = self.set(t, sname, line, kind == "map", create=True)
            self.s.expect("{", f"{kind} {sname}")
            self.set_body(t, st)
        elif kind == "rule":
            self.add_rule(verb, line)
        elif kind == "element":
            self.element("add", line)
        else:
            raise self.s.fail(f'cannot {verb} "{kind}"')

    def new(self, verb: str, exists: bool, what: str, line: int) -> None:
        """`create` is `add` that fails when the object exists (so does nft)."""
        if verb == "create" and exists:
            raise self.s.fail(f"create {what}: it already exists", line)

    def add_rule(self, verb: str, line: int) -> None:
        family, (tname, cname) = self.ref(2, "rule")
        c = self.chain(self.table(family, tname, line), cname, line)
        index = None
        if self.s.peek() in ("index", "position", "handle"):
            where = self.s.token()
            if where != "index":
                raise self.s.fail(f"{verb} rule … {where}: rule handles of `nft -f` input are "
                                  "not known to svctrace", line)
            tok = self.s.word("an index")
            if not tok.isdigit() or int(tok) >= len(c.rules):
                raise self.s.fail(f'bad rule index "{tok}" for chain {cname}', line)
            index = int(tok)
        text, rline, handle = self.s.rule_text()
        if not text:
            raise self.s.fail(f"{verb} rule without a rule", line)
        rule = (text, rline, handle)
        if verb == "insert":
            c.rules.insert(index or 0, rule)
        elif index is not None:
            c.rules.insert(index + 1, rule)
        else:
            c.rules.append(rule)

    def element(self, op: str, line: int) -> None:
        family, (tname, sname) = self.ref(2, "set")
        st = self.set(self.table(family, tname, line), sname, line)
        self.s.expect("{", f"element {sname}")
        text, eline = self.s.block_text(f"the elements of {sname}")
        st.chunks.append((op, text, eline))

    def delete(self, verb: str, line: int) -> None:
        kind = self.s.word("table, chain, set, map, rule or element")
        missing_ok = verb == "destroy"
        if kind == "element":
            self.element("delete", line)
            return
        if kind == "rule":
            raise self.s.fail(f"{verb} rule: rule handles of `nft -f` input are not known "
                              "to svctrace", line)
        count = {"table": 1, "chain": 2, "set": 2, "map": 2}.get(kind)
        if count is None:
            raise self.s.fail(f'cannot {verb} "{kind}"')
        family, names = self.ref(count, kind)
        if kind == "table":
            if self.tables.pop((family, names[0]), None) is None and not missing_ok:
                raise self.s.fail(f"table {family} {names[0]} does not exist", line)
            return
        t = self.tables.get((family, names[0]))
        group: dict[str, object] = {} if t is None else \
            t.chains if kind == "chain" else t.sets  # type: ignore[assignment]
        if group.pop(names[1], None) is None and not missing_ok:
            raise self.s.fail(f"{kind} {family} {names[0]} {names[1]} does not exist", line)

    def flush(self, verb: str, line: int) -> None:
        kind = self.s.word("ruleset, table, chain, set or map")
        if kind == "ruleset":
            self.s.words()
            self.tables.clear()
            return
        count = {"table": 1, "chain": 2, "set": 2, "map": 2}.get(kind)
        if count is None:
            raise self.s.fail(f'cannot flush "{kind}"')
        family, names = self.ref(count, kind)
        t = self.table(family, names[0], line)
        if kind == "table":
            for c in t.chains.values():
                c.rules.clear()
        elif kind == "chain":
            self.chain(t, names[1], line).rules.clear()
        else:
            self.set(t, names[1], line).chunks.clear()

    def unsupported(self, verb: str, line: int) -> None:
        raise self.s.fail(f'"{verb}" is not supported in rules files: give the ruleset itself '
                          "(`nft list ruleset`)", line)

    # -- the model ------------------------------------------------------------------------
    def ruleset(self) -> NftRuleset:
        self.updated = _updated_sets(self.s.text)
        tables = tuple(self.build_table(t) for t in self.tables.values())
        return NftRuleset(tables, self.source, "nft-f" if self.commands else "nft-text")

    def build_table(self, t: TableDraft) -> NftTable:
        source = self.source
        chains = {}
        for c in t.chains.values():
            rules = tuple(NftRule(t.family, t.name, c.name, n, handle, line, text, source,
                                  parser=_read_rule)
                          for n, (text, line, handle) in enumerate(c.rules, 1))
            policy = c.policy or ("accept" if c.hook is not None else None)
            chains[c.name] = NftChain(c.name, t.family, t.name, c.type, c.hook, c.priority,
                                      policy, c.device, rules, c.comment, c.handle, c.line)
        sets = {}
        for st in t.sets.values():
            flags, size = _dynamic(st, self.updated)
            sets[st.name] = NftSet(st.name, t.family, t.name, st.type, st.map,
                                   flags - {"dynamic"}, None if st.chunks else (), st.timeout,
                                   size, st.comment, st.handle, st.line, "dynamic" in flags,
                                   st.typeof,
                                   _SetElements(st.chunks, source) if st.chunks else None)
        return NftTable(t.family, t.name, chains, sets, t.flags, t.comment, t.handle, t.line)


def fast_rule(text: str, line: int) -> tuple[str, int, int | None] | None:
    """(text, line, handle) of a one-line rule, None if it needs the token reader (a `;`,
    a `#` that is not `# handle N`, unbalanced braces or quotes)."""
    handle = None
    if "#" in text:
        m = RULE_HANDLE.search(text)
        if m is None:
            return None
        text, handle = text[:m.start()].rstrip(), int(m.group(1))
    if ";" in text or "#" in text or text.count("{") != text.count("}") or \
            text.count('"') % 2 or not text:
        return None
    return text, line, handle


def _updated_sets(text: str) -> set[str]:
    """Sets a rule of this file adds to from the packet path (`update @s { … }`)."""
    if "update @" not in text and "add @" not in text:
        return set()
    return set(SET_UPDATE.findall(text))


def _dynamic(st: SetDraft, updated: set[str]) -> tuple[frozenset[str], int | None]:
    """(flags, size) as the kernel holds them: nft makes a set that a rule in the same
    transaction updates `dynamic`, with the default size 65535 unless one was given."""
    if st.name not in updated:
        return st.flags, st.size
    return st.flags | {"dynamic"}, 65535 if st.size is None else st.size


def _read_rule(rule: NftRule) -> tuple[tuple[Statement, ...], str | None]:
    return parse_rule(rule.text, rule.family, rule.source, rule.line)


class _SetElements:
    """Reads a set's element blocks (`add`/`delete` in file order) when first asked."""

    def __init__(self, chunks: list[tuple[str, str, int]], source: str) -> None:
        self.chunks, self.source = list(chunks), source

    def keyed(self, st: NftSet) -> dict[str, NftElement | Callable[[], NftElement]] | None:
        """key text → a reader of that one element (NftSet.lookup), when every block only
        adds regular elements; None otherwise."""
        if any(op != "add" for op, _, _ in self.chunks):
            return None
        index: dict[str, NftElement | Callable[[], NftElement]] = {}
        for _, text, line in self.chunks:
            items = keyed_items(text, st.type)
            if items is None:
                return None
            for key, raw in items.items():
                index.setdefault(key, partial(self.one, st, raw, line))
        return index

    def one(self, st: NftSet, raw: str, line: int) -> NftElement:
        (element,) = parse_elements(raw, st.family, st.type, st.map, self.source, line)
        return element

    def __call__(self, st: NftSet) -> tuple[NftElement, ...]:
        def read(text: str, line: int) -> list[NftElement]:
            return parse_elements(text, st.family, st.type, st.map, self.source, line)
        if len(self.chunks) == 1 and self.chunks[0][0] == "add":
            return tuple(read(*self.chunks[0][1:]))
        found: dict[str, NftElement] = {}
        for op, text, line in self.chunks:
            for element in read(text, line):
                key = repr(element.key)
                if op == "add":
                    found.setdefault(key, element)
                elif found.pop(key, None) is None:
                    raise RuleSyntaxError(self.source, line, f"delete element: {st.name} has "
                                          f"no element {element.key!r}")
        return tuple(found.values())


_TABLE_ITEMS: dict[str, Callable[[_Reader, TableDraft, int], None]] = {
    "chain": _Reader.chain_item,
    "set": lambda r, t, line: r.set_item(t, line, "set"),
    "map": lambda r, t, line: r.set_item(t, line, "map"),
    "flags": _Reader.table_flags,
    "comment": _Reader.table_comment,
    "ct": lambda r, t, line: r.skip_object(t, line, "ct"),
    **{kind: (lambda k: lambda r, t, line: r.skip_object(t, line, k))(kind)
       for kind in OBJECT_BLOCKS},
}

_COMMANDS: dict[str, Callable[[_Reader, str, int], None]] = {
    "add": _Reader.add,
    "create": _Reader.add,
    "insert": _Reader.add,
    "delete": _Reader.delete,
    "destroy": _Reader.delete,
    "flush": _Reader.flush,
    **{verb: _Reader.unsupported for verb in ("define", "include", "replace", "list", "reset",
                                               "rename", "monitor", "describe", "export")},
}


def parse_nft_text(text: str, source: str) -> NftRuleset:
    """Parse `nft list ruleset` output or `nft -f` input (told apart by the commands)."""
    with paused_gc():
        reader = _Reader(text, source)
        reader.read()
        return reader.ruleset()
