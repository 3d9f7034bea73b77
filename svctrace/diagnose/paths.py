"""The path of one Service, for doctor's diagrams: entry → kube-proxy chain → endpoints with
the shares kube-proxy gives them, and where the path fails. Plain data (dicts), kept only for
Services with a finding.

The chain is the one kube-proxy's iptables mode names for the service port (KUBE-SVC-…, or
KUBE-SVL-… for internalTrafficPolicy=Local); the shares are those of the cluster chain: an
equal split over the endpoints kube-proxy uses (ready ones, else serving terminating ones).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from svctrace.diagnose.digest import PortDrift
from svctrace.diagnose.expect import (
    endpoint_text,
    expected_ports,
    port_endpoints,
    programs_rules,
)
from svctrace.model.cluster import EndpointSlice, Service, ServicePort
from svctrace.rules.kubeproxy import chain_hash

HOPS = ("selector", "endpoints", "port", "rules", "policy", "backend health")
DRIFT_STATE = {"RULES-STALE-ENDPOINT": "stale", "RULES-MISSING-ENDPOINT": "missing"}


def failing_hop(verdict: str) -> str | None:
    """"rules" for "fails at the rules: …" (explain's verdict wording), else None."""
    if not verdict.startswith("fails at the "):
        return None
    hop = verdict[len("fails at the "):].split(":", 1)[0]
    return hop if hop in HOPS else None


def service_path(svc: Service, slices: Sequence[EndpointSlice]) -> list[dict[str, Any]]:
    """One entry per service port: its entry, chain and endpoints (address, share, state)."""
    if not programs_rules(svc):
        return []
    expected = {p.spn: p for p in expected_ports(svc, slices, None, "")}
    out = []
    for port in svc.ports:
        spn = svc.port_name(port)
        chosen = expected[spn].cluster or expected[spn].local or frozenset()
        role = "SVL" if svc.internal_traffic_policy == "Local" else "SVC"
        out.append({"servicePort": spn, "entry": _entry(svc.cluster_ips[0], port.port),
                    "protocol": port.protocol,
                    "chain": f"KUBE-{role}-{chain_hash(spn, port.protocol.lower())}",
                    "endpoints": _endpoints(slices, port, chosen)})
    return out


def _entry(ip: str, port: int) -> str:
    return endpoint_text(ip, port)


def _endpoints(slices: Sequence[EndpointSlice], port: ServicePort,
               chosen: frozenset[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ep, target in port_endpoints(slices, port):
        address = endpoint_text(ep.addresses[0], target)
        state = ("ready" if ep.conditions.ready else "terminating"
                 if ep.conditions.terminating else "not ready")
        out.append({"address": address, "state": state, "nodes": [],
                    "share": round(1 / len(chosen), 4) if address in chosen else None})
    return sorted(out, key=lambda e: e["address"])


def mark_drift(path: list[dict[str, Any]],
               drift_by_node: Mapping[str, list[PortDrift]]) -> None:
    """Add what nodes disagree on: endpoints a node still DNATs to (stale) or lacks
    (missing), with the nodes; a port no node programs gets `missingOn`."""
    ports = {p["servicePort"]: p for p in path}
    for node, drift in sorted(drift_by_node.items()):
        for d in drift:
            port = ports.get(d.spn)
            if port is None:
                continue
            if d.finding in DRIFT_STATE:
                _mark_endpoint(port, d.detail.split(" ", 1)[0], DRIFT_STATE[d.finding], node)
            else:
                port.setdefault("chainDrift", {}).setdefault(d.finding, []).append(node)


def _mark_endpoint(port: dict[str, Any], address: str, state: str, node: str) -> None:
    ep = next((e for e in port["endpoints"] if e["address"] == address), None)
    if ep is None:
        ep = {"address": address, "state": state, "nodes": [], "share": None}
        port["endpoints"].append(ep)
    ep["state"] = state
    ep["nodes"].append(node)
