"""ServiceChains → plain data (JSON/YAML) or a rich tree (text, wide). Never prints.

The same for both kube-proxy modes (the model is mode-neutral); only labels say where a rule
lives (iptables chain, nft map or chain). rich is imported only by the tree builders:
`svctrace rules -o json` on a 10,000-Service node should not pay for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from svctrace.model.kubeproxy import ElementRule, EndpointChain, RuleRef, ServiceChains
from svctrace.render.literal import printable

SCHEMA = "svctrace/v1"
FORMAT_NAMES = {"iptables-save": "iptables-save output", "nft-text": "`nft list ruleset` text",
                "nft-json": "`nft -j list ruleset` JSON", "nft-f": "`nft -f` input"}


def form_names(form: str) -> str:
    """"iptables-save+nft-text" → "iptables-save output + `nft list ruleset` text"."""
    return " + ".join(FORMAT_NAMES.get(f, f) for f in form.split("+"))


def header(source: str, mode: str, form: str) -> str:
    """The line naming what was read: `rules.txt: kube-proxy nftables mode, `nft …` text`;
    mode "split" = kube-proxy rules of both modes (iptables-save followed by nft output)."""
    forms = form_names(form)
    modes = "rules of both kube-proxy modes (iptables and nftables)" if mode == "split" else \
        f"kube-proxy {mode} mode"
    return printable(f"{source}: {modes}, {forms}")


# --- plain data --------------------------------------------------------------------------------

def services_data(services: Iterable[ServiceChains], source: str | None = None,
                  mode: str | None = None, form: str | None = None) -> dict[str, Any]:
    """The `-o json` / `-o yaml` document: {"schema", "source", "mode", "format", "services"}.

    Services keep the order given (map_services sorts them by namespace/name/port).
    """
    data: dict[str, Any] = {"schema": SCHEMA, "services": [service_data(s) for s in services]}
    for key, value in (("source", source), ("mode", mode), ("format", form)):
        if value is not None:
            data[key] = value
    return data


def service_data(s: ServiceChains) -> dict[str, Any]:
    """One service port as plain data. Keys are written in sorted order, at every level, so
    the C encoder can skip sorting (dumps_json); tests check the order."""
    return {
        "affinitySeconds": s.affinity_seconds,
        "chains": {role: s.chains.get(role) for role in ("ext", "fw", "svc", "svl")},
        "clusterIPs": list(s.cluster_ips),
        "endpoints": [endpoint_data(e) for e in s.endpoints],
        "externalIPs": list(s.external_ips),
        "family": f"IPv{s.family}",
        "filter": [{"address": f.address, "chain": f.chain, "port": f.port,
                    "reason": f.reason, "verdict": f.verdict} for f in s.filter],
        "hash": s.hash,
        "healthCheckNodePort": s.health_check_node_port,
        "loadBalancerIPs": list(s.load_balancer_ips),
        "masquerade": [{"chain": m.chain, "condition": m.condition, "reason": m.reason}
                       for m in s.masquerade],
        "mode": s.mode, "name": s.name, "namespace": s.namespace, "nodePort": s.node_port,
        "port": s.port, "portName": s.port_name, "protocol": s.protocol,
        "sourceRanges": list(s.source_ranges),
        "warnings": list(s.warnings),
    }


def endpoint_data(e: EndpointChain) -> dict[str, Any]:
    return {"address": e.address, "affinity": e.affinity, "chain": e.chain,
            "hairpin": e.hairpin, "local": e.local, "probability": e.probability,
            "via": e.via}


def dumps_json(data: dict[str, Any]) -> str:
    """JSON text with sorted keys; each element of "services" on one line.

    Python's indenting encoder is pure Python and takes ~0.6 s on 10,000 services; the C encoder
    writes each service in a few microseconds. The result is still one valid JSON document.
    """
    head = {k: v for k, v in data.items() if k != "services"}
    encode = json.JSONEncoder().encode         # service_data writes its keys sorted
    return dumps_json_lines(head, [encode(s) for s in data["services"]])


def encode_service(s: ServiceChains) -> str:
    """One service port as the JSON line dumps_json writes for it."""
    return json.JSONEncoder().encode(service_data(s))


def dumps_json_lines(head: dict[str, Any], items: list[str]) -> str:
    """The document of dumps_json from already encoded services (one per line)."""
    lines = ["{"]
    for key in sorted({*head, "services"}):
        if key == "services":
            body = ",\n".join("    " + item for item in items)
            lines.append(f'  "services": [\n{body}\n  ],' if items else '  "services": [],')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(head[key], sort_keys=True)},")
    lines[-1] = lines[-1].rstrip(",")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- rich tree ---------------------------------------------------------------------------------

def _pct(p: float) -> str:
    return f"{p * 100:.1f}%" if p < 0.9995 else "100%"


def _addr(ip: str | None, port: int | None) -> str:
    if ip is None:
        return f"*:{port}" if port is not None else "any destination"
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def services_tree(services: list[ServiceChains], wide: bool = False,
                  title: str | None = None) -> Any:
    """A rich renderable: the `title` line (see `header`), then one tree per service port."""
    from rich.console import Group
    from rich.text import Text

    top = [Text(title, style="dim")] if title is not None else []
    if not services:
        return Group(*top, Text("no kube-proxy service chains found"))
    mixed = len({s.mode for s in services}) > 1      # a node with both modes' rules
    return Group(*top, *(service_tree(s, wide, mixed) for s in services))


def service_tree(s: ServiceChains, wide: bool = False, show_mode: bool = False) -> Any:
    from rich.text import Text
    from rich.tree import Tree

    title = Text(printable(s.display_name), style="bold")
    if show_mode:
        title.append(f"  ({s.mode} mode)", style="yellow")
    title.append(f"  {printable(s.protocol or '?')}")
    if s.port is not None:
        title.append(f" port {s.port}")
    if s.affinity_seconds is not None:
        title.append(f"  affinity ClientIP {s.affinity_seconds}s", style="magenta")
    tree = Tree(title)
    _entries(tree, s, wide)
    for role in ("fw", "ext", "svc", "svl"):
        name = s.chains.get(role)
        if name is not None:
            _chain(tree, s, role, name, wide)
    own = set(s.chains.values())
    for m in s.masquerade:           # nft 1.36: one rule in `services` for every ClusterIP
        if s.mode != "iptables" and m.chain not in own:
            node = tree.add(Text.assemble(("masquerade ", "yellow"),
                                          printable(m.condition or "all traffic"),
                                          (printable(f"  ({m.reason}, chain {m.chain})"), "dim")))
            _rule_lines(node, [m.rule], wide)
    for f in s.filter:
        where = "filter " if s.mode == "iptables" else \
            ("map " if isinstance(f.rule, ElementRule) else "chain ")
        node = tree.add(Text.assemble((where, "dim"), (f"{printable(f.chain)} ", ""),
                                      (printable(f.verdict),
                                       "red" if f.verdict != "ACCEPT" else "green"),
                                      printable(f"  {_addr(f.address, f.port)}  ({f.reason})")))
        _rule_lines(node, [f.rule], wide)
    for w in s.warnings:
        tree.add(Text(f"warning: {printable(w)}", style="yellow"))
    return tree


_KIND_LABEL = {"clusterIP": "cluster IP", "externalIP": "external IP",
               "loadBalancerIP": "loadbalancer IP", "nodePort": "node port"}


def _entries(tree: Any, s: ServiceChains, wide: bool) -> None:
    from rich.text import Text

    for e in s.entries:
        where = "map" if s.mode != "iptables" else "nat"     # nft: a service-ips element
        label = _KIND_LABEL.get(e.kind, e.kind) + ("?" if e.kind_inferred else "")
        node = tree.add(Text.assemble((f"{where} {printable(e.rule.chain)} ", "dim"),
                                      f"{label} ",
                                      (printable(_addr(e.address, e.port)), "cyan"),
                                      f" → {printable(e.target)}"))
        _rule_lines(node, [e.rule], wide)
    for m in s.masquerade:          # before 1.22: next to the entry rule, not in KUBE-SVC
        if m.chain in ("KUBE-SERVICES", "KUBE-NODEPORTS"):
            node = tree.add(Text.assemble((f"nat {m.chain} ", "dim"), ("masquerade ", "yellow"),
                                          printable(m.condition or "all traffic"),
                                          (f"  ({printable(m.reason)})", "dim")))
            _rule_lines(node, [m.rule], wide)


def _chain(tree: Any, s: ServiceChains, role: str, name: str, wide: bool) -> None:
    from rich.text import Text

    label = Text(printable(name), style="bold blue")
    if role == "fw" and s.source_ranges:
        label.append(f"  allowed sources {printable(', '.join(s.source_ranges))}; others are "
                     "dropped " + ("by filter KUBE-PROXY-FIREWALL" if s.mode == "iptables" else
                                   "here, before DNAT"))
    node = tree.add(label)
    if wide:
        chain_rules = next((c.rules for c in s.chain_list if c.name == name), [])
        _rule_lines(node, chain_rules, wide)
    for m in s.masquerade:
        if m.chain == name:
            node.add(Text.assemble(("masquerade ", "yellow"),
                                   printable(m.condition or "all traffic"),
                                   (f"  ({printable(m.reason)})", "dim")))
    for e in s.endpoints:
        if e.via == role:
            _endpoint(node, e, wide, via=e.chain if e.chain != name else "numgen map")


def _endpoint(node: Any, e: EndpointChain, wide: bool, via: str) -> None:
    from rich.text import Text

    label = Text.assemble((f"{_pct(e.probability):>6} ", "green"), f"{printable(via)} → ",
                          (f"DNAT {printable(e.address)}" if e.address else
                           "no usable DNAT (see the warning)", "cyan"))
    if e.local:
        label.append("  local", style="dim")
    if e.hairpin:
        label.append("  (hairpin masquerade)", style="dim")
    child = node.add(label)
    if wide:
        _rule_lines(child, list(e.rules[1:]), wide)


def _rule_lines(node: Any, rules: Iterable[RuleRef], wide: bool) -> None:
    if not wide:
        return
    from rich.text import Text

    for rule in rules:
        where = f"map {rule.chain} #{rule.number} " if isinstance(rule, ElementRule) else \
            f"{rule.table} #{rule.number} "
        node.add(Text.assemble((printable(where), "dim"), printable(rule.text)))
