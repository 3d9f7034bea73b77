"""The engine's own packet: a small frozen value, built from (or shown as) a scapy packet."""

from __future__ import annotations

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, ip_address

PROTOCOLS = ("tcp", "udp", "sctp")

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class Packet:
    """The first packet of a new connection, as netfilter sees it at one point of its path."""

    src: IPAddress
    dst: IPAddress
    protocol: str = "tcp"
    sport: int = 40000
    dport: int = 80
    in_interface: str | None = None
    out_interface: str | None = None

    @property
    def family(self) -> int:
        return self.dst.version

    def with_destination(self, dst: IPAddress, dport: int | None) -> Packet:
        return replace(self, dst=dst, dport=self.dport if dport is None else dport)

    def with_source(self, src: IPAddress, sport: int | None) -> Packet:
        return replace(self, src=src, sport=self.sport if sport is None else sport)


def format_endpoint(address: IPAddress, port: int) -> str:
    """`10.0.0.1:80` or `[fd00::1]:80`, the way kube-proxy and conntrack users write it."""
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def make_packet(src: str, dst: str, protocol: str = "tcp", sport: int = 40000, dport: int = 80,
                in_interface: str | None = None) -> Packet:
    """Build a Packet from text, checking what a user could get wrong."""
    s, d = ip_address(src), ip_address(dst)
    if s.version != d.version:
        raise ValueError(f"source {src} and destination {dst} are of different IP families")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r} (expected tcp, udp or sctp)")
    for name, port in (("source port", sport), ("destination port", dport)):
        if not 0 < port < 65536:
            raise ValueError(f"{name} {port} is out of range 1-65535")
    return Packet(s, d, protocol, sport, dport, in_interface)
