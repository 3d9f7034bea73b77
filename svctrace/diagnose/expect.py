"""What kube-proxy should have programmed on one node for one Service, from the API alone.

kube-proxy computes, per service port and per node (pkg/proxy/topology.go,
CategorizeEndpoints, kube-proxy 1.33+):

- cluster endpoints (the KUBE-SVC chain / nft `service-…` chain), when the Service uses them
  (iTP=Cluster, or externally reachable with eTP=Cluster): the ready endpoints, narrowed by
  topology hints — to those hinted for this node when every ready endpoint has node hints and
  one is for this node (PreferSameNode), else to those hinted for the node's zone when every
  ready endpoint has zone hints and one is for this zone (PreferSameZone, topology-mode Auto);
  when none is ready anywhere, the serving terminating ones (terminating fallback);
- local endpoints (KUBE-SVL / `local-…`), when the Service uses them (iTP=Local, or externally
  reachable with eTP=Local): the ready endpoints on this node, else the serving terminating
  ones on this node;
- a REJECT for the port when it has no usable endpoint at all.

Endpoints are `ip:port` text of the slices of the ruleset's address family that carry the
port (joined by port name and protocol, as kube-proxy does). Model in, plain data out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from svctrace.diagnose.joins import slice_serves
from svctrace.model.cluster import Endpoint, EndpointSlice, Node, Service, ServicePort

ADDRESS_TYPES = {4: "IPv4", 6: "IPv6"}


@dataclass(frozen=True)
class ExpectedPort:
    """One service port on one node, as kube-proxy should program it."""

    spn: str                              # ns/name:port
    protocol: str                         # tcp | udp | sctp
    cluster: frozenset[str] | None        # None: the Service does not use cluster endpoints
    local: frozenset[str] | None          # None: the Service does not use local endpoints
    any_endpoints: bool                   # False: kube-proxy REJECTs the port
    has_entry: bool = True                # some entry point (cluster IP, NodePort…) has a
                                          # chain to jump to, so an entry rule belongs there

    @property
    def reachable(self) -> frozenset[str]:
        """Every endpoint that gets a KUBE-SEP chain on the node (cluster ∪ local)."""
        return (self.cluster or frozenset()) | (self.local or frozenset())


def programs_rules(svc: Service) -> bool:
    """kube-proxy programs nothing for ExternalName, headless or port-less Services."""
    return (not svc.is_external_name and not svc.is_headless and bool(svc.ports)
            and any(ip and ip != "None" for ip in svc.cluster_ips))


def externally_accessible(svc: Service) -> bool:
    return bool(svc.external_ips or any(p.node_port for p in svc.ports) or
                any(i.ip for i in svc.lb_ingress))


def uses_cluster_endpoints(svc: Service) -> bool:
    return svc.internal_traffic_policy != "Local" or (
        externally_accessible(svc) and svc.external_traffic_policy != "Local")


def uses_local_endpoints(svc: Service) -> bool:
    return svc.internal_traffic_policy == "Local" or (
        externally_accessible(svc) and svc.external_traffic_policy == "Local")


def expected_ports(svc: Service, slices: Sequence[EndpointSlice],
                   node: Node | None, node_name: str, family: int = 4) -> list[ExpectedPort]:
    """Every service port of `svc` as kube-proxy on `node_name` should program it."""
    if not programs_rules(svc):
        return []
    own = [s for s in slices if s.address_type == ADDRESS_TYPES.get(family)]
    zone = node.zone if node is not None else None
    return [_expected_port(svc, port, own, node_name, zone) for port in svc.ports]


def _expected_port(svc: Service, port: ServicePort, slices: list[EndpointSlice],
                   node_name: str, zone: str | None) -> ExpectedPort:
    endpoints = port_endpoints(slices, port)
    eps = [ep for ep, _ in endpoints]
    cluster = local = None
    if uses_cluster_endpoints(svc):
        cluster = _text(endpoints, _cluster_endpoints(eps, node_name, zone))
    if uses_local_endpoints(svc):
        local = _text(endpoints, _local_endpoints(eps, node_name))
    any_eps = any(ep.conditions.ready or (ep.conditions.serving and ep.conditions.terminating)
                  for ep in eps)
    return ExpectedPort(svc.port_name(port), port.protocol.lower(), cluster, local, any_eps,
                        _has_entry(svc, cluster, local))


def _has_entry(svc: Service, cluster: frozenset[str] | None,
               local: frozenset[str] | None) -> bool:
    """kube-proxy writes the cluster IP's entry rule when the internal policy's endpoints
    are not empty, and the NodePort/external ones when the external policy's are not (else a
    filter REJECT or DROP stands in)."""
    internal = local if svc.internal_traffic_policy == "Local" else cluster
    external = local if svc.external_traffic_policy == "Local" else cluster
    return bool(internal) or (externally_accessible(svc) and bool(external))


def port_endpoints(slices: Sequence[EndpointSlice],
                   port: ServicePort) -> list[tuple[Endpoint, int]]:
    """(endpoint, target port) of every slice that carries the port; an address once."""
    out: dict[str, tuple[Endpoint, int]] = {}
    for s in slices:
        sp = slice_serves(s, port)
        if sp is None or sp.port is None:
            continue
        for ep in s.endpoints:
            if ep.addresses and ep.addresses[0] not in out:
                out[ep.addresses[0]] = (ep, sp.port)
    return list(out.values())


def _cluster_endpoints(eps: list[Endpoint], node_name: str, zone: str | None) -> list[Endpoint]:
    mode = topology_mode(eps, node_name, zone)
    ready = [ep for ep in eps if ep.conditions.ready and _for_topology(ep, mode, node_name, zone)]
    return ready or [ep for ep in eps if ep.conditions.serving and ep.conditions.terminating]


def _local_endpoints(eps: list[Endpoint], node_name: str) -> list[Endpoint]:
    mine = [ep for ep in eps if ep.node_name == node_name]
    ready = [ep for ep in mine if ep.conditions.ready]
    return ready or [ep for ep in mine if ep.conditions.serving and ep.conditions.terminating]


def topology_mode(eps: list[Endpoint], node_name: str, zone: str | None) -> str:
    """"PreferSameNode", "PreferSameZone" or "" (no topology), from the ready endpoints'
    hints alone, as kube-proxy 1.33+ decides it (topologyModeFromHints)."""
    ready = [ep for ep in eps if ep.conditions.ready]
    if ready and all(ep.hints_nodes for ep in ready) and any(
            node_name in ep.hints_nodes for ep in ready):
        return "PreferSameNode"
    if ready and all(ep.hints_zones for ep in ready) and zone and any(
            zone in ep.hints_zones for ep in ready):
        return "PreferSameZone"
    return ""


def _for_topology(ep: Endpoint, mode: str, node_name: str, zone: str | None) -> bool:
    if mode == "PreferSameNode":
        return node_name in ep.hints_nodes
    if mode == "PreferSameZone":
        return zone in ep.hints_zones
    return True


def _text(endpoints: list[tuple[Endpoint, int]], chosen: list[Endpoint]) -> frozenset[str]:
    ids = {id(ep) for ep in chosen}
    return frozenset(endpoint_text(ep.addresses[0], port) for ep, port in endpoints
                     if id(ep) in ids)


def endpoint_text(address: str, port: int) -> str:
    """`ip:port`, `[ip6]:port`: as the rules' DNAT targets are written."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
