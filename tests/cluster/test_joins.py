"""The joins: targetPort resolution, endpoint ↔ pod, near misses, absent reasons, and the
converter's defaults (kube's own)."""

from __future__ import annotations

import copy

import pytest
from clusterkit import DEMO_NS, PUB, find, fixture_items
from test_findings import view_of

from svctrace.cluster.convert import (
    ConversionError,
    endpointslice_from_dict,
    pod_from_dict,
    service_from_dict,
)
from svctrace.diagnose.cluster import explain_cluster
from svctrace.diagnose.joins import (
    absent_reason,
    near_miss,
    resolve_target_port,
    suggested_workloads,
)
from svctrace.model.cluster import Pod, ServicePort, service_port_name

ITEMS = fixture_items()
SEARCH_POD = pod_from_dict(find(ITEMS, "Pod", "search-0"))          # http 8080, grpc 9000
DNS_POD = pod_from_dict(find(ITEMS, "Pod", "dns-cache-7c6d5f9b8-2vqnk"))  # 5353 UDP + TCP

PORTS = [
    # (id, pod, protocol, targetPort, status, containerPort)
    ("named", SEARCH_POD, "TCP", "http", "ok", 8080),
    ("numeric-declared", SEARCH_POD, "TCP", 9000, "ok", 9000),
    ("numeric-undeclared", SEARCH_POD, "TCP", 7777, "undeclared", 7777),
    ("named-missing", SEARCH_POD, "TCP", "scrape", "not-exposed", None),
    ("named-wrong-protocol", SEARCH_POD, "UDP", "http", "protocol-mismatch", 8080),
    ("numeric-wrong-protocol", SEARCH_POD, "UDP", 9000, "protocol-mismatch", 9000),
    ("udp-both-declared", DNS_POD, "UDP", 5353, "ok", 5353),
    ("named-by-protocol", DNS_POD, "UDP", "dns-udp", "ok", 5353),
]


@pytest.mark.parametrize("pod,protocol,target,status,container_port",
                         [c[1:] for c in PORTS], ids=[c[0] for c in PORTS])
def test_resolve_target_port(pod: Pod, protocol: str, target: int | str, status: str,
                             container_port: int | None) -> None:
    r = resolve_target_port(pod, ServicePort("p", protocol, 80, target))
    assert (r.status, r.container_port) == (status, container_port)


def _pod(labels: dict[str, str], name: str = "p") -> Pod:
    return Pod(name=name, namespace="ns", labels=labels)


NEAR = [
    # (id, selector, pod labels, (key, actual_key, actual) or None)
    ("value-typo-two-keys", {"app": "billing", "tier": "backedn"},
     {"app": "billing", "tier": "backend"}, ("tier", "tier", "backend")),
    ("value-typo-one-key", {"app": "apiserver"}, {"app": "api-server"},
     ("app", "app", "api-server")),
    ("key-typo", {"app": "web"}, {"ap": "web"}, ("app", "ap", "web")),
    ("missing-key-two-keys", {"app": "web", "tier": "front"}, {"app": "web"},
     ("tier", None, None)),
    ("unrelated-one-key", {"app": "web"}, {"app": "database"}, None),
    ("two-off", {"app": "web", "tier": "front"}, {"app": "db", "tier": "back"}, None),
    ("missing-key-one-key", {"app": "web"}, {"role": "db"}, None),
]


@pytest.mark.parametrize("selector,labels,expected", [c[1:] for c in NEAR],
                         ids=[c[0] for c in NEAR])
def test_near_miss(selector: dict, labels: dict, expected: tuple | None) -> None:
    m = near_miss(selector, _pod(labels))
    assert (None if m is None else (m.key, m.actual_key, m.actual)) == expected


def test_billing_near_misses_and_suggested_workload() -> None:
    ex = explain_cluster(view_of(fixture_items(), "billing"))
    assert {(m.pod, m.key, m.actual) for m in ex.near_misses} == {
        ("billing-7b4f9d6c5-j3m8x", "tier", "backend"),
        ("billing-7b4f9d6c5-r9q2w", "tier", "backend")}
    assert [w.split()[0] for w in ex.suggested_workloads] == ["deployment/billing"]
    assert "tier=backend" in ex.suggested_workloads[0]


def test_no_near_misses_when_pods_match() -> None:
    ex = explain_cluster(view_of(fixture_items(), "web", DEMO_NS))
    assert ex.near_misses == () and ex.suggested_workloads == ()


def test_suggested_workload_without_near_miss() -> None:
    items = fixture_items()
    find(items, "Service", "orders")["spec"]["selector"] = {"component": "order-api"}
    view = view_of(items, "orders")
    assert near_miss(view.service.selector, view.other_pods[0]) is None
    assert suggested_workloads(view.service, view.other_pods) == [
        "deployment/orders (pod labels app=orders)"]


def test_endpoints_join_pods_by_target_ref_and_ip() -> None:
    items = fixture_items()
    slice_ = next(i for i in items if i["kind"] == "EndpointSlice"
                  and i["metadata"]["labels"]["kubernetes.io/service-name"] == "search")
    del slice_["endpoints"][0]["targetRef"]                    # still joined, by IP
    ex = explain_cluster(view_of(items, "search"))
    assert sorted(r.pod.name for r in ex.endpoints if r.pod) == ["search-0", "search-1",
                                                                 "search-2"]


def test_selectorless_endpoints_have_no_pod() -> None:
    ex = explain_cluster(view_of(fixture_items(), "ext-db", DEMO_NS))
    assert [(r.endpoint.addresses, r.pod) for r in ex.endpoints] == [
        (("10.244.1.31",), None), (("10.244.2.32",), None)]


def test_pod_absent_from_slices_gets_a_reason() -> None:
    items = fixture_items()
    slice_ = next(i for i in items if i["kind"] == "EndpointSlice"
                  and i["metadata"]["labels"]["kubernetes.io/service-name"] == "inventory")
    dropped = next(e for e in slice_["endpoints"] if not e["conditions"]["ready"])
    slice_["endpoints"].remove(dropped)
    rows = {r.pod.name: r for r in explain_cluster(view_of(items, "inventory")).pods}
    absent = [n for n, r in rows.items() if r.absent_reason]
    assert absent == [dropped["targetRef"]["name"]]
    assert rows[absent[0]].absent_reason == "pod is not ready"


@pytest.mark.parametrize("change,reason", [
    ({"deletionTimestamp": "2026-11-28T17:00:00Z"}, "pod is being deleted"),
    ({"phase": "Succeeded"}, "pod phase is Succeeded"),
    ({"podIP": None, "podIPs": None, "phase": "Pending"}, "pod has no IP yet (phase Pending)"),
], ids=["deleting", "finished", "pending"])
def test_absent_reasons(change: dict, reason: str) -> None:
    raw = copy.deepcopy(find(ITEMS, "Pod", "search-0"))
    if "deletionTimestamp" in change:
        raw["metadata"].update(change)
    else:
        raw["status"].update(change)
    svc = service_from_dict(find(ITEMS, "Service", "search"))
    assert absent_reason(pod_from_dict(raw), svc) == reason


def test_endpoint_conditions_default_like_kube_proxy() -> None:
    raw = copy.deepcopy(find(ITEMS, "EndpointSlice", "orders-lmblr"))
    raw["endpoints"][0]["conditions"] = {}
    c = endpointslice_from_dict(raw).endpoints[0].conditions
    assert (c.ready, c.serving, c.terminating) == (True, True, False)


def test_service_port_name() -> None:
    assert service_port_name(PUB, "search", "grpc") == "svctrace-pub/search:grpc"
    assert service_port_name(PUB, "search", None) == "svctrace-pub/search"


@pytest.mark.parametrize("path,value", [
    (("spec", "ports", 0, "port"), "eighty"),
    (("spec", "ports"), {"port": 80}),
    (("metadata", "name"), None),
], ids=["port-not-int", "ports-not-list", "no-name"])
def test_malformed_service_raises_conversion_error(path: tuple, value: object) -> None:
    raw = copy.deepcopy(find(ITEMS, "Service", "search"))
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ConversionError):
        service_from_dict(raw)
