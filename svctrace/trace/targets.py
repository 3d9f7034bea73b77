"""One small function per target: what it does to a branch, and whether traversal goes on.

A target returns a verdict: CONTINUE (non-terminating: MARK, LOG …), RETURN, or a terminal
"ACCEPT" / "DROP" / "REJECT" (ACCEPT in the nat table ends that table's traversal only, as
DNAT/SNAT/MASQUERADE do). Semantics follow iptables-extensions(8).
"""

from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_address

from svctrace.model import values
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


def t_dnat(state: BranchState, target: Target) -> str | Unknown:
    opt = target.get("to-destination") or target.get("to")
    if opt is None or not opt.values:
        return Unknown("DNAT without --to-destination")
    to = values.parse_nat_to(opt.values[0])
    if to.is_range:
        return Unknown(f"DNAT to a range ({opt.values[0]}): the kernel picks one per connection")
    pkt = state.packet
    new_port = to.port if to.port is not None else pkt.dport
    address = to.address if to.address is not None else pkt.dst
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


_MARK_OPS = {
    "set-xmark": lambda cur, v, mask: (cur & ~mask & 0xFFFFFFFF) ^ v,
    "set-mark": lambda cur, v, mask: (cur & ~mask & 0xFFFFFFFF) | v,
    "or-mark": lambda cur, v, mask: cur | v,
    "and-mark": lambda cur, v, mask: cur & v,
    "xor-mark": lambda cur, v, mask: cur ^ v,
}


def _set_mark(current: int, target: Target) -> int | Unknown:
    for opt in target.options:
        op = _MARK_OPS.get(opt.name)
        if op is None or len(opt.values) != 1:
            return Unknown(f'option "--{opt.name}"')
        v, mask = values.parse_mark(opt.values[0], f"--{opt.name}")
        current = op(current, v, mask)
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
