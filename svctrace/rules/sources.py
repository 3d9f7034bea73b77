"""Where rules come from: a file, stdin, (later) the local node or a node through the API.

Every failure to read becomes a RulesError naming the path (exit status 5).
"""

from __future__ import annotations

import sys

from svctrace.errors import RulesError, UsageError
from svctrace.model.nftables import ModeSplit, NftRuleset
from svctrace.model.ruleset import Ruleset


def read_rules_text(path: str) -> tuple[str, str]:
    """(text, source name) of iptables-save output at `path`; '-' reads stdin."""
    if path == "-":
        data = sys.stdin.buffer.read()
        source = "<stdin>"
    else:
        source = path
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except IsADirectoryError:
            raise RulesError(f"{path}: is a directory, not iptables-save output") from None
        except FileNotFoundError:
            raise RulesError(f"{path}: no such file") from None
        except OSError as err:
            raise RulesError(f"{path}: cannot read: {err.strerror}") from None
    if not data.strip():
        raise RulesError(f"{source}: empty: no rules to read",
                         "save a node's rules with: sudo iptables-save > rules.txt")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise RulesError(f"{source}:{line}: not text (invalid UTF-8 at byte {err.start}): this "
                         "is not iptables-save output") from None
    return text, source


def load_ruleset(path: str | None) -> Ruleset | NftRuleset | ModeSplit:
    """Parse the rules at `path` in whatever form they are (rules/detect.py). None means no
    source was given."""
    if path is None:
        raise UsageError("no rules to read",
                         "pass --rules FILE (iptables-save or nft list ruleset output, '-' for "
                         "stdin), or run on a node as root")
    from svctrace.rules.detect import load_rules

    return load_rules(path)
