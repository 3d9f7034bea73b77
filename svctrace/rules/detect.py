"""Which rules a file holds, told from its content, and the model for them.

Forms (`rules_form(text)`; also `.format` of what `parse_rules` returns):

    "iptables-save"   iptables-save / ip6tables-save output (`*nat` … `COMMIT`)
    "nft-text"        `nft list ruleset` output (also `nft list table …`, `-a`, `-s`, `-n`)
    "nft-json"        `nft -j list ruleset` output
    "nft-f"           `nft -f` input: `add table …` commands (what kube-proxy writes)
    "iptables-save+nft-text" (or +nft-f, +nft-json)
                      both, one after the other, e.g. `{ iptables-save; nft list ruleset; }`

`load_rules(path)` / `parse_rules(text, source)` return one of

    Ruleset     (model/ruleset.py)    iptables rules
    NftRuleset  (model/nftables.py)   nft rules
    ModeSplit   (model/nftables.py)   both: each still sees every packet

A caller asks "which mode, which format" with `rules_mode(rules)` — "iptables", "nftables",
or "split" when kube-proxy's rules of both modes are present (the RULES-MODE-SPLIT case) —
and `rules_format(rules)`, one of the forms above. A form nobody recognises is a RulesError
(exit 5) saying what was expected.
"""

from __future__ import annotations

import re

from svctrace.errors import RulesError
from svctrace.inputs import DEFAULT_MAX_INPUT
from svctrace.model.nftables import ModeSplit, NftRuleset
from svctrace.model.ruleset import Ruleset

AnyRules = Ruleset | NftRuleset | ModeSplit
NFT_COMMANDS = frozenset({"add", "create", "insert", "replace", "delete", "destroy", "flush",
                          "define", "include"})
_NFT_JSON = re.compile(r'^\{\s*"nftables"', re.M)
_IPTABLES_TABLE = re.compile(r"^\*[a-z]+[ \t]*$", re.M)
_NFT_TABLE = re.compile(r"^[ \t]*(?:table|add[ \t]+table|create[ \t]+table)[ \t]", re.M)
_FORMS_HINT = ("expected iptables-save output, `nft list ruleset`, `nft -j list ruleset` "
               "or an `nft -f` file")


# what pasted iptables output starts with (`iptables -S`, `-L`, grep -n/-H of a dump)
_IPTABLES_PASTE = re.compile(r"(?:-[APNX] |Chain |target |pkts |[^\s:]*:-A )")


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines()
                 if line.strip() and not line.strip().startswith("#")), "")


def _nft_table(text: str) -> re.Match[str] | None:
    """The first nft table line in `text`. A multi-line regex over a 20 MB iptables-save dump
    costs 0.2 s; the word "table" is rare there, so look only at the lines that hold it."""
    start = text.find("table")
    while start >= 0:
        line = text.rfind("\n", 0, start) + 1
        found = _NFT_TABLE.match(text, line)
        if found is not None:
            return found
        end = text.find("\n", start)
        if end < 0:
            return None
        start = text.find("table", end)
    return None


def _first_word(text: str) -> str:
    """The first word that is not a comment (without splitting a 20 MB text into lines)."""
    pos = 0
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        stripped = text[pos:end].strip()
        if stripped and not stripped.startswith("#"):
            return stripped.split(None, 1)[0]
        pos = end + 1
    return ""


def _nft_form(word: str) -> str | None:
    if word[:1] in ("{", "["):
        return "nft-json"
    if word == "table":
        return "nft-text"
    if word in NFT_COMMANDS:
        return "nft-f"
    return None


def rules_form(text: str) -> str:
    """The form of `text` (see the module docstring); RulesError if it is none of them."""
    word = _first_word(text)
    if word.startswith("*") or word.startswith(":"):
        if '"nftables"' in text and _NFT_JSON.search(text):
            return "iptables-save+nft-json"
        nft = _nft_table(text)
        if nft is None:
            return "iptables-save"
        rest = text[nft.start():]
        return f"iptables-save+{_nft_form(_first_word(rest)) or 'nft-text'}"
    form = _nft_form(word)
    if form is None and _IPTABLES_PASTE.match(_first_line(text)):
        return "iptables-save"     # -S, -L or grep pastes: iptables' reader says what they are
    if form is None:
        raise RulesError(f"not a rules file: it starts with {word[:40]!r}", _FORMS_HINT)
    if form != "nft-json" and _IPTABLES_TABLE.search(text):
        return f"iptables-save+{form}"
    return form


def split_text(text: str) -> tuple[str, str]:
    """(iptables-save part, nft part) of a file holding both, each keeping its line numbers:
    the other part's lines are left blank. iptables-save blocks run from `*table` to
    `COMMIT`."""
    ipt: list[str] = []
    nft: list[str] = []
    inside = False
    for line in text.split("\n"):
        if not inside and _IPTABLES_TABLE.match(line):
            inside = True
        mine, other = (ipt, nft) if inside or line.startswith("# ") else (nft, ipt)
        mine.append(line)
        other.append("")
        if inside and line.strip() == "COMMIT":
            inside = False
    return "\n".join(ipt), "\n".join(nft)


def parse_rules(text: str, source: str, partial: bool = False) -> AnyRules:
    """The model of `text`, whatever its form (`partial`: see parse_iptables_save)."""
    form = rules_form(text)
    if "+" in form:
        ipt_text, nft_text = split_text(text)
        return ModeSplit(_parse_nft(nft_text, source, form.split("+")[1]),
                         _parse_iptables(ipt_text, source, partial), source)
    if form == "iptables-save":
        return _parse_iptables(text, source, partial)
    return _parse_nft(text, source, form)


def _parse_iptables(text: str, source: str, partial: bool = False) -> Ruleset:
    from svctrace.rules.iptables_save import parse_iptables_save
    return parse_iptables_save(text, source, partial)


def _parse_nft(text: str, source: str, form: str) -> NftRuleset:
    if form == "nft-json":
        from svctrace.rules.nft_json import parse_nft_json
        return parse_nft_json(text, source)
    from svctrace.rules.nft_text import parse_nft_text
    return parse_nft_text(text, source)


def load_rules(path: str, max_bytes: int = DEFAULT_MAX_INPUT, partial: bool = False) -> AnyRules:
    """Read and parse the rules at `path` ('-' for stdin) in whatever form they are, reading
    at most `max_bytes` (--max-input-size)."""
    from svctrace.rules.sources import read_rules_text

    text, source = read_rules_text(path, max_bytes)
    return parse_rules(text, source, partial)


def has_nft_kube_proxy(rules: NftRuleset) -> bool:
    """kube-proxy's nftables tables (`table ip kube-proxy`, `table ip6 kube-proxy`)."""
    return any(t.name == "kube-proxy" and t.family in ("ip", "ip6") for t in rules.tables)


def has_iptables_kube_proxy(rules: Ruleset | NftRuleset) -> bool:
    """kube-proxy's iptables chains: KUBE-SERVICES in an iptables ruleset, or in a table
    iptables-nft made, seen through `nft list ruleset`."""
    if isinstance(rules, Ruleset):
        return rules.chain("nat", "KUBE-SERVICES") is not None
    return any("KUBE-SERVICES" in t.chains for t in rules.tables)


def rules_mode(rules: AnyRules) -> str:
    """"iptables", "nftables", or "split" (kube-proxy's rules of both modes are present)."""
    if isinstance(rules, Ruleset):
        return "iptables"
    nft = rules.nft if isinstance(rules, ModeSplit) else rules
    ipt = has_iptables_kube_proxy(rules.iptables) if isinstance(rules, ModeSplit) else False
    ipt = ipt or has_iptables_kube_proxy(nft)
    if has_nft_kube_proxy(nft):
        return "split" if ipt else "nftables"
    return "iptables" if ipt or isinstance(rules, ModeSplit) else "nftables"


def rules_format(rules: AnyRules) -> str:
    if isinstance(rules, Ruleset):
        return "iptables-save"
    return rules.format
