"""Cluster checks: every finding has a case that produces it and one that must not. Cases
come from the real fixtures; variants are copies of fixture objects, modified here."""

from __future__ import annotations

from typing import Any

import pytest
from clusterkit import DEMO_NS, PUB, find, fixture_items

from svctrace.cluster.convert import (
    assemble_view,
    endpointslice_from_dict,
    node_from_dict,
    pod_from_dict,
    service_from_dict,
)
from svctrace.diagnose.cluster import explain_cluster
from svctrace.model.findings import Severity


def view_of(items: list[dict], name: str, namespace: str = PUB) -> Any:
    objs = [i for i in items if i["metadata"].get("namespace") in (namespace, None)]
    svc = find(objs, "Service", name, namespace)
    return assemble_view(service_from_dict(svc),
                         [endpointslice_from_dict(i) for i in objs if i["kind"] == "EndpointSlice"],
                         [pod_from_dict(i) for i in objs if i["kind"] == "Pod"],
                         [node_from_dict(i) for i in objs if i["kind"] == "Node"])


def findings_of(items: list[dict], name: str, namespace: str = PUB) -> dict[str, Severity]:
    return {f.id: f.severity for f in explain_cluster(view_of(items, name, namespace)).findings}


# --- variants: copies of fixture objects with one thing changed --------------------------

def _pods(items: list[dict], app: str) -> list[dict]:
    return [i for i in items if i["kind"] == "Pod" and i["metadata"]["labels"].get("app") == app]


def all_db_pods_not_ready(items: list[dict]) -> None:
    for pod in _pods(items, "db"):
        for cond in pod["status"]["conditions"]:
            if cond["type"] == "Ready":
                cond["status"] = "False"


def web_pods_udp(items: list[dict]) -> None:
    for pod in _pods(items, "web"):
        pod["spec"]["containers"][0]["ports"][0]["protocol"] = "UDP"


def web_named_target(items: list[dict]) -> None:
    find(items, "Service", "web", DEMO_NS)["spec"]["ports"][0]["targetPort"] = "http"


def web_named_target_udp_pods(items: list[dict]) -> None:
    web_named_target(items)
    web_pods_udp(items)


def web_named_target_typo(items: list[dict]) -> None:
    find(items, "Service", "web", DEMO_NS)["spec"]["ports"][0]["targetPort"] = "htpp"


def edge_all_ready(items: list[dict]) -> None:
    slice_ = next(i for i in items if i["kind"] == "EndpointSlice"
                  and i["metadata"]["labels"].get("kubernetes.io/service-name") == "edge")
    for ep in slice_["endpoints"]:
        ep["conditions"] = {"ready": True, "serving": True, "terminating": False}


def node_cache_itp_cluster(items: list[dict]) -> None:
    find(items, "Service", "node-cache")["spec"]["internalTrafficPolicy"] = "Cluster"


def orders_second_ready(items: list[dict]) -> None:
    slice_ = next(i for i in items if i["kind"] == "EndpointSlice"
                  and i["metadata"]["labels"].get("kubernetes.io/service-name") == "orders")
    for ep in slice_["endpoints"]:
        ep["conditions"] = {}            # unset conditions: kube's defaults, ready & serving


def web_np_etp_local_one_node(items: list[dict]) -> None:
    find(items, "Service", "web-np", DEMO_NS)["spec"]["externalTrafficPolicy"] = "Local"
    slice_ = next(i for i in items if i["kind"] == "EndpointSlice"
                  and i["metadata"]["labels"].get("kubernetes.io/service-name") == "web-np")
    slice_["endpoints"] = [e for e in slice_["endpoints"] if e["nodeName"] == "node1"]


def web_np_etp_local(items: list[dict]) -> None:
    find(items, "Service", "web-np", DEMO_NS)["spec"]["externalTrafficPolicy"] = "Local"


def billing_selector_fixed(items: list[dict]) -> None:
    find(items, "Service", "billing")["spec"]["selector"]["tier"] = "backend"


CASES = [
    # (id, service, namespace, variant, finding, expected severity or None = must not appear)
    ("no-selector/ext-db", "ext-db", DEMO_NS, None, "SVC-NO-SELECTOR", Severity.INFO),
    ("no-selector/not-web", "web", DEMO_NS, None, "SVC-NO-SELECTOR", None),
    ("headless/queue", "queue", PUB, None, "SVC-HEADLESS", Severity.INFO),
    ("headless/not-search", "search", PUB, None, "SVC-HEADLESS", None),
    ("external-name/mail", "mail", PUB, None, "SVC-EXTERNAL-NAME", Severity.INFO),
    ("external-name/not-queue", "queue", PUB, None, "SVC-EXTERNAL-NAME", None),
    ("no-pods/billing-typo", "billing", PUB, None, "SVC-NO-MATCHING-PODS", Severity.ERROR),
    ("no-pods/noendpoints", "noendpoints", DEMO_NS, None, "SVC-NO-MATCHING-PODS",
     Severity.ERROR),
    ("no-pods/not-billing-fixed", "billing", PUB, billing_selector_fixed,
     "SVC-NO-MATCHING-PODS", None),
    ("no-pods/not-ext-db", "ext-db", DEMO_NS, None, "SVC-NO-MATCHING-PODS", None),
    ("not-ready/inventory-some", "inventory", PUB, None, "SVC-PODS-NOT-READY", Severity.WARNING),
    ("not-ready/edge-crashloop", "edge", PUB, None, "SVC-PODS-NOT-READY", Severity.WARNING),
    ("not-ready/db-none-ready", "db", DEMO_NS, all_db_pods_not_ready, "SVC-PODS-NOT-READY",
     Severity.ERROR),
    ("not-ready/not-web", "web", DEMO_NS, None, "SVC-PODS-NOT-READY", None),
    ("not-ready/not-orders-terminating", "orders", PUB, None, "SVC-PODS-NOT-READY", None),
    ("targetport/metrics-named", "metrics", PUB, None, "SVC-TARGETPORT-NOT-EXPOSED",
     Severity.ERROR),
    ("targetport/web-named-typo", "web", DEMO_NS, web_named_target_typo,
     "SVC-TARGETPORT-NOT-EXPOSED", Severity.ERROR),
    ("targetport/web-named-udp", "web", DEMO_NS, web_named_target_udp_pods,
     "SVC-TARGETPORT-NOT-EXPOSED", Severity.ERROR),
    ("targetport/web-numeric-udp", "web", DEMO_NS, web_pods_udp,
     "SVC-TARGETPORT-NOT-EXPOSED", Severity.WARNING),
    ("targetport/not-web-named", "web", DEMO_NS, web_named_target,
     "SVC-TARGETPORT-NOT-EXPOSED", None),
    ("targetport/not-storefront-named", "storefront", PUB, None,
     "SVC-TARGETPORT-NOT-EXPOSED", None),
    ("targetport/not-dns-cache-udp", "dns-cache", PUB, None, "SVC-TARGETPORT-NOT-EXPOSED",
     None),
    ("no-endpoints/billing", "billing", PUB, None, "SVC-NO-ENDPOINTS", Severity.ERROR),
    ("no-endpoints/metrics-ports-null", "metrics", PUB, None, "SVC-NO-ENDPOINTS",
     Severity.ERROR),
    ("no-endpoints/not-orders", "orders", PUB, None, "SVC-NO-ENDPOINTS", None),
    ("no-endpoints/not-mail", "mail", PUB, None, "SVC-NO-ENDPOINTS", None),
    ("no-endpoints/not-ext-db", "ext-db", DEMO_NS, None, "SVC-NO-ENDPOINTS", None),
    ("terminating/orders", "orders", PUB, None, "SVC-ENDPOINT-TERMINATING", Severity.INFO),
    ("terminating/not-web", "web", DEMO_NS, None, "SVC-ENDPOINT-TERMINATING", None),
    ("etp-local/edge", "edge", PUB, None, "SVC-ETP-LOCAL-NO-LOCAL-ENDPOINTS",
     Severity.WARNING),
    ("etp-local/web-np-one-node", "web-np", DEMO_NS, web_np_etp_local_one_node,
     "SVC-ETP-LOCAL-NO-LOCAL-ENDPOINTS", Severity.WARNING),
    ("etp-local/not-edge-all-ready", "edge", PUB, edge_all_ready,
     "SVC-ETP-LOCAL-NO-LOCAL-ENDPOINTS", None),
    ("etp-local/not-web-np-both-nodes", "web-np", DEMO_NS, web_np_etp_local,
     "SVC-ETP-LOCAL-NO-LOCAL-ENDPOINTS", None),
    ("itp-local/node-cache", "node-cache", PUB, None, "SVC-ITP-LOCAL-NO-LOCAL-ENDPOINTS",
     Severity.WARNING),
    ("itp-local/not-node-cache-cluster", "node-cache", PUB, node_cache_itp_cluster,
     "SVC-ITP-LOCAL-NO-LOCAL-ENDPOINTS", None),
    ("single/orders", "orders", PUB, None, "SVC-SINGLE-ENDPOINT", Severity.INFO),
    ("single/db", "db", DEMO_NS, None, "SVC-SINGLE-ENDPOINT", Severity.INFO),
    ("single/not-orders-two-ready", "orders", PUB, orders_second_ready, "SVC-SINGLE-ENDPOINT",
     None),
    ("single/not-inventory", "inventory", PUB, None, "SVC-SINGLE-ENDPOINT", None),
]


@pytest.mark.parametrize("name,namespace,variant,finding,severity",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_finding(name: str, namespace: str, variant: Any, finding: str,
                 severity: Severity | None) -> None:
    items = fixture_items()
    if variant:
        variant(items)
    found = findings_of(items, name, namespace)
    assert found.get(finding) == severity, found


CLEAN = [("web", DEMO_NS), ("web-np", DEMO_NS), ("search", PUB), ("ledger", PUB),
         ("sessions", PUB), ("storefront", PUB), ("dns-cache", PUB)]


@pytest.mark.parametrize("name,namespace", CLEAN, ids=[c[0] for c in CLEAN])
def test_healthy_services_have_no_findings(name: str, namespace: str) -> None:
    assert findings_of(fixture_items(), name, namespace) == {}


def test_traffic_policy_findings_name_the_dropping_nodes() -> None:
    items = fixture_items()
    edge = explain_cluster(view_of(items, "edge")).findings
    etp = next(f for f in edge if f.id == "SVC-ETP-LOCAL-NO-LOCAL-ENDPOINTS")
    assert "node2" in etp.message and "node1" not in etp.message
    cache = explain_cluster(view_of(items, "node-cache")).findings
    itp = next(f for f in cache if f.id == "SVC-ITP-LOCAL-NO-LOCAL-ENDPOINTS")
    assert "node1" in itp.message and "node2" not in itp.message


def test_every_finding_has_evidence_and_a_command() -> None:
    items = fixture_items()
    for name, ns in [("billing", PUB), ("metrics", PUB), ("edge", PUB), ("orders", PUB),
                     ("node-cache", PUB), ("queue", PUB), ("mail", PUB), ("ext-db", DEMO_NS)]:
        for f in explain_cluster(view_of(items, name, ns)).findings:
            assert f.evidence and f.command and f.command.startswith("kubectl "), f


def test_pods_not_ready_evidence_names_container_state() -> None:
    f = next(f for f in explain_cluster(view_of(fixture_items(), "inventory")).findings
             if f.id == "SVC-PODS-NOT-READY")
    assert any("CrashLoopBackOff" in e and "OOMKilled" in e and "137" in e for e in f.evidence)


def test_findings_are_sorted_worst_first() -> None:
    findings = explain_cluster(view_of(fixture_items(), "edge")).findings
    assert [f.severity for f in findings] == sorted((f.severity for f in findings),
                                                    reverse=True)
