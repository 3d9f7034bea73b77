"""explain's node half on real kube-proxy captures: chains by hash, shares, drift, verdicts.

The objects and node1's rules of each fixture were captured at the same moment from a real
cluster, so a correct join finds no drift; edited copies of the objects must produce it."""

import copy
import json
from pathlib import Path

import pytest

from svctrace.cluster.snapshot import parse_snapshot, view_from_snapshot
from svctrace.diagnose.cluster import explain_cluster
from svctrace.diagnose.node import NodeInput, explain_node, verdict
from svctrace.model.trace import node_context
from svctrace.rules.iptables_save import parse_iptables_save

FIX = Path(__file__).parent.parent / "fixtures"
DEMO = FIX / "rig-v1.36"
PUB = FIX / "rig-v1.36-scenarios"
NODE1 = node_context(["10.10.0.10"], "node1")


def _explain(api: dict, rules_path: Path, name: str, ns: str, node=NODE1):
    state = parse_snapshot(json.dumps(api), "test")
    ex = explain_cluster(view_from_snapshot(state, name, ns))
    rs = parse_iptables_save(rules_path.read_text(), str(rules_path))
    return ex, explain_node(ex, NodeInput(rs, node))


def _api(folder: Path) -> dict:
    return json.loads((folder / "api/all.json").read_text())


def _ids(ex, node) -> set[str]:
    return {f.id for f in (*ex.findings, *node.findings)}


# service, namespace, port name → (endpoints with shares, from-pod clusterIP destinations)
CASES = [
    ("rig-v1.36", "svctrace-demo", "web", {"10.244.1.11:8080", "10.244.1.12:8080",
                                           "10.244.2.13:8080", "10.244.2.14:8080"}),
    ("rig-v1.36", "svctrace-demo", "web-np", {"10.244.1.11:8080", "10.244.1.12:8080",
                                              "10.244.2.13:8080", "10.244.2.14:8080"}),
    ("rig-v1.36", "svctrace-demo", "db", {"10.244.1.21:5432"}),
    ("rig-v1.36", "svctrace-demo", "ext-db", {"10.244.1.31:5432", "10.244.2.32:5432"}),
    ("rig-v1.36", "svctrace-demo", "noendpoints", {"REJECT"}),
    ("rig-v1.36-scenarios", "svctrace-pub", "storefront", {"10.244.1.41:8443", "10.244.1.42:8443",
                                                           "10.244.2.41:8443"}),
    ("rig-v1.36-scenarios", "svctrace-pub", "inventory", {
        "10.244.1.62:8000", "10.244.1.63:8000", "10.244.1.64:8000", "10.244.2.62:8000",
        "10.244.2.63:8000"}),
    ("rig-v1.36-scenarios", "svctrace-pub", "orders", {"10.244.2.66:8080"}),
    ("rig-v1.36-scenarios", "svctrace-pub", "node-cache", {"DROP"}),
    ("rig-v1.36-scenarios", "svctrace-pub", "billing", {"REJECT"}),
    ("rig-v1.36-scenarios", "svctrace-pub", "metrics", {"REJECT"}),
    ("rig-v1.36-scenarios", "svctrace-pub", "dns-cache", {"10.244.1.50:5353", "10.244.2.50:5353",
                                                          "10.244.2.51:5353"}),
]


@pytest.mark.parametrize("folder,ns,name,expected", CASES, ids=[c[2] for c in CASES])
def test_fixture_service(folder: str, ns: str, name: str, expected: set[str]) -> None:
    ex, node = _explain(_api(FIX / folder), FIX / folder / "node1.iptables-save.txt", name, ns)
    assert node.drift == ()                          # captured at the same moment
    pod_traces = [t for t in node.traces if t.entry == "clusterIP" and t.client == "pod"]
    assert pod_traces
    got = pod_traces[0].trace.destinations
    assert set(got) == expected
    assert sum(got.values()) == pytest.approx(1.0)
    if len(got) > 1:                                 # the cascade gives equal shares
        assert max(got.values()) - min(got.values()) < 1e-9
    assert all(c.spn and c.spn.startswith(f"{ns}/{name}") for c in node.chains)


def test_large_cluster_chains_found_without_comments() -> None:
    folder = FIX / "rig-v1.36-large"
    ex, node = _explain(_api(folder), folder / "node1.iptables-save.txt", "scale-123",
                        "svctrace-scale")
    (chains,) = node.chains
    assert len(chains.endpoints) == 4 and chains.spn == "svctrace-scale/scale-123:http"
    assert node.drift == ()
    (t,) = [t for t in node.traces if t.client == "pod"]
    assert len(t.trace.destinations) == 4


@pytest.mark.parametrize("name,entry,client,expected", [
    ("storefront", "loadBalancer", "allowed", 3),
    ("storefront", "loadBalancer", "disallowed", 0),
    ("storefront", "nodePort", "external", 3),
    ("edge", "nodePort", "external", 2),
    ("ledger", "externalIP", "external", 3),
])
def test_entry_points(name: str, entry: str, client: str, expected: int) -> None:
    ex, node = _explain(_api(PUB), PUB / "node1.iptables-save.txt", name, "svctrace-pub")
    (t,) = [t for t in node.traces if t.entry == entry and t.client == client]
    reached = [o for o in t.trace.outcomes if o.destination]
    assert len(reached) == expected
    if expected == 0:
        assert {o.verdict for o in t.trace.outcomes} == {"DROP"}
    assert "TRACE-SOURCE-RANGE-OPEN" not in _ids(ex, node)


def test_edge_nodeport_preserves_source_to_local_endpoints() -> None:
    ex, node = _explain(_api(PUB), PUB / "node1.iptables-save.txt", "edge", "svctrace-pub")
    (t,) = [t for t in node.traces if t.entry == "nodePort"]
    assert {o.destination for o in t.trace.outcomes} == {"10.244.1.44:8080", "10.244.1.45:8080"}
    assert not any(o.masquerade for o in t.trace.outcomes)


def _without_endpoint(api: dict, address: str) -> dict:
    api = copy.deepcopy(api)
    for item in api["items"]:
        if item["kind"] == "EndpointSlice":
            item["endpoints"] = [e for e in item.get("endpoints") or []
                                 if address not in e["addresses"]]
    return api


def _with_endpoint(api: dict, service: str, address: str) -> dict:
    api = copy.deepcopy(api)
    for item in api["items"]:
        if item["kind"] == "EndpointSlice" and \
                item["metadata"]["labels"]["kubernetes.io/service-name"] == service:
            extra = copy.deepcopy(item["endpoints"][0])
            extra["addresses"] = [address]
            extra.pop("targetRef", None)
            item["endpoints"].append(extra)
    return api


def test_drift_stale_endpoint() -> None:
    api = _without_endpoint(_api(DEMO), "10.244.2.14")
    ex, node = _explain(api, DEMO / "node1.iptables-save.txt", "web", "svctrace-demo")
    assert [(d.kind, d.detail) for d in node.drift] == [("stale-endpoint", "10.244.2.14:8080")]
    assert "RULES-STALE-ENDPOINT" in _ids(ex, node)
    assert verdict(ex, node).startswith("fails at the rules")


def test_drift_missing_endpoint() -> None:
    api = _with_endpoint(_api(DEMO), "web", "10.244.1.99")
    ex, node = _explain(api, DEMO / "node1.iptables-save.txt", "web", "svctrace-demo")
    assert [(d.kind, d.detail) for d in node.drift] == [("missing-endpoint", "10.244.1.99:8080")]
    assert "RULES-MISSING-ENDPOINT" in _ids(ex, node)


def test_drift_service_missing_and_stale_reject() -> None:
    api = copy.deepcopy(_api(PUB))
    for item in api["items"]:          # the typo fixed: the slice now carries the port too
        if item["kind"] == "EndpointSlice" and \
                item["metadata"]["labels"]["kubernetes.io/service-name"] == "billing":
            item["ports"] = [{"name": "http", "port": 8080, "protocol": "TCP"}]
            item["endpoints"] = [{"addresses": ["10.244.1.68"], "conditions": {"ready": True},
                                  "nodeName": "node1"}]
    ex, node = _explain(api, PUB / "node1.iptables-save.txt", "billing", "svctrace-pub")
    assert {d.kind for d in node.drift} == {"service-missing", "stale-reject"}
    assert {"RULES-SERVICE-MISSING", "RULES-STALE-REJECT"} <= _ids(ex, node)


@pytest.mark.parametrize("name,start", [
    ("web", "traffic to 10.96.219.159:80 reaches 4 healthy backend(s)"),
    ("noendpoints", "fails at the selector"),
    ("db", "traffic to 10.96.176.123:5432 reaches 1 healthy backend(s)"),
])
def test_verdict(name: str, start: str) -> None:
    ex, node = _explain(_api(DEMO), DEMO / "node1.iptables-save.txt", name, "svctrace-demo")
    assert verdict(ex, node).startswith(start)


def test_node_cache_fails_at_policy() -> None:
    ex, node = _explain(_api(PUB), PUB / "node1.iptables-save.txt", "node-cache", "svctrace-pub")
    assert verdict(ex, node).startswith("fails at the policy")
    assert "TRACE-NOT-DELIVERED" in _ids(ex, node)


def test_unknown_node_skips_node_traces() -> None:
    ex, node = _explain(_api(DEMO), DEMO / "node1.iptables-save.txt", "web-np", "svctrace-demo",
                        node=node_context([]))
    assert {t.entry for t in node.traces} == {"clusterIP"}
    assert any("unknown" in n for n in node.notes)


@pytest.mark.parametrize("folder", ["rig-v1.36", "rig-v1.36-scenarios", "rig-v1.36-large"])
def test_targeted_mapping_equals_full_mapping(folder: str) -> None:
    """map_service_ports (what explain uses) finds exactly what map_services finds."""
    from svctrace.rules.kubeproxy import map_service_ports, map_services

    rs = parse_iptables_save((FIX / folder / "node1.iptables-save.txt").read_text(), folder)
    full = [c for c in map_services(rs) if c.spn]
    assert full
    for c in full[:40]:
        (one,) = map_service_ports(rs, {c.hash: c.spn}, c.cluster_ips + c.load_balancer_ips +
                                   c.external_ips)
        assert (one.spn, one.chains, one.node_port, one.cluster_ips, one.affinity_seconds) == \
            (c.spn, c.chains, c.node_port, c.cluster_ips, c.affinity_seconds)
        assert [(e.address, e.probability, e.chain, e.local) for e in one.endpoints] == \
            [(e.address, e.probability, e.chain, e.local) for e in c.endpoints]
        assert [(f.verdict, f.reason, f.rule.line) for f in one.filter] == \
            [(f.verdict, f.reason, f.rule.line) for f in c.filter]
        assert [(e.kind, e.rule.line, e.rule.number) for e in one.entries] == \
            [(e.kind, e.rule.line, e.rule.number) for e in c.entries]


def test_itp_local_drift_needs_the_node() -> None:
    """node-cache (iTP=Local, endpoints on node2): node1's rules rightly hold no endpoint;
    with the node unknown, svctrace cannot say which endpoints belong and claims no drift."""
    for node in (NODE1, node_context([])):
        ex, explained = _explain(_api(PUB), PUB / "node1.iptables-save.txt", "node-cache",
                                 "svctrace-pub", node=node)
        assert explained.drift == ()


def test_src_gives_one_trace_per_entry_point() -> None:
    state = parse_snapshot((DEMO / "api/all.json").read_text(), "t")
    ex = explain_cluster(view_from_snapshot(state, "web-np", "svctrace-demo"))
    rs = parse_iptables_save((DEMO / "node1.iptables-save.txt").read_text(), "r")
    node = explain_node(ex, NodeInput(rs, NODE1, source="10.244.1.11"))
    keys = [(t.entry, t.source, t.destination) for t in node.traces]
    assert len(keys) == len(set(keys))
    assert {t.entry for t in node.traces} == {"clusterIP", "nodePort"}
    (cip,) = [t for t in node.traces if t.entry == "clusterIP"]
    hairpin = [o for o in cip.trace.outcomes if o.destination == "10.244.1.11:8080"]
    assert hairpin and hairpin[0].masquerade        # the pod reaching itself is masqueraded
