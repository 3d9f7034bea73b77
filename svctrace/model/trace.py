"""What a trace produces: every outcome of one packet, with its exact probability."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from svctrace.model.packet import IPAddress, Packet

IPNetwork = IPv4Network | IPv6Network

LOOPBACK = (ip_network("127.0.0.0/8"), ip_network("::1/128"))


@dataclass(frozen=True, slots=True)
class NodeContext:
    """What the kernel knows about the node that holds the rules.

    `local` are the addresses the routing table calls `local` (addrtype LOCAL, delivery to INPUT);
    127.0.0.0/8 and ::1 are always local, as in the kernel. `affinity_hit` names the recent lists
    (`--name`, e.g. a KUBE-SEP chain) that already hold the packet's source: an existing client.
    """

    local: tuple[IPNetwork, ...] = ()
    name: str | None = None
    affinity_hit: frozenset[str] = frozenset()

    def is_local(self, address: IPAddress) -> bool:
        return any(address in net for net in LOOPBACK) or any(
            address in net for net in self.local if net.version == address.version)


def node_context(local_ips: list[str] | tuple[str, ...] = (), name: str | None = None,
                 affinity_hit: frozenset[str] = frozenset()) -> NodeContext:
    nets = tuple(ip_network(a if "/" in a else f"{ip_address(a)}/{32 if ':' not in a else 128}",
                            strict=False) for a in local_ips)
    return NodeContext(nets, name, affinity_hit)


@dataclass(frozen=True, slots=True)
class Step:
    """One rule that matched (or a policy/fall-through) on the packet's way."""

    table: str
    chain: str
    rule: int | None           # 1-based rule number; None for a chain policy or the end of a chain
    text: str                  # the rule's text as iptables-save printed it, or "policy ACCEPT"
    line: int | None = None
    probability: float | None = None   # set when this step was a statistic branch taken/not taken


@dataclass(frozen=True, slots=True)
class Assumption:
    """Something the engine could not evaluate and how it proceeded: never silently assumed."""

    table: str
    chain: str
    rule: int
    line: int
    what: str                  # e.g. 'not evaluated: match "u32"'
    assumed: str               # e.g. "did not match"

    def describe(self) -> str:
        return f"{self.table}/{self.chain} rule {self.rule} (line {self.line}): {self.what}; " \
               f"assumed it {self.assumed}"


@dataclass(frozen=True, slots=True)
class Outcome:
    probability: float
    verdict: str                               # ACCEPT, DROP or REJECT
    packet: Packet                             # the packet as it leaves (after NAT)
    destination: str | None                    # "ip:port" after DNAT, None when not DNATed
    masquerade: bool                           # MASQUERADE or SNAT applied in POSTROUTING
    snat_to: str | None                        # SNAT --to-source, when that was the target
    hook_path: tuple[str, ...]                 # "PREROUTING", "FORWARD", ... as traversed
    path: tuple[Step, ...]
    assumptions: tuple[Assumption, ...] = ()
    error: str | None = None                   # e.g. a jump loop detected on this branch
    reject_with: str | None = None


@dataclass(frozen=True, slots=True)
class Trace:
    packet: Packet
    node: NodeContext
    outcomes: tuple[Outcome, ...] = field(default_factory=tuple)

    @property
    def destinations(self) -> dict[str, float]:
        shares: dict[str, float] = {}
        for o in self.outcomes:
            key = o.destination or o.verdict
            shares[key] = shares.get(key, 0.0) + o.probability
        return shares

