"""The body of `svctrace trace`, imported only when the command runs."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

from svctrace.cli.env import Environment
from svctrace.cli.values import port_number
from svctrace.errors import UsageError
from svctrace.model.nftables import ModeSplit, NftRuleset
from svctrace.model.packet import Packet
from svctrace.model.ruleset import Ruleset
from svctrace.model.trace import NodeContext, Trace

AnyRules = Ruleset | NftRuleset | ModeSplit


def parse_destination(dst: str, dport: int | None) -> tuple[str, int]:
    """`10.0.0.1:80`, `[fd00::1]:80`, or an address plus --dport."""
    host, port = dst, None
    if dst.startswith("["):
        host, _, rest = dst[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif dst.count(":") == 1:
        host, _, port = dst.partition(":")
    try:
        ip_address(host)
    except ValueError:
        raise UsageError(f"--dst {dst!r}: not an IP address") from None
    if port is None and dport is None:
        raise UsageError(f"--dst {dst} has no port", "give --dst IP:PORT or --dport PORT")
    if port is None:
        return host, int(dport or 0)
    try:
        number = port_number(port)
    except ValueError as err:
        raise UsageError(f"--dst {dst!r}: {err}") from None
    if dport is not None and number != dport:
        raise UsageError(f"--dst {dst} and --dport {dport} disagree")
    return host, number


def default_source(ruleset: AnyRules, pod_cidr: str | None, family: int) -> tuple[str, str]:
    """(address, why): 'a packet from some pod on this node' — inside the node's own pod subnet
    where the rules show it (iptables mode), else inside the cluster pod CIDR."""
    from svctrace.rules import kubeproxy_nft
    from svctrace.rules.nodefacts import pod_source

    if pod_cidr is not None:
        try:
            ip_network(pod_cidr, strict=False)
        except ValueError:
            raise UsageError(f"--pod-cidr {pod_cidr!r}: not a CIDR") from None
    nft = ruleset.nft if isinstance(ruleset, ModeSplit) else \
        ruleset if isinstance(ruleset, NftRuleset) else None
    found = kubeproxy_nft.pod_source(nft, family, pod_cidr) if nft is not None else None
    ipt = ruleset.iptables if isinstance(ruleset, ModeSplit) else \
        ruleset if isinstance(ruleset, Ruleset) else None
    if found is None and ipt is not None:
        found = pod_source(ipt, family, pod_cidr)
    if found is None and pod_cidr is not None:
        raise UsageError(f"pod CIDR {pod_cidr} is not IPv{family}; give --src")
    if found is None:
        raise UsageError("no --src given and no pod CIDR found in the rules",
                         "give --src IP or --pod-cidr CIDR")
    return found.address, f"an address in {found.network}, {found.why}"


def trace_rules(packet: Packet, ruleset: AnyRules, node: NodeContext) -> Trace:
    """Trace `packet` through rules of either mode, or of both (each sees every packet)."""
    if isinstance(ruleset, Ruleset):
        from svctrace.trace.engine import trace_packet
        return trace_packet(packet, ruleset, node)
    from svctrace.trace.nft_engine import trace_nft
    if isinstance(ruleset, ModeSplit):
        return trace_nft(packet, ruleset.nft, node, ruleset.iptables)
    return trace_nft(packet, ruleset, node)


def service_port_of(trace: Trace) -> list[str | None]:
    """Per outcome, the service port it was handled for: the first nft chain named after one
    (§2.4), else what the iptables chains say."""
    from svctrace.rules.kubeproxy import service_port_of as iptables_service_port
    from svctrace.rules.kubeproxy_nft import parse_chain_name

    out = []
    for o in trace.outcomes:
        names = (parse_chain_name(s.chain) for s in o.path if " " in s.table)
        spn = next((n.spn for n in names if n is not None), None)
        out.append(spn or iptables_service_port(o.path))
    return out


def build_packet(worker: object, src: str, host: str, port: int, proto: str, sport: int,
                 in_interface: str | None) -> tuple[Packet, str]:
    """Our Packet, and the scapy packet built for the same addresses (its summary)."""
    from svctrace.model.packet import make_packet
    from svctrace.packets import ScapyWorker

    try:
        packet = make_packet(src, host, proto, sport, port, in_interface)
    except ValueError as err:
        raise UsageError(str(err)) from None
    assert isinstance(worker, ScapyWorker)
    (built,) = worker.build([(src, host, proto, sport, port)])
    if "error" in built:
        raise UsageError(f"cannot build the packet: {built['error']}")
    fields = built["packet"]
    assert (fields["src"], fields["dst"], fields["dport"]) == \
        (str(packet.src), str(packet.dst), packet.dport), "scapy and svctrace disagree"
    return packet, str(built["summary"])


def run_trace(env: Environment, *, dst: str, rules: str | None, src: str | None,
              dport: int | None, sport: int, proto: str, in_interface: str | None,
              local_ips: list[str], pod_cidr: str | None, affinity_hit: list[str],
              output: str, max_bytes: int, partial: bool = False) -> None:
    from svctrace.model.trace import node_context
    from svctrace.packets import ScapyWorker
    from svctrace.render.trace import trace_dict
    from svctrace.rules.detect import rules_format, rules_mode
    from svctrace.rules.sources import load_ruleset

    host, port = parse_destination(dst, dport)
    worker = ScapyWorker()        # imports scapy on the other core while we parse
    try:
        ruleset = load_ruleset(rules, max_bytes, partial)
        from svctrace.rules.kubeproxy import layout_notes

        if isinstance(ruleset, Ruleset):
            for warning in (*ruleset.warnings, *layout_notes(ruleset)):
                env.note(warning)
        if src is None:
            src, why = default_source(ruleset, pod_cidr, ip_address(host).version)
            env.note(f"no --src given: tracing from {src}, {why}")
        packet, summary = build_packet(worker, src, host, port, proto, sport, in_interface)
    finally:
        worker.close()
    try:
        node = node_context(local_ips, None, frozenset(affinity_hit))
    except ValueError as err:
        raise UsageError(f"--local-ip: {err}") from None
    trace = trace_rules(packet, ruleset, node)
    if isinstance(ruleset, Ruleset):
        for note in node_notes(ruleset, trace, local_ips):
            env.note(note)
    services = service_port_of(trace)
    mode = (rules_mode(ruleset), rules_format(ruleset))
    if output in ("json", "yaml"):
        doc = trace_dict(trace, ruleset.source, summary, services, mode)
        env.write_json(doc) if output == "json" else env.write_yaml(doc)
        return
    _print_text(env, trace, summary, output == "wide", services, mode, ruleset.source)


def node_notes(ruleset: Ruleset, trace: object, local_ips: list[str]) -> list[str]:
    """What the rules say about the node that the trace did not use: a NodePort reached on an
    address not known to be local (not DNATed for that reason alone), and the node addresses
    the rules suggest when --local-ip was not given."""
    from svctrace.model.trace import Trace
    from svctrace.rules.kubeproxy import infer_local_hints, nodeport_owner

    assert isinstance(trace, Trace)
    pkt = trace.packet
    notes = []
    undnated = all(o.destination is None and o.verdict == "ACCEPT" for o in trace.outcomes)
    # only where the node's addresses could change the answer (a 10k-Service node: 0.1 s)
    hints = [] if local_ips or not undnated else infer_local_hints(ruleset)
    owner = nodeport_owner(ruleset, pkt.protocol, pkt.dport) if undnated else None
    if owner is not None and not trace.node.is_local(pkt.dst):
        notes.append(f"port {pkt.dport}/{pkt.protocol} is the NodePort of {owner}, but "
                     f"{pkt.dst} is not a local address of the node as given, so the packet was "
                     f"not DNATed; if {pkt.dst} is this node's address, give --local-ip "
                     f"{pkt.dst}")
    if hints:
        listed = ", ".join(f"{h.address} ({h.reason}, {h.rule.location})"
                           for h in dict((h.address, h) for h in hints).values())
        notes.append(f"no --local-ip given: the rules suggest these addresses are the node's: "
                     f"{listed}; give --local-ip to trace as that node")
    return notes


def _print_text(env: Environment, trace: Trace, summary: str, wide: bool,
                services: list[str | None], mode: tuple[str, str], source: str) -> None:
    from rich.text import Text

    from svctrace.render.trace import render_outcomes, rules_header

    console = env.console()
    console.print(Text(rules_header(source, mode), style="dim"))
    console.print(Text.assemble(("packet ", "bold"), summary))
    local = ", ".join(str(n) for n in trace.node.local) or "none given"
    console.print(Text(f"node local addresses: {local} (plus 127.0.0.0/8, ::1)", style="dim"))
    console.print(render_outcomes(trace, wide, services))
