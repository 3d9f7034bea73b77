"""The cluster half of `explain`, rendered: plain dicts for JSON/YAML, rich renderables for
text. Nothing here prints.

The dict is the `-o json` contract (schema svctrace/v1): keys are the API's camelCase words,
lists are in a stable order. `explanation_dict` returns a dict that the node side extends
with its own top-level keys (rules, drift, traces).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from svctrace.diagnose.cluster import ClusterExplanation, PodRow
from svctrace.diagnose.joins import EndpointRow, NearMiss, PortResolution, workload_of
from svctrace.model.cluster import Service, ServicePort
from svctrace.model.findings import Finding, Severity
from svctrace.render.literal import printable, text

SCHEMA = "svctrace/v1"


# --- plain data --------------------------------------------------------------------------

def explanation_dict(ex: ClusterExplanation,
                     findings: list[Finding] | tuple[Finding, ...] | None = None) -> dict:
    """The `-o json` document of the cluster half. `findings` defaults to the cluster's own;
    pass the full list when the node side adds findings."""
    return {"schema": SCHEMA, "service": service_dict(ex.service),
            "pods": [pod_dict(row) for row in ex.pods],
            "endpoints": [endpoint_dict(row) for row in ex.endpoints],
            "nearMisses": [near_miss_dict(m) for m in ex.near_misses],
            "suggestedWorkloads": list(ex.suggested_workloads),
            "findings": findings_list(ex.findings if findings is None else findings)}


def findings_list(findings: list[Finding] | tuple[Finding, ...]) -> list[dict[str, Any]]:
    """Findings as dicts, worst first, then by id and message."""
    ordered = sorted(findings, key=lambda f: (-int(f.severity), f.id, f.message))
    return [f.as_dict() for f in ordered]


def service_port_dict(svc: Service, sp: ServicePort) -> dict[str, Any]:
    return {"name": sp.name, "servicePortName": svc.port_name(sp), "protocol": sp.protocol,
            "port": sp.port, "targetPort": sp.target_port, "nodePort": sp.node_port,
            "appProtocol": sp.app_protocol}


def service_dict(svc: Service) -> dict[str, Any]:
    return {
        "name": svc.name, "namespace": svc.namespace, "type": svc.type,
        "clusterIPs": list(svc.cluster_ips), "headless": svc.is_headless,
        "externalName": svc.external_name,
        "ports": [service_port_dict(svc, sp) for sp in svc.ports],
        "selector": dict(sorted(svc.selector.items())), "externalIPs": list(svc.external_ips),
        "loadBalancerIngress": [{"ip": i.ip, "hostname": i.hostname, "ipMode": i.ip_mode}
                                for i in svc.lb_ingress],
        "loadBalancerSourceRanges": list(svc.lb_source_ranges),
        "sessionAffinity": svc.session_affinity,
        "sessionAffinityTimeoutSeconds": svc.session_affinity_timeout,
        "externalTrafficPolicy": svc.external_traffic_policy,
        "internalTrafficPolicy": svc.internal_traffic_policy,
        "ipFamilies": list(svc.ip_families), "ipFamilyPolicy": svc.ip_family_policy,
        "healthCheckNodePort": svc.health_check_node_port,
        "publishNotReadyAddresses": svc.publish_not_ready_addresses}


def port_resolution_dict(r: PortResolution) -> dict[str, Any]:
    return {"servicePort": r.service_port.name, "port": r.service_port.port,
            "targetPort": r.service_port.target_port, "container": r.container,
            "containerPort": r.container_port, "protocol": r.protocol, "status": r.status}


def pod_dict(row: PodRow) -> dict[str, Any]:
    pod = row.pod
    return {
        "name": pod.name, "ip": pod.ip, "ips": list(pod.ips), "node": pod.node_name,
        "nodeReady": row.node_ready, "phase": pod.phase, "ready": pod.ready,
        "terminating": pod.is_terminating, "deletionTimestamp": pod.deletion_timestamp,
        "restarts": pod.restarts, "creationTimestamp": pod.creation_timestamp,
        "workload": workload_of(pod),
        "containers": [{"name": s.name, "ready": s.ready, "state": s.state,
                        "reason": s.state_reason, "restarts": s.restart_count,
                        "lastTerminationReason": s.last_termination_reason,
                        "lastExitCode": s.last_exit_code} for s in pod.container_statuses],
        "endpointSlices": list(row.endpoint_slices), "absentReason": row.absent_reason,
        "ports": [port_resolution_dict(r) for r in row.ports]}


def endpoint_dict(row: EndpointRow) -> dict[str, Any]:
    ep, ref = row.endpoint, row.endpoint.target_ref
    return {
        "slice": row.slice, "addresses": list(ep.addresses), "ready": ep.conditions.ready,
        "serving": ep.conditions.serving, "terminating": ep.conditions.terminating,
        "node": ep.node_name, "zone": ep.zone, "hostname": ep.hostname,
        "hints": {"forZones": list(ep.hints_zones), "forNodes": list(ep.hints_nodes)},
        "pod": row.pod.name if row.pod else None,
        "targetRef": {"kind": ref.kind, "name": ref.name} if ref else None,
        "ports": [{"name": p.name, "port": p.port, "protocol": p.protocol} for p in row.ports]}


def near_miss_dict(m: NearMiss) -> dict[str, Any]:
    return {"pod": m.pod, "key": m.key, "expected": m.expected, "actualKey": m.actual_key,
            "actual": m.actual}


# --- rich text ---------------------------------------------------------------------------

SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


def age(timestamp: str | None, now: datetime) -> str:
    """kubectl-style age (`45s`, `12m`, `3h`, `9d`) of an RFC 3339 timestamp."""
    if not timestamp:
        return "?"
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "?"
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _port_text(sp: ServicePort) -> str:
    text = f"{printable(sp.name or '(unnamed)')} {sp.port}/{printable(sp.protocol)} → " \
        f"{printable(sp.target_port)}"
    return text + (f" (nodePort {sp.node_port})" if sp.node_port else "")


def service_renderable(svc: Service) -> Any:
    from rich.table import Table
    from rich.text import Text
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    kind = "headless" if svc.is_headless else svc.type
    grid.add_row("Service", text(f"{svc.namespace}/{svc.name} ({kind})"))
    rows = [("Cluster IPs", ", ".join(svc.cluster_ips)),
            ("External name", svc.external_name or ""),
            ("Ports", "\n".join(_port_text(sp) for sp in svc.ports)),
            ("Selector", ",".join(f"{k}={v}" for k, v in sorted(svc.selector.items()))
             or "(none)"),
            ("External IPs", ", ".join(svc.external_ips)),
            ("LB ingress", ", ".join(f"{i.ip or i.hostname} ({i.ip_mode or '-'})"
                                     for i in svc.lb_ingress)),
            ("LB source ranges", ", ".join(svc.lb_source_ranges)),
            ("Session affinity", svc.session_affinity + (
                f" ({svc.session_affinity_timeout}s)" if svc.session_affinity_timeout else "")),
            ("External traffic", svc.external_traffic_policy or ""),
            ("Internal traffic", svc.internal_traffic_policy or ""),
            ("IP families", ", ".join(svc.ip_families))]
    for label, value in rows:
        if value:       # printable per line: Ports has one line per port
            grid.add_row(label, Text("\n".join(map(printable, value.split("\n")))))
    return grid


def _yes(value: bool | None) -> Any:
    from rich.text import Text
    return Text("?" if value is None else ("yes" if value else "no"),
                style="red" if value is False else "")


def _last_state(pod: Any) -> str:
    parts = [s.state_reason for s in pod.container_statuses if s.state_reason]
    parts += [f"last {s.last_termination_reason} ({s.last_exit_code})"
              for s in pod.container_statuses if s.last_termination_reason]
    return ", ".join(parts + (["Terminating"] if pod.is_terminating else []))


def pods_renderable(ex: ClusterExplanation, wide: bool, now: datetime) -> Any:
    from rich.table import Table
    table = Table(title="Pods selected", title_justify="left", box=None, pad_edge=False)
    cols = ["NAME", "IP", "NODE", "PHASE", "READY", "RESTARTS", "STATE", "AGE", "IN SLICES"]
    for col in cols + (["NODE READY", "WORKLOAD"] if wide else []):
        table.add_column(col)
    for row in ex.pods:
        p = row.pod
        cells = [text(p.name), text(p.ip or "-"), text(p.node_name or "-"), text(p.phase),
                 _yes(p.ready), str(p.restarts), text(_last_state(p) or "-"),
                 age(p.creation_timestamp, now),
                 text("yes") if row.endpoint_slices else text(f"no: {row.absent_reason}",
                                                             "yellow")]
        table.add_row(*cells, *([_yes(row.node_ready), text(workload_of(p))] if wide else []))
    return table


def ports_renderable(ex: ClusterExplanation) -> Any:
    from rich.table import Table
    table = Table(title="Ports (service port → container port per pod)", title_justify="left",
                  box=None, pad_edge=False)
    for col in ("SERVICE PORT", "POD", "CONTAINER", "CONTAINER PORT", "STATUS"):
        table.add_column(col)
    for row in ex.pods:
        for r in row.ports:
            status = text(r.status, "" if r.status == "ok" else "red")
            table.add_row(text(ex.service.port_name(r.service_port)), text(r.pod),
                          text(r.container or "-"),
                          text(f"{r.container_port or '-'}/{r.protocol}"), status)
    return table


def endpoints_renderable(ex: ClusterExplanation, wide: bool) -> Any:
    from rich.table import Table
    table = Table(title="EndpointSlices", title_justify="left", box=None, pad_edge=False)
    cols = ["ADDRESS", "READY", "SERVING", "TERMINATING", "NODE", "ZONE", "POD"]
    for col in cols + (["SLICE", "PORTS", "HINTS"] if wide else []):
        table.add_column(col)
    for row in ex.endpoints:
        ep, c = row.endpoint, row.endpoint.conditions
        pod = row.pod.name if row.pod else "(no pod)"
        extra = [row.slice, ",".join(f"{p.name or '-'}:{p.port}/{p.protocol}" for p in row.ports)
                 or "(none)", ",".join(ep.hints_zones + ep.hints_nodes) or "-"] if wide else []
        table.add_row(text(",".join(ep.addresses)), _yes(c.ready), _yes(c.serving),
                      text("yes", "yellow") if c.terminating else "no",
                      text(ep.node_name or "-"), text(ep.zone or "-"), text(pod),
                      *map(text, extra))
    return table


def findings_renderable(findings: list[Finding] | tuple[Finding, ...]) -> Any:
    """Findings, worst first, each with its evidence and the command to check it by hand."""
    from rich.text import Text
    out = Text()
    ordered = sorted(findings, key=lambda f: (-int(f.severity), f.id, f.message))
    out.append("Findings\n", style="bold")
    if not ordered:
        out.append("  none\n")
    for f in ordered:
        out.append(f"  {str(f.severity):<7} ", style=SEVERITY_STYLE[f.severity])
        out.append(f"{f.id}", style="bold")
        out.append(f"  {printable(f.message)}\n")
        for line in f.evidence:
            out.append(f"          {printable(line)}\n", style="dim")
        if f.command:
            out.append(f"          $ {printable(f.command)}\n")
    return out


def cluster_renderables(ex: ClusterExplanation, wide: bool = False,
                        now: datetime | None = None) -> list[Any]:
    """The text sections of the cluster half, in the order a connection takes (findings are
    rendered separately, with the node side's, by `findings_renderable`)."""
    now = now or datetime.now(UTC)
    parts: list[Any] = [service_renderable(ex.service)]
    if ex.pods:
        parts += [pods_renderable(ex, wide, now), ports_renderable(ex)]
    if ex.view.slices or not ex.service.is_external_name:
        parts.append(endpoints_renderable(ex, wide))
    return parts
