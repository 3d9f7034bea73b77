"""Structure of the nft language, scanned: tokens of tables, chains and sets; rule texts and
element blocks taken whole (nft_lang reads them when first used); the drafts a reader fills.
Used by nft_text.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from svctrace.errors import RuleSyntaxError
from svctrace.rules.nft_symbols import BRIDGE_PRIORITIES, STD_PRIORITIES

SPACE = re.compile(r"[ \t\r]*")
COMMENT = re.compile(r"#[^\n]*")
HANDLE = re.compile(r"# handle (\d+)")
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[{};,\n]|[^\s{};,"#]+|"')
STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
RULE_CHUNK = re.compile(r'[^\n;"{}#]*')
BLOCK_CHUNK = re.compile(r'[^{}"]*')
SET_UPDATE = re.compile(r"(?:update|add) @([^\s{}]+)")
PRIORITY = re.compile(r"(-?\d+)|([a-z]+)(?:\s*([+-])\s*(\d+))?\Z")
# a block as `nft list` prints it: `chain NAME {` (maybe `# handle N`), lines, `}` alone
_BODY = r"(?: # handle (\d+))?[ \t]*\n((?:[ \t]*[^\s}][^\n]*\n)*?)[ \t]*\}[ \t]*(?:\n|\Z)"
CHAIN_BLOCK = re.compile(r"[ \t]*chain ([^\s{}\"]+) \{" + _BODY)
SET_BLOCK = re.compile(r"[ \t]*(set|map) ([^\s{}\"]+) \{" + _BODY)
RULE_HANDLE = re.compile(r" # handle (\d+)$")
FAST_COMMAND = re.compile(r"add (rule|element|chain) (ip|ip6|inet|arp|bridge|netdev) "
                          r"([^\s{};\"#]+) ([^\s{};\"#]+)(.*)")
BLANK_LINES = re.compile(r"(?:[ \t\r]*\n)*")
OBJECT_BLOCKS = frozenset({"counter", "quota", "limit", "flowtable", "secmark", "synproxy"})
CT_OBJECTS = frozenset({"helper", "timeout", "expectation"})
SET_FLAGS = frozenset({"constant", "interval", "timeout", "dynamic", "eval"})


@dataclass
class ChainDraft:
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
class SetDraft:
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
class TableDraft:
    family: str
    name: str
    line: int
    handle: int | None = None
    flags: frozenset[str] = frozenset()
    comment: str | None = None
    chains: dict[str, ChainDraft] = field(default_factory=dict)
    sets: dict[str, SetDraft] = field(default_factory=dict)


class Scanner:
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
        pos = match_end(SPACE, text, self.pos)
        if pos < self.n and text[pos] == "#":
            handle = HANDLE.match(text, pos)
            if handle:
                self.handle = int(handle.group(1))
            pos = match_end(COMMENT, text, pos)
        if pos >= self.n:
            self.pos = pos
            return ""
        m = TOKEN.match(text, pos)
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
            raise self.fail(f'expected "{want}" after {after}, got {shown(tok)}')

    def word(self, what: str) -> str:
        tok = self.token()
        if tok in ("", "\n", ";", "{", "}", ","):
            raise self.fail(f"expected {what}, got {shown(tok)}")
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

    def skip_blank_lines(self) -> None:
        """Skip the rest of this line if it is blank, and every blank line after it."""
        end = match_end(BLANK_LINES, self.text, self.pos)
        if end > self.pos:
            self.line += self.text.count("\n", self.pos, end)
            self.pos = end

    def next_item(self, closing: str, line: int) -> tuple[int, str] | None:
        """(line, first word) of a block's next item; None at the block's `}`."""
        if self.skip_separators() == "":
            raise self.fail(f'missing "}}" closing {closing}', line)
        line, word = self.line, self.token()
        return None if word == "}" else (line, word)

    def rule_text(self) -> tuple[str, int, int | None]:
        """The rest of a rule: up to a newline or `;` outside braces, or a `# comment`."""
        text, start, line = self.text, match_end(SPACE, self.text, self.pos), self.line
        pos, depth, handle, end = start, 0, None, -1
        while end < 0:
            pos = match_end(RULE_CHUNK, text, pos)
            c = text[pos] if pos < self.n else ""
            if c == '"':
                pos = self.past_string(pos, start, line, "rule: "
                                       f"{text[start:text.find(chr(10), pos)].strip()}")
            elif c == "{":
                depth, pos = depth + 1, pos + 1
            elif c == "}" and depth:
                depth, pos = depth - 1, pos + 1
            elif c == "#" and depth:
                pos = match_end(COMMENT, text, pos)
            elif c in ("\n", ";") and depth:
                pos += 1
            elif c == "" and depth:
                raise self.fail(f'missing "}}" in rule: {text[start:].splitlines()[0]}', line)
            else:                                  # newline, `;`, `}`, `#` or the end
                end = pos
                if c == "#":
                    found = HANDLE.match(text, pos)
                    handle = int(found.group(1)) if found else None
                    pos = match_end(COMMENT, text, pos)
        self.line += text.count("\n", start, pos)
        self.pos = pos
        return text[start:end].strip(), line, handle

    def past_string(self, pos: int, start: int, line: int, what: str) -> int:
        """Where the quoted string at `pos` ends; an error naming `what` if it does not."""
        m = STRING.match(self.text, pos)
        if m is None:
            raise self.fail(f"unterminated string in {what}",
                            line + self.text.count("\n", start, pos))
        return m.end()

    def block_text(self, what: str) -> tuple[str, int]:
        """The text between a `{` (already read) and its `}` (read)."""
        text, start, line = self.text, self.pos, self.line
        pos, depth = start, 0
        while True:
            pos = match_end(BLOCK_CHUNK, text, pos)
            c = text[pos] if pos < self.n else ""
            if c == '"':
                pos = self.past_string(pos, start, line, what)
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


def match_end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where `pattern` (which matches the empty string too) stops matching at `pos`."""
    m = pattern.match(text, pos)
    assert m is not None
    return m.end()


def shown(tok: str) -> str:
    return {"": "the end of the file", "\n": "the end of the line"}.get(tok, f'"{tok}"')


def resolve_priority(text: str, family: str, hook: str | None) -> int | None:
    """`-110`, `filter`, `dstnat - 10`, `srcnat + 5` → a number (None if not nft's)."""
    m = PRIORITY.match(text.strip())
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
