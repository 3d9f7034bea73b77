"""What kube-proxy should program on one node (pkg/proxy/topology.go, CategorizeEndpoints):
a table of Services, endpoints and nodes → the cluster and node-local endpoint sets."""

from __future__ import annotations

from dataclasses import replace

import pytest

from svctrace.diagnose.expect import expected_ports, topology_mode
from svctrace.model.cluster import (
    Endpoint,
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
    Node,
    Service,
    ServicePort,
)

READY = EndpointConditions(ready=True, serving=True, terminating=False)
NOT_READY = EndpointConditions(ready=False, serving=False, terminating=False)
TERMINATING = EndpointConditions(ready=False, serving=True, terminating=True)
DEAD = EndpointConditions(ready=False, serving=False, terminating=True)

SVC = Service("web", "shop", cluster_ips=("10.96.0.10",),
              ports=(ServicePort(name="http", port=80, target_port=8080, protocol="TCP"),))
NODEPORT = replace(SVC, type="NodePort", ports=(replace(SVC.ports[0], node_port=30080),))
NODE1 = Node("node1", zone="zone-a")


def ep(ip: str, node: str, cond: EndpointConditions = READY, zones: tuple[str, ...] = (),
       nodes: tuple[str, ...] = ()) -> Endpoint:
    return Endpoint((ip,), cond, node_name=node, hints_zones=zones, hints_nodes=nodes)


def slices(*endpoints: Endpoint, family: str = "IPv4") -> tuple[EndpointSlice, ...]:
    return (EndpointSlice("web-abc", "shop", family, tuple(endpoints),
                          (EndpointPort("http", 8080, "TCP"),), service_name="web"),)


A1, A2, B1 = "10.244.1.1", "10.244.1.2", "10.244.2.1"
CASES = [
    # id, service, endpoints, cluster, local, any_endpoints, has_entry
    ("ready-only", SVC, [ep(A1, "node1"), ep(B1, "node2", NOT_READY)],
     {A1}, None, True, True),
    ("terminating-fallback", SVC, [ep(A1, "node1", TERMINATING), ep(B1, "node2", DEAD)],
     {A1}, None, True, True),
    ("no-fallback-while-one-is-ready", SVC, [ep(A1, "node1", TERMINATING), ep(B1, "node2")],
     {B1}, None, True, True),
    ("no-endpoints", SVC, [ep(A1, "node1", NOT_READY)], set(), None, False, False),
    ("itp-local-here", replace(SVC, internal_traffic_policy="Local"),
     [ep(A1, "node1"), ep(B1, "node2")], None, {A1}, True, True),
    ("itp-local-elsewhere", replace(SVC, internal_traffic_policy="Local"),
     [ep(B1, "node2")], None, set(), True, False),
    ("itp-local-terminating-here", replace(SVC, internal_traffic_policy="Local"),
     [ep(A1, "node1", TERMINATING), ep(B1, "node2")], None, {A1}, True, True),
    ("etp-local-nodeport", replace(NODEPORT, external_traffic_policy="Local"),
     [ep(A1, "node1"), ep(B1, "node2")], {A1, B1}, {A1}, True, True),
    ("etp-local-none-here", replace(NODEPORT, external_traffic_policy="Local"),
     [ep(B1, "node2")], {B1}, set(), True, True),
    ("etp-local-without-external-access", replace(SVC, external_traffic_policy="Local"),
     [ep(A1, "node1"), ep(B1, "node2")], {A1, B1}, None, True, True),
    ("zone-hints", SVC, [ep(A1, "node1", zones=("zone-a",)), ep(B1, "node2", zones=("zone-b",))],
     {A1}, None, True, True),
    ("zone-hints-incomplete", SVC, [ep(A1, "node1", zones=("zone-a",)), ep(B1, "node2")],
     {A1, B1}, None, True, True),
    ("zone-hints-none-for-this-zone", SVC, [ep(A1, "node1", zones=("zone-c",)),
                                            ep(B1, "node2", zones=("zone-b",))],
     {A1, B1}, None, True, True),
    ("node-hints", SVC, [ep(A1, "node1", zones=("zone-a",), nodes=("node1",)),
                         ep(A2, "node1", zones=("zone-a",), nodes=("node9",))],
     {A1}, None, True, True),
    ("hints-of-unready-endpoints-do-not-count", SVC,
     [ep(A1, "node1", zones=("zone-a",)), ep(B1, "node2", NOT_READY)], {A1}, None, True, True),
]


@pytest.mark.parametrize("svc,endpoints,cluster,local,any_eps,has_entry",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_expected_endpoints_on_node1(svc: Service, endpoints: list[Endpoint],
                                     cluster: set[str] | None, local: set[str] | None,
                                     any_eps: bool, has_entry: bool) -> None:
    [port] = expected_ports(svc, slices(*endpoints), NODE1, "node1")
    assert (port.cluster, port.local) == (_text(cluster), _text(local))
    assert (port.any_endpoints, port.has_entry) == (any_eps, has_entry)
    assert port.spn == "shop/web:http" and port.protocol == "tcp"


def _text(ips: set[str] | None) -> set[str] | None:
    return None if ips is None else {f"{ip}:8080" for ip in ips}


@pytest.mark.parametrize("svc", [
    replace(SVC, type="ExternalName", cluster_ips=(), external_name="example.com"),
    replace(SVC, cluster_ips=("None",)),
    replace(SVC, ports=()),
], ids=["external-name", "headless", "no-ports"])
def test_services_kube_proxy_ignores(svc: Service) -> None:
    assert expected_ports(svc, slices(ep(A1, "node1")), NODE1, "node1") == []


def test_only_the_rules_address_family_counts() -> None:
    v6 = slices(Endpoint(("fd00::1",), READY, node_name="node1"), family="IPv6")
    [v4port] = expected_ports(SVC, v6, NODE1, "node1", family=4)
    [v6port] = expected_ports(SVC, v6, NODE1, "node1", family=6)
    assert v4port.cluster == frozenset() and v6port.cluster == {"[fd00::1]:8080"}


def test_topology_mode_words() -> None:
    hinted = [ep(A1, "node1", zones=("zone-a",), nodes=("node1",))]
    assert topology_mode(hinted, "node1", "zone-a") == "PreferSameNode"
    assert topology_mode(hinted, "node2", "zone-a") == "PreferSameZone"
    assert topology_mode(hinted, "node2", None) == ""
