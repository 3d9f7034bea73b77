"""The one converter: API objects as plain JSON dicts (camelCase, as the API server and
`kubectl get -o json` write them) → svctrace's model. Live and snapshot both use it, so both
give the same explanation for the same objects.

Malformed input raises ConversionError (a ValueError); the caller says which file or request
it came from.
"""

from __future__ import annotations

from typing import Any

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

Obj = dict[str, Any]


class ConversionError(ValueError):
    """An API object that does not have the shape the API defines."""


def _map(obj: Obj, key: str, where: str) -> Obj:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConversionError(f"{where}.{key}: expected an object, got {type(value).__name__}")
    return value


def _list(obj: Obj, key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConversionError(f"{where}.{key}: expected a list, got {type(value).__name__}")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConversionError(f"{where}: expected an integer, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ConversionError(f"{where}: expected an integer, got {value!r}") from None


def _opt_int(value: Any, where: str) -> int | None:
    return None if value is None else _int(value, where)


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConversionError(f"{where}: expected a map of strings")
    return {str(k): str(v) for k, v in value.items()}


def _name(obj: Obj, kind: str) -> tuple[str, Obj]:
    if not isinstance(obj, dict):
        raise ConversionError(f"{kind}: expected an object, got {type(obj).__name__}")
    meta = _map(obj, "metadata", kind)
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ConversionError(f"{kind}: metadata.name is missing")
    return name, meta


# --- Service -----------------------------------------------------------------------------

def _target_port(value: Any, port: int, where: str) -> int | str:
    if value is None:
        return port                         # the API defaults targetPort to port
    if isinstance(value, str) and not value.isdigit():
        return value
    return _int(value, where)


def _service_port(raw: Any, where: str) -> ServicePort:
    if not isinstance(raw, dict):
        raise ConversionError(f"{where}: expected an object")
    if raw.get("port") is None:
        raise ConversionError(f"{where}.port is missing")
    port = _int(raw["port"], f"{where}.port")
    return ServicePort(name=raw.get("name") or None, protocol=raw.get("protocol") or "TCP",
                       port=port, target_port=_target_port(raw.get("targetPort"), port,
                                                           f"{where}.targetPort"),
                       node_port=_opt_int(raw.get("nodePort"), f"{where}.nodePort"),
                       app_protocol=raw.get("appProtocol"))


def _lb_ingress(raw: Obj) -> LoadBalancerIngress:
    return LoadBalancerIngress(ip=raw.get("ip"), hostname=raw.get("hostname"),
                               ip_mode=raw.get("ipMode"))


def _cluster_ips(spec: Obj, where: str) -> tuple[str, ...]:
    ips = _list(spec, "clusterIPs", where)
    if not ips and spec.get("clusterIP"):
        ips = [spec["clusterIP"]]
    return tuple(str(ip) for ip in ips)


def service_from_dict(obj: Obj) -> Service:
    """A v1 Service."""
    name, meta = _name(obj, "Service")
    where = f"Service {name}"
    spec = _map(obj, "spec", where)
    status = _map(_map(obj, "status", where), "loadBalancer", where)
    timeout = _map(_map(spec, "sessionAffinityConfig", where), "clientIP", where)
    return Service(
        name=name, namespace=meta.get("namespace") or "default",
        type=spec.get("type") or "ClusterIP", cluster_ips=_cluster_ips(spec, where),
        ports=tuple(_service_port(p, f"{where}: spec.ports[{i}]")
                    for i, p in enumerate(_list(spec, "ports", where))),
        selector=_str_map(spec.get("selector"), f"{where}: spec.selector"),
        external_ips=tuple(_list(spec, "externalIPs", where)),
        external_name=spec.get("externalName"),
        lb_ingress=tuple(_lb_ingress(i) for i in _list(status, "ingress", where)),
        lb_source_ranges=tuple(_list(spec, "loadBalancerSourceRanges", where)),
        session_affinity=spec.get("sessionAffinity") or "None",
        session_affinity_timeout=_opt_int(timeout.get("timeoutSeconds"), f"{where}: timeout"),
        external_traffic_policy=spec.get("externalTrafficPolicy"),
        internal_traffic_policy=spec.get("internalTrafficPolicy"),
        ip_families=tuple(_list(spec, "ipFamilies", where)),
        ip_family_policy=spec.get("ipFamilyPolicy"),
        health_check_node_port=_opt_int(spec.get("healthCheckNodePort"), where),
        publish_not_ready_addresses=bool(spec.get("publishNotReadyAddresses")),
        creation_timestamp=meta.get("creationTimestamp"))


# --- Pod ---------------------------------------------------------------------------------

def _container(raw: Obj, where: str) -> Container:
    ports = tuple(ContainerPort(name=p.get("name") or None,
                                container_port=_int(p.get("containerPort"), f"{where}.ports"),
                                protocol=p.get("protocol") or "TCP")
                  for p in _list(raw, "ports", where))
    return Container(name=str(raw.get("name", "")), ports=ports)


def _container_status(raw: Obj, where: str) -> ContainerStatus:
    state = _map(raw, "state", where)
    kind = next((k for k in ("running", "waiting", "terminated") if k in state), "unknown")
    last = _map(_map(raw, "lastState", where), "terminated", where)
    return ContainerStatus(
        name=str(raw.get("name", "")), ready=bool(raw.get("ready")),
        restart_count=_int(raw.get("restartCount") or 0, f"{where}.restartCount"),
        state=kind, state_reason=(state.get(kind) or {}).get("reason"),
        last_termination_reason=last.get("reason"),
        last_exit_code=_opt_int(last.get("exitCode"), f"{where}.lastState"))


def _pod_ips(status: Obj, where: str) -> tuple[str, ...]:
    ips = [p.get("ip") for p in _list(status, "podIPs", where) if isinstance(p, dict)]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return tuple(str(ip) for ip in ips if ip)


def _condition(status: Obj, kind: str, where: str) -> str | None:
    for cond in _list(status, "conditions", where):
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond.get("status")
    return None


def _controller(meta: Obj) -> tuple[str | None, str | None]:
    for ref in meta.get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller"):
            return ref.get("kind"), ref.get("name")
    return None, None


def pod_from_dict(obj: Obj) -> Pod:
    """A v1 Pod."""
    name, meta = _name(obj, "Pod")
    where = f"Pod {name}"
    spec, status = _map(obj, "spec", where), _map(obj, "status", where)
    owner_kind, owner_name = _controller(meta)
    return Pod(
        name=name, namespace=meta.get("namespace") or "default",
        labels=_str_map(meta.get("labels"), f"{where}: labels"),
        ips=_pod_ips(status, where), node_name=spec.get("nodeName"),
        phase=status.get("phase") or "Unknown",
        ready=_condition(status, "Ready", where) == "True",
        containers=tuple(_container(c, f"{where}: containers[{i}]")
                         for i, c in enumerate(_list(spec, "containers", where))),
        container_statuses=tuple(_container_status(c, f"{where}: containerStatuses")
                                 for c in _list(status, "containerStatuses", where)),
        deletion_timestamp=meta.get("deletionTimestamp"),
        creation_timestamp=meta.get("creationTimestamp"), uid=meta.get("uid"),
        owner_kind=owner_kind, owner_name=owner_name)


# --- EndpointSlice -----------------------------------------------------------------------

def _conditions(raw: Obj) -> EndpointConditions:
    # kube-proxy: nil ready/serving mean true, nil terminating means false
    ready = raw.get("ready")
    serving = raw.get("serving")
    return EndpointConditions(ready=ready is None or bool(ready),
                              serving=serving is None or bool(serving),
                              terminating=bool(raw.get("terminating")))


def _target_ref(raw: Any) -> TargetRef | None:
    if not isinstance(raw, dict):
        return None
    return TargetRef(kind=raw.get("kind"), name=raw.get("name"),
                     namespace=raw.get("namespace"), uid=raw.get("uid"))


def _endpoint(raw: Any, where: str) -> Endpoint:
    if not isinstance(raw, dict):
        raise ConversionError(f"{where}: expected an object")
    hints = _map(raw, "hints", where)
    return Endpoint(
        addresses=tuple(str(a) for a in _list(raw, "addresses", where)),
        conditions=_conditions(_map(raw, "conditions", where)),
        node_name=raw.get("nodeName"), zone=raw.get("zone"), hostname=raw.get("hostname"),
        target_ref=_target_ref(raw.get("targetRef")),
        hints_zones=tuple(z.get("name") for z in _list(hints, "forZones", where)),
        hints_nodes=tuple(n.get("name") for n in _list(hints, "forNodes", where)))


def endpointslice_from_dict(obj: Obj) -> EndpointSlice:
    """A discovery.k8s.io/v1 EndpointSlice."""
    name, meta = _name(obj, "EndpointSlice")
    where = f"EndpointSlice {name}"
    if not obj.get("addressType"):
        raise ConversionError(f"{where}: addressType is missing")
    labels = _str_map(meta.get("labels"), f"{where}: labels")
    return EndpointSlice(
        name=name, namespace=meta.get("namespace") or "default",
        address_type=obj["addressType"],
        endpoints=tuple(_endpoint(e, f"{where}: endpoints[{i}]")
                        for i, e in enumerate(_list(obj, "endpoints", where))),
        ports=tuple(EndpointPort(name=p.get("name") or None,
                                 port=_opt_int(p.get("port"), f"{where}: ports"),
                                 protocol=p.get("protocol") or "TCP")
                    for p in _list(obj, "ports", where)),
        service_name=labels.get(SERVICE_NAME_LABEL),
        managed_by=labels.get("endpointslice.kubernetes.io/managed-by"))


# --- Node --------------------------------------------------------------------------------

def node_from_dict(obj: Obj) -> Node:
    """A v1 Node."""
    name, meta = _name(obj, "Node")
    where = f"Node {name}"
    spec, status = _map(obj, "spec", where), _map(obj, "status", where)
    addresses = [a for a in _list(status, "addresses", where) if isinstance(a, dict)]
    ready = _condition(status, "Ready", where)
    labels = _str_map(meta.get("labels"), f"{where}: labels")
    cidrs = _list(spec, "podCIDRs", where) or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    return Node(
        name=name,
        internal_ips=tuple(a["address"] for a in addresses if a.get("type") == "InternalIP"),
        external_ips=tuple(a["address"] for a in addresses if a.get("type") == "ExternalIP"),
        ready=None if ready is None else ready == "True",
        pod_cidrs=tuple(cidrs), zone=labels.get(ZONE_LABEL), labels=labels)


# --- Assembling a view -------------------------------------------------------------------

def nodes_needed(service: Service, selected_pods: list[Pod] | tuple[Pod, ...]) -> bool:
    """Whether a view needs the node list. One policy for live and snapshot: when the selector
    matches nothing, the live path spends its request on the namespace's pods (near misses)
    instead of the nodes, so the snapshot path drops the nodes too and both explain alike."""
    return not service.is_external_name and (not service.selector or bool(selected_pods))


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
                       nodes=tuple(sorted(nodes or (), key=lambda n: n.name)) if wanted else (),
                       nodes_known=nodes is not None or not wanted, **extra)
