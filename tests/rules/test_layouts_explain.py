"""`explain` on an older layout (issue 10 point 4) and on an IPVS node (point 5): the API objects
of example/web moved onto the pre-1.22 dump of tests/kernel/kplayouts.py — the chains are found
by hash, the masquerade rules in KUBE-SERVICES are the Service's, the pod trace needs no
--src, and no drift is invented."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "kernel"))

from kplayouts import PRE_122_EXAMPLE  # noqa: E402

from svctrace.cluster.snapshot import parse_snapshot, view_from_snapshot  # noqa: E402
from svctrace.diagnose.cluster import explain_cluster  # noqa: E402
from svctrace.diagnose.node import NodeInput, explain_node, verdict  # noqa: E402
from svctrace.explain.node_side import layout_findings  # noqa: E402
from svctrace.model.trace import node_context  # noqa: E402
from svctrace.rules.iptables_save import parse_iptables_save  # noqa: E402

REPO = Path(__file__).parents[2]
ENDPOINTS = {"10.244.1.11": "node1", "10.244.2.12": "node2"}


def old_web_snapshot() -> dict:
    """examples/web's objects as the `old/web` Service of PRE_122_EXAMPLE (port http 80 →
    8080, NodePort 30080, externalIP 192.0.2.50, endpoints 10.244.1.11 and 10.244.2.12)."""
    api = json.loads((REPO / "examples/web/cluster.json").read_text())
    items, pod_ips = [], iter(ENDPOINTS)
    for item in copy.deepcopy(api["items"]):
        if item["kind"] != "Node":
            item["metadata"]["namespace"] = "old"
        if item["kind"] == "Service":
            item["spec"].update(clusterIP="10.96.10.10", clusterIPs=["10.96.10.10"],
                                type="NodePort", externalIPs=["192.0.2.50"],
                                ports=[{"name": "http", "port": 80, "protocol": "TCP",
                                        "targetPort": 8080, "nodePort": 30080}])
        if item["kind"] == "EndpointSlice":
            item["ports"] = [{"name": "http", "port": 8080, "protocol": "TCP"}]
            for ep, ip in zip(item["endpoints"], ENDPOINTS, strict=True):
                ep["addresses"], ep["nodeName"] = [ip], ENDPOINTS[ip]
        if item["kind"] == "Pod":          # in the order of the slice's endpoints
            ip = next(pod_ips)
            item["status"]["podIP"], item["status"]["podIPs"] = ip, [{"ip": ip}]
            item["spec"]["containers"][0]["ports"] = [{"containerPort": 8080,
                                                       "protocol": "TCP"}]
        items.append(item)
    return {**api, "items": items}


def test_explain_on_the_pre_122_layout() -> None:
    state = parse_snapshot(json.dumps(old_web_snapshot()), "old")
    ex = explain_cluster(view_from_snapshot(state, "web", "old"))
    rs = parse_iptables_save(PRE_122_EXAMPLE, "pre122.txt")
    node = explain_node(ex, NodeInput(rs, node_context(["10.10.0.10"], "node1")))
    (chains,) = node.chains
    assert {m.chain for m in chains.masquerade} >= {"KUBE-SERVICES", "KUBE-NODEPORTS"}
    assert not node.drift
    pod = next(t for t in node.traces if t.entry == "clusterIP" and t.client == "pod")
    assert pod.source.startswith("10.244.")
    assert {o.destination for o in pod.trace.outcomes} == {"10.244.1.11:8080",
                                                           "10.244.2.12:8080"}
    assert not any(o.masquerade for o in pod.trace.outcomes)
    external = next(t for t in node.traces if t.entry == "externalIP")
    assert all(o.destination and o.masquerade for o in external.trace.outcomes)
    assert not any(t.trace.outcomes[0].assumptions for t in node.traces)
    assert verdict(ex, node).startswith("traffic to 10.96.10.10:80 reaches 2 healthy")


def test_explain_names_ipvs_mode_and_an_unhooked_node() -> None:
    ipvs = (REPO / "tests/corpus/20-ipvs-calico-flushed-leftover-chains.txt").read_text()
    (finding,) = layout_findings(parse_iptables_save(ipvs, "ipvs.txt"))
    assert finding.id == "RULES-IPVS-MODE" and "IPVS mode" in finding.message
    unhooked = PRE_122_EXAMPLE.replace(
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES\n', "")
    (finding,) = layout_findings(parse_iptables_save(unhooked, "u.txt"))
    assert finding.id == "RULES-NOT-HOOKED" and "PREROUTING does not jump" in finding.message
