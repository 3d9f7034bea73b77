"""scapy at the edge: build the synthetic packet a user sees, and convert it to the engine's own.

scapy is imported here only (about 0.25 s for scapy.layers.inet), never by the core.
"""

from __future__ import annotations

from typing import Any

from svctrace.model.packet import Packet, make_packet


def build(src: str, dst: str, protocol: str = "tcp", sport: int = 40000, dport: int = 80) -> Any:
    """The first packet of a new connection: a TCP SYN, a UDP datagram or an SCTP INIT."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6

    checked = make_packet(src, dst, protocol, sport, dport)      # validates before scapy sees it
    l3 = IPv6(src=src, dst=dst) if checked.family == 6 else IP(src=src, dst=dst)
    if protocol == "tcp":
        l4 = TCP(sport=sport, dport=dport, flags="S")
    elif protocol == "udp":
        l4 = UDP(sport=sport, dport=dport)
    else:
        from scapy.layers.sctp import SCTP, SCTPChunkInit
        l4 = SCTP(sport=sport, dport=dport) / SCTPChunkInit()
    return l3 / l4


def to_model(pkt: Any, in_interface: str | None = None) -> Packet:
    """scapy packet → the engine's frozen Packet."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6

    l3 = pkt[IP] if IP in pkt else pkt[IPv6]
    for layer, name in ((TCP, "tcp"), (UDP, "udp")):
        if layer in pkt:
            l4 = pkt[layer]
            return make_packet(l3.src, l3.dst, name, int(l4.sport), int(l4.dport), in_interface)
    from scapy.layers.sctp import SCTP
    l4 = pkt[SCTP]
    return make_packet(l3.src, l3.dst, "sctp", int(l4.sport), int(l4.dport), in_interface)


def summary(pkt: Any) -> str:
    """scapy's one-line summary, e.g. 'IP / TCP 10.244.0.250:40000 > 10.96.0.10:http S'."""
    return str(pkt.summary())
