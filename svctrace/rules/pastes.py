"""What people paste instead of `iptables-save` output, recognised so each gets a useful answer.

* `iptables [-t TABLE] -S [-v]`: the same rules as iptables-save, without the table header and
  with `-P`/`-N` for the chain declarations. Complete for one table: read as that table (the
  table is told by its built-in chains, `-P` lines), with a note saying so.
* grep output (`iptables-save | grep KUBE-SVC-…`): rules without their table, and most of the
  chains missing. Not readable as a ruleset: say what it is and how to get a whole dump.
* `iptables -L` / `-nvL` listings: a different format altogether; same answer.
* A rule wrapped with a shell `\\` continuation: the error names the line that ends in `\\`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from svctrace.errors import RuleSyntaxError

FULL_DUMP = "save the whole ruleset with: sudo iptables-save > rules.txt (then --rules rules.txt)"

_POLICY = re.compile(r"^-P (\S+) (\S+)", re.M)
_COUNTERS_AT_END = re.compile(r" -c \d+ \d+$", re.M)
# built-in chains → the table `iptables -S` listed (the smallest table holding them all)
_TABLES_BY_BUILTINS = (
    ("raw", {"PREROUTING", "OUTPUT"}),
    ("nat", {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}),
    ("filter", {"INPUT", "FORWARD", "OUTPUT"}),
    ("mangle", {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}),
)
_NAT_TARGETS = (" -j DNAT", " -j SNAT", " -j MASQUERADE", " -j REDIRECT", " -j KUBE-MARK-MASQ")


@dataclass(frozen=True)
class SpecListing:
    """`iptables -S` output for one table: its text with `-c N N` counters removed."""

    table: str
    text: str
    note: str


def check_continuations(text: str, source: str) -> None:
    """A line ending in `\\` is a shell continuation (a pasted command), never iptables-save."""
    i = text.find("\\\n")
    if i >= 0:
        line = text.count("\n", 0, i) + 1
        raise RuleSyntaxError(source, line, 'line ends in "\\" (a shell line continuation, as in '
                              "a pasted command): iptables-save never wraps a rule; join the "
                              "lines, or paste the dump itself", FULL_DUMP)


def recognise_headerless(text: str, source: str) -> SpecListing | None:
    """For text with no `*table` line: the `-S` listing to read, or a RuleSyntaxError saying
    what the paste is. None when the text has table headers (plain iptables-save)."""
    lines = [(n, line.strip()) for n, line in enumerate(text.split("\n"), 1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines or any(line.startswith("*") for _, line in lines):
        return None
    first_no, first = lines[0]
    if first.startswith("Chain ") or first.startswith(("target ", "pkts ")):
        raise RuleSyntaxError(source, first_no, "this is an `iptables -L` listing, not rules: "
                              "svctrace reads iptables-save output", FULL_DUMP)
    policies = dict(_POLICY.findall(text))
    if policies and all(line.startswith(("-P ", "-N ", "-A ")) for _, line in lines):
        table = _table_of(set(policies), text)
        return SpecListing(table, _COUNTERS_AT_END.sub("", text),
                           f"{source}: this is `iptables -t {table} -S` output (no table header): "
                           f"read as the {table} table only; for every table, {FULL_DUMP}")
    if all(line.startswith(("-A ", ":", "-N ")) or _grep_prefixed(line) for _, line in lines):
        raise RuleSyntaxError(source, first_no, "this looks like grep output (rules without "
                              "their table, and most chains missing): svctrace needs the whole "
                              "dump to follow a packet", FULL_DUMP)
    return None


def _grep_prefixed(line: str) -> bool:
    """`grep -n` / `grep -H` output: `12:-A KUBE-…` or `file:-A …`."""
    head, sep, rest = line.partition(":")
    return bool(sep) and rest.startswith(("-A ", ":")) and " " not in head


def _table_of(builtins: set[str], text: str) -> str:
    if builtins == {"PREROUTING", "OUTPUT"} and any(t in text for t in _NAT_TARGETS):
        return "nat"
    for table, chains in _TABLES_BY_BUILTINS:
        if builtins <= chains:
            return table
    return "filter"
