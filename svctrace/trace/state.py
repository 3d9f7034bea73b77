"""The state of one branch of a trace: the packet as it is now, marks, conntrack facts, the path."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from svctrace.model.packet import Packet
from svctrace.model.trace import Assumption, NodeContext, Step


class Unknown:
    """A match or option the engine cannot evaluate; the reason goes into the trace."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


@dataclass(slots=True)
class Hook:
    """Where the packet is: the netfilter hook and whether it was generated on the node."""

    name: str                     # PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING
    table: str
    local_out: bool               # generated on the node (OUTPUT path)


@dataclass(slots=True)
class BranchState:
    """Everything one branch of the trace carries. Copied when a statistic match forks."""

    packet: Packet
    node: NodeContext
    probability: Fraction = Fraction(1)
    mark: int = 0
    ctmark: int = 0
    dnat: str | None = None               # "ip:port" after DNAT
    snat: bool = False                    # MASQUERADE or SNAT happened
    snat_to: str | None = None
    notrack: bool = False
    reject_with: str | None = None
    recent: set[str] = field(default_factory=set)
    path: list[Step] = field(default_factory=list)
    assumptions: list[Assumption] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    hook: Hook | None = None

    def fork(self) -> BranchState:
        return BranchState(self.packet, self.node, self.probability, self.mark, self.ctmark,
                           self.dnat, self.snat, self.snat_to, self.notrack, self.reject_with,
                           set(self.recent), list(self.path), list(self.assumptions),
                           list(self.hooks), self.hook)
