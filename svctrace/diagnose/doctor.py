"""`doctor`'s checks: explain's findings for every Service, and what every node's rules say.

Model and digests in, plain data with stable finding ids out; no I/O. Per Service the checks
are explain's own (`explain_cluster`, `verdict`); per node, a digest of its rules is compared
with what the API says that node should have (svctrace.diagnose.expect) and only the
disagreements are kept, so memory grows with the findings, not with nodes × rules.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svctrace.diagnose.cluster import ClusterExplanation, sort_findings
from svctrace.diagnose.digest import PortDrift, compare_port, expected_key, unknown_ports
from svctrace.diagnose.expect import ExpectedPort
from svctrace.diagnose.node import verdict
from svctrace.diagnose.paths import service_path
from svctrace.model.findings import Finding, Severity

MAX_NODES_NAMED = 5          # "on 3/120 nodes: node7, node9, node12"
MAX_EVIDENCE = 10

NODE_FINDING_TEXT = {
    "RULES-SERVICE-MISSING": "has endpoints but no kube-proxy rules",
    "RULES-MISSING-ENDPOINT": "endpoint ready in the API has no rules (kube-proxy has not "
                              "synced it)",
    "RULES-STALE-ENDPOINT": "rules DNAT to an address that is no longer an endpoint",
    "RULES-STALE-REJECT": "rules still REJECT the port although it has endpoints",
    "RULES-DANGLING": "rules point at nothing (a jump to a missing chain, or no DNAT target)",
}


@dataclass
class ServiceResult:
    """One Service as doctor reports it."""

    namespace: str
    name: str
    type: str
    verdict: str
    findings: list[Finding]
    ready_pods: int = 0
    drift_nodes: list[str] = field(default_factory=list)    # nodes whose rules disagree
    path: list[dict[str, Any]] = field(default_factory=list)  # for diagrams (diagnose.paths)

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)


@dataclass
class NodeResult:
    """One node's rules, compared with the API (or why they could not be read)."""

    name: str
    read: bool
    mode: str | None = None
    source: str | None = None
    reason: str | None = None                     # why the rules could not be read
    service_ports: int = 0                        # service ports found in its rules
    drift: dict[str, int] = field(default_factory=dict)     # finding id → service ports
    missing: list[str] = field(default_factory=list)        # service ports missing
    unknown: list[str] = field(default_factory=list)        # rules for no API service port
    findings: list[Finding] = field(default_factory=list)


@dataclass
class DoctorReport:
    """What doctor found: a row per Service, a result per node read, findings of the run."""

    scope: str                                        # "namespace shop" | "all namespaces"
    source: str                                       # "live" | "snapshot FILE"
    rows: list[ServiceResult] = field(default_factory=list)
    nodes: list[NodeResult] = field(default_factory=list)
    nodes_skipped: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)   # about the run itself
    notes: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)    # named after Ctrl-C
    interrupted: bool = False
    explain_args: tuple[str, ...] = ()               # --snapshot/--context for explain commands
    rules_files: dict[str, str] = field(default_factory=dict)   # node → --rules FILE

    def all_findings(self) -> list[Finding]:
        return [*self.findings, *(f for r in self.rows for f in r.findings),
                *(f for n in self.nodes for f in n.findings)]


@dataclass
class NodeDrift:
    """What one node's digest disagrees with, kept once the digest is dropped."""

    result: NodeResult
    by_service: dict[tuple[str, str], list[PortDrift]]     # (namespace, name) → drift


def service_result(ex: ClusterExplanation) -> ServiceResult:
    """explain's cluster half of one Service, kept as doctor's row (the view is dropped; the
    path of the Service is kept only when it has a finding)."""
    svc = ex.service
    path = service_path(svc, ex.view.slices) if ex.findings else []
    return ServiceResult(svc.namespace, svc.name, svc.type, verdict(ex, None),
                         list(ex.findings), sum(1 for r in ex.pods if r.pod.ready), path=path)


def compare_node(node: str, digest: Mapping[str, Any],
                 expected: Iterable[tuple[tuple[str, str], list[ExpectedPort]]],
                 namespaces: set[str] | None) -> NodeDrift:
    """Compare one node's digest with the expected service ports of every Service in scope
    (`namespaces` None: every namespace, so rules for unknown service ports are judged)."""
    known: set[str] = set()
    by_service: dict[tuple[str, str], list[PortDrift]] = {}
    for key, ports in expected:
        drift = []
        for port in ports:
            k = expected_key(port.spn, port.protocol)
            known.add(k)
            drift += compare_port(port, digest["servicePorts"].get(k))
        if drift:
            by_service[key] = drift
    result = NodeResult(node, True, digest.get("mode"), digest.get("source"),
                        service_ports=len(digest["servicePorts"]))
    counts: dict[str, set[str]] = defaultdict(set)
    for drift in by_service.values():
        for d in drift:
            counts[d.finding].add(d.spn)
    result.drift = {fid: len(spns) for fid, spns in sorted(counts.items())}
    result.missing = sorted(counts.get("RULES-SERVICE-MISSING", set()))
    result.unknown = unknown_ports(digest, known, namespaces)
    result.findings = node_findings(result)
    return NodeDrift(result, by_service)


def node_findings(result: NodeResult) -> list[Finding]:
    """Findings about a node as a whole (per-Service drift is reported on the Services)."""
    out = []
    if result.unknown:
        out.append(Finding("RULES-UNKNOWN-SERVICE", Severity.WARNING,
                           f"node {result.name}: rules for {len(result.unknown)} service "
                           "port(s) that no Service in the API has (stale rules)",
                           capped(result.unknown), _rules_command(result.name)))
    return out


def unreadable(node: str, reason: str) -> NodeResult:
    """A node whose rules could not be read, with NODE-RULES-UNREADABLE saying why."""
    finding = Finding("NODE-RULES-UNREADABLE", Severity.ERROR,
                      f"node {node}: rules could not be read: {reason}", (),
                      f"kubectl -n kube-system get pods -o wide --field-selector "
                      f"{shlex.quote('spec.nodeName=' + node)}")
    return NodeResult(node, False, reason=reason, findings=[finding])


def _rules_command(node: str) -> str:
    pod = (f"$(kubectl -n kube-system get pods -l k8s-app=kube-proxy --field-selector "
           f"spec.nodeName={shlex.quote(node)} -o name)")
    return (f"kubectl -n kube-system exec {pod} -- iptables-save | svctrace rules --rules - "
            f"--digest --node {shlex.quote(node)}")


def node_drift_findings(namespace: str, name: str, drift_by_node: Mapping[str, list[PortDrift]],
                        nodes_compared: int) -> list[Finding]:
    """The per-Service findings of every node's drift: one per finding id, saying on how
    many of the compared nodes and which."""
    by_id: dict[str, dict[str, list[PortDrift]]] = defaultdict(lambda: defaultdict(list))
    for node, drift in sorted(drift_by_node.items()):
        for d in drift:
            by_id[d.finding][node].append(d)
    out = []
    for fid, nodes in sorted(by_id.items()):
        names = sorted(nodes)
        shown = ", ".join(names[:MAX_NODES_NAMED]) + (
            f", … {len(names) - MAX_NODES_NAMED} more" if len(names) > MAX_NODES_NAMED else "")
        evidence = [f"{n}: {d.spn}: {d.detail}" for n in names for d in nodes[n]]
        out.append(Finding(fid, Severity.ERROR,
                           f"{namespace}/{name}: {NODE_FINDING_TEXT[fid]} on {len(names)}/"
                           f"{nodes_compared} node(s): {shown}", capped(evidence),
                           shlex.join(["svctrace", "explain", f"svc/{name}", "-n", namespace,
                                       "--node", names[0]])))
    return out


EARLIER_HOPS = ("fails at the selector", "fails at the endpoints", "fails at the port")


def with_node_findings(row: ServiceResult, found: list[Finding], nodes_compared: int) -> None:
    """Add a Service's node findings to its row and word its verdict as explain does: the
    rules are the hop after selector, endpoints and port (diagnose.node.verdict)."""
    row.findings = sort_findings([*row.findings, *found])
    if not nodes_compared or row.verdict.startswith(EARLIER_HOPS):
        return
    if found:
        first = min(found, key=lambda f: list(NODE_FINDING_TEXT).index(f.id))
        row.verdict = f"fails at the rules: {first.message}"
    elif row.verdict.endswith("rules not checked"):
        row.verdict = row.verdict.replace("rules not checked",
                                          f"rules agree on {nodes_compared} node(s)")


def capped(lines: list[str]) -> tuple[str, ...]:
    if len(lines) <= MAX_EVIDENCE:
        return tuple(lines)
    return tuple(lines[:MAX_EVIDENCE]) + (f"… and {len(lines) - MAX_EVIDENCE} more",)


def sorted_rows(rows: list[ServiceResult]) -> list[ServiceResult]:
    """Worst first, then by number of findings, then namespace/name."""
    return sorted(rows, key=lambda r: (-(int(r.worst) if r.worst else 0), -len(r.findings),
                                       r.namespace, r.name))
