"""Kubernetes objects as svctrace sees them: frozen dataclasses, no I/O.

Only the fields that explain how a Service is implemented are kept. Label maps are plain
dicts (read-only by convention), so these objects compare by value but are not hashable.
Defaults follow the API's own: an unset endpoint condition means what kube-proxy takes it
to mean (pkg/proxy/endpointslicecache.go: ready/serving default true, terminating false).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ZONE_LABEL = "topology.kubernetes.io/zone"


def service_port_name(namespace: str, name: str, port_name: str | None) -> str:
    """kube-proxy's "service port name": `ns/svc:port`, or `ns/svc` for an unnamed port."""
    base = f"{namespace}/{name}"
    return f"{base}:{port_name}" if port_name else base


def selector_text(selector: dict[str, str]) -> str:
    """A label selector in kubectl's `-l` syntax, keys sorted: `app=web,tier=backend`."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a (non-empty) equality selector matches a label set."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# --- Service -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ServicePort:
    name: str | None
    protocol: str
    port: int
    target_port: int | str          # a number, or the name of a container port
    node_port: int | None = None
    app_protocol: str | None = None


@dataclass(frozen=True)
class LoadBalancerIngress:
    ip: str | None = None
    hostname: str | None = None
    ip_mode: str | None = None


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    type: str = "ClusterIP"
    cluster_ips: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    selector: dict[str, str] = field(default_factory=dict)
    external_ips: tuple[str, ...] = ()
    external_name: str | None = None
    lb_ingress: tuple[LoadBalancerIngress, ...] = ()
    lb_source_ranges: tuple[str, ...] = ()
    session_affinity: str = "None"
    session_affinity_timeout: int | None = None
    external_traffic_policy: str | None = None
    internal_traffic_policy: str | None = None
    ip_families: tuple[str, ...] = ()
    ip_family_policy: str | None = None
    health_check_node_port: int | None = None
    publish_not_ready_addresses: bool = False
    creation_timestamp: str | None = None

    @property
    def is_headless(self) -> bool:
        """clusterIP None: DNS returns the endpoints, kube-proxy programs nothing."""
        return self.type != "ExternalName" and self.cluster_ips[:1] == ("None",)

    @property
    def is_external_name(self) -> bool:
        """type ExternalName: a DNS alias (CNAME), no endpoints and no rules."""
        return self.type == "ExternalName"

    def port_name(self, port: ServicePort) -> str:
        """The service port name of one of this Service's ports."""
        return service_port_name(self.namespace, self.name, port.name)


# --- Pod ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContainerPort:
    name: str | None
    container_port: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Container:
    name: str
    ports: tuple[ContainerPort, ...] = ()


@dataclass(frozen=True)
class ContainerStatus:
    name: str
    ready: bool = False
    restart_count: int = 0
    state: str = "unknown"                  # running | waiting | terminated | unknown
    state_reason: str | None = None         # e.g. CrashLoopBackOff, ContainerCreating
    last_termination_reason: str | None = None   # e.g. OOMKilled, Error
    last_exit_code: int | None = None


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    ips: tuple[str, ...] = ()
    node_name: str | None = None
    phase: str = "Unknown"
    ready: bool = False
    containers: tuple[Container, ...] = ()
    container_statuses: tuple[ContainerStatus, ...] = ()
    deletion_timestamp: str | None = None
    creation_timestamp: str | None = None
    uid: str | None = None
    owner_kind: str | None = None
    owner_name: str | None = None

    @property
    def ip(self) -> str | None:
        return self.ips[0] if self.ips else None

    @property
    def restarts(self) -> int:
        return sum(s.restart_count for s in self.container_statuses)

    @property
    def is_terminating(self) -> bool:
        return self.deletion_timestamp is not None

    def declared_ports(self) -> list[tuple[str, ContainerPort]]:
        """Every (container name, port) the pod's containers declare, in spec order."""
        return [(c.name, p) for c in self.containers for p in c.ports]


# --- EndpointSlice -----------------------------------------------------------------------

@dataclass(frozen=True)
class EndpointConditions:
    ready: bool = True
    serving: bool = True
    terminating: bool = False


@dataclass(frozen=True)
class TargetRef:
    kind: str | None
    name: str | None
    namespace: str | None = None
    uid: str | None = None


@dataclass(frozen=True)
class Endpoint:
    addresses: tuple[str, ...]
    conditions: EndpointConditions = EndpointConditions()
    node_name: str | None = None
    zone: str | None = None
    hostname: str | None = None
    target_ref: TargetRef | None = None
    hints_zones: tuple[str, ...] = ()
    hints_nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class EndpointPort:
    name: str | None
    port: int | None
    protocol: str = "TCP"


@dataclass(frozen=True)
class EndpointSlice:
    name: str
    namespace: str
    address_type: str
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    service_name: str | None = None
    managed_by: str | None = None


# --- Node --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    name: str
    internal_ips: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()
    ready: bool | None = None               # None: no Ready condition reported
    pod_cidrs: tuple[str, ...] = ()
    zone: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


# --- Bundles -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ServiceView:
    """Everything the API says about one Service: the input of `explain`.

    `pods` are the pods the selector matches. `other_pods` are the namespace's other pods,
    present only when the selector matches none (they are where near misses come from).
    `nodes` is every node known (empty with `nodes_known` False when nodes could not be read).
    """

    service: Service
    slices: tuple[EndpointSlice, ...] = ()
    pods: tuple[Pod, ...] = ()
    nodes: tuple[Node, ...] = ()
    other_pods: tuple[Pod, ...] = ()
    nodes_known: bool = True
    source: str = "live"                    # "live" or "snapshot FILE"
    notes: tuple[str, ...] = ()             # degradations worth telling the user
    observed_at: str | None = None          # capture time of a snapshot (RFC 3339)

    def node(self, name: str | None) -> Node | None:
        return _node_index(self.nodes).get(name) if name is not None else None


_INDEXED: tuple[tuple[Node, ...], dict[str, Node]] = ((), {})


def _node_index(nodes: tuple[Node, ...]) -> dict[str, Node]:
    """name → the first node of that name. doctor cuts 10,000 views that share one tuple of
    1,000 nodes: the index of the last tuple asked for is kept (a tuple does not change)."""
    global _INDEXED
    known, index = _INDEXED
    if known is not nodes:
        index = {}
        for n in nodes:
            index.setdefault(n.name, n)
        _INDEXED = (nodes, index)
    return index


@dataclass(frozen=True)
class ClusterState:
    """A bag of API objects (a snapshot), from which a ServiceView is cut."""

    services: tuple[Service, ...] = ()
    slices: tuple[EndpointSlice, ...] = ()
    pods: tuple[Pod, ...] = ()
    nodes: tuple[Node, ...] = ()
    cluster_version: str | None = None
    captured_at: str | None = None
    namespace: str | None = None            # the namespace a `svctrace snapshot` was taken in
    source: str = "snapshot"

    def find_services(self, name: str, namespace: str | None = None) -> list[Service]:
        return [s for s in self.services
                if s.name == name and (namespace is None or s.namespace == namespace)]
