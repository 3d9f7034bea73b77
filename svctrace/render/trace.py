"""Trace → plain dict (JSON/YAML) or rich renderables (text). Never prints."""

from __future__ import annotations

from typing import Any

from svctrace.model.agents import deciding_agents
from svctrace.model.packet import Packet, format_endpoint
from svctrace.model.trace import Outcome, Step, Trace
from svctrace.render.literal import printable

SCHEMA = "svctrace/v1"


def packet_dict(packet: Packet) -> dict[str, Any]:
    return {"source": str(packet.src), "destination": str(packet.dst),
            "protocol": packet.protocol, "sourcePort": packet.sport,
            "destinationPort": packet.dport, "family": f"IPv{packet.family}",
            "inInterface": packet.in_interface}


def step_dict(step: Step) -> dict[str, Any]:
    d: dict[str, Any] = {"table": step.table, "chain": step.chain, "rule": step.rule,
                         "text": step.text, "line": step.line}
    if step.probability is not None:
        d["probability"] = round(step.probability, 9)
    return d


def outcome_dict(o: Outcome, service_port: str | None = None) -> dict[str, Any]:
    return {
        "servicePort": service_port,
        "probability": o.probability,
        "verdict": o.verdict,
        "destination": o.destination,
        "masquerade": o.masquerade,
        "snatTo": o.snat_to,
        "rejectWith": o.reject_with,
        "hooks": list(o.hook_path),
        "path": [step_dict(s) for s in o.path],
        "assumptions": [a.describe() for a in o.assumptions],
        "decidedBy": deciding_agents(o),
    }


def rules_header(source: str, mode: tuple[str, str]) -> str:
    """The text output's first line: which rules were read, in which mode (iptables,
    nftables, split) and form (iptables-save, nft-text, nft-json, nft-f)."""
    return printable(f"rules: {source} ({mode[0]} mode, {mode[1]})")


def trace_dict(trace: Trace, source: str, scapy_summary: str | None = None,
               service_ports: list[str | None] | None = None,
               mode: tuple[str, str] = ("iptables", "iptables-save")) -> dict[str, Any]:
    """The `svctrace trace -o json` document."""
    pkt = packet_dict(trace.packet)
    pkt["scapy"] = scapy_summary
    return {
        "schema": SCHEMA,
        "mode": mode[0],
        "format": mode[1],
        "rules": source,
        "node": {"name": trace.node.name,
                 "localAddresses": sorted(str(n) for n in trace.node.local)},
        "packet": pkt,
        "outcomes": [outcome_dict(o, s) for o, s in
                     zip(trace.outcomes, service_ports or [None] * len(trace.outcomes),
                         strict=True)],
    }


def outcome_headline(o: Outcome) -> str:
    """`25.00%  ACCEPT → 10.244.1.11:8080, masqueraded` — plain text, no markup."""
    share = f"{o.probability * 100:6.2f}%"
    if o.destination:
        where = f"DNAT → {o.destination}"
    elif o.verdict == "ACCEPT":
        where = f"not DNATed, delivered to {format_endpoint(o.packet.dst, o.packet.dport)}"
    else:
        where = "rejected" + (f" ({o.reject_with})" if o.reject_with else "") \
            if o.verdict == "REJECT" else "dropped"
    agents = deciding_agents(o)
    if agents["verdict"]:
        where += f" by {agents['verdict']}"
    masq = ", masqueraded" + (f" to {o.snat_to}" if o.snat_to else "") if o.masquerade else ""
    if masq and agents["masquerade"]:
        masq += f" by {agents['masquerade']}"
    return f"{share}  {o.verdict:<6} {where}{masq}"


_VERDICT_STYLE = {"ACCEPT": "green", "DROP": "red", "REJECT": "red"}


def render_outcomes(trace: Trace, wide: bool = False,
                    service_ports: list[str | None] | None = None) -> Any:
    """A rich Tree per outcome: hook → table/chain → the rules the packet passed."""
    from rich.text import Text
    from rich.tree import Tree

    root = Tree(Text(f"{len(trace.outcomes)} outcome(s)", style="bold"))
    for o, spn in zip(trace.outcomes, service_ports or [None] * len(trace.outcomes),
                      strict=True):
        via = f"  (service port {spn})" if spn else ""
        node = root.add(Text(printable(outcome_headline(o) + via),
                             style=_VERDICT_STYLE.get(o.verdict, "")))
        for step in o.path:
            node.add(_step_text(step, wide))
        for a in o.assumptions:
            node.add(Text(f"assumption: {printable(a.describe())}", style="yellow"))
        if not o.path:
            node.add(Text("no rule matched: every chain's policy accepted it", style="dim"))
    return root


def _step_text(step: Step, wide: bool) -> Any:
    from rich.text import Text

    where = printable(f"{step.table}/{step.chain}")
    if step.rule is None:
        return Text.assemble((where, "cyan"), f"  {printable(step.text)}")
    num = f" #{step.rule}"
    prob = f"  [p={step.probability:.4f}]" if step.probability is not None else ""
    loc = f"  (line {step.line})" if wide and step.line else ""
    text = Text.assemble((where, "cyan"), (num, "dim"), prob, loc, "\n  ",
                         (printable(step.text), ""))
    text.overflow = "fold"      # show the whole rule as iptables-save or nft printed it
    return text
