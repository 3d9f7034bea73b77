"""The one converter: API objects as plain JSON dicts (camelCase, as the API server and
`kubectl get -o json` write them) → svctrace's model. Live and snapshot both use it, so both
give the same explanation for the same objects.

Malformed input raises ConversionError (a ValueError); the caller says which file or request
it came from.
"""

from __future__ import annotations

from typing import Any

from svctrace.cluster.fields import (
    ConversionError,
    Obj,
    cidr,
    flag,
    integer,
    ip,
    labels,
    mapping,
    objects,
    port,
    show,
    strings,
    text,
)
from svctrace.model.cluster import (
    SERVICE_NAME_LABEL,
    ZONE_LABEL,
    Container,
    ContainerPort,
    ContainerStatus,
    Endpoint,
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
    LoadBalancerIngress,
    Node,
    Pod,
    Service,
    ServicePort,
    ServiceView,
    TargetRef,
    selector_matches,
)

# --- the object itself -------------------------------------------------------------------

def _identity(obj: Any, kind: str) -> tuple[str, str, str, Obj]:
    """(name, namespace, "Kind ns/name: " to prefix field paths with, metadata)."""
    if not isinstance(obj, dict):
        raise ConversionError(f"{kind}: expected an object, got {show(obj)}")
    meta = mapping(obj, "metadata", f"{kind}: ")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ConversionError(f"{kind}: metadata.name is missing" if name in (None, "") else
                              f"{kind}: metadata.name: expected a string, got {show(name)}")
    shown = show(name)[1:-1] if len(name) > 60 else name
    namespace = text(meta, "namespace", f"{kind} {shown}: metadata", "default") or "default"
    label = f"{kind} {shown}: " if kind == "Node" else f"{kind} {namespace}/{shown}: "
    return name, namespace, label, meta


# --- Service -----------------------------------------------------------------------------

def _target_port(raw: Obj, port_number: int, where: str) -> int | str:
    value = raw.get("targetPort")
    if value is None:
        return port_number                  # the API defaults targetPort to port
    if isinstance(value, str) and value and not value.isdigit():
        return value                        # a container port's name
    return port(raw, "targetPort", where) or port_number


def _service_port(raw: Obj, where: str) -> ServicePort:
    number = port(raw, "port", where)
    if number is None:
        raise ConversionError(f"{where}.port is missing")
    return ServicePort(name=text(raw, "name", where), protocol=_protocol(raw, where),
                       port=number, target_port=_target_port(raw, number, where),
                       node_port=integer(raw, "nodePort", where, 0, 65535) or None,
                       app_protocol=text(raw, "appProtocol", where))


def _protocol(raw: Obj, where: str) -> str:
    return text(raw, "protocol", where, "TCP") or "TCP"


def _lb_ingress(raw: Obj, where: str) -> LoadBalancerIngress:
    address = raw.get("ip")
    return LoadBalancerIngress(ip=ip(address, f"{where}.ip") if address else None,
                               hostname=text(raw, "hostname", where),
                               ip_mode=text(raw, "ipMode", where))


def _cluster_ips(spec: Obj, where: str) -> tuple[str, ...]:
    ips = strings(spec, "clusterIPs", where)
    if not ips and spec.get("clusterIP"):
        ips = (text(spec, "clusterIP", where) or "",)
    for i, address in enumerate(ips):
        if address != "None":               # headless
            ip(address, f"{where}.clusterIPs[{i}]")
    return ips


def _ip_families(spec: Obj, where: str) -> tuple[str, ...]:
    families = strings(spec, "ipFamilies", where)
    for i, family in enumerate(families):
        if family not in ("IPv4", "IPv6"):
            raise ConversionError(f"{where}.ipFamilies[{i}]: expected IPv4 or IPv6, got "
                                  f"{show(family)}")
    return families


def service_from_dict(obj: Obj) -> Service:
    """A v1 Service."""
    name, namespace, at, meta = _identity(obj, "Service")
    spec = mapping(obj, "spec", at)
    where = f"{at}spec"
    status = mapping(mapping(obj, "status", at), "loadBalancer", f"{at}status")
    affinity = mapping(mapping(spec, "sessionAffinityConfig", where), "clientIP",
                       f"{where}.sessionAffinityConfig")
    return Service(
        name=name, namespace=namespace,
        type=text(spec, "type", where, "ClusterIP") or "ClusterIP",
        cluster_ips=_cluster_ips(spec, where),
        ports=tuple(_service_port(p, at) for p, at in objects(spec, "ports", where)),
        selector=labels(spec, "selector", where),
        external_ips=tuple(ip(a, f"{where}.externalIPs[{i}]")
                           for i, a in enumerate(strings(spec, "externalIPs", where))),
        external_name=text(spec, "externalName", where),
        lb_ingress=tuple(_lb_ingress(i, at) for i, at in
                         objects(status, "ingress", f"{at}status.loadBalancer")),
        lb_source_ranges=tuple(cidr(r, f"{where}.loadBalancerSourceRanges[{i}]") for i, r
                               in enumerate(strings(spec, "loadBalancerSourceRanges", where))),
        session_affinity=text(spec, "sessionAffinity", where, "None") or "None",
        session_affinity_timeout=integer(affinity, "timeoutSeconds",
                                         f"{where}.sessionAffinityConfig.clientIP", 1, 86400),
        external_traffic_policy=text(spec, "externalTrafficPolicy", where),
        internal_traffic_policy=text(spec, "internalTrafficPolicy", where),
        ip_families=_ip_families(spec, where),
        ip_family_policy=text(spec, "ipFamilyPolicy", where),
        health_check_node_port=integer(spec, "healthCheckNodePort", where, 0, 65535) or None,
        publish_not_ready_addresses=bool(flag(spec, "publishNotReadyAddresses", where)),
        creation_timestamp=text(meta, "creationTimestamp", f"{at}metadata"))


# --- Pod ---------------------------------------------------------------------------------

def _container(raw: Obj, where: str) -> Container:
    ports = []
    for p, at in objects(raw, "ports", where):
        number = port(p, "containerPort", at)
        if number is None:
            raise ConversionError(f"{at}.containerPort is missing")
        ports.append(ContainerPort(name=text(p, "name", at), container_port=number,
                                   protocol=_protocol(p, at)))
    return Container(name=text(raw, "name", where, "") or "", ports=tuple(ports))


def _container_status(raw: Obj, where: str) -> ContainerStatus:
    state = mapping(raw, "state", where)
    kind = "running" if "running" in state else "waiting" if "waiting" in state else \
        "terminated" if "terminated" in state else "unknown"
    current = mapping(state, kind, f"{where}.state") if kind != "unknown" else {}
    last = mapping(mapping(raw, "lastState", where), "terminated", f"{where}.lastState")
    return ContainerStatus(
        name=text(raw, "name", where, "") or "", ready=bool(flag(raw, "ready", where)),
        restart_count=integer(raw, "restartCount", where, 0) or 0,
        state=kind, state_reason=text(current, "reason", f"{where}.state.{kind}"),
        last_termination_reason=text(last, "reason", f"{where}.lastState.terminated"),
        last_exit_code=integer(last, "exitCode", f"{where}.lastState.terminated"))


def _pod_ips(status: Obj, where: str) -> tuple[str, ...]:
    ips = [ip(p.get("ip"), f"{at}.ip") for p, at in objects(status, "podIPs", where)
           if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [ip(status["podIP"], f"{where}.podIP")]
    return tuple(ips)


def _condition(status: Obj, kind: str, where: str) -> str | None:
    for cond, at in objects(status, "conditions", where):
        if cond.get("type") == kind:
            return text(cond, "status", at)
    return None


def _controller(meta: Obj, where: str) -> tuple[str | None, str | None]:
    for ref, at in objects(meta, "ownerReferences", where):
        if flag(ref, "controller", at):
            return text(ref, "kind", at), text(ref, "name", at)
    return None, None


def pod_from_dict(obj: Obj) -> Pod:
    """A v1 Pod."""
    try:
        return _usual_pod(obj)
    except (_Unusual, ConversionError, LookupError, TypeError, ValueError, AttributeError):
        return _checked_pod(obj)        # it reads the same fields, and says what is wrong


class _Unusual(Exception):
    """A field `_usual_pod` leaves to the checked reader."""


def _s(value: Any) -> str | None:
    """A string field as `text` reads it (absent or empty: None); anything else: _Unusual."""
    if value is None or value == "":
        return None
    if type(value) is str:
        return value
    raise _Unusual


def _d(value: Any) -> Obj:
    if type(value) is dict:
        return value
    if value is None:
        return {}
    raise _Unusual


def _ds(value: Any) -> list[Obj]:
    if value is None:
        return []
    if type(value) is list and all(type(item) is dict for item in value):
        return value
    raise _Unusual


def _usual_pod(obj: Obj) -> Pod:
    """`_checked_pod` for the usual, well-formed Pod, in one pass without building a field
    path per field (a cluster has 100,000 pods): the same Pod, or _Unusual (or an error) for
    anything else, which the checked reader then reads. tests/cluster/test_convert_fast.py
    holds the two to the same answers."""
    if type(obj) is not dict:
        raise _Unusual
    meta, spec, status = _d(obj.get("metadata")), _d(obj.get("spec")), _d(obj.get("status"))
    name = meta.get("name")
    if type(name) is not str or not name:
        raise _Unusual
    raw_labels = _d(meta.get("labels"))
    if not all(type(k) is str and type(v) is str for k, v in raw_labels.items()):
        raise _Unusual
    owner_kind = owner_name = None
    for ref in _ds(meta.get("ownerReferences")):
        controller = ref.get("controller")
        if controller is not None and type(controller) is not bool:
            raise _Unusual
        if controller:
            owner_kind, owner_name = _s(ref.get("kind")), _s(ref.get("name"))
            break
    ips = [ip(p["ip"], "") for p in _ds(status.get("podIPs")) if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [ip(status["podIP"], "")]
    ready = next((_s(c.get("status")) for c in _ds(status.get("conditions"))
                  if c.get("type") == "Ready"), None) == "True"
    containers = []
    for c in _ds(spec.get("containers")):
        ports = []
        for p in _ds(c.get("ports")):
            number = p.get("containerPort")
            if type(number) is not int or not 1 <= number <= 65535:
                raise _Unusual
            ports.append(ContainerPort(name=_s(p.get("name")), container_port=number,
                                       protocol=_s(p.get("protocol")) or "TCP"))
        containers.append(Container(name=_s(c.get("name")) or "", ports=tuple(ports)))
    statuses = []
    for c in _ds(status.get("containerStatuses")):
        state = _d(c.get("state"))
        kind = "running" if "running" in state else "waiting" if "waiting" in state else \
            "terminated" if "terminated" in state else "unknown"
        current = _d(state.get(kind)) if kind != "unknown" else {}
        last = _d(_d(c.get("lastState")).get("terminated"))
        ready_c, restarts, code = c.get("ready"), c.get("restartCount"), last.get("exitCode")
        if (ready_c is not None and type(ready_c) is not bool) or \
                (restarts is not None and (type(restarts) is not int or restarts < 0)) or \
                (code is not None and (type(code) is not int or code < -(2 ** 63))):
            raise _Unusual
        statuses.append(ContainerStatus(
            name=_s(c.get("name")) or "", ready=bool(ready_c), restart_count=restarts or 0,
            state=kind, state_reason=_s(current.get("reason")),
            last_termination_reason=_s(last.get("reason")), last_exit_code=code))
    return Pod(
        name=name, namespace=_s(meta.get("namespace")) or "default", labels=dict(raw_labels),
        ips=tuple(ips), node_name=_s(spec.get("nodeName")),
        phase=_s(status.get("phase")) or "Unknown", ready=ready,
        containers=tuple(containers), container_statuses=tuple(statuses),
        deletion_timestamp=_s(meta.get("deletionTimestamp")),
        creation_timestamp=_s(meta.get("creationTimestamp")),
        uid=_s(meta.get("uid")), owner_kind=owner_kind, owner_name=owner_name)


def _checked_pod(obj: Obj) -> Pod:
    """A v1 Pod, every field checked (an error names the field)."""
    name, namespace, at, meta = _identity(obj, "Pod")
    spec, status = mapping(obj, "spec", at), mapping(obj, "status", at)
    owner_kind, owner_name = _controller(meta, f"{at}metadata")
    return Pod(
        name=name, namespace=namespace, labels=labels(meta, "labels", f"{at}metadata"),
        ips=_pod_ips(status, f"{at}status"), node_name=text(spec, "nodeName", f"{at}spec"),
        phase=text(status, "phase", f"{at}status", "Unknown") or "Unknown",
        ready=_condition(status, "Ready", f"{at}status") == "True",
        containers=tuple(_container(c, w) for c, w in objects(spec, "containers",
                                                               f"{at}spec")),
        container_statuses=tuple(_container_status(c, w) for c, w in
                                 objects(status, "containerStatuses", f"{at}status")),
        deletion_timestamp=text(meta, "deletionTimestamp", f"{at}metadata"),
        creation_timestamp=text(meta, "creationTimestamp", f"{at}metadata"),
        uid=text(meta, "uid", f"{at}metadata"), owner_kind=owner_kind, owner_name=owner_name)


# --- EndpointSlice -----------------------------------------------------------------------

def _conditions(raw: Obj, where: str) -> EndpointConditions:
    # kube-proxy: nil ready/serving mean true, nil terminating means false
    ready, serving = flag(raw, "ready", where), flag(raw, "serving", where)
    return EndpointConditions(ready=ready is None or ready,
                              serving=serving is None or serving,
                              terminating=bool(flag(raw, "terminating", where)))


def _target_ref(raw: Obj, where: str) -> TargetRef | None:
    if not raw:
        return None
    return TargetRef(kind=text(raw, "kind", where), name=text(raw, "name", where),
                     namespace=text(raw, "namespace", where), uid=text(raw, "uid", where))


def _hint_names(hints: Obj, key: str, where: str) -> tuple[str, ...]:
    return tuple(text(h, "name", at) or "" for h, at in objects(hints, key, where))


def _endpoint(raw: Obj, where: str, address_type: str) -> Endpoint:
    hints = mapping(raw, "hints", where)
    addresses = strings(raw, "addresses", where)
    if address_type in ("IPv4", "IPv6"):
        addresses = tuple(ip(a, f"{where}.addresses[{i}]") for i, a in enumerate(addresses))
    return Endpoint(
        addresses=addresses,
        conditions=_conditions(mapping(raw, "conditions", where), f"{where}.conditions"),
        node_name=text(raw, "nodeName", where), zone=text(raw, "zone", where),
        hostname=text(raw, "hostname", where),
        target_ref=_target_ref(mapping(raw, "targetRef", where), f"{where}.targetRef"),
        hints_zones=_hint_names(hints, "forZones", f"{where}.hints"),
        hints_nodes=_hint_names(hints, "forNodes", f"{where}.hints"))


def endpointslice_from_dict(obj: Obj) -> EndpointSlice:
    """A discovery.k8s.io/v1 EndpointSlice."""
    name, namespace, at, meta = _identity(obj, "EndpointSlice")
    address_type = text(obj, "addressType", at)
    if not address_type:
        raise ConversionError(f"{at}addressType is missing")
    found = labels(meta, "labels", f"{at}metadata")
    return EndpointSlice(
        name=name, namespace=namespace, address_type=address_type,
        endpoints=tuple(_endpoint(e, w, address_type) for e, w in objects(obj, "endpoints",
                                                                          at)),
        ports=tuple(EndpointPort(name=text(p, "name", w), port=port(p, "port", w),
                                 protocol=_protocol(p, w)) for p, w in objects(obj, "ports", at)),
        service_name=found.get(SERVICE_NAME_LABEL),
        managed_by=found.get("endpointslice.kubernetes.io/managed-by"))


# --- Node --------------------------------------------------------------------------------

def _node_addresses(status: Obj, where: str, kind: str) -> tuple[str, ...]:
    out = []
    for address, at in objects(status, "addresses", where):
        if address.get("address") is None:
            raise ConversionError(f"{at}.address is missing")
        if text(address, "type", at) == kind:
            out.append(ip(address["address"], f"{at}.address"))
    return tuple(out)


def node_from_dict(obj: Obj) -> Node:
    """A v1 Node."""
    name, _, at, meta = _identity(obj, "Node")
    spec, status = mapping(obj, "spec", at), mapping(obj, "status", at)
    ready = _condition(status, "Ready", f"{at}status")
    found = labels(meta, "labels", f"{at}metadata")
    cidrs = strings(spec, "podCIDRs", f"{at}spec") or \
        ((text(spec, "podCIDR", f"{at}spec") or "",) if spec.get("podCIDR") else ())
    return Node(
        name=name,
        internal_ips=_node_addresses(status, f"{at}status", "InternalIP"),
        external_ips=_node_addresses(status, f"{at}status", "ExternalIP"),
        ready=None if ready is None else ready == "True",
        pod_cidrs=tuple(cidr(c, f"{at}spec.podCIDRs[{i}]") for i, c in enumerate(cidrs)),
        zone=found.get(ZONE_LABEL), labels=found)


# --- Assembling a view -------------------------------------------------------------------

def nodes_needed(service: Service, selected_pods: list[Pod] | tuple[Pod, ...]) -> bool:
    """Whether a view needs the node list. One policy for live and snapshot: when the selector
    matches nothing, the live path spends its request on the namespace's pods (near misses)
    instead of the nodes, so the snapshot path drops the nodes too and both explain alike."""
    return not service.is_external_name and (not service.selector or bool(selected_pods))


_SORTED: tuple[object, tuple[Node, ...]] = ((), ())


def _by_name(nodes: list[Node] | tuple[Node, ...]) -> tuple[Node, ...]:
    """`nodes` sorted by name; doctor cuts 10,000 views from one tuple of 1,000 nodes, which
    is sorted once (the last tuple's order is kept: a tuple does not change)."""
    global _SORTED
    if isinstance(nodes, tuple) and _SORTED[0] is nodes:
        return _SORTED[1]
    out = tuple(sorted(nodes, key=lambda n: n.name))
    if isinstance(nodes, tuple):
        _SORTED = (nodes, out)
    return out


def assemble_view(service: Service, slices: list[EndpointSlice] | tuple[EndpointSlice, ...],
                  pods: list[Pod] | tuple[Pod, ...], nodes: list[Node] | tuple[Node, ...] | None,
                  **extra: Any) -> ServiceView:
    """Cut the ServiceView of `service` out of converted objects. `pods` may hold the whole
    namespace or only the selected pods, `slices` any slices: both are filtered here, the same
    way for live and snapshot. `nodes` None means the nodes could not be read."""
    ns_pods = sorted((p for p in pods if p.namespace == service.namespace), key=lambda p: p.name)
    selected = tuple(p for p in ns_pods if selector_matches(service.selector, p.labels))
    others = () if selected or not service.selector else tuple(ns_pods)
    wanted = nodes_needed(service, selected)
    own = sorted((s for s in slices
                  if s.service_name == service.name and s.namespace == service.namespace),
                 key=lambda s: s.name)
    return ServiceView(service=service, slices=tuple(own), pods=selected, other_pods=others,
                       nodes=_by_name(nodes or ()) if wanted else (),
                       nodes_known=nodes is not None or not wanted, **extra)
