"""The node half of `explain`: the Service's programmed chains, drift against the API, a traced
packet for every entry point, and the verdict naming the first hop that fails.

Model in, plain data out: the CLI decides where rules and node addresses come from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network
from shlex import quote

from svctrace.diagnose.cluster import ClusterExplanation, PodRow
from svctrace.diagnose.joins import slice_serves, usable_endpoints
from svctrace.model.cluster import Service, ServicePort, service_port_name
from svctrace.model.findings import Finding, Severity
from svctrace.model.kubeproxy import ServiceChains
from svctrace.model.nftables import NftRuleset
from svctrace.model.packet import Packet, make_packet
from svctrace.model.ruleset import Ruleset
from svctrace.model.trace import NodeContext, Trace
from svctrace.rules import kubeproxy_nft
from svctrace.rules.kubeproxy import chain_hash, map_service_ports
from svctrace.rules.nodefacts import pod_source
from svctrace.trace.engine import trace_packet
from svctrace.trace.nft_engine import trace_nft

EXTERNAL_CLIENT = "203.0.113.10"       # TEST-NET-3 (RFC 5737): an outside client; never sent to
EXTERNAL_CLIENT6 = "2001:db8::10"      # the IPv6 documentation prefix (RFC 3849), likewise


@dataclass(frozen=True)
class NodeInput:
    """The rules of one node and what we know (or assumed) about that node.

    `ruleset` is what kube-proxy's mode wrote (iptables-save, or nft); with an nft ruleset,
    `iptables` holds the node's iptables rules when those are read separately (a node with
    both: every packet meets both, so they are evaluated together)."""

    ruleset: Ruleset | NftRuleset
    node: NodeContext
    how: tuple[str, ...] = ()            # how the rules, node name and addresses were found
    findings: tuple[Finding, ...] = ()   # found while reading (e.g. RULES-BACKEND-SPLIT)
    source: str | None = None            # packet source chosen by --src/--from, if any
    entries: tuple[str, ...] = ()        # --entry: only these entry kinds
    iptables: Ruleset | None = None

    @property
    def kube_ruleset(self) -> Ruleset | NftRuleset:
        """Where kube-proxy's chains are read: the nft rules when they hold kube-proxy's
        tables (or there is nothing else), else the iptables rules beside them."""
        if isinstance(self.ruleset, NftRuleset) and self.iptables is not None and \
                not kubeproxy_nft.kube_proxy_tables(self.ruleset):
            return self.iptables
        return self.ruleset

    @property
    def mode(self) -> str:
        return "nftables" if isinstance(self.kube_ruleset, NftRuleset) else "iptables"

    @property
    def format(self) -> str:
        ruleset = self.ruleset
        form = ruleset.format if isinstance(ruleset, NftRuleset) else "iptables-save"
        return f"iptables-save+{form}" if self.iptables is not None else form


@dataclass(frozen=True)
class Drift:
    kind: str                            # missing-endpoint | stale-endpoint | service-missing |
    port: str                            # stale-reject; the service port name
    detail: str


@dataclass(frozen=True)
class EntryTrace:
    """One synthetic packet to one entry point of the Service, and where it went."""

    entry: str                           # clusterIP | nodePort | loadBalancer | externalIP
    port: str                            # service port name
    client: str                          # pod | node | external | allowed | disallowed
    source: str
    destination: str                     # ip:port dialled
    trace: Trace
    expect_reach: bool = True            # False: the Service is meant to refuse this client


@dataclass(frozen=True)
class NodeExplanation:
    chains: tuple[ServiceChains, ...]
    drift: tuple[Drift, ...]
    traces: tuple[EntryTrace, ...]
    findings: tuple[Finding, ...]
    how: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    mode: str = "iptables"               # kube-proxy's mode, as read from the rules
    format: str = "iptables-save"        # the form they were read in (rules/detect.py)


def explain_node(ex: ClusterExplanation, node_input: NodeInput) -> NodeExplanation:
    """Join the Service's API objects to the rules of one node."""
    svc = ex.service
    chains = service_chains(svc, node_input.kube_ruleset)
    drift = tuple(find_drift(ex, chains, node_input.node.name))
    notes: list[str] = []
    traces = tuple(entry_traces(svc, node_input, notes))
    findings = list(node_input.findings)
    findings += mode_split_findings(node_input)
    findings += drift_findings(svc, drift, node_input.mode)
    findings += trace_findings(ex, traces)
    return NodeExplanation(chains, drift, traces, tuple(findings), node_input.how, tuple(notes),
                           node_input.mode, node_input.format)


def service_chains(svc: Service, ruleset: Ruleset | NftRuleset) -> tuple[ServiceChains, ...]:
    """This Service's chains, found by kube-proxy's hash names (comments are not needed)."""
    if isinstance(ruleset, NftRuleset):
        ports = {(_spn(svc, p), p.protocol.lower()) for p in svc.ports}
        family, lb_ips = _service_family(svc), {i.ip for i in svc.lb_ingress if i.ip}
        return tuple(kubeproxy_nft.with_load_balancer_ips(c, lb_ips)
                     for c in kubeproxy_nft.map_services(ruleset, only={s for s, _ in ports})
                     if (c.spn, c.protocol) in ports and c.family == family)
    wanted = {chain_hash(_spn(svc, p), p.protocol.lower()): _spn(svc, p) for p in svc.ports}
    addresses = [*svc.cluster_ips, *svc.external_ips, *(i.ip for i in svc.lb_ingress if i.ip)]
    return tuple(c for c in map_service_ports(ruleset, wanted, addresses) if c.hash in wanted)


def _spn(svc: Service, port: ServicePort) -> str:
    return service_port_name(svc.namespace, svc.name, port.name)


def expected_endpoints(ex: ClusterExplanation, port: ServicePort,
                       node: str | None) -> set[str]:
    """The endpoints kube-proxy should have programmed for this port on `node`."""
    view = ex.view
    eps = usable_endpoints(view, port, node if _local_only(view.service) else None)
    out = set()
    for s in view.slices:
        sp = slice_serves(s, port)
        if sp is None or sp.port is None:
            continue
        for ep in s.endpoints:
            if ep in eps:
                out.update(_endpoint_text(a, sp.port) for a in ep.addresses[:1])
    return out


def _local_only(svc: Service) -> bool:
    """iTP=Local decides which endpoints a node programs (kube-proxy-semantics.md §0.1)."""
    return svc.internal_traffic_policy == "Local" and not _externally_accessible(svc)


def _externally_accessible(svc: Service) -> bool:
    return bool(svc.external_ips or any(p.node_port for p in svc.ports) or
                any(i.ip for i in svc.lb_ingress))


def _endpoint_text(address: str, port: int) -> str:
    # slice addresses are text (an FQDN slice holds names), so not model.packet.format_endpoint
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def find_drift(ex: ClusterExplanation, chains: tuple[ServiceChains, ...],
               node: str | None) -> list[Drift]:
    svc = ex.service
    if svc.type == "ExternalName" or not _has_virtual_ip(svc):
        return []
    out: list[Drift] = []
    by_port = {(c.port_name or "", c.protocol): c for c in chains}
    if _local_only(svc) and node is None:
        return []          # which endpoints belong in the rules depends on the unknown node
    for port in svc.ports:
        spn = _spn(svc, port)
        expected = expected_endpoints(ex, port, node)
        programmed = by_port.get((port.name or "", port.protocol.lower()))
        dnat = {e.address for e in programmed.endpoints if e.address} if programmed else set()
        if expected and programmed is not None and any(
                f.reason == "no endpoints" for f in programmed.filter):
            out.append(Drift("stale-reject", spn, "a REJECT rule says the port has no "
                             "endpoints, but the API lists " + ", ".join(sorted(expected))))
        if expected and (programmed is None or not programmed.entries):
            out.append(Drift("service-missing", spn, f"{len(expected)} endpoint(s) in the API, "
                             "no rules for this service port on the node"))
            continue
        out += [Drift("missing-endpoint", spn, ep) for ep in sorted(expected - dnat)]
        out += [Drift("stale-endpoint", spn, ep) for ep in sorted(dnat - expected)]
    return out


def _has_virtual_ip(svc: Service) -> bool:
    return any(ip and ip != "None" for ip in svc.cluster_ips)


_DRIFT_FINDINGS = {
    "service-missing": ("RULES-SERVICE-MISSING", "has endpoints but no kube-proxy rules on this "
                        "node (kube-proxy down, lagging, or not in {mode} mode)"),
    "missing-endpoint": ("RULES-MISSING-ENDPOINT", "endpoint ready in the API has no {sep} "
                         "(kube-proxy has not synced it)"),
    "stale-endpoint": ("RULES-STALE-ENDPOINT", "rules DNAT to an address that is no longer an "
                       "endpoint (stale rules)"),
    "stale-reject": ("RULES-STALE-REJECT", "rules still REJECT the port although it has "
                     "endpoints"),
}


_MODE_WORDS = {  # mode → (what holds an endpoint, the command that shows it)
    "iptables": ("KUBE-SEP chain", "sudo iptables-save -t nat | grep KUBE-SEP"),
    "nftables": ("DNAT in its kube-proxy chains", "sudo nft list table ip kube-proxy"),
}


def drift_findings(svc: Service, drift: tuple[Drift, ...],
                   mode: str = "iptables") -> list[Finding]:
    sep, command = _MODE_WORDS[mode]
    out = []
    for kind, (fid, text) in _DRIFT_FINDINGS.items():
        items = [d for d in drift if d.kind == kind]
        if items:
            message = text.format(mode=mode, sep=sep)
            out.append(Finding(fid, Severity.ERROR, f"{svc.namespace}/{svc.name}: {message}",
                               tuple(f"{d.port}: {d.detail}" for d in items), command))
    return out


def mode_split_findings(node_input: NodeInput) -> list[Finding]:
    """RULES-MODE-SPLIT: kube-proxy's nft tables and KUBE-* iptables chains on one node (a mode
    switch that left the old mode's rules behind). Both see every packet; the traces ran
    through both."""
    nft = node_input.ruleset
    if not isinstance(nft, NftRuleset) or not kubeproxy_nft.kube_proxy_tables(nft):
        return []
    iptables = [f"KUBE-SERVICES in nft table {t} (iptables-nft)"
                for t in kubeproxy_nft.iptables_kube_tables(nft)]
    ipt = node_input.iptables
    if ipt is not None and any("KUBE-SERVICES" in t.chains for t in ipt.tables.values()):
        iptables.append(f"KUBE-SERVICES in {ipt.source}" +
                        (f" ({ipt.backend} backend)" if ipt.backend else ""))
    if not iptables:
        return []
    tables = [f"nft table {t.family} {t.name}" for t in kubeproxy_nft.kube_proxy_tables(nft)]
    return [Finding("RULES-MODE-SPLIT", Severity.WARNING,
                    f"this node has kube-proxy rules of both modes: nftables ({tables[0]}) and "
                    "iptables (KUBE-SERVICES); every packet meets both, and the traces ran "
                    "through both", tuple(tables + iptables),
                    "sudo nft list tables; sudo iptables-save | grep -c '^-A KUBE-'")]


# --- traces --------------------------------------------------------------------------------

def entry_traces(svc: Service, node_input: NodeInput, notes: list[str]) -> list[EntryTrace]:
    """A packet for every entry point the Service has, from the clients that matter."""
    if not _has_virtual_ip(svc):
        return []
    ruleset, node = node_input.kube_ruleset, node_input.node
    family = _service_family(svc) if isinstance(ruleset, NftRuleset) else ruleset.family
    pod_src = node_input.source or _pod_source(ruleset, family, notes)
    node_ip = _node_address(node, family)
    out: list[EntryTrace] = []
    for port in svc.ports:
        for entry, client, src, dst, dport, expect in _entry_points(svc, port, pod_src, node_ip,
                                                                    family, notes):
            if node_input.entries and entry not in node_input.entries:
                continue
            if node_input.source and client != "disallowed":
                src = node_input.source
                dialled = _endpoint_text(dst, dport)
                if any((t.entry, t.source, t.destination) == (entry, src, dialled) for t in out):
                    continue           # --src makes the pod and node clients one and the same
            proto = port.protocol.lower()
            packet = make_packet(src, dst, proto if proto in ("tcp", "udp", "sctp") else "tcp",
                                 40000, dport)
            out.append(EntryTrace(entry, _spn(svc, port), client, src,
                                  _endpoint_text(dst, dport), trace_node_packet(packet, node_input),
                                  expect))
    if node_ip is None:
        notes.append("the node's own address is unknown: no NodePort or from-the-node traces "
                     "(give --local-ip or --node NAME)")
    return out


def _entry_points(svc: Service, port: ServicePort, pod_src: str | None, node_ip: str | None,
                  family: int, notes: list[str]) -> list[tuple[str, str, str, str, int, bool]]:
    """(entry, client, source, destination, port, expected to reach) for one service port."""
    points: list[tuple[str, str, str, str, int, bool]] = []
    outside = EXTERNAL_CLIENT if family == 4 else EXTERNAL_CLIENT6
    for cip in _family(svc.cluster_ips, family):
        if pod_src:
            points.append(("clusterIP", "pod", pod_src, cip, port.port, True))
        if node_ip:
            points.append(("clusterIP", "node", node_ip, cip, port.port, True))
    if port.node_port and node_ip:
        points.append(("nodePort", "external", outside, node_ip, port.node_port, True))
    for ing in svc.lb_ingress:
        if not ing.ip or ing.ip_mode == "Proxy" or ip_address(ing.ip).version != family:
            continue
        ranges = [r for r in svc.lb_source_ranges if ip_network(r.strip(), False).version ==
                  family]
        if ranges:
            allowed = str(next(ip_network(ranges[0].strip(), False).hosts(),
                               ip_network(ranges[0].strip(), False).network_address))
            points.append(("loadBalancer", "allowed", allowed, ing.ip, port.port, True))
            outside = _outside(ranges, family)
            if outside:
                points.append(("loadBalancer", "disallowed", outside, ing.ip, port.port, False))
        else:
            points.append(("loadBalancer", "external", outside, ing.ip, port.port, True))
    for eip in _family(svc.external_ips, family):
        points.append(("externalIP", "external", outside, eip, port.port, True))
    if pod_src is None:
        notes.append("no pod CIDR found in the rules: no from-a-pod trace (give --src)")
    return points


def _family(addresses: tuple[str, ...], family: int) -> list[str]:
    out = []
    for a in addresses:
        try:
            if a and a != "None" and ip_address(a).version == family:
                out.append(a)
        except ValueError:
            continue
    return out


def _outside(ranges: list[str], family: int) -> str | None:
    candidates = [EXTERNAL_CLIENT, "198.51.100.10", "192.0.2.10"] if family == 4 else \
        [EXTERNAL_CLIENT6, "2001:db8:ffff::10"]
    nets = [ip_network(r.strip(), False) for r in ranges]
    return next((c for c in candidates if not any(ip_address(c) in n for n in nets)), None)


def trace_node_packet(packet: Packet, node_input: NodeInput) -> Trace:
    """`packet` through the node's rules: iptables', or nft's (with the iptables rules beside
    them, when read)."""
    ruleset = node_input.ruleset
    if isinstance(ruleset, NftRuleset):
        return trace_nft(packet, ruleset, node_input.node, node_input.iptables)
    return trace_packet(packet, ruleset, node_input.node)


def _service_family(svc: Service) -> int:
    ips = [ip for ip in svc.cluster_ips if ip and ip != "None"]
    return 6 if ips and ":" in ips[0] else 4


def _pod_source(ruleset: Ruleset | NftRuleset, family: int, notes: list[str]) -> str | None:
    """A pod on this node: inside the node's own pod subnet where the rules show it (per-node
    CNI rules treat other addresses as another node's pods), else in the cluster pod CIDR."""
    found = kubeproxy_nft.pod_source(ruleset, family) if isinstance(ruleset, NftRuleset) else \
        pod_source(ruleset, family)
    if found is None:
        return None
    notes.append(f"pod traces come from {found.address}, an address in {found.network}, "
                 f"{found.why}")
    return found.address


def _node_address(node: NodeContext, family: int) -> str | None:
    for net in node.local:
        addr = net.network_address
        if addr.version == family and not addr.is_loopback and net.num_addresses == 1:
            return str(addr)
    return None


# --- findings from traces -------------------------------------------------------------------

def pod_for(ex: ClusterExplanation, destination: str | None) -> PodRow | None:
    if destination is None:
        return None
    host = destination.rsplit(":", 1)[0].strip("[]")
    return next((row for row in ex.pods if host in row.pod.ips), None)


def trace_findings(ex: ClusterExplanation, traces: tuple[EntryTrace, ...]) -> list[Finding]:
    svc = ex.service
    out: list[Finding] = []
    failed = [t for t in traces if t.expect_reach and
              any(o.verdict != "ACCEPT" or not o.destination for o in t.trace.outcomes)]
    if failed:
        out.append(Finding(
            "TRACE-NOT-DELIVERED", Severity.ERROR,
            f"{svc.namespace}/{svc.name}: packets to {len(failed)} entry point(s) do not reach "
            "a backend on this node",
            tuple(f"{t.entry} {t.destination} from {t.client} {t.source}: "
                  f"{_outcome_summary(t)}" for t in failed),
            f"svctrace trace --rules RULES --src {quote(failed[0].source)} "
            f"--dst {quote(failed[0].destination)}"))
    leaky = [t for t in traces if not t.expect_reach and
             any(o.destination for o in t.trace.outcomes)]
    if leaky:
        out.append(Finding(
            "TRACE-SOURCE-RANGE-OPEN", Severity.ERROR,
            f"{svc.namespace}/{svc.name}: a source outside loadBalancerSourceRanges reaches a "
            "backend", tuple(f"{t.destination} from {t.source}" for t in leaky)))
    unhealthy = sorted({f"{o.destination} ({row.pod.name}: not ready)"
                        for t in traces for o in t.trace.outcomes
                        for row in [pod_for(ex, o.destination)]
                        if row is not None and not row.pod.ready})
    if unhealthy:
        out.append(Finding("TRACE-UNHEALTHY-BACKEND", Severity.WARNING,
                           f"{svc.namespace}/{svc.name}: traffic can reach backends whose pod "
                           "is not ready", tuple(unhealthy),
                           f"kubectl get pods -n {quote(svc.namespace)} -o wide"))
    assumed = sorted({a.describe() for t in traces for o in t.trace.outcomes
                      for a in o.assumptions})
    if assumed:
        out.append(Finding("TRACE-ASSUMPTIONS", Severity.INFO,
                           "some rules could not be evaluated; the traces say what was assumed",
                           tuple(assumed)))
    return out


def _outcome_summary(t: EntryTrace) -> str:
    return ", ".join(f"{o.verdict}{' → ' + o.destination if o.destination else ''} "
                     f"({o.probability:.0%})" for o in t.trace.outcomes)


# --- the verdict ------------------------------------------------------------------------------

_FIRST_HOP = (
    ("selector", ("SVC-NO-MATCHING-PODS",)),
    ("endpoints", ("SVC-NO-ENDPOINTS", "SVC-PODS-NOT-READY")),
    ("port", ("SVC-TARGETPORT-NOT-EXPOSED",)),
    ("rules", ("RULES-SERVICE-MISSING", "RULES-MISSING-ENDPOINT", "RULES-STALE-ENDPOINT",
               "RULES-STALE-REJECT")),
    ("policy", ("SVC-ITP-LOCAL-NO-LOCAL-ENDPOINTS", "SVC-ETP-LOCAL-NO-LOCAL-ENDPOINTS",
                "TRACE-NOT-DELIVERED", "TRACE-SOURCE-RANGE-OPEN")),
    ("backend health", ("TRACE-UNHEALTHY-BACKEND",)),
)


def verdict(ex: ClusterExplanation, node: NodeExplanation | None) -> str:
    """One line: the first hop that fails, or where traffic goes and with what shares."""
    svc = ex.service
    if svc.type == "ExternalName":
        return f"ExternalName Service: a DNS alias for {svc.external_name}; no virtual IP, " \
               "nothing to trace"
    if not _has_virtual_ip(svc):
        return "headless Service: no virtual IP; clients resolve the pods' addresses in DNS"
    findings = list(ex.findings) + (list(node.findings) if node else [])
    for hop, ids in _FIRST_HOP:
        hits = [f for fid in ids for f in findings if f.id == fid]
        worst = max((f.severity for f in hits), default=None)
        if worst == Severity.ERROR or (worst == Severity.WARNING and hop == "backend health"):
            return f"fails at the {hop}: {hits[0].message}"
    if node is None:
        ready = sum(1 for r in ex.pods if r.pod.ready)
        return f"the API side looks healthy ({ready} ready pod(s)); rules not checked"
    main = next((t for t in node.traces if t.entry == "clusterIP"), None)
    if main is None:
        return "no entry point could be traced"
    dests = {o.destination: o.probability for o in main.trace.outcomes if o.destination}
    shares = ", ".join(f"{p:.0%}" for p in dests.values())
    return f"traffic to {main.destination} reaches {len(dests)} healthy backend(s) ({shares})"
