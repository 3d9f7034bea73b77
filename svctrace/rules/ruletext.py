"""Reading the few fields kube-proxy's mapping needs straight from iptables-save text.

Exact where the text is plain (iptables-save prints `-s/-d/-p` first, quotes every string that
holds a space, and escapes only inside quotes); any line that is not plain goes through the
full parser (`rule.matches`). tests/rules checks both agree on every rule of every real dump.
Also kube-proxy's comment formats (kube-proxy-semantics.md §1.4.11) → service port names.
"""

from __future__ import annotations

import re

from svctrace.model import values
from svctrace.model.ruleset import Chain, Rule

# --- reading rule text -------------------------------------------------------------------------

# option spelling in iptables-save output → the parser's Option.name
_VALUED = (
    (" -s ", "s"), (" -d ", "d"), (" -p ", "p"), (" -i ", "i"), (" -o ", "o"),
    (" --dport ", "dport"), (" --probability ", "probability"), (" --seconds ", "seconds"),
    (" --src-type ", "src-type"), (" --dst-type ", "dst-type"), (" --name ", "name"),
)
_TARGET_VALUED = ((" --to-destination ", "to-destination"),)
_FLAGS = ((" --rcheck ", "rcheck"), (" --set ", "set"))

Fields = dict[str, tuple[str, bool]]


def _fields(rule: Rule) -> Fields:
    """The options this module reads, as {name: (value, negated)}; flags such as --rcheck → "".

    Read from the text where that is exact (see `_split`), else from the parsed rule.
    """
    split = _split(rule.text)
    if split is None:
        return _parsed_fields(rule)
    head, tail = split
    out: Fields = {}
    for flag, key in _VALUED:
        i = head.find(flag)
        if i >= 0:
            out[key] = (head[i + len(flag):].split(" ", 1)[0], head[i - 2:i] == " !")
    head += " "
    for flag, key in _FLAGS:
        if flag in head:
            out[key] = ("", False)
    comment = _comment(rule.text, head)
    if comment is not None:
        out["comment"] = (comment, False)
    target, _, options = tail.partition(" ")
    out["j"] = (target, False)
    for flag, key in _TARGET_VALUED:
        i = (" " + options).find(flag)
        if i >= 0:
            out[key] = ((" " + options)[i + len(flag):].split(" ", 1)[0], False)
    return out


def _comment(text: str, head: str) -> str | None:
    i = head.find(" --comment ")
    if i < 0:
        return None
    if head.startswith('""', i + 11):        # the first quoted string after --comment
        before = head[:i + 11].count('""')
        return text.split('"')[2 * before + 1]
    return head[i + 11:].split(" ", 1)[0]


def _parsed_fields(rule: Rule) -> Fields:
    out: Fields = {}
    for match in rule.matches:
        for opt in match.options:
            out[opt.name] = (opt.value, opt.negated)
    target = rule.target
    if target is not None:
        out["g" if target.goto else "j"] = (target.name, False)
        for opt in target.options:
            out[opt.name] = (opt.value, opt.negated)
    return out


def _split(text: str) -> tuple[str, str] | None:
    """(text before " -j " with quoted strings emptied, target and its options) when that is exact.

    iptables-save prints the target last, separates tokens by one space, quotes every string with
    a space in it, and leaves a string unquoted only if it is [A-Za-z0-9_-]. So outside quotes a
    token that starts with "-" is an option, and the part after the last " -j " is the target
    unless it holds a quote. Escapes, gotos, rules without a target, and unquoted strings that
    look like options ("--comment -d") go the slow way, through the parser.
    """
    i = text.rfind(" -j ")
    if i < 0 or "\\" in text:
        return None
    tail = text[i + 4:]
    if '"' in tail or " -g " in text:
        return None
    head = _unquoted_head(text[:i])
    if " --comment -" in head or " --log-prefix -" in head:
        return None
    return head, tail


def _target(rule: Rule) -> str | None:
    """The jump target of a rule (None when it has none)."""
    split = _split(rule.text)
    if split is not None:
        return split[1].split(" ", 1)[0]
    target = rule.target
    return None if target is None else target.name


def _raw_jump(text: str) -> tuple[str | None, str]:
    """(target, unquoted text before it) of a line ending in `-j CHAIN` with no target options;
    (None, "") when the line needs the parser."""
    i = text.rfind(" -j ")
    target = text[i + 4:]
    if i < 0 or " " in target or '"' in target or "\\" in text or " -g " in text:
        return None, ""
    if '"' not in text:
        return target, text[:i]
    head = _unquoted_head(text[:i])
    return (None, "") if " --comment -" in head else (target, head)


def _unquoted_head(head: str) -> str:
    return '""'.join(head.split('"')[0::2]) if '"' in head else head


def _option_in(text: str, flag: str) -> str | None:
    """The value after `flag` (" --name ") in unquoted text, or None."""
    i = text.find(flag)
    return None if i < 0 else text[i + len(flag):].split(" ", 1)[0]


# the service match, comment, chain and target: what is left is the condition of the jump
_NOT_CONDITION = re.compile(
    r'^(?:\[\d+:\d+\] )?-A \S+|(?<! !) (?:-d|-p|--dport) \S+| -m (?:comment|tcp|udp|sctp)(?= |$)'
    r'| --comment (?:""|\S+)| -c \d+ \d+(?= |$)')


def _condition(rule: Rule) -> str:
    """The rule without its service match, comment and target: what decides the jump."""
    split = _split(rule.text)
    if split is None:
        return rule.text
    return _NOT_CONDITION.sub("", split[0]).strip()


def _condition_of(chain: Chain, index: int) -> str:
    split = _split(chain.raw[index][1])
    if split is None:
        return _condition(chain.rules[index])
    return _NOT_CONDITION.sub("", split[0]).strip()


_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_PLAIN_V4 = _OCTET + r"(?:\." + _OCTET + "){3}"
# the common, plainly valid forms, checked without building address objects (a big node has
# 50,000 endpoints)
_PLAIN_PREFIX = re.compile(_PLAIN_V4 + r"(?:/(?:3[0-2]|[12]?\d))?")
_PLAIN_ENDPOINT = re.compile(_PLAIN_V4 + r":([1-9]\d{0,4})")


def valid_prefix(text: str) -> bool:
    """Whether `-s`/`-d` TEXT is an address or prefix iptables-restore accepts."""
    if _PLAIN_PREFIX.fullmatch(text):
        return True
    try:
        values.parse_prefix(text)
    except ValueError:
        return False
    return True


def valid_endpoint(text: str) -> bool:
    """Whether a --to-destination is one endpoint: an address, and a port other than 0."""
    m = _PLAIN_ENDPOINT.fullmatch(text)
    if m is not None and int(m.group(1)) <= 65535:
        return True
    try:
        to = values.parse_nat_to(text)
    except ValueError:
        return False
    return to.address is not None and not to.is_range and to.port != 0


def _ip(value: str) -> str:
    return value[:-3] if value.endswith("/32") else value[:-4] if value.endswith("/128") else value


def _port(fields: Fields) -> int | None:
    value = fields.get("dport", ("", False))[0]
    return int(value) if value.isdigit() else None


# --- comments → service port names (§1.4.11) ---------------------------------------------------

_SUFFIXES = (
    (" cluster IP", "clusterIP"), (" external IP", "externalIP"),
    (" loadbalancer IP", "loadBalancerIP"), (" has no endpoints", "no endpoints"),
    (" has no local endpoints", "no local endpoints"),
    (" health check node port", "health check"),
)
_WRAPPED = (
    ("masquerade traffic for ", " external destinations"),
    ("pod traffic for ", " external destinations"),
    ("masquerade LOCAL traffic for ", " external destinations"),
    ("route LOCAL traffic for ", " external destinations"),
    ("other traffic to ", " will be dropped by KUBE-PROXY-FIREWALL"),
)


def spn_from_comment(comment: str) -> tuple[str | None, str]:
    """(service port name, kind) from a kube-proxy comment; (None, "") for fixed comments."""
    for suffix, kind in _SUFFIXES:
        if comment.endswith(suffix):
            return comment[: -len(suffix)], kind
    if " traffic not accepted by KUBE-FW-" in comment:
        return comment.split(" traffic not accepted by ", 1)[0], "firewall"
    for head, tail in _WRAPPED:
        if comment.startswith(head) and comment.endswith(tail):
            return comment[len(head): -len(tail)], "external"
    if " -> " in comment:
        return comment.split(" -> ", 1)[0], "endpoint"
    if "/" in comment and " " not in comment:
        return comment, "plain"
    return None, ""
