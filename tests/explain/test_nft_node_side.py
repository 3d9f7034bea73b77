"""explain's node half on node2 of the real captures, where kube-proxy ran in nftables mode.

The same objects were explained against node1 (iptables mode) in test_node_side.py. Here the
chains are found by nft name hash, traces run through the nft evaluator, and where the two modes
really behave differently (kube-proxy-semantics.md §2.10) the outcome follows the mode read: the
same edited objects are explained against both nodes' rules and the answers differ as the real
kernels' did."""

from __future__ import annotations

import copy
import json
from ipaddress import ip_network
from pathlib import Path

import pytest
from test_node_side import _with_endpoint, _without_endpoint

from svctrace.cluster.snapshot import parse_snapshot, view_from_snapshot
from svctrace.diagnose.cluster import explain_cluster
from svctrace.diagnose.node import NodeInput, explain_node, verdict
from svctrace.model.trace import node_context
from svctrace.rules.sources import load_ruleset

FIX = Path(__file__).parent.parent / "fixtures"
DEMO, PUB = FIX / "rig-v1.36", FIX / "rig-v1.36-scenarios"
NODE1 = node_context(["10.10.0.10"], "node1")
NODE2 = node_context(["10.10.0.20"], "node2")
RULESETS: dict[Path, object] = {}


def _rules(path: Path) -> object:
    """Any form, told from the content (iptables-save, nft text, JSON or -f input)."""
    if path not in RULESETS:
        RULESETS[path] = load_ruleset(str(path))
    return RULESETS[path]


def _api(folder: Path) -> dict:
    return json.loads((folder / "api/all.json").read_text())


def _explain(api: dict, name: str, ns: str, rules: Path, node=NODE2, source: str | None = None):
    state = parse_snapshot(json.dumps(api), "test")
    ex = explain_cluster(view_from_snapshot(state, name, ns))
    return ex, explain_node(ex, NodeInput(_rules(rules), node, source=source))  # type: ignore


def _ids(ex, node) -> set[str]:
    return {f.id for f in (*ex.findings, *node.findings)}


def _trace(node, entry: str, client: str):
    (t,) = [t for t in node.traces if t.entry == entry and t.client == client]
    return t.trace


NFT_DEMO, NFT_PUB = DEMO / "node2.nft.json", PUB / "node2.nft.json"
WEB = {"10.244.1.11:8080", "10.244.1.12:8080", "10.244.2.13:8080", "10.244.2.14:8080"}

# folder, namespace, service → what a new connection from a pod to the ClusterIP gets on node2
CASES = [
    (DEMO, "svctrace-demo", "web", WEB),
    (DEMO, "svctrace-demo", "web-np", WEB),
    (DEMO, "svctrace-demo", "db", {"10.244.1.21:5432"}),
    (DEMO, "svctrace-demo", "ext-db", {"10.244.1.31:5432", "10.244.2.32:5432"}),
    (DEMO, "svctrace-demo", "noendpoints", {"REJECT"}),
    (PUB, "svctrace-pub", "storefront", {"10.244.1.41:8443", "10.244.1.42:8443",
                                         "10.244.2.41:8443"}),
    (PUB, "svctrace-pub", "orders", {"10.244.2.66:8080"}),
    (PUB, "svctrace-pub", "node-cache", {"10.244.2.47:6379", "10.244.2.48:6379"}),  # iTP=Local
    (PUB, "svctrace-pub", "billing", {"REJECT"}),
    (PUB, "svctrace-pub", "dns-cache", {"10.244.1.50:5353", "10.244.2.50:5353",
                                        "10.244.2.51:5353"}),
    (PUB, "svctrace-pub", "sessions", {"10.244.1.59:3000", "10.244.1.60:3000",
                                       "10.244.2.59:3000", "10.244.2.60:3000"}),
]


@pytest.mark.parametrize("folder,ns,name,expected", CASES, ids=[c[2] for c in CASES])
def test_fixture_service(folder: Path, ns: str, name: str, expected: set[str]) -> None:
    ex, node = _explain(_api(folder), name, ns, folder / "node2.nft.json")
    assert node.drift == ()                          # captured at the same moment
    assert node.chains and all(c.mode == "nftables" and c.spn.startswith(f"{ns}/{name}")
                               for c in node.chains)
    got = _trace(node, "clusterIP", "pod").destinations
    assert set(got) == expected
    assert sum(got.values()) == pytest.approx(1.0)
    assert max(got.values()) - min(got.values()) < 1e-9         # numgen: exactly 1/N each
    assert "RULES-MODE-SPLIT" not in _ids(ex, node)


@pytest.mark.parametrize("name,entry,client,reached,masquerade", [
    ("storefront", "loadBalancer", "allowed", 3, {True}),
    ("storefront", "loadBalancer", "disallowed", 0, {False}),
    ("storefront", "nodePort", "external", 3, {True}),
    ("storefront", "clusterIP", "node", 3, {True}),
    ("storefront", "clusterIP", "pod", 3, {False}),
    ("ledger", "externalIP", "external", 3, {True}),
    ("edge", "nodePort", "external", 0, {False}),     # eTP=Local, no ready endpoint on node2
])
def test_entry_points(name: str, entry: str, client: str, reached: int,
                      masquerade: set[bool]) -> None:
    ex, node = _explain(_api(PUB), name, "svctrace-pub", NFT_PUB)
    trace = _trace(node, entry, client)
    assert len([o for o in trace.outcomes if o.destination]) == reached
    assert {o.masquerade for o in trace.outcomes} == masquerade
    if reached == 0:
        assert {o.verdict for o in trace.outcomes} == {"DROP"}
    assert "TRACE-SOURCE-RANGE-OPEN" not in _ids(ex, node)


def test_edge_fails_at_policy_on_node2() -> None:
    ex, node = _explain(_api(PUB), "edge", "svctrace-pub", NFT_PUB)
    assert "TRACE-NOT-DELIVERED" in _ids(ex, node)
    assert verdict(ex, node).startswith("fails at the policy")


def test_node_cache_local_policy_differs_between_the_nodes() -> None:
    """iTP=Local: node2 holds both endpoints, node1 none (DROP) — each node's rules say so."""
    ex2, node2 = _explain(_api(PUB), "node-cache", "svctrace-pub", NFT_PUB)
    ex1, node1 = _explain(_api(PUB), "node-cache", "svctrace-pub", PUB / "node1.iptables-save.txt",
                          NODE1)
    assert verdict(ex2, node2).startswith("traffic to 10.96.70.164:6379 reaches 2 healthy")
    assert set(_trace(node1, "clusterIP", "pod").destinations) == {"DROP"}


def _edited(folder: Path, service: str, edit) -> dict:
    api = copy.deepcopy(_api(folder))
    for item in api["items"]:
        if item["kind"] == "Service" and item["metadata"]["name"] == service:
            edit(item["spec"])
    return api


def _set_port(port: int):
    def edit(spec: dict) -> None:
        spec["ports"][0]["port"] = port
    return edit


def _set_cluster_ip(ip: str):
    def edit(spec: dict) -> None:
        spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
    return edit


@pytest.mark.parametrize("edit,nft,iptables", [
    (_set_port(81), {"REJECT"}, {"ACCEPT"}),                  # a port the Service lacks
    (_set_cluster_ip("10.96.99.99"), {"DROP"}, {"ACCEPT"}),   # unallocated in the service CIDR
], ids=["wrong-port-rejected", "unallocated-clusterip-dropped"])
def test_mode_differences_follow_the_rules_read(edit, nft: set[str], iptables: set[str]) -> None:
    """§2.10: nftables mode rejects a ClusterIP's missing port and drops an unallocated
    ClusterIP (cluster-ips-check); iptables mode forwards both un-NATed."""
    api = _edited(DEMO, "web", edit)
    ex2, node2 = _explain(api, "web", "svctrace-demo", NFT_DEMO)
    ex1, node1 = _explain(api, "web", "svctrace-demo", DEMO / "node1.iptables-save.txt", NODE1)
    t2, t1 = _trace(node2, "clusterIP", "pod"), _trace(node1, "clusterIP", "pod")
    assert {o.verdict for o in t2.outcomes} == nft and not any(o.destination for o in t2.outcomes)
    assert {o.verdict for o in t1.outcomes} == iptables and \
        not any(o.destination for o in t1.outcomes)
    assert "TRACE-NOT-DELIVERED" in _ids(ex2, node2)


@pytest.mark.parametrize("source,nft_masq,iptables_masq", [
    ("10.244.2.13", {"10.244.2.13:8080"}, {"10.244.2.13:8080"}),   # endpoint on node2
    ("10.244.1.11", set(), {"10.244.1.11:8080"}),                  # endpoint on node1
], ids=["local-endpoint", "remote-endpoint"])
def test_hairpin_masquerade_follows_the_mode(source: str, nft_masq: set[str],
                                             iptables_masq: set[str]) -> None:
    """An endpoint reaching its own Service: nftables 1.36 masquerades only when the endpoint
    picked is the sender and lives on this node (hairpin-connections); iptables mode whenever
    the sender picks itself."""
    api = _api(DEMO)
    _, node2 = _explain(api, "web", "svctrace-demo", NFT_DEMO, source=source)
    _, node1 = _explain(api, "web", "svctrace-demo", DEMO / "node1.iptables-save.txt", NODE1,
                        source=source)
    for node, want in ((node2, nft_masq), (node1, iptables_masq)):
        trace = _trace(node, "clusterIP", "pod")
        assert len(trace.outcomes) == 4
        assert {o.destination for o in trace.outcomes if o.masquerade} == want


def test_drift_stale_endpoint() -> None:
    api = _without_endpoint(_api(DEMO), "10.244.2.14")
    ex, node = _explain(api, "web", "svctrace-demo", NFT_DEMO)
    assert [(d.kind, d.detail) for d in node.drift] == [("stale-endpoint", "10.244.2.14:8080")]
    (finding,) = [f for f in node.findings if f.id == "RULES-STALE-ENDPOINT"]
    assert "nft" in (finding.command or "")
    assert verdict(ex, node).startswith("fails at the rules")


def test_drift_missing_endpoint() -> None:
    api = _with_endpoint(_api(DEMO), "web", "10.244.1.99")
    ex, node = _explain(api, "web", "svctrace-demo", NFT_DEMO)
    assert [(d.kind, d.detail) for d in node.drift] == [("missing-endpoint", "10.244.1.99:8080")]
    (finding,) = [f for f in node.findings if f.id == "RULES-MISSING-ENDPOINT"]
    assert "KUBE-SEP" not in finding.message


def test_drift_stale_reject() -> None:
    api = copy.deepcopy(_api(PUB))
    for item in api["items"]:
        if item["kind"] == "EndpointSlice" and \
                item["metadata"]["labels"]["kubernetes.io/service-name"] == "billing":
            item["ports"] = [{"name": "http", "port": 8080, "protocol": "TCP"}]
            item["endpoints"] = [{"addresses": ["10.244.1.68"], "conditions": {"ready": True},
                                  "nodeName": "node1"}]
    ex, node = _explain(api, "billing", "svctrace-pub", NFT_PUB)
    assert {d.kind for d in node.drift} == {"service-missing", "stale-reject"}
    assert {"RULES-SERVICE-MISSING", "RULES-STALE-REJECT"} <= _ids(ex, node)


def test_etp_local_nodeport_from_the_node_itself() -> None:
    """eTP=Local without a local endpoint (edge on node2): an outside client is dropped, the
    node itself is short-circuited to every cluster endpoint and masqueraded (1.34+)."""
    _, outside = _explain(_api(PUB), "edge", "svctrace-pub", NFT_PUB)
    _, itself = _explain(_api(PUB), "edge", "svctrace-pub", NFT_PUB, source="10.10.0.20")
    assert {o.verdict for o in _trace(outside, "nodePort", "external").outcomes} == {"DROP"}
    from_node = _trace(itself, "nodePort", "external")
    assert {(o.destination, o.masquerade) for o in from_node.outcomes} == {
        ("10.244.1.44:8080", True), ("10.244.1.45:8080", True)}


@pytest.mark.parametrize("rules,node,expected", [
    (NFT_DEMO, NODE2, {(None, False)}),                          # nft: never DNATed
    (DEMO / "node1.iptables-save.txt", NODE1, {(ep, True) for ep in WEB}),
], ids=["nftables", "iptables"])
def test_localhost_nodeport_follows_the_mode(rules: Path, node, expected: set) -> None:
    """§2.10: 127.0.0.1:<NodePort> is DNATed (and masqueraded) only in iptables mode."""
    from svctrace.diagnose.node import trace_node_packet
    from svctrace.model.packet import make_packet

    packet = make_packet("127.0.0.1", "127.0.0.1", "tcp", 40000, 30080)  # web-np's NodePort
    trace = trace_node_packet(packet, NodeInput(_rules(rules), node))  # type: ignore[arg-type]
    assert {(o.destination, o.masquerade) for o in trace.outcomes} == expected


def _web6_api() -> dict:
    """An IPv6 Service as the hand-written dumps program it (eval/web6, 2 endpoints)."""
    eps = [("fd00:10:244:1::11", "node1"), ("fd00:10:244:2::12", "node2")]
    return {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "web6", "namespace": "eval"},
         "spec": {"type": "NodePort", "clusterIP": "fd00:10:96::10",
                  "clusterIPs": ["fd00:10:96::10"], "ipFamilies": ["IPv6"],
                  "selector": {"app": "web6"},
                  "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                             "targetPort": 8080, "nodePort": 30080}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv6",
         "metadata": {"name": "web6-x", "namespace": "eval",
                      "labels": {"kubernetes.io/service-name": "web6"}},
         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
         "endpoints": [{"addresses": [a], "conditions": {"ready": True}, "nodeName": n}
                       for a, n in eps]}]}


@pytest.mark.parametrize("dump", ["eval-v1.35.nft", "eval-v1.36.nft"])
def test_ipv6_service_in_the_ip6_table(dump: str) -> None:
    ex, node = _explain(_web6_api(), "web6", "eval", FIX / "nft" / dump,
                        node_context(["10.10.0.10", "fd00:10:10::10"], "node1"))
    assert [(c.spn, c.family) for c in node.chains] == [("eval/web6:http", 6)]
    assert node.drift == ()
    pod = _trace(node, "clusterIP", "pod")
    assert pod.packet.src in ip_network("fd00:10:244::/48")      # the ip6 table's detector
    assert set(pod.destinations) == {"[fd00:10:244:1::11]:8080", "[fd00:10:244:2::12]:8080"}
    assert {e for (e, _) in {(t.entry, t.client) for t in node.traces}} >= {"clusterIP",
                                                                           "nodePort"}
