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

import re
from collections.abc import Callable
from dataclasses import dataclass, field

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
from svctrace.rules.nft_lang import parse_duration, parse_elements, parse_rule, unquote
from svctrace.rules.nft_symbols import BRIDGE_PRIORITIES, STD_PRIORITIES, TYPEOF_TYPES

_SPACE = re.compile(r"[ \t\r]*")
_COMMENT = re.compile(r"#[^\n]*")
_HANDLE = re.compile(r"# handle (\d+)")
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[{};,\n]|[^\s{};,"#]+|"')
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_RULE_CHUNK = re.compile(r'[^\n;"{}#]*')
_BLOCK_CHUNK = re.compile(r'[^{}"]*')
_SET_UPDATE = re.compile(r"(?:update|add) @([^\s{}]+)")
_PRIORITY = re.compile(r"(-?\d+)|([a-z]+)(?:\s*([+-])\s*(\d+))?\Z")
OBJECT_BLOCKS = frozenset({"counter", "quota", "limit", "flowtable", "secmark", "synproxy"})
CT_OBJECTS = frozenset({"helper", "timeout", "expectation"})
SET_FLAGS = frozenset({"constant", "interval", "timeout", "dynamic", "eval"})


@dataclass
class _ChainDraft:
    name: str
    line: int
    handle: int | None = None
    type: str | None = None
    hook: str | None = None
    priority: int | None = None
    policy: str | None = None
    device: str | None = None
    comment: str | None = None
    rules: list[tuple[str, int, int | None]] = field(default_factory=list)  # text, line, handle


@dataclass
class _SetDraft:
    name: str
    is_map: bool
    line: int
    handle: int | None = None
    type: tuple[str, ...] = ()
    map: tuple[str, ...] | None = None
    typeof: str | None = None
    flags: frozenset[str] = frozenset()
    timeout: int | None = None
    size: int | None = None
    comment: str | None = None
    chunks: list[tuple[str, str, int]] = field(default_factory=list)  # op, text, line


@dataclass
class _TableDraft:
    family: str
    name: str
    line: int
    handle: int | None = None
    flags: frozenset[str] = frozenset()
    comment: str | None = None
    chains: dict[str, _ChainDraft] = field(default_factory=dict)
    sets: dict[str, _SetDraft] = field(default_factory=dict)


class _Scanner:
    """Tokens of the structure; rule texts and element blocks taken whole."""

    def __init__(self, text: str, source: str) -> None:
        self.text, self.source, self.n = text, source, len(text)
        self.pos, self.line = 0, 1
        self.handle: int | None = None

    def fail(self, message: str, line: int | None = None,
             hint: str | None = None) -> RuleSyntaxError:
        return RuleSyntaxError(self.source, line or self.line, message, hint)

    def token(self) -> str:
        """The next token: a word, a quoted string, `{ } ; ,`, "\\n", or "" at the end."""
        text = self.text
        pos = _end(_SPACE, text, self.pos)
        if pos < self.n and text[pos] == "#":
            handle = _HANDLE.match(text, pos)
            if handle:
                self.handle = int(handle.group(1))
            pos = _end(_COMMENT, text, pos)
        if pos >= self.n:
            self.pos = pos
            return ""
        m = _TOKEN.match(text, pos)
        assert m is not None
        tok = m.group()
        if tok == '"':
            raise self.fail(f"unterminated string: {text[pos:text.find(chr(10), pos)]}")
        self.pos = m.end()
        if tok == "\n":
            self.line += 1
        return tok

    def peek(self) -> str:
        state = self.pos, self.line, self.handle
        tok = self.token()
        self.pos, self.line, self.handle = state
        return tok

    def expect(self, want: str, after: str) -> None:
        tok = self.token()
        if tok != want:
            raise self.fail(f'expected "{want}" after {after}, got {_shown(tok)}')

    def word(self, what: str) -> str:
        tok = self.token()
        if tok in ("", "\n", ";", "{", "}", ","):
            raise self.fail(f"expected {what}, got {_shown(tok)}")
        return tok

    def words(self) -> list[str]:
        """Tokens up to the end of the item (newline, `;`, or a `}` left in place)."""
        out: list[str] = []
        while True:
            if self.peek() == "}":
                return out
            tok = self.token()
            if tok in ("", "\n", ";"):
                return out
            out.append(tok)

    def skip_separators(self) -> str:
        """Skip newlines and `;`; return the next token without taking it."""
        while True:
            tok = self.peek()
            if tok not in ("\n", ";"):
                return tok
            self.token()

    def next_item(self, closing: str, line: int) -> tuple[int, str] | None:
        """(line, first word) of a block's next item; None at the block's `}`."""
        if self.skip_separators() == "":
            raise self.fail(f'missing "}}" closing {closing}', line)
        line, word = self.line, self.token()
        return None if word == "}" else (line, word)

    def rule_text(self) -> tuple[str, int, int | None]:
        """The rest of a rule: up to a newline or `;` outside braces, or a `# comment`."""
        text, start, line = self.text, _end(_SPACE, self.text, self.pos), self.line
        pos, depth, handle, end = start, 0, None, -1
        while end < 0:
            pos = _end(_RULE_CHUNK, text, pos)
            c = text[pos] if pos < self.n else ""
            if c == '"':
                m = _STRING.match(text, pos)
                if m is None:
                    raise self.fail("unterminated string in rule: "
                                    f"{text[start:text.find(chr(10), pos)].strip()}",
                                    line + text.count("\n", start, pos))
                pos = m.end()
            elif c == "{":
                depth, pos = depth + 1, pos + 1
            elif c == "}" and depth:
                depth, pos = depth - 1, pos + 1
            elif c == "#" and depth:
                pos = _end(_COMMENT, text, pos)
            elif c in ("\n", ";") and depth:
                pos += 1
            elif c == "" and depth:
                raise self.fail(f'missing "}}" in rule: {text[start:].splitlines()[0]}', line)
            else:                                  # newline, `;`, `}`, `#` or the end
                end = pos
                if c == "#":
                    found = _HANDLE.match(text, pos)
                    handle = int(found.group(1)) if found else None
                    pos = _end(_COMMENT, text, pos)
        self.line += text.count("\n", start, pos)
        self.pos = pos
        return text[start:end].strip(), line, handle

    def block_text(self, what: str) -> tuple[str, int]:
        """The text between a `{` (already read) and its `}` (read)."""
        text, start, line = self.text, self.pos, self.line
        pos, depth = start, 0
        while True:
            pos = _end(_BLOCK_CHUNK, text, pos)
            c = text[pos] if pos < self.n else ""
            if c == '"':
                m = _STRING.match(text, pos)
                if m is None:
                    raise self.fail(f"unterminated string in {what}",
                                    line + text.count("\n", start, pos))
                pos = m.end()
            elif c == "{":
                depth, pos = depth + 1, pos + 1
            elif c == "}" and depth:
                depth, pos = depth - 1, pos + 1
            elif c == "}":
                break
            else:
                raise self.fail(f'missing "}}" closing {what}', line)
        self.line += text.count("\n", start, pos)
        self.pos = pos + 1
        return text[start:pos], line


def _end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where `pattern` (which matches the empty string too) stops matching at `pos`."""
    m = pattern.match(text, pos)
    assert m is not None
    return m.end()


def _shown(tok: str) -> str:
    return {"": "the end of the file", "\n": "the end of the line"}.get(tok, f'"{tok}"')


def resolve_priority(text: str, family: str, hook: str | None) -> int | None:
    """`-110`, `filter`, `dstnat - 10`, `srcnat + 5` → a number (None if not nft's)."""
    m = _PRIORITY.match(text.strip())
    if m is None:
        return None
    if m.group(1) is not None:
        return int(m.group(1))
    names = BRIDGE_PRIORITIES if family == "bridge" else STD_PRIORITIES
    base = names.get(m.group(2))
    if base is None:
        return None
    offset = int(m.group(4) or 0)
    return base - offset if m.group(3) == "-" else base + offset


class _Reader:
    def __init__(self, text: str, source: str) -> None:
        self.s = _Scanner(text, source)
        self.source = source
        self.tables: dict[tuple[str, str], _TableDraft] = {}
        self.commands = False
        self.updated: set[str] = set()

    # -- top level ------------------------------------------------------------------------
    def read(self) -> None:
        s = self.s
        while True:
            if s.skip_separators() == "":
                return
            line, tok = s.line, s.token()
            if tok == "table":
                self.table_block(line)
            elif tok in _COMMANDS:
                self.commands = True
                _COMMANDS[tok](self, tok, line)
            else:
                raise s.fail(f"unknown command {_shown(tok)}", line,
                             "expected `nft list ruleset` output or `nft -f` input")

    def ref(self, count: int, what: str) -> tuple[str, list[str]]:
        """`[family] name…`: the family (default ip) and `count` names."""
        first = self.s.word(f"a {what} name")
        family = "ip"
        if first in FAMILIES and self.s.peek() not in ("{", "\n", ";", ""):
            family, first = first, self.s.word(f"a {what} name")
        return family, [first] + [self.s.word(f"a {what} name") for _ in range(count - 1)]

    def table(self, family: str, name: str, line: int, create: bool = False) -> _TableDraft:
        t = self.tables.get((family, name))
        if t is None:
            if not create:
                raise self.s.fail(f"table {family} {name} does not exist", line)
            t = self.tables[(family, name)] = _TableDraft(family, name, line)
        return t

    def chain(self, t: _TableDraft, name: str, line: int, create: bool = False) -> _ChainDraft:
        c = t.chains.get(name)
        if c is None:
            if not create:
                raise self.s.fail(f"chain {t.family} {t.name} {name} does not exist", line)
            c = t.chains[name] = _ChainDraft(name, line)
        return c

    def set(self, t: _TableDraft, name: str, line: int, is_map: bool | None = None,
            create: bool = False) -> _SetDraft:
        st = t.sets.get(name)
        if st is None:
            if not create or is_map is None:
                raise self.s.fail(f"set {t.family} {t.name} {name} does not exist", line)
            st = t.sets[name] = _SetDraft(name, is_map, line)
        return st

    def trailing_handle(self) -> int | None:
        """`# handle N` right after a `{` (nft -a)."""
        s = self.s
        m = _HANDLE.match(s.text, _end(_SPACE, s.text, s.pos))
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

    def table_body(self, t: _TableDraft) -> None:
        s = self.s
        while (item := s.next_item(f"table {t.family} {t.name}", t.line)) is not None:
            line, word = item
            handler = _TABLE_ITEMS.get(word)
            if handler is None:
                raise s.fail(f"unexpected {_shown(word)} in table {t.family} {t.name}")
            handler(self, t, line)

    def chain_item(self, t: _TableDraft, line: int) -> None:
        c = self.chain(t, self.s.word("a chain name"), line, create=True)
        c.handle = self.open_block(f"chain {c.name}")
        self.chain_body(t, c)

    def chain_body(self, t: _TableDraft, c: _ChainDraft) -> None:
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

    def chain_spec(self, t: _TableDraft, c: _ChainDraft, key: str, words: list[str],
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

    def base_chain(self, t: _TableDraft, c: _ChainDraft, words: list[str], line: int) -> None:
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

    def set_item(self, t: _TableDraft, line: int, kind: str) -> None:
        st = self.set(t, self.s.word(f"a {kind} name"), line, kind == "map", create=True)
        st.handle = self.open_block(f"{kind} {st.name}")
        self.set_body(t, st)

    def set_body(self, t: _TableDraft, st: _SetDraft) -> None:
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

    def set_spec(self, st: _SetDraft, key: str, words: list[str], line: int) -> None:
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
            flags = frozenset(w for w in words if w != ",")
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

    def skip_object(self, t: _TableDraft, line: int, kind: str) -> None:
        s = self.s
        if kind == "ct":
            sub = s.word("helper, timeout or expectation")
            if sub not in CT_OBJECTS:
                raise s.fail(f'unexpected "ct {sub}" in table {t.family} {t.name}')
        s.word(f"a {kind} name")
        if s.peek() == "{":
            s.token()
            s.block_text(kind)

    def table_flags(self, t: _TableDraft, line: int) -> None:
        t.flags = frozenset(w for w in self.s.words() if w != ",")

    def table_comment(self, t: _TableDraft, line: int) -> None:
        words = self.s.words()
        t.comment = unquote(words[0]) if words else None

    # -- commands -------------------------------------------------------------------------
    def add(self, verb: str, line: int) -> None:
        kind = self.s.word("table, chain, set, map, rule or element")
        if kind == "table":
            family, (name,) = self.ref(1, "table")
            t = self.table(family, name, line, create=True)
            if self.s.peek() == "{":
                self.s.token()
                self.table_body(t)
        elif kind == "chain":
            family, (tname, cname) = self.ref(2, "chain")
            t = self.table(family, tname, line)
            c = self.chain(t, cname, line, create=True)
            if self.s.peek() == "{":
                self.s.token()
                self.chain_body(t, c)
        elif kind in ("set", "map"):
            family, (tname, sname) = self.ref(2, kind)
            t = self.table(family, tname, line)
            st = self.set(t, sname, line, kind == "map", create=True)
            self.s.expect("{", f"{kind} {sname}")
            self.set_body(t, st)
        elif kind == "rule":
            self.add_rule(verb, line)
        elif kind == "element":
            self.element("add", line)
        else:
            raise self.s.fail(f'cannot {verb} "{kind}"')

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

    def build_table(self, t: _TableDraft) -> NftTable:
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


def _updated_sets(text: str) -> set[str]:
    """Sets a rule of this file adds to from the packet path (`update @s { … }`)."""
    if "update @" not in text and "add @" not in text:
        return set()
    return set(_SET_UPDATE.findall(text))


def _dynamic(st: _SetDraft, updated: set[str]) -> tuple[frozenset[str], int | None]:
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


_TABLE_ITEMS: dict[str, Callable[[_Reader, _TableDraft, int], None]] = {
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
    reader = _Reader(text, source)
    reader.read()
    return reader.ruleset()
