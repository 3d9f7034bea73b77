"""doctor's report as one self-contained HTML page (`-o html`): inline CSS, no network
fetches, readable without JavaScript (a small inline script only makes the table sortable).

The page: the summary, a table of the Services (worst first; click a heading to sort), the
nodes, and for each Service with a finding its verdict, findings and a diagram (SVG) of its
path: Service → kube-proxy chain → endpoints with their shares, the failing hop in red.
Everything from the cluster is shown literally (control characters as escapes) and
HTML-escaped. Never prints.
"""

from __future__ import annotations

from html import escape
from typing import Any

from svctrace.diagnose.doctor import DoctorReport, NodeResult, ServiceResult
from svctrace.diagnose.paths import failing_hop
from svctrace.render.doctor import (
    counts,
    explain_command,
    finding_ids,
    shown_rows,
    summary_line,
)
from svctrace.render.literal import printable

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em;color:#1b1f24}
h1{font-size:1.4em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.6em 0 .3em}
.summary{background:#f3f5f7;border-left:4px solid #57606a;padding:.6em 1em}
table{border-collapse:collapse;margin:.8em 0;width:100%}
th,td{border-bottom:1px solid #d0d7de;padding:.35em .6em;text-align:left;vertical-align:top}
th button{font:inherit;font-weight:600;background:none;border:0;padding:0;cursor:pointer}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
td:nth-child(4){min-width:16em}
.error{color:#b3261e;font-weight:600}.warning{color:#9a6700}.info{color:#0969da}
.ok{color:#1a7f37}
.finding{margin:.2em 0}.evidence{color:#57606a;margin-left:1.5em;font-size:.92em}
svg{max-width:100%;height:auto;border:1px solid #d0d7de;background:#fff}
svg text{font:12px ui-monospace,Menlo,monospace;fill:#1b1f24}
svg .box{fill:#f6f8fa;stroke:#57606a}svg .fail{fill:#ffebe9;stroke:#b3261e;stroke-width:2}
svg .edge{stroke:#57606a;fill:none}svg .edge.fail{stroke:#b3261e;stroke-width:2}
svg .dim{fill:#f6f8fa;stroke:#afb8c1;stroke-dasharray:4 3}
svg text.label{fill:#57606a}svg text.bad{fill:#b3261e;font-weight:600}
"""

# sorting: numbers by value, text by locale; the page reads the same without it
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.querySelectorAll("th");
  heads.forEach(function (th, col) {
    var button = th.querySelector("button");
    if (!button) { return; }
    button.addEventListener("click", function () {
      var up = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", up ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-sort") || a.cells[col].textContent;
        var y = b.cells[col].getAttribute("data-sort") || b.cells[col].textContent;
        var nx = parseFloat(x), ny = parseFloat(y);
        var d = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

def _h(value: str) -> str:
    """Text for HTML: control characters as escapes (render.literal), then HTML-escaped."""
    return escape(printable(value))


SEVERITY_RANK = {"error": 3, "warning": 2, "info": 1, "ok": 0}


def doctor_html(report: DoctorReport, show_all: bool = False) -> str:
    """The whole page."""
    rows = shown_rows(report, show_all)
    broken = [r for r in rows if r.findings]
    title = f"svctrace doctor: {report.scope}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_h(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_h(title)}</h1>",
        f'<p class="summary" id="summary">{_h(summary_line(report))}</p>',
        _interrupted(report), _services_table(report, rows), _nodes_table(report.nodes),
        _run_findings(report), *(_service_section(report, r) for r in broken),
        f"<script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _interrupted(report: DoctorReport) -> str:
    if not report.not_checked:
        return ""
    return ('<p class="warning">Interrupted; not checked: '
            + _h("; ".join(report.not_checked)) + "</p>")


def _severity(row: ServiceResult) -> str:
    return str(row.worst) if row.worst else "ok"


def _services_table(report: DoctorReport, rows: list[ServiceResult]) -> str:
    c = counts(report)
    if not rows:
        return f"<p>All {c['services']} Service(s) checked are healthy.</p>"
    head = "".join(f'<th scope="col"><button type="button">{h}</button></th>'
                   for h in ("Severity", "Service", "Type", "Verdict", "Findings", "Explain"))
    body = []
    for row in rows:
        sev = _severity(row)
        name = _h(f"{row.namespace}/{row.name}")
        link = f'<a href="#{_anchor(row)}">{name}</a>' if row.findings else name
        body.append(
            f'<tr><td class="{sev}" data-sort="{SEVERITY_RANK[sev]}">{sev}</td>'
            f"<td>{link}</td><td>{_h(row.type)}</td><td>{_h(row.verdict)}</td>"
            f"<td>{_h(finding_ids(row))}</td>"
            f"<td><code>{_h(explain_command(report, row))}</code></td></tr>")
    return (f'<h2>Services</h2><table class="sortable" id="services"><thead><tr>{head}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table>')


def _nodes_table(nodes: list[NodeResult]) -> str:
    if not nodes:
        return ""
    head = "".join(f'<th scope="col"><button type="button">{h}</button></th>' for h in (
        "Node", "Mode", "Service ports", "Missing", "Stale endpoints", "Missing endpoints",
        "Unknown", "Status"))
    body = []
    for n in nodes:
        status = ("ok" if not (n.drift or n.unknown) else "drift") if n.read else \
            f"unreadable: {n.reason}"
        cls = "ok" if status == "ok" else "error"
        cells = [n.name, n.mode or "-", str(n.service_ports) if n.read else "-",
                 str(len(n.missing)), str(n.drift.get("RULES-STALE-ENDPOINT", 0)),
                 str(n.drift.get("RULES-MISSING-ENDPOINT", 0)), str(len(n.unknown))]
        body.append("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in cells)
                    + f'<td class="{cls}">{_h(status)}</td></tr>')
    return (f'<h2>Nodes</h2><table class="sortable" id="nodes"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _run_findings(report: DoctorReport) -> str:
    found = [*report.findings, *(f for n in report.nodes for f in n.findings)]
    if not found:
        return ""
    return "<h2>Findings about the run and the nodes</h2>" + "".join(
        _finding(f) for f in found)


def _finding(f: Any) -> str:
    evidence = "".join(f'<div class="evidence">{_h(e)}</div>' for e in f.evidence)
    command = f'<div class="evidence"><code>$ {_h(f.command)}</code></div>' \
        if f.command else ""
    return (f'<div class="finding"><span class="{f.severity}">{f.severity}</span> '
            f"<strong>{_h(f.id)}</strong> {_h(f.message)}{evidence}{command}</div>")


def _anchor(row: ServiceResult) -> str:
    return "svc-" + "".join(c if c.isalnum() or c in "-." else "-"
                            for c in f"{row.namespace}.{row.name}")


def _service_section(report: DoctorReport, row: ServiceResult) -> str:
    svg = service_svg(row)
    return (f'<section id="{_anchor(row)}" class="service"><h2>'
            f"{_h(row.namespace)}/{_h(row.name)} <small>({_h(row.type)})</small>"
            f"</h2><p><strong>verdict:</strong> {_h(row.verdict)}</p>"
            + (f'<figure>{svg}</figure>' if svg else "")
            + "".join(_finding(f) for f in row.findings)
            + f"<p><code>{_h(explain_command(report, row))}</code></p></section>")


# --- the diagram ------------------------------------------------------------------------------

ROW_H, BOX_H, W = 30, 24, 820
X_SVC, X_CHAIN, X_EP = 10, 300, 560
SVC_W, CHAIN_W, EP_W = 230, 200, 250


def service_svg(row: ServiceResult) -> str:
    """Service → chain → endpoints for every service port, the failing hop marked."""
    if not row.path:
        return ""
    hop = failing_hop(row.verdict)
    y, shapes = 10, []
    for port in row.path:
        height, drawn = _port_shapes(row, port, hop, y)
        shapes += drawn
        y += height + 16
    label = _h(f"path of {row.namespace}/{row.name}: Service, kube-proxy chain, endpoints")
    return (f'<svg role="img" class="path" '
            f'viewBox="0 0 {W} {y}" width="{W}" height="{y}" aria-label="{label}">'
            f"<title>{label}</title>{''.join(shapes)}</svg>")


def _port_shapes(row: ServiceResult, port: dict[str, Any], hop: str | None,
                 top: int) -> tuple[int, list[str]]:
    endpoints = port["endpoints"]
    n = max(len(endpoints), 1)
    height = n * ROW_H
    mid = top + height // 2
    chain_fail = hop in ("rules", "policy") or bool(port.get("chainDrift"))
    edge_fail = hop == "port"
    out = [_box(X_SVC, mid - BOX_H // 2, SVC_W, f"{port['entry']} {port['protocol']}",
                "box", f"service port {port['servicePort']}"),
           _edge(X_SVC + SVC_W, mid, X_CHAIN, mid, "port" if edge_fail else "", edge_fail),
           _box(X_CHAIN, mid - BOX_H // 2, CHAIN_W, port["chain"],
                "fail" if chain_fail else "box", _chain_title(port))]
    if not endpoints:
        bad = hop in ("selector", "endpoints")
        out.append(_edge(X_CHAIN + CHAIN_W, mid, X_EP, mid, "", bad))
        out.append(_box(X_EP, mid - BOX_H // 2, EP_W, "no endpoints", "fail" if bad else "dim",
                        "kube-proxy REJECTs connections to this port"))
        return height, out
    for i, ep in enumerate(endpoints):
        y = top + i * ROW_H + ROW_H // 2
        bad = ep["state"] in ("stale", "missing") or (
            hop == "backend health" and ep["state"] != "ready")
        share = f"{ep['share']:.0%}" if ep["share"] is not None else ""
        out.append(_edge(X_CHAIN + CHAIN_W, mid, X_EP, y, share, bad))
        text = ep["address"] + ("" if ep["state"] == "ready" else f" ({ep['state']})")
        nodes = f" on {', '.join(ep['nodes'])}" if ep["nodes"] else ""
        cls = "fail" if bad else "box" if ep["state"] == "ready" else "dim"
        out.append(_box(X_EP, y - BOX_H // 2, EP_W, text, cls,
                        f"endpoint {ep['address']}: {ep['state']}{nodes}"))
    return height, out


def _chain_title(port: dict[str, Any]) -> str:
    drift = port.get("chainDrift") or {}
    extra = "; ".join(f"{fid} on {', '.join(nodes)}" for fid, nodes in sorted(drift.items()))
    return f"kube-proxy chain {port['chain']}" + (f": {extra}" if extra else "")


def _box(x: int, y: int, w: int, text: str, cls: str, title: str) -> str:
    shown = text if len(text) <= w // 7 else text[: w // 7 - 1] + "…"
    text_cls = ' class="bad"' if cls == "fail" else ""
    return (f'<g><title>{_h(title)}</title><rect class="{cls}" x="{x}" y="{y}" '
            f'width="{w}" height="{BOX_H}" rx="4"/><text x="{x + 8}" y="{y + 16}"{text_cls}>'
            f"{_h(shown)}</text></g>")


def _edge(x1: int, y1: int, x2: int, y2: int, label: str, bad: bool) -> str:
    cls = "edge fail" if bad else "edge"
    # the label sits by the far end: edges fan out from one chain box
    text = (f'<text class="{"bad" if bad else "label"}" x="{x2 - 42}" '
            f'y="{y2 - 4}">{_h(label)}</text>') if label else ""
    return (f'<path class="{cls}" d="M{x1},{y1} C{x1 + 40},{y1} {x2 - 40},{y2} {x2},{y2}"/>'
            f"{text}")
