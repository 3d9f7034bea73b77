"""The state of one branch of a trace: the packet as it is now, marks, conntrack facts, the path."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from svctrace.model.packet import Packet
from svctrace.model.ruleset import Chain
from svctrace.model.trace import Assumption, NodeContext, Step

# One chain being traversed: (chain, index of its next rule, entered by -g rather than -j)
Frame = tuple[Chain, int, bool]


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
    # The call stack inside the current built-in chain, innermost last (the kernel's jump
    # stack), and the names on it: a chain entered twice is a loop, which the kernel refuses.
    calls: list[Frame] = field(default_factory=list)
    on_stack: set[str] = field(default_factory=set)
    nested: int = 0                       # statistic matches this branch took

    def fork(self) -> BranchState:
        return BranchState(self.packet, self.node, self.probability, self.mark, self.ctmark,
                           self.dnat, self.snat, self.snat_to, self.notrack, self.reject_with,
                           set(self.recent), list(self.path), list(self.assumptions),
                           list(self.hooks), self.hook, list(self.calls), set(self.on_stack),
                           self.nested)

    def enter(self, chain: Chain, goto: bool) -> None:
        """Jump (or go) to `chain`: its first rule is next."""
        self.calls.append((chain, 0, goto))
        self.on_stack.add(chain.name)

    def leave(self) -> bool:
        """Return from the current chain, as RETURN or falling off its end does: back to the
        rule after the jump; a chain entered by -g returns to its goer's caller instead.
        False when that leaves the built-in chain (its policy decides)."""
        while True:
            chain, _, goto = self.calls.pop()
            self.on_stack.discard(chain.name)
            if not goto:
                return bool(self.calls)
