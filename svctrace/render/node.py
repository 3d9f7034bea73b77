"""The node half of explain → plain dicts (JSON/YAML) and rich renderables. Never prints."""

from __future__ import annotations

from typing import Any

from svctrace.diagnose.cluster import ClusterExplanation
from svctrace.diagnose.node import EntryTrace, NodeExplanation, pod_for
from svctrace.model.kubeproxy import ServiceChains
from svctrace.render.literal import printable
from svctrace.render.trace import outcome_dict, outcome_headline


def chains_dict(c: ServiceChains) -> dict[str, Any]:
    return {
        "servicePort": c.spn, "protocol": c.protocol, "hash": c.hash,
        "clusterIPs": list(c.cluster_ips), "externalIPs": list(c.external_ips),
        "loadBalancerIPs": list(c.load_balancer_ips), "nodePort": c.node_port,
        "chains": dict(sorted(c.chains.items())),
        "endpoints": [{"address": e.address, "probability": round(e.probability, 9),
                       "chain": e.chain, "local": e.local} for e in c.endpoints],
        "affinitySeconds": c.affinity_seconds,
        "sourceRanges": list(c.source_ranges),
        "entries": [{"kind": e.kind, "address": e.address, "port": e.port, "chain": e.target,
                     "line": e.rule.line} for e in c.entries],
        "masquerade": [{"chain": m.chain, "condition": m.condition, "reason": m.reason}
                       for m in c.masquerade],
        "filter": [{"chain": f.chain, "verdict": f.verdict, "reason": f.reason,
                    "address": f.address, "port": f.port} for f in c.filter],
    }


def health(ex: ClusterExplanation, destination: str | None) -> dict[str, Any] | None:
    row = pod_for(ex, destination)
    if row is None:
        return None if destination is None else {"pod": None, "ready": None,
                                                 "state": "no pod (selector-less endpoint)"}
    statuses = row.pod.container_statuses
    state = ", ".join(f"{s.name}: {s.state_reason or s.state}" for s in statuses) or "unknown"
    return {"pod": row.pod.name, "node": row.pod.node_name, "ready": row.pod.ready,
            "nodeReady": row.node_ready, "restarts": sum(s.restart_count for s in statuses),
            "state": state}


def trace_entry_dict(t: EntryTrace, ex: ClusterExplanation,
                     packet: str | None = None) -> dict[str, Any]:
    outcomes = []
    for o in t.trace.outcomes:
        d = outcome_dict(o, t.port)
        d["health"] = health(ex, o.destination)
        outcomes.append(d)
    return {"entry": t.entry, "servicePort": t.port, "client": t.client, "source": t.source,
            "destination": t.destination, "expectReach": t.expect_reach, "scapy": packet,
            "outcomes": outcomes}


def node_dict(node: NodeExplanation, ex: ClusterExplanation,
              packets: list[str] | None = None) -> dict[str, Any]:
    """The keys explain's JSON gains from the node side."""
    return {
        "rules": {"source": list(node.how), "mode": node.mode, "format": node.format,
                  "servicePorts": [chains_dict(c) for c in node.chains]},
        "drift": [{"kind": d.kind, "servicePort": d.port, "detail": d.detail}
                  for d in node.drift],
        "traces": [trace_entry_dict(t, ex, p) for t, p in
                   zip(node.traces, packets or [None] * len(node.traces), strict=True)],
    }


def _chain_tree(c: ServiceChains, raw: bool, wide: bool) -> Any:
    from rich.text import Text
    from rich.tree import Tree

    tree = Tree(Text(printable(c.display_name), style="bold"))
    for e in c.entries:
        node = tree.add(Text.assemble((f"{e.kind} ", "cyan"),
                                      printable(f"{e.address or '*'}:{e.port} → {e.target}")))
        if raw:
            node.add(Text(printable(e.rule.text), style="dim", overflow="fold"))
    for role, name in sorted(c.chains.items()):
        if name:
            tree.add(Text.assemble((f"{role.upper()} ", "cyan"), printable(name)))
    for m in c.masquerade:
        tree.add(Text(printable(f"masquerade in {m.chain}: {m.condition or 'always'} "
                                f"({m.reason})"), style="yellow"))
    shown: set[int] = set()       # nft 1.36: one numgen DNAT rule holds every endpoint
    for ep in c.endpoints:
        label = f"{ep.probability:7.2%}  {ep.address} via {ep.chain}" + \
            (" (local)" if ep.local else "")
        node = tree.add(Text(printable(label)))
        if raw or wide:
            for rule in ep.rules:
                if id(rule) not in shown:
                    shown.add(id(rule))
                    node.add(Text(printable(rule.text), style="dim", overflow="fold"))
    for f in c.filter:
        tree.add(Text(printable(f"filter {f.chain}: {f.verdict} ({f.reason})"),
                      style="red" if f.verdict in ("DROP", "REJECT") else ""))
    if c.affinity_seconds:
        tree.add(f"session affinity: ClientIP, {c.affinity_seconds}s (recent match)")
    return tree


def _trace_tree(t: EntryTrace, ex: ClusterExplanation, packet: str | None) -> Any:
    from rich.text import Text
    from rich.tree import Tree

    want = "" if t.expect_reach else " (outside loadBalancerSourceRanges: should be dropped)"
    tree = Tree(Text.assemble((f"{t.entry} ", "bold"),
                              printable(f"{t.destination} from {t.client} {t.source}") + want))
    if packet:
        tree.add(Text(f"packet: {printable(packet)}", style="dim"))
    for o in t.trace.outcomes:
        h = health(ex, o.destination)
        extra = ""
        if h and h.get("pod"):
            extra = f"  pod {h['pod']} ({'ready' if h['ready'] else 'NOT READY'}, {h['state']})"
        ok = o.verdict == "ACCEPT" and o.destination
        style = "green" if ok == t.expect_reach else "red"
        tree.add(Text(printable(outcome_headline(o) + extra), style=style))
        for a in o.assumptions:
            tree.add(Text(f"assumption: {printable(a.describe())}", style="yellow"))
    return tree


def _mode_line(node: NodeExplanation) -> str:
    from svctrace.render.rules import form_names

    return f"mode: kube-proxy {node.mode} mode (read from {form_names(node.format)})"


def node_renderables(node: NodeExplanation, ex: ClusterExplanation, raw: bool = False,
                     wide: bool = False, packets: list[str] | None = None) -> list[Any]:
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    parts: list[Any] = [Text("\n".join(map(printable, (*node.how, _mode_line(node)))),
                             style="dim")]
    if node.chains:
        parts.append(Panel(Group(*[_chain_tree(c, raw, wide) for c in node.chains]),
                           title="Rules (kube-proxy chains, found by hash)", title_align="left",
                           expand=False))
    else:
        parts.append(Text("Rules: no kube-proxy chains for this Service on this node",
                          style="yellow"))
    if node.drift:
        parts.append(Panel(Text("\n".join(printable(f"{d.kind}: {d.port}: {d.detail}")
                                          for d in node.drift), style="red"),
                           title="Drift (API vs rules)", title_align="left", expand=False))
    if node.traces:
        shown = packets or [None] * len(node.traces)
        parts.append(Panel(Group(*[_trace_tree(t, ex, p) for t, p in
                                   zip(node.traces, shown, strict=True)]),
                           title="Traces (one synthetic packet per entry point)",
                           title_align="left", expand=False))
    return parts
