"""doctor's report → plain dicts (JSON/YAML) and rich renderables (text). Never prints.

Everything that came from the cluster or the rules is rendered literally (render.literal):
rich Text objects, never markup; control characters shown as escapes. Suggested commands
are shell-quoted.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from svctrace.diagnose.doctor import DoctorReport, NodeResult, ServiceResult
from svctrace.model.findings import Finding, Severity
from svctrace.render.literal import printable as literal

SCHEMA = "svctrace/v1"
ON_NODES = re.compile(r" on (?P<count>\d+/\d+) node\(s\): (?P<names>.*)$")
SEVERITY_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}


# --- what each row says ---------------------------------------------------------------------

def explain_command(report: DoctorReport, row: ServiceResult) -> str:
    """The `svctrace explain …` command that tells a Service's whole story (shell-quoted):
    with the node its rules disagree on first, through the same source doctor read."""
    args = ["svctrace", "explain", f"svc/{row.name}", "-n", row.namespace,
            *report.explain_args]
    if row.drift_nodes:
        node = row.drift_nodes[0]
        if node in report.rules_files:
            args += ["--rules", report.rules_files[node]]
        args += ["--node", node]
    return shlex.join(args)


def finding_ids(row: ServiceResult) -> str:
    """`SVC-NO-ENDPOINTS, RULES-STALE-ENDPOINT on 3/120 nodes: node7, node9, node12`."""
    parts = []
    for f in row.findings:
        where = ON_NODES.search(f.message) if f.id.startswith("RULES-") else None
        parts.append(f"{f.id} on {where['count']} nodes: {where['names']}" if where else f.id)
    return ", ".join(dict.fromkeys(parts))


def counts(report: DoctorReport) -> dict[str, int]:
    """Services checked, healthy, and with findings by their worst severity."""
    out = {"services": len(report.rows), "healthy": 0, "error": 0, "warning": 0, "info": 0}
    for row in report.rows:
        worst = row.worst
        out[str(worst) if worst else "healthy"] += 1
    return out


def node_counts(report: DoctorReport) -> dict[str, int]:
    read = sum(1 for n in report.nodes if n.read)
    return {"read": read, "failed": len(report.nodes) - read,
            "skipped": len(report.nodes_skipped)}


def summary_line(report: DoctorReport) -> str:
    c = counts(report)
    text = (f"{report.scope} ({literal(report.source)}): {c['services']} Service(s) checked, "
            f"{c['healthy']} healthy, {c['error']} with errors, {c['warning']} with warnings, "
            f"{c['info']} with notes")
    if report.nodes:
        n = node_counts(report)
        modes = sorted({n.mode for n in report.nodes if n.mode})
        text += (f"; nodes: {n['read']} read, {n['failed']} failed, {n['skipped']} skipped"
                 + (f" (mode: {', '.join(modes)})" if modes else ""))
    return text


def shown_rows(report: DoctorReport, show_all: bool) -> list[ServiceResult]:
    """Rows with a finding, worst first (every row with --all)."""
    from svctrace.diagnose.doctor import sorted_rows
    return sorted_rows([r for r in report.rows if show_all or r.findings])


# --- JSON / YAML ------------------------------------------------------------------------------

def findings_list(findings: list[Finding]) -> list[dict[str, Any]]:
    return [f.as_dict() for f in findings]


def row_dict(report: DoctorReport, row: ServiceResult) -> dict[str, Any]:
    return {"namespace": row.namespace, "name": row.name, "type": row.type,
            "verdict": row.verdict, "severity": str(row.worst) if row.worst else None,
            "readyPods": row.ready_pods, "findings": findings_list(row.findings),
            "driftNodes": row.drift_nodes, "explain": explain_command(report, row)}


def node_dict(node: NodeResult) -> dict[str, Any]:
    return {"name": node.name, "read": node.read, "mode": node.mode, "source": node.source,
            "reason": node.reason, "servicePorts": node.service_ports,
            "drift": dict(sorted(node.drift.items())), "missingServicePorts": node.missing,
            "unknownServicePorts": node.unknown, "findings": findings_list(node.findings)}


def doctor_dict(report: DoctorReport, show_all: bool = False) -> dict[str, Any]:
    """The `-o json|yaml` document (kind "doctor"): rows with a finding (every row with
    --all), worst first; every node read or failed; the run's own findings."""
    return {
        "schema": SCHEMA, "kind": "doctor", "scope": report.scope, "source": report.source,
        "summary": {**counts(report), "nodes": node_counts(report)},
        "services": [row_dict(report, r) for r in shown_rows(report, show_all)],
        "nodes": [node_dict(n) for n in report.nodes],
        "nodesSkipped": report.nodes_skipped,
        "findings": findings_list(report.findings),
        "interrupted": report.interrupted, "notChecked": report.not_checked,
    }


# --- text -------------------------------------------------------------------------------------

def doctor_renderables(report: DoctorReport, show_all: bool = False,
                       wide: bool = False) -> list[Any]:
    """Summary line, the Services table, the nodes, the run's findings, what was not checked."""
    from rich.text import Text
    parts: list[Any] = [Text(literal(summary_line(report)), style="bold")]
    rows = shown_rows(report, show_all)
    if rows:
        parts.append(services_table(report, rows, wide))
    elif report.rows:
        parts.append(Text("every Service checked is healthy"))
    if report.nodes:
        parts.append(nodes_table(report.nodes))
    extra = [*report.findings, *(f for n in report.nodes for f in n.findings)]
    if extra:
        parts.append(_findings_text(extra))
    if report.not_checked:
        parts.append(Text("not checked (interrupted): " + "; ".join(report.not_checked),
                          style="yellow"))
    return parts


def services_table(report: DoctorReport, rows: list[ServiceResult], wide: bool) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("SEVERITY", "SERVICE", "TYPE", "VERDICT", "FINDINGS", "EXPLAIN"):
        table.add_column(name, no_wrap=name in ("SEVERITY", "SERVICE", "TYPE", "EXPLAIN")
                         or wide, overflow="fold")
    for row in rows:
        worst = row.worst
        table.add_row(Text(str(worst) if worst else "ok",
                           style=SEVERITY_STYLE.get(worst, "green") if worst else "green"),
                      Text(literal(f"{row.namespace}/{row.name}")), Text(row.type),
                      Text(literal(row.verdict)), Text(literal(finding_ids(row))),
                      Text(literal(explain_command(report, row))))
    return table


def nodes_table(nodes: list[NodeResult]) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name in ("NODE", "MODE", "SERVICE PORTS", "MISSING", "STALE ENDPOINTS",
                 "MISSING ENDPOINTS", "UNKNOWN", "STATUS"):
        table.add_column(name, overflow="fold")
    for n in nodes:
        status = Text("ok" if n.read and not _has_drift(n) else "drift" if n.read else
                      literal(f"unreadable: {n.reason}"),
                      style="green" if n.read and not _has_drift(n) else "bold red")
        table.add_row(Text(literal(n.name)), Text(n.mode or "-"),
                      str(n.service_ports) if n.read else "-",
                      str(len(n.missing)), str(n.drift.get("RULES-STALE-ENDPOINT", 0)),
                      str(n.drift.get("RULES-MISSING-ENDPOINT", 0)), str(len(n.unknown)),
                      status)
    return table


def _has_drift(n: NodeResult) -> bool:
    return bool(n.drift or n.unknown)


def _findings_text(findings: list[Finding]) -> Any:
    from rich.text import Text
    text = Text()
    for f in sorted(findings, key=lambda f: (-int(f.severity), f.id, f.message)):
        text.append(f"{str(f.severity):<7} ", style=SEVERITY_STYLE[f.severity])
        text.append(f.id, style="bold")
        text.append(f"  {literal(f.message)}\n")
        for line in f.evidence[:3]:
            text.append(f"        {literal(line)}\n", style="dim")
    return text
