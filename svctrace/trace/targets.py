"""One small function per target: what it does to a branch, and whether traversal goes on.

A target returns a verdict: CONTINUE (non-terminating: MARK, LOG …), RETURN, or a terminal
"ACCEPT" / "DROP" / "REJECT" (ACCEPT in the nat table ends that table's traversal only, as
DNAT/SNAT/MASQUERADE do). Semantics follow iptables-extensions(8).
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address

from svctrace.model.packet import format_endpoint
from svctrace.model.ruleset import Target
from svctrace.trace.state import BranchState, Unknown

CONTINUE = "CONTINUE"
RETURN = "RETURN"
TargetFn = Callable[[BranchState, Target], "str | Unknown"]


def t_accept(state: BranchState, target: Target) -> str:
    return "ACCEPT"


def t_drop(state: BranchState, target: Target) -> str:
    return "DROP"


def t_reject(state: BranchState, target: Target) -> str:
    opt = target.get("reject-with")
    state.reject_with = opt.values[0] if opt else "icmp-port-unreachable"
    return "REJECT"


def t_return(state: BranchState, target: Target) -> str:
    return RETURN


def t_noop(state: BranchState, target: Target) -> str:
    """Targets that only log, count or rewrite fields no routing decision depends on."""
    return CONTINUE


def _split_host_port(text: str) -> tuple[str, str | None]:
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, None


def t_dnat(state: BranchState, target: Target) -> str | Unknown:
    opt = target.get("to-destination") or target.get("to")
    if opt is None:
        return Unknown("DNAT without --to-destination")
    host, port = _split_host_port(opt.values[0])
    if "-" in host or (port and "-" in port):
        return Unknown(f"DNAT to a range ({opt.values[0]}): the kernel picks one per connection")
    pkt = state.packet
    new_port = int(port) if port else pkt.dport
    address = ip_address(host) if host else pkt.dst
    state.packet = pkt.with_destination(address, new_port)
    state.dnat = format_endpoint(address, new_port)
    return "ACCEPT"


def t_redirect(state: BranchState, target: Target) -> str | Unknown:
    opt = target.get("to-ports")
    pkt = state.packet
    port = int(opt.values[0].split("-")[0]) if opt else pkt.dport
    if state.hook is not None and state.hook.local_out:
        address = ip_address("127.0.0.1" if pkt.family == 4 else "::1")
    elif state.node.local:
        address = next((n.network_address for n in state.node.local if n.version == pkt.family),
                       pkt.dst)
    else:
        return Unknown("REDIRECT: the address of the input interface is unknown")
    state.packet = pkt.with_destination(address, port)
    state.dnat = format_endpoint(address, port)
    return "ACCEPT"


def t_masquerade(state: BranchState, target: Target) -> str:
    state.snat = True
    return "ACCEPT"


def t_snat(state: BranchState, target: Target) -> str:
    state.snat = True
    opt = target.get("to-source")
    state.snat_to = opt.values[0] if opt else None
    return "ACCEPT"


def _set_mark(current: int, target: Target) -> int | Unknown:
    for opt in target.options:
        value, _, mask_text = opt.values[0].partition("/") if opt.values else ("0", "", "")
        v = int(value, 0)
        mask = int(mask_text, 0) if mask_text else 0xFFFFFFFF
        if opt.name == "set-xmark":
            current = (current & ~mask & 0xFFFFFFFF) ^ v
        elif opt.name == "set-mark":
            current = (current & ~mask & 0xFFFFFFFF) | v
        elif opt.name == "or-mark":
            current |= v
        elif opt.name == "and-mark":
            current &= v
        elif opt.name == "xor-mark":
            current ^= v
        else:
            return Unknown(f'option "--{opt.name}"')
    return current


def t_mark(state: BranchState, target: Target) -> str | Unknown:
    mark = _set_mark(state.mark, target)
    if isinstance(mark, Unknown):
        return Unknown(f"MARK {mark.what}")
    state.mark = mark
    return CONTINUE


def t_connmark(state: BranchState, target: Target) -> str | Unknown:
    names = {o.name for o in target.options}
    if names & {"save-mark", "restore-mark"}:
        if "save-mark" in names:
            state.ctmark = state.mark
        else:
            state.mark = state.ctmark
        return CONTINUE
    mark = _set_mark(state.ctmark, target)
    if isinstance(mark, Unknown):
        return Unknown(f"CONNMARK {mark.what}")
    state.ctmark = mark
    return CONTINUE


def t_ct(state: BranchState, target: Target) -> str:
    if target.name == "NOTRACK" or target.get("notrack") is not None:
        state.notrack = True
    return CONTINUE


TARGETS: dict[str, TargetFn] = {
    "ACCEPT": t_accept,
    "DROP": t_drop,
    "REJECT": t_reject,
    "RETURN": t_return,
    "DNAT": t_dnat,
    "SNAT": t_snat,
    "MASQUERADE": t_masquerade,
    "REDIRECT": t_redirect,
    "MARK": t_mark,
    "CONNMARK": t_connmark,
    "CT": t_ct,
    "NOTRACK": t_ct,
    **{name: t_noop for name in ("LOG", "NFLOG", "ULOG", "TRACE", "AUDIT", "CHECKSUM", "TOS",
                                 "DSCP", "TTL", "HL", "TCPMSS", "CLASSIFY", "NFACCT", "SECMARK",
                                 "CONNSECMARK", "IDLETIMER", "LED")},
}
