"""The joins behind `explain`: service port → container port, endpoint ↔ pod, the endpoints
kube-proxy would use, and the pods that almost match a selector. Pure functions on the model.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from svctrace.model.cluster import (
    Endpoint,
    EndpointPort,
    EndpointSlice,
    Pod,
    Service,
    ServicePort,
    ServiceView,
)

# Labels that a controller adds to every pod; never what a selector was meant to say.
GENERATED_LABELS = ("pod-template-hash", "controller-revision-hash",
                    "statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index",
                    "topology.kubernetes.io/zone")


@dataclass(frozen=True)
class PortResolution:
    """Where one service port lands on one pod.

    status: `ok`; `undeclared` (numeric targetPort no container declares: traffic still goes
    there); `not-exposed` (named targetPort no container declares: no endpoint port);
    `protocol-mismatch` (declared, but only with another protocol).
    """

    service_port: ServicePort
    pod: str
    container: str | None
    container_port: int | None
    protocol: str
    status: str


def resolve_target_port(pod: Pod, port: ServicePort) -> PortResolution:
    """Resolve a targetPort on a pod the way the EndpointSlice controller does (FindPort:
    a named port must match name and protocol; a number is used as is)."""
    target = port.target_port
    if isinstance(target, str):
        same = [(c, p) for c, p in pod.declared_ports() if p.name == target]
    else:
        same = [(c, p) for c, p in pod.declared_ports() if p.container_port == target]
    hit = next(((c, p) for c, p in same if p.protocol == port.protocol), None)
    if hit:
        return PortResolution(port, pod.name, hit[0], hit[1].container_port, port.protocol, "ok")
    if same:
        c, p = same[0]
        return PortResolution(port, pod.name, c, p.container_port, p.protocol,
                              "protocol-mismatch")
    if isinstance(target, str):
        return PortResolution(port, pod.name, None, None, port.protocol, "not-exposed")
    return PortResolution(port, pod.name, None, target, port.protocol, "undeclared")


@dataclass(frozen=True)
class EndpointRow:
    """One endpoint of one slice, joined to its pod when there is one."""

    slice: str
    endpoint: Endpoint
    ports: tuple[EndpointPort, ...]
    pod: Pod | None


def join_endpoints(view: ServiceView) -> list[EndpointRow]:
    """Every endpoint of the Service's slices with its pod (by targetRef, else by IP)."""
    by_name = {p.name: p for p in view.pods}
    by_ip = {ip: p for p in view.pods for ip in p.ips}
    rows = []
    for s in view.slices:
        for ep in s.endpoints:
            ref = ep.target_ref
            pod = by_name.get(ref.name or "") if ref and ref.kind == "Pod" else None
            pod = pod or next((by_ip[a] for a in ep.addresses if a in by_ip), None)
            rows.append(EndpointRow(s.name, ep, s.ports, pod))
    return sorted(rows, key=lambda r: (_ip_key(r.endpoint.addresses), r.slice))


def _ip_key(addresses: tuple[str, ...]) -> tuple[int, ...]:
    import ipaddress
    try:
        ip = ipaddress.ip_address(addresses[0])
        return (ip.version, int(ip))
    except (ValueError, IndexError):
        return (9, 0)


def absent_reason(pod: Pod, service: Service) -> str:
    """Why a selected pod is in no EndpointSlice, as far as the objects tell."""
    if pod.phase in ("Succeeded", "Failed"):
        return f"pod phase is {pod.phase}"
    if not pod.ips:
        return f"pod has no IP yet (phase {pod.phase})"
    if pod.is_terminating:
        return "pod is being deleted"
    if not pod.ready and not service.publish_not_ready_addresses:
        return "pod is not ready"
    return "not in any EndpointSlice yet (the EndpointSlice controller may be lagging)"


def slice_serves(slice_: EndpointSlice, port: ServicePort) -> EndpointPort | None:
    """The slice port that carries a service port (kube-proxy joins them by port name)."""
    return next((p for p in slice_.ports
                 if p.name == port.name and p.protocol == port.protocol and p.port), None)


def usable_endpoints(view: ServiceView, port: ServicePort,
                     node: str | None = None) -> list[Endpoint]:
    """The endpoints kube-proxy would send this service port's traffic to (optionally only
    those on `node`): the ready ones, or when none is ready, the serving terminating ones
    (pkg/proxy/topology.go, ProxyTerminatingEndpoints)."""
    candidates = [ep for s in view.slices if slice_serves(s, port) for ep in s.endpoints
                  if node is None or ep.node_name == node]
    ready = [ep for ep in candidates if ep.conditions.ready]
    return ready or [ep for ep in candidates
                     if ep.conditions.serving and ep.conditions.terminating]


@dataclass(frozen=True)
class NearMiss:
    """A pod one label off the selector: `key` wants `expected`; the pod has `actual_key` =
    `actual` (a different value, or the expected value under a similar key), or neither."""

    pod: str
    key: str
    expected: str
    actual_key: str | None
    actual: str | None


def _similar(a: str, b: str) -> bool:
    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.6 or a in b or b in a


def near_miss(selector: dict[str, str], pod: Pod) -> NearMiss | None:
    """The one label that keeps `pod` out of `selector`, or None when it is not one label off.
    With a one-key selector any pod is "one off", so there the difference must look like a
    typo (a similar value, or the expected value under a similar key)."""
    diffs = [k for k, v in selector.items() if pod.labels.get(k) != v]
    if len(diffs) != 1:
        return None
    key, want = diffs[0], selector[diffs[0]]
    have = pod.labels.get(key)
    if have is not None:
        ok = len(selector) > 1 or _similar(have, want)
        return NearMiss(pod.name, key, want, key, have) if ok else None
    alt = sorted(k for k, v in pod.labels.items() if v == want and _similar(k, key))
    if alt:
        return NearMiss(pod.name, key, want, alt[0], want)
    return NearMiss(pod.name, key, want, None, None) if len(selector) > 1 else None


def near_misses(selector: dict[str, str], pods: tuple[Pod, ...]) -> list[NearMiss]:
    found = (near_miss(selector, p) for p in pods)
    return [m for m in found if m is not None]


def workload_of(pod: Pod) -> str:
    """The workload that owns a pod, kubectl-style: `deployment/web`, `statefulset/db`…"""
    kind, name = pod.owner_kind, pod.owner_name
    pth = pod.labels.get("pod-template-hash")
    if kind == "ReplicaSet" and name and pth and name.endswith(f"-{pth}"):
        return f"deployment/{name[: -len(pth) - 1]}"
    if kind and name:
        return f"{kind.lower()}/{name}"
    if pth and f"-{pth}-" in pod.name:     # no owner recorded: read the Deployment's naming
        return f"deployment/{pod.name.rsplit(f'-{pth}-', 1)[0]}"
    return f"pod/{pod.name}"


def suggested_workloads(service: Service, pods: tuple[Pod, ...]) -> list[str]:
    """Workloads the Service's name suggests, with the labels their pods really carry."""
    out: dict[str, str] = {}
    for pod in pods:
        workload = workload_of(pod)
        named = workload.split("/", 1)[1]
        app = pod.labels.get("app.kubernetes.io/name") or pod.labels.get("app")
        if service.name in (named, app) or named.startswith(f"{service.name}-"):
            labels = {k: v for k, v in pod.labels.items() if k not in GENERATED_LABELS}
            text = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            out.setdefault(workload, f"{workload} (pod labels {text})")
    return [out[k] for k in sorted(out)]
