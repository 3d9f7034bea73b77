"""One small function per match module, as the kernel evaluates it for a NEW connection's packet.

Each returns True/False, a Fraction (matches with that probability: statistic), or Unknown
(the engine cannot tell; the trace records an assumption and proceeds as "did not match").
Semantics follow iptables-extensions(8) and the kernel's xt_* modules.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from ipaddress import ip_address

from svctrace.model import values
from svctrace.model.ruleset import Match, Option
from svctrace.trace.state import BranchState, Unknown

Result = bool | Fraction | Unknown
MatchFn = Callable[[BranchState, Match], Result]

PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58}
_NEW_TCP_FLAGS = {"SYN"}                      # the first packet of a connection is a bare SYN


def _neg(option: Option, value: bool) -> bool:
    return value != option.negated


def _every_option(match: Match, check: Callable[[Option], bool | Unknown]) -> Result:
    """A match holds when each option does (each possibly negated with `!`); an option the
    check cannot evaluate makes the whole match Unknown."""
    for opt in match.options:
        ok = check(opt)
        if isinstance(ok, Unknown):
            return ok
        if not _neg(opt, ok):
            return False
    return True


def _unknown_option(match: Match, opt: Option) -> Unknown:
    return Unknown(f'match "{match.module}" option "--{opt.name}"')


def _in_prefix(address: object, spec: str) -> bool:
    # iptables-save prints -s/-d as a prefix; restore input may use a dotted mask
    return address in values.parse_prefix(spec)


def _protocol_matches(state: BranchState, spec: str) -> bool:
    spec = spec.lower()
    if spec in ("all", "0"):
        return True
    if spec.isdigit():
        return PROTOCOL_NUMBERS.get(state.packet.protocol) == int(spec)
    return spec == state.packet.protocol


def _interface_matches(actual: str | None, pattern: str) -> bool:
    if actual is None:
        actual = ""
    if pattern.endswith("+"):
        return actual.startswith(pattern[:-1])
    return actual == pattern


def match_basic(state: BranchState, match: Match) -> Result:
    pkt = state.packet
    for opt in match.options:
        name = opt.name
        if name == "s":
            ok = _in_prefix(pkt.src, opt.values[0])
        elif name == "d":
            ok = _in_prefix(pkt.dst, opt.values[0])
        elif name == "p":
            ok = _protocol_matches(state, opt.values[0])
        elif name in ("i", "o"):
            iface = _interface(state, name)
            if isinstance(iface, Unknown):
                return iface
            ok = _interface_matches(iface, opt.values[0])
        elif name == "f":
            ok = False                         # a connection's first packet is no fragment
        else:
            return Unknown(f'criterion "-{name}"')
        if not _neg(opt, ok):
            return False
    return True


def _interface(state: BranchState, which: str) -> str | None | Unknown:
    hook = state.hook
    pkt = state.packet
    if which == "i":
        if hook is not None and hook.local_out:
            # no input device on the way out; delivered back to the node, it arrives on lo
            return "lo" if hook.name == "INPUT" else None
        if pkt.in_interface is None:
            return Unknown("the input interface (-i) is unknown; give --in-interface")
        return pkt.in_interface
    if hook is not None and hook.name in ("PREROUTING", "INPUT"):
        return None
    if pkt.out_interface is None:
        return Unknown("the output interface (-o) is unknown: svctrace does not follow the "
                       "routing table")
    return pkt.out_interface


def _port_in(port: int, spec: str, protocol: str) -> bool:
    lo, hi = values.parse_port_range(spec, protocol)
    return lo <= port <= hi


def match_l4(state: BranchState, match: Match) -> Result:
    pkt = state.packet
    if match.module != pkt.protocol:
        return False

    def check(opt: Option) -> bool | Unknown:
        if opt.name in ("dport", "destination-port"):
            return _port_in(pkt.dport, opt.values[0], pkt.protocol)
        if opt.name in ("sport", "source-port"):
            return _port_in(pkt.sport, opt.values[0], pkt.protocol)
        if opt.name == "syn" and pkt.protocol == "tcp":
            return True
        if opt.name == "tcp-flags" and len(opt.values) == 2:
            return _tcp_flags(opt.values[0], opt.values[1])
        return _unknown_option(match, opt)

    return _every_option(match, check)


def _tcp_flags(mask: str, comp: str) -> bool:
    def flags(text: str) -> set[str]:
        names = set(text.upper().split(","))
        if "ALL" in names:
            return {"SYN", "ACK", "FIN", "RST", "URG", "PSH"}
        return names - {"NONE"}
    return (flags(mask) & _NEW_TCP_FLAGS) == flags(comp)


def match_multiport(state: BranchState, match: Match) -> Result:
    pkt = state.packet

    def check(opt: Option) -> bool | Unknown:
        ports = {"dports": (pkt.dport,), "destination-ports": (pkt.dport,),
                 "sports": (pkt.sport,), "source-ports": (pkt.sport,),
                 "ports": (pkt.sport, pkt.dport)}.get(opt.name)
        if ports is None:
            return _unknown_option(match, opt)
        ranges = values.parse_port_list(opt.values[0], pkt.protocol)
        return any(lo <= p <= hi for p in ports for lo, hi in ranges)

    return _every_option(match, check)


def match_comment(state: BranchState, match: Match) -> Result:
    return True


def _address_type(state: BranchState, address: object, kind: str) -> bool | Unknown:
    addr = ip_address(str(address))
    local = state.node.is_local(addr)
    if kind == "LOCAL":
        return local
    if kind == "UNICAST":
        return not local and not addr.is_multicast and str(addr) != "255.255.255.255"
    if kind == "MULTICAST":
        return addr.is_multicast
    if kind == "BROADCAST":
        return str(addr) == "255.255.255.255"
    return Unknown(f'address type "{kind}"')


def match_addrtype(state: BranchState, match: Match) -> Result:
    def check(opt: Option) -> bool | Unknown:
        if opt.name not in ("src-type", "dst-type"):
            return _unknown_option(match, opt)
        address = state.packet.src if opt.name == "src-type" else state.packet.dst
        results = [_address_type(state, address, k) for k in opt.values[0].split(",")]
        unknown = next((r for r in results if isinstance(r, Unknown)), None)
        return unknown if unknown is not None else any(results)

    return _every_option(match, check)


def match_mark(state: BranchState, match: Match) -> Result:
    return _mark_option(match, state.mark)


def match_connmark(state: BranchState, match: Match) -> Result:
    return _mark_option(match, state.ctmark)


def _mark_option(match: Match, mark: int) -> Result:
    def check(opt: Option) -> bool | Unknown:
        if opt.name != "mark":
            return _unknown_option(match, opt)
        value, mask = values.parse_mark(opt.values[0])
        return (mark & mask) == value

    return _every_option(match, check)


def _ct_states(state: BranchState) -> set[str]:
    if state.notrack:
        return {"UNTRACKED"}
    states = {"NEW"}
    if state.dnat is not None:
        states.add("DNAT")
    if state.snat:
        states.add("SNAT")
    return states


def match_conntrack(state: BranchState, match: Match) -> Result:
    def check(opt: Option) -> bool | Unknown:
        if opt.name in ("ctstate", "state"):
            return bool(_ct_states(state) & set(opt.values[0].split(",")))
        if opt.name == "ctstatus":
            status = {"DNAT"} if state.dnat else set()
            if state.snat:
                status.add("SNAT")
            return bool(status & set(opt.values[0].split(",")))
        if opt.name == "ctproto":
            return _protocol_matches(state, opt.values[0])
        return _unknown_option(match, opt)

    return _every_option(match, check)


def match_statistic(state: BranchState, match: Match) -> Result:
    mode = match.get("mode")
    prob = match.get("probability")
    if mode is None or mode.values[0] != "random" or prob is None:
        return Unknown('match "statistic" in a mode other than random')
    # The kernel keeps a 31-bit threshold (xt_statistic): use its exact value, not the text's.
    p = values.parse_probability(prob.values[0])
    return (1 - p) if prob.negated else p


def match_recent(state: BranchState, match: Match) -> Result:
    name_opt = match.get("name")
    name = name_opt.values[0] if name_opt and name_opt.values else "DEFAULT"
    for opt in match.options:
        if opt.name == "set":
            state.recent.add(name)
            return not opt.negated
        if opt.name in ("rcheck", "update", "remove"):
            # A fresh trace is a new client with no entry, unless the user says it has one.
            hit = name in state.recent or name in state.node.affinity_hit
            return hit != opt.negated
    return Unknown('match "recent" without --set/--rcheck/--update/--remove')


def match_iprange(state: BranchState, match: Match) -> Result:
    def check(opt: Option) -> bool | Unknown:
        if opt.name not in ("src-range", "dst-range"):
            return _unknown_option(match, opt)
        lo, hi = values.parse_ip_range(opt.values[0])
        addr = state.packet.src if opt.name == "src-range" else state.packet.dst
        return addr.version == lo.version and \
            bool(lo <= addr <= hi)  # type: ignore[operator]

    return _every_option(match, check)


def match_always(state: BranchState, match: Match) -> Result:
    """Modules that never change the outcome for a packet: counters and first-packet limits."""
    return True


def match_pkttype(state: BranchState, match: Match) -> Result:
    opt = match.get("pkt-type")
    if opt is None:
        return Unknown('match "pkttype" without --pkt-type')
    kind = "multicast" if state.packet.dst.is_multicast else "unicast"
    return _neg(opt, opt.values[0] == kind)


# Interfaces that are Linux bridges on Kubernetes nodes (kubenet, CNI bridge plugin, Docker,
# weave, kube-router, libvirt, LXC): a packet whose input interface is one of them came in
# through a bridge port.
_BRIDGES = ("cbr0", "cni0", "docker0", "weave", "kube-bridge", "lxcbr0", "br-", "virbr")


def match_physdev(state: BranchState, match: Match) -> Result:
    """xt_physdev: the bridge port a packet came in or goes out through. A traced packet comes
    from outside through the interface --in-interface names (no interface: not a bridge port),
    or from the node itself (no input port at all); svctrace traces routed packets, never
    bridged ones."""
    hook = state.hook
    local_out = hook is not None and hook.local_out
    iface = state.packet.in_interface
    from_bridge = not local_out and iface is not None and iface.startswith(_BRIDGES)

    def check(opt: Option) -> bool | Unknown:
        if opt.name == "physdev-is-in":
            return from_bridge
        if opt.name == "physdev-is-bridged":
            return False
        if opt.name == "physdev-is-out":
            return False
        if opt.name == "physdev-in" and not from_bridge:
            return False
        if opt.name == "physdev-out":
            return False
        return _unknown_option(match, opt)

    return _every_option(match, check)


MATCHES: dict[str, MatchFn] = {
    "physdev": match_physdev,
    "": match_basic,
    "tcp": match_l4,
    "udp": match_l4,
    "sctp": match_l4,
    "multiport": match_multiport,
    "comment": match_comment,
    "addrtype": match_addrtype,
    "mark": match_mark,
    "connmark": match_connmark,
    "conntrack": match_conntrack,
    "state": match_conntrack,
    "statistic": match_statistic,
    "recent": match_recent,
    "iprange": match_iprange,
    "nfacct": match_always,          # counts packets; always matches
    "limit": match_always,           # a new flow's first packet is within the burst
    "pkttype": match_pkttype,
}
