"""`explain --probe`: a real TCP SYN or UDP datagram to each backend the traces reached.

Opt-in and named: without --probe svctrace sends nothing. As root the probe is a scapy packet
(SYN → SYN-ACK open / RST refused; UDP → reply open / ICMP port-unreachable refused); without
root it is an ordinary socket connect (TCP) or datagram (UDP).
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from svctrace.diagnose.node import NodeExplanation
    from svctrace.explain.report import ExplainReport

TIMEOUT = 1.0


def probe(address: str, port: int, protocol: str = "tcp", timeout: float = TIMEOUT) -> str:
    """'open', 'refused' or 'no answer' for one backend."""
    if os.geteuid() == 0:
        return _probe_scapy(address, port, protocol, timeout)
    return _probe_socket(address, port, protocol, timeout)


def _probe_scapy(address: str, port: int, protocol: str, timeout: float) -> str:
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.sendrecv import sr1
    from scapy.supersocket import L3RawSocket

    l3 = IPv6(dst=address) if ":" in address else IP(dst=address)
    l4 = TCP(dport=port, flags="S") if protocol == "tcp" else UDP(dport=port) / b"svctrace"
    loopback = address.startswith("127.") or address == "::1"
    kwargs = {"iface": "lo"} if loopback else {}
    if loopback and ":" not in address:
        from scapy.config import conf
        conf.L3socket = L3RawSocket        # scapy needs a raw L3 socket to talk to itself
    answer = sr1(l3 / l4, timeout=timeout, verbose=0, **kwargs)
    if answer is None:
        return "no answer"
    if TCP in answer:
        flags = str(answer[TCP].flags)
        return "open" if "S" in flags and "A" in flags else "refused"
    if ICMP in answer or answer.haslayer("ICMPv6DestUnreach"):
        return "refused"
    return "open" if UDP in answer else "no answer"


def _probe_socket(address: str, port: int, protocol: str, timeout: float) -> str:
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
