"""explain's node half: where the rules come from, whose they are, and the report.

Sources, in order: --rules FILE|- (saved iptables-save or nft output, any form; --node NAME then
says whose), else --node NAME alone (iptables-save, or nft for a node in nftables mode, in that
node's kube-proxy pod, through the API's exec; with --debug-pod IMAGE, in a short-lived pod when
the node has none), else, as root on a node, this node's own rules. Without any, the node steps
are skipped with a note. Either kube-proxy mode; rules of both (a mode split) are read together.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from svctrace.errors import UsageError
from svctrace.model.cluster import Node, ServiceView
from svctrace.model.findings import Finding, Severity
from svctrace.model.nftables import ModeSplit, NftRuleset
from svctrace.model.ruleset import Ruleset
from svctrace.model.trace import NodeContext, node_context

if TYPE_CHECKING:
    from svctrace.diagnose.node import NodeInput
    from svctrace.explain.report import ExplainOptions, ExplainReport

AnyRules = Ruleset | NftRuleset | ModeSplit

ENTRIES = ("clusterIP", "nodePort", "loadBalancer", "externalIP")
SKIPPED = ("rule steps skipped: no rules source (give --rules FILE, run on a node as root, "
           "or use --node NAME)")


def explain_node_side(report: ExplainReport, view: ServiceView, opts: ExplainOptions) -> None:
    """Add rules, drift, traces, the verdict and node findings to the report (plain data:
    the CLI renders report.node)."""
    from svctrace.diagnose.node import explain_node, verdict
    from svctrace.packets import ScapyWorker
    from svctrace.render.node import node_dict

    entries = _entries(opts.entry)     # bad --entry / --from are usage errors, rules or not
    source = _source(view, opts)
    _check_debug_pod(opts)
    if not (opts.rules or opts.node or may_read_this_node()):
        _skipped(report)
        return
    worker = ScapyWorker()         # scapy's import overlaps reading the rules
    try:
        node_input = load_node_input(view, opts, report.notes, source, entries)
        if node_input is None:
            _skipped(report)
            return
        node_ex = explain_node(report.cluster, node_input)
        packets = scapy_packets(worker, node_ex)
    finally:
        worker.close()
    report.findings.extend(node_ex.findings)
    report.notes.extend(node_ex.notes)
    report.data.update(node_dict(node_ex, report.cluster, packets))
    report.data["verdict"] = verdict(report.cluster, node_ex)
    report.node, report.packets = node_ex, packets
    if opts.probe:
        from svctrace.explain.probe import probe_report
        probe_report(report, node_ex, on_node=not (opts.rules or opts.node))


def _skipped(report: ExplainReport) -> None:
    from svctrace.diagnose.node import verdict

    report.notes.append(SKIPPED)
    report.data["verdict"] = verdict(report.cluster, None)


def _check_debug_pod(opts: ExplainOptions) -> None:
    if opts.debug_pod is None:
        return
    if opts.rules or not opts.node:
        raise UsageError("--debug-pod IMAGE reads a node's rules for --node NAME without "
                         "--rules", "give --node NAME (and no --rules)")
    if not opts.debug_pod.strip():
        raise UsageError("--debug-pod needs an image", "e.g. the cluster's kube-proxy image: "
                         "kubectl -n kube-system get ds kube-proxy -o jsonpath='{..image}'")


def scapy_packets(worker: object, node_ex: object) -> list[str]:
    """The scapy packet of every trace (its one-line summary), built by the worker."""
    from svctrace.diagnose.node import NodeExplanation
    from svctrace.packets import ScapyWorker

    assert isinstance(worker, ScapyWorker) and isinstance(node_ex, NodeExplanation)
    specs = [(str(p.src), str(p.dst), p.protocol, p.sport, p.dport)
             for p in (t.trace.packet for t in node_ex.traces)]
    if not specs:
        return []
    return [b.get("summary") or b.get("error", "") for b in worker.build(specs)]


def load_node_input(view: ServiceView, opts: ExplainOptions, notes: list[str],
                    source: str | None, entries: tuple[str, ...]) -> NodeInput | None:
    """The rules to explain against and the node they belong to, or None when there are none.
    `source` and `entries` are --src/--from and --entry, already checked."""

    if opts.rules:
        from svctrace.rules.sources import load_ruleset
        rules = load_ruleset(opts.rules, opts.max_input)
        if isinstance(rules, Ruleset):
            notes.extend(rules.warnings)
        node, how = whose_rules(rules, view, opts)
        return node_input(rules, node, (f"rules: {rules.source}", *how), source, entries,
                          layout_findings(rules))
    if opts.node:
        return _through_exec(view, opts, source, entries)
    return _this_node(view, opts, notes, source, entries)


def node_input(rules: AnyRules, node: NodeContext, how: tuple[str, ...], source: str | None,
               entries: tuple[str, ...], findings: tuple[Finding, ...] = ()) -> NodeInput:
    """The NodeInput for rules of either mode: an nft ruleset carries the iptables rules read
    beside it, and the trace runs through both."""
    from svctrace.diagnose.node import NodeInput

    if isinstance(rules, ModeSplit):
        return NodeInput(rules.nft, node, how, findings, source, entries, rules.iptables)
    return NodeInput(rules, node, how, findings, source, entries)


def kube_rules(rules: AnyRules) -> Ruleset | NftRuleset:
    """The rules kube-proxy's chains are read from: nft when it has kube-proxy's tables."""
    if not isinstance(rules, ModeSplit):
        return rules
    from svctrace.rules.kubeproxy_nft import kube_proxy_tables
    return rules.nft if kube_proxy_tables(rules.nft) else rules.iptables


def _entries(entry: str | None) -> tuple[str, ...]:
    if entry is None:
        return ()
    wanted = tuple(e.strip() for e in entry.split(",") if e.strip())
    bad = [e for e in wanted if e not in ENTRIES]
    if bad:
        raise UsageError(f"--entry {bad[0]!r}: expected {', '.join(ENTRIES)}")
    return wanted


def _source(view: ServiceView, opts: ExplainOptions) -> str | None:
    """--src IP, or --from pod/NAME (that pod's IP)."""
    if opts.src:
        return opts.src
    if not opts.from_:
        return None
    name = opts.from_.split("/", 1)[1] if opts.from_.startswith(("pod/", "pods/")) else opts.from_
    pod = next((p for p in (*view.pods, *view.other_pods) if p.name == name), None)
    if pod is None or not pod.ips:
        raise UsageError(f"--from {opts.from_}: no such pod with an IP among the Service's pods",
                         "give --src IP for a pod of another workload")
    return pod.ips[0]


def _node_context(node: Node | None, extra: list[str], name: str | None) -> NodeContext:
    addresses = list(extra)
    if node is not None:
        addresses += [*node.internal_ips, *node.external_ips]
    try:
        return node_context(sorted(set(addresses)), name or (node.name if node else None))
    except ValueError as err:
        raise UsageError(f"--local-ip: {err}") from None


def whose_rules(ruleset: AnyRules, view: ServiceView,
                opts: ExplainOptions) -> tuple[NodeContext, tuple[str, ...]]:
    """Which node saved rules belong to: --node, else --local-ip, else what the rules tell."""
    if opts.node:
        node = view.node(opts.node) or lookup_node(opts, opts.node)
        if node is None and not opts.local_ips:
            raise UsageError(f'--node {opts.node}: no such Node in the '
                             f'{"snapshot" if view.source != "live" else "cluster"}',
                             "give its addresses with --local-ip")
        ctx = _node_context(node, opts.local_ips, opts.node)
        return ctx, (f"node: {opts.node} (addresses {_addrs(ctx)}, from --node)",)
    if opts.local_ips:
        node = _node_by_address(view, opts.local_ips)
        ctx = _node_context(node, opts.local_ips, node.name if node else None)
        return ctx, (f"node: {node.name if node else 'unknown'} (addresses {_addrs(ctx)}, "
                     "from --local-ip)",)
    node, why = infer_node(ruleset, view)
    if node is None:
        return node_context([]), ("node: unknown — the rules do not tell which node they are "
                                  "from; NodePort and from-the-node traces are skipped "
                                  "(give --node NAME or --local-ip IP)",)
    ctx = _node_context(node, [], node.name)
    return ctx, (f"node: {node.name} (addresses {_addrs(ctx)}), assumed because {why}",)


def lookup_node(opts: ExplainOptions, name: str) -> Node | None:
    """A Node the view left out (it holds only what the Service needed): from the snapshot,
    or one GET on the live cluster."""
    if opts.snapshot:
        from svctrace.cluster.snapshot import read_snapshot
        nodes = read_snapshot(opts.snapshot, opts.max_input).nodes
        return next((n for n in nodes if n.name == name), None)
    from svctrace.cluster.convert import node_from_dict
    from svctrace.cluster.live import connect

    conn = connect(opts.kubeconfig, opts.context, opts.request_timeout, opts.deadline)
    raw = conn.request("get", "nodes", None, conn.core().read_node, name, allow=(403, 404))
    return node_from_dict(raw) if raw else None


def _addrs(ctx: NodeContext) -> str:
    return ", ".join(str(n.network_address) for n in ctx.local) or "none"


def _node_by_address(view: ServiceView, addresses: list[str]) -> Node | None:
    return next((n for n in view.nodes if set(n.internal_ips) & set(addresses)), None)


def infer_node(rules: AnyRules, view: ServiceView) -> tuple[Node | None, str]:
    """The node whose rules these are, from what kube-proxy wrote only for its own node."""
    from svctrace.rules import kubeproxy, kubeproxy_nft

    ruleset = kube_rules(rules)
    hints = kubeproxy_nft.infer_local_hints(ruleset) if isinstance(ruleset, NftRuleset) else \
        kubeproxy.infer_local_hints(ruleset)
    node = _node_by_address(view, [h.address for h in hints])
    if node is not None:
        return node, f"the rules name its address ({hints[0].reason})"
    local_eps = _local_endpoint_nodes(ruleset, view)
    if len(local_eps) == 1:
        name = next(iter(local_eps))
        node = view.node(name)
        if node is not None:
            return node, ("the rules' KUBE-SVL chains hold only endpoints on that node"
                          if isinstance(ruleset, Ruleset) else "the rules' local- chains and "
                          "hairpin-connections set hold only endpoints on that node")
    return None, ""


def _local_endpoint_nodes(ruleset: Ruleset | NftRuleset, view: ServiceView) -> set[str]:
    """Nodes of the endpoints kube-proxy treats as this node's (KUBE-SVL / local- chains,
    nft's hairpin-connections set)."""
    from svctrace.diagnose.node import service_chains

    by_ip = {a: ep.node_name for s in view.slices for ep in s.endpoints for a in ep.addresses
             if ep.node_name}
    nodes = set()
    for chains in service_chains(view.service, ruleset):
        for ep in chains.endpoints:
            if ep.local and ep.address:
                node = by_ip.get(ep.address.rsplit(":", 1)[0].strip("[]"))
                if node:
                    nodes.add(node)
    return nodes


def _through_exec(view: ServiceView, opts: ExplainOptions, source: str | None,
                  entries: tuple[str, ...]) -> NodeInput:
    from svctrace.rules.detect import parse_rules

    if view.source != "live":
        raise UsageError("--node without --rules reads the node's rules through the live "
                         "cluster, but objects come from a snapshot",
                         "pass the node's saved rules with --rules FILE --node NAME")
    from svctrace.cluster.live import connect
    from svctrace.cluster.node_exec import read_rules_through_exec

    conn = connect(opts.kubeconfig, opts.context, opts.request_timeout, opts.deadline)
    text, where = read_rules_through_exec(conn, opts.node or "", opts.debug_pod)
    rules = parse_rules(text, where)
    node, how = whose_rules(rules, view, opts)
    return node_input(rules, node, (f"rules: {where}", *how), source, entries,
                      layout_findings(rules))


def layout_findings(rules: AnyRules) -> tuple[Finding, ...]:
    """IPVS mode, or kube-proxy's dispatch chains not hooked: said before any service rule
    (iptables rules; an nft ruleset of kube-proxy's tables has neither)."""
    from svctrace.rules.kubeproxy import layout_notes

    ruleset = rules.iptables if isinstance(rules, ModeSplit) else rules
    if not isinstance(ruleset, Ruleset) or kube_rules(rules) is not ruleset:
        return ()
    out = []
    for note in layout_notes(ruleset):
        if "IPVS mode" in note:
            out.append(Finding("RULES-IPVS-MODE", Severity.WARNING, note, (),
                               "sudo ipvsadm -Ln"))
        else:
            out.append(Finding("RULES-NOT-HOOKED", Severity.ERROR, note, (),
                               "sudo iptables-save -t nat | grep -- '-j KUBE-SERVICES'"))
    return tuple(out)


def _this_node(view: ServiceView, opts: ExplainOptions, notes: list[str], source: str | None,
               entries: tuple[str, ...]) -> NodeInput | None:
    """As root on a node: this node's own rules, from the iptables backend that holds KUBE
    chains and from nftables (kube-proxy's tables, and every other table a packet meets)."""
    from svctrace.rules.node import read_node

    if not may_read_this_node():
        return None
    node_rules = read_node(view_family(view), opts.progress)
    if not node_rules.kube_backends and not node_rules.nft_kube_proxy:
        notes.append("this machine has no kube-proxy chains (KUBE-SERVICES) in iptables-legacy "
                     "or iptables-nft, and no kube-proxy table in nftables")
        return None
    local = [*node_rules.local_addresses, *opts.local_ips]
    node = next((n for n in view.nodes if n.name == node_rules.hostname), None) or \
        _node_by_address(view, local)
    ctx = _node_context(node, local, node.name if node else node_rules.hostname)
    readers = []
    if node_rules.kube_backends:
        readers.append(f"{node_rules.reader} on this node ({node_rules.backend} backend)")
    if node_rules.nft is not None and node_rules.nft_tables:
        readers.append(f"nft on this node (tables {', '.join(node_rules.nft_tables)})")
    how = (f"rules: {' and '.join(readers)}",
           f"node: {ctx.name} (addresses {_addrs(ctx)}, from this machine)")
    findings: tuple[Finding, ...] = ()
    if node_rules.split:
        findings = (Finding(
            "RULES-BACKEND-SPLIT", Severity.WARNING,
            "both iptables-legacy and iptables-nft hold kube-proxy chains on this node; "
            f"explained the {node_rules.backend} ones",
            tuple(f"{b}: KUBE-SERVICES present" for b in node_rules.kube_backends),
            "sudo iptables-legacy-save | grep -c KUBE; sudo iptables-nft-save | grep -c KUBE"),)
    return node_input(node_rules.rules, ctx, how, source, entries, findings)


def may_read_this_node() -> bool:
    """Root may read this machine's rules (SVCTRACE_NO_LOCAL_RULES=1 says not to)."""
    return os.geteuid() == 0 and not os.environ.get("SVCTRACE_NO_LOCAL_RULES")


def view_family(view: ServiceView) -> int:
    ips = [ip for ip in view.service.cluster_ips if ip and ip != "None"]
    return 6 if ips and ":" in ips[0] else 4

