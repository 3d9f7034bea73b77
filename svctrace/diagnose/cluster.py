"""Cluster-side checks of one Service: the model in, findings with stable ids out.

`explain_cluster(view)` joins the objects (pods ↔ endpoints, ports) and runs every check in
CHECKS; each check is a small function of the explanation that returns findings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from shlex import quote

from svctrace.diagnose.joins import (
    EndpointRow,
    NearMiss,
    PortResolution,
    absent_reason,
    join_endpoints,
    near_misses,
    resolve_target_port,
    suggested_workloads,
    usable_endpoints,
)
from svctrace.model.cluster import Pod, Service, ServiceView, selector_text
from svctrace.model.findings import Finding, Severity

MAX_EVIDENCE = 10


@dataclass(frozen=True)
class PodRow:
    """A selected pod with what explain says about it."""

    pod: Pod
    node_ready: bool | None
    endpoint_slices: tuple[str, ...]        # slices that list it
    absent_reason: str | None               # why it is in no slice, when it is in none
    ports: tuple[PortResolution, ...]       # one per service port


@dataclass(frozen=True)
class ClusterExplanation:
    """The cluster half of `explain`: joins and findings for one ServiceView."""

    view: ServiceView
    pods: tuple[PodRow, ...]
    endpoints: tuple[EndpointRow, ...]
    near_misses: tuple[NearMiss, ...]
    suggested_workloads: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def service(self) -> Service:
        return self.view.service


def explain_cluster(view: ServiceView) -> ClusterExplanation:
    """Join the objects of a ServiceView and run the cluster checks."""
    endpoints = tuple(join_endpoints(view))
    svc = view.service
    no_pods = bool(svc.selector) and not view.pods
    partial = ClusterExplanation(
        view=view, pods=tuple(_pod_row(view, p, endpoints) for p in view.pods),
        endpoints=endpoints,
        near_misses=tuple(near_misses(svc.selector, view.other_pods)) if no_pods else (),
        suggested_workloads=tuple(suggested_workloads(svc, view.other_pods)) if no_pods else (),
        findings=())
    findings = [f for check in CHECKS for f in check(partial)]
    return ClusterExplanation(**{**partial.__dict__, "findings": tuple(sort_findings(findings))})


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Worst first, then by id and message: a stable order for every output."""
    return sorted(findings, key=lambda f: (-int(f.severity), f.id, f.message))


def _pod_row(view: ServiceView, pod: Pod, endpoints: tuple[EndpointRow, ...]) -> PodRow:
    slices = tuple(sorted({r.slice for r in endpoints if r.pod is pod}))
    node = view.node(pod.node_name)
    return PodRow(pod=pod, node_ready=node.ready if node else None, endpoint_slices=slices,
                  absent_reason=None if slices else absent_reason(pod, view.service),
                  ports=tuple(resolve_target_port(pod, sp) for sp in view.service.ports))


# --- kubectl commands that show the evidence by hand -------------------------------------

# Every name is shell-quoted: the commands are meant to be pasted, and a crafted object name
# must not become shell syntax (`web;touch pwned`).

def _ns(svc: Service) -> str:
    return f"-n {quote(svc.namespace)}"


def _cmd_svc(svc: Service) -> str:
    return f"kubectl get service {quote(svc.name)} {_ns(svc)} -o yaml"


def _slice_label(svc: Service) -> str:
    return quote(f"kubernetes.io/service-name={svc.name}")


def _cmd_slices(svc: Service) -> str:
    return f"kubectl get endpointslices {_ns(svc)} -l {_slice_label(svc)} -o yaml"


def _pods_selected(svc: Service) -> str:
    return f"kubectl get pods {_ns(svc)} -l {quote(selector_text(svc.selector))}"


def _cmd_pods(svc: Service) -> str:
    return f"{_pods_selected(svc)} -o wide"


def _capped(lines: list[str]) -> tuple[str, ...]:
    if len(lines) <= MAX_EVIDENCE:
        return tuple(lines)
    return tuple(lines[:MAX_EVIDENCE]) + (f"… and {len(lines) - MAX_EVIDENCE} more",)


# --- checks ------------------------------------------------------------------------------

def check_service_kind(ex: ClusterExplanation) -> list[Finding]:
    """ExternalName and headless Services are what they are, not errors."""
    svc = ex.service
    if svc.is_external_name:
        return [Finding("SVC-EXTERNAL-NAME", Severity.INFO,
                        f"ExternalName Service: a DNS alias (CNAME) for {svc.external_name}; "
                        "no virtual IP, no endpoints, no kube-proxy rules",
                        (f"spec.externalName: {svc.external_name}",), _cmd_svc(svc))]
    if svc.is_headless:
        return [Finding("SVC-HEADLESS", Severity.INFO,
                        "headless Service (clusterIP None): DNS returns the endpoint addresses; "
                        "kube-proxy programs no rules", ("spec.clusterIP: None",), _cmd_svc(svc))]
    return []


def check_selector(ex: ClusterExplanation) -> list[Finding]:
    svc = ex.service
    if svc.is_external_name:
        return []
    if not svc.selector:
        return [Finding("SVC-NO-SELECTOR", Severity.INFO,
                        "no selector: endpoints come from EndpointSlices written by hand or by "
                        "another controller, not from pods",
                        (f"{len(ex.endpoints)} endpoint(s) in {len(ex.view.slices)} slice(s)",),
                        _cmd_slices(svc))]
    if ex.view.pods:
        return []
    evidence = [f"selector {selector_text(svc.selector)} matches no pod in {svc.namespace}"]
    evidence += _capped([_near_miss_text(m) for m in ex.near_misses])
    evidence += [f"the Service's name suggests {w}" for w in ex.suggested_workloads]
    return [Finding("SVC-NO-MATCHING-PODS", Severity.ERROR,
                    f"the selector {selector_text(svc.selector)} matches no pod",
                    tuple(evidence), f"kubectl get pods {_ns(svc)} --show-labels")]


def _near_miss_text(m: NearMiss) -> str:
    if m.actual_key is None:
        return f"pod {m.pod} lacks label {m.key} (selector wants {m.key}={m.expected})"
    return f"pod {m.pod} has {m.actual_key}={m.actual}, the selector wants {m.key}={m.expected}"


def _pod_state(pod: Pod) -> str:
    parts = [f"phase {pod.phase}"]
    for st in pod.container_statuses:
        if st.state_reason:
            parts.append(f"{st.name}: {st.state} ({st.state_reason})")
        if st.last_termination_reason:
            parts.append(f"last terminated {st.last_termination_reason} "
                         f"(exit {st.last_exit_code})")
    parts.append(f"restarts {pod.restarts}")
    return ", ".join(parts)


def check_pods_ready(ex: ClusterExplanation) -> list[Finding]:
    pods = [p for p in ex.view.pods if not p.is_terminating]
    not_ready = [p for p in pods if not p.ready]
    if not not_ready:
        return []
    none_ready = len(not_ready) == len(pods)
    sev = Severity.ERROR if none_ready else Severity.WARNING
    evidence = [f"{p.name} on {p.node_name or '(no node)'}: {_pod_state(p)}" for p in not_ready]
    return [Finding("SVC-PODS-NOT-READY", sev,
                    f"{len(not_ready)} of {len(pods)} selected pods are not ready",
                    _capped(evidence), _cmd_pods(ex.service))]


def check_target_ports(ex: ClusterExplanation) -> list[Finding]:
    bad = [r for row in ex.pods for r in row.ports
           if r.status in ("not-exposed", "protocol-mismatch")]
    if not bad:
        return []
    named = any(isinstance(r.service_port.target_port, str) or r.status == "not-exposed"
                for r in bad)
    ports = sorted({ex.service.port_name(r.service_port) for r in bad})
    evidence = [_port_text(r) for r in bad]
    return [Finding("SVC-TARGETPORT-NOT-EXPOSED", Severity.ERROR if named else Severity.WARNING,
                    f"targetPort of {', '.join(ports)} is not exposed by "
                    f"{len({r.pod for r in bad})} pod(s)", _capped(evidence),
                    _pods_selected(ex.service) + " -o jsonpath='{range .items[*]}"
                    "{.metadata.name}{\"\\t\"}"
                    "{.spec.containers[*].ports}{\"\\n\"}{end}'")]


def _port_text(r: PortResolution) -> str:
    sp = r.service_port
    if r.status == "not-exposed":
        return f"{r.pod}: no container declares a port named {sp.target_port!r}"
    return (f"{r.pod}: container {r.container} declares {r.container_port}/{r.protocol}, "
            f"the Service port is {sp.protocol}")


def check_endpoints(ex: ClusterExplanation) -> list[Finding]:
    svc = ex.service
    if svc.is_external_name:
        return []
    empty = [sp for sp in svc.ports if not usable_endpoints(ex.view, sp)]
    if not empty and svc.ports:
        return []
    names = ", ".join(svc.port_name(sp) for sp in empty) or svc.name
    evidence = [f"{len(ex.view.slices)} EndpointSlice(s), {len(ex.endpoints)} endpoint(s), "
                f"{sum(r.endpoint.conditions.ready for r in ex.endpoints)} ready"]
    evidence += [f"slice {s.name} has no ports" for s in ex.view.slices
                 if s.endpoints and not s.ports]
    return [Finding("SVC-NO-ENDPOINTS", Severity.ERROR,
                    f"{names} has no endpoints: connections are rejected", tuple(evidence),
                    _cmd_slices(svc))]


def check_terminating(ex: ClusterExplanation) -> list[Finding]:
    rows = [r for r in ex.endpoints if r.endpoint.conditions.terminating]
    if not rows:
        return []
    evidence = [f"{','.join(r.endpoint.addresses)} ({r.pod.name if r.pod else 'no pod'}) on "
                f"{r.endpoint.node_name or '?'}: serving={r.endpoint.conditions.serving}"
                for r in rows]
    return [Finding("SVC-ENDPOINT-TERMINATING", Severity.INFO,
                    f"{len(rows)} endpoint(s) terminating: used only while no endpoint is ready",
                    _capped(evidence), _cmd_slices(ex.service))]


def _known_nodes(ex: ClusterExplanation) -> list[str]:
    names = {n.name for n in ex.view.nodes}
    names |= {p.node_name for p in ex.view.pods if p.node_name}
    names |= {r.endpoint.node_name for r in ex.endpoints if r.endpoint.node_name}
    return sorted(names)


def _local_policy(ex: ClusterExplanation, fid: str, policy: str, traffic: str) -> list[Finding]:
    svc = ex.service
    nodes = _known_nodes(ex)
    dropping: set[str] = set()
    for sp in svc.ports:
        if usable_endpoints(ex.view, sp):     # none at all is SVC-NO-ENDPOINTS' business
            dropping |= {n for n in nodes if not usable_endpoints(ex.view, sp, n)}
    if not dropping:
        return []
    evidence = [f"{n}: no ready local endpoint" for n in sorted(dropping)]
    if not ex.view.nodes_known:
        evidence.append("the node list was not readable: only nodes seen on pods and "
                        "endpoints were checked")
    return [Finding(fid, Severity.WARNING,
                    f"{policy}=Local: {traffic} arriving at {', '.join(sorted(dropping))} "
                    "is dropped (no local endpoint there)", tuple(evidence),
                    f"kubectl get endpointslices {_ns(svc)} -l {_slice_label(svc)} "
                    "-o custom-columns=ADDR:.endpoints[*].addresses,"
                    "NODE:.endpoints[*].nodeName,READY:.endpoints[*].conditions.ready")]


def check_external_policy(ex: ClusterExplanation) -> list[Finding]:
    svc = ex.service
    if svc.external_traffic_policy != "Local" or svc.type not in ("NodePort", "LoadBalancer"):
        return []
    return _local_policy(ex, "SVC-ETP-LOCAL-NO-LOCAL-ENDPOINTS", "externalTrafficPolicy",
                         "external traffic (NodePort, load balancer)")


def check_internal_policy(ex: ClusterExplanation) -> list[Finding]:
    svc = ex.service
    if svc.internal_traffic_policy != "Local" or svc.is_headless or svc.is_external_name:
        return []
    return _local_policy(ex, "SVC-ITP-LOCAL-NO-LOCAL-ENDPOINTS", "internalTrafficPolicy",
                         "ClusterIP traffic from pods")


def check_single_endpoint(ex: ClusterExplanation) -> list[Finding]:
    ready = {r.endpoint.addresses for r in ex.endpoints if r.endpoint.conditions.ready}
    if len(ready) != 1 or ex.service.is_external_name:
        return []
    (addresses,) = ready
    return [Finding("SVC-SINGLE-ENDPOINT", Severity.INFO,
                    "only one ready endpoint: no redundancy behind this Service",
                    (f"ready endpoint {','.join(addresses)}",), _cmd_slices(ex.service))]


CHECKS: tuple[Callable[[ClusterExplanation], list[Finding]], ...] = (
    check_service_kind, check_selector, check_pods_ready, check_target_ports,
    check_endpoints, check_terminating, check_external_policy, check_internal_policy,
    check_single_endpoint,
)
