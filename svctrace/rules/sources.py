"""Where rules come from: a file, stdin, (later) the local node or a node through the API.

Every failure to read becomes a RulesError naming the path (exit status 5).
"""

from __future__ import annotations

from svctrace.errors import RulesError, UsageError
from svctrace.inputs import DEFAULT_MAX_INPUT, RULES_INPUT, decode_input, read_input
from svctrace.model.nftables import ModeSplit, NftRuleset
from svctrace.model.ruleset import Ruleset


def read_rules_text(path: str, max_bytes: int = DEFAULT_MAX_INPUT) -> tuple[str, str]:
    """(text, source name) of iptables-save output at `path`; '-' reads stdin. Reading stops
    with a RulesError past `max_bytes` (--max-input-size)."""
    data, source = read_input(path, max_bytes, RULES_INPUT)
    if not data.strip():
        raise RulesError(f"{source}: empty: no rules to read",
                         "save a node's rules with: sudo iptables-save > rules.txt")
    return decode_input(data, source, RULES_INPUT), source


def load_ruleset(path: str | None, max_bytes: int = DEFAULT_MAX_INPUT,
                 partial: bool = False) -> Ruleset | NftRuleset | ModeSplit:
    """Parse the rules at `path` in whatever form they are (rules/detect.py), reading at most
    `max_bytes`. None means no source was given. `partial`: read a truncated iptables-save
    dump as far as it goes (see parse_iptables_save)."""
    if path is None:
        raise UsageError("no rules to read",
                         "pass --rules FILE (iptables-save or nft list ruleset output, '-' for "
                         "stdin), or run on a node as root")
    from svctrace.rules.detect import load_rules

    return load_rules(path, max_bytes, partial)
