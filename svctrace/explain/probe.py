"""`explain --probe`: a real TCP connection or UDP datagram to each backend the traces
reached.

Opt-in and named: without --probe svctrace sends nothing. The probe is an ordinary kernel
socket, as a real client's is, so on a node it passes through the node's own NAT: a probe to
a ClusterIP is DNATed by kube-proxy's rules in nat OUTPUT exactly as a pod-less client on the
node would be, and its answer tells whether that path works. (A packet crafted and sent
with scapy would bypass nat OUTPUT and leave for the ClusterIP itself, un-DNATed.)
TCP: connected → open, RST → refused. UDP: an answer → open, ICMP port unreachable (seen by
the connected socket as ECONNREFUSED) → refused. Anything else within the timeout: no answer.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from svctrace.diagnose.node import NodeExplanation
    from svctrace.explain.report import ExplainReport

TIMEOUT = 1.0


def probe(address: str, port: int, protocol: str = "tcp", timeout: float = TIMEOUT) -> str:
    """'open', 'refused' or 'no answer' for one backend (or ClusterIP) address and port."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((address, port))
            if protocol != "tcp":
                sock.send(b"svctrace")
                sock.recv(1)
            return "open"
        except ConnectionRefusedError:
            return "refused"
        except OSError:
            return "no answer"


def probe_targets(node: NodeExplanation, on_node: bool) -> list[tuple[str, int, str]]:
    """Each distinct backend the traces reached, and on a node each ClusterIP:port too (the
    kernel there DNATs the probe itself, so it tests the node's own rules end to end)."""
    targets: dict[tuple[str, int, str], None] = {}
    for t in node.traces:
        proto = t.trace.packet.protocol
        dialled = [t.destination] if on_node and t.entry == "clusterIP" else []
        for address in [*dialled, *(o.destination for o in t.trace.outcomes if o.destination)]:
            host, _, port = address.rpartition(":")
            targets[(host.strip("[]"), int(port), proto)] = None
    return sorted(targets)


def probe_report(report: ExplainReport, node: NodeExplanation, on_node: bool = False) -> None:
    """Probe every target (see probe_targets); add the results to report.data["probes"]."""
    results = [(target, probe(*target)) for target in probe_targets(node, on_node)]
    report.data["probes"] = [{"address": f"{h}:{p}", "protocol": proto, "result": r}
                             for (h, p, proto), r in results]
