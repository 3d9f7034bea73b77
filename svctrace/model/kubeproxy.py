"""What kube-proxy programmed for one service port, read back from a ruleset, in either mode.

Plain frozen data, no I/O, the same for both modes so that diagnose/ and render/ do not fork:
iptables mode is filled by `svctrace.rules.kubeproxy.map_services`, nftables mode by
`svctrace.rules.kubeproxy_nft.map_services`; rendered by `svctrace.render.rules`. Every value keeps
the rule objects it came from (iptables `Rule`, nft `NftRule`, or an `ElementRule` for an nft map
element), so a renderer can show the lines exactly as iptables-save or nft printed them.

Chain roles are the mode's own words mapped onto one set: svc = KUBE-SVC / service-, svl =
KUBE-SVL / local-, ext = KUBE-EXT / external-, fw = KUBE-FW / firewall-.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

CHAIN_ROLES = ("svc", "svl", "ext", "fw")
MODES = ("iptables", "nftables")


class RuleRef(Protocol):
    """What a renderer needs of a rule, whichever mode printed it."""

    @property
    def table(self) -> str: ...
    @property
    def chain(self) -> str: ...
    @property
    def number(self) -> int: ...
    @property
    def line(self) -> int | None: ...
    @property
    def text(self) -> str: ...
    @property
    def location(self) -> str: ...


class ChainRef(Protocol):
    """A chain: iptables `Chain` or nft `NftChain`."""

    @property
    def name(self) -> str: ...
    @property
    def rules(self) -> Sequence[RuleRef]: ...


class ElementRule:
    """An nft map element that does a rule's work (a `service-ips` entry, a `no-endpoint-*`
    verdict), shown as nft printed it: `text` is `key [comment "…"] : verdict`, `chain` is the
    map's name and `number` the element's 1-based position in the listing. The text is made on
    first use (`render`): a big node has 60,000 elements and a renderer shows a few."""

    __slots__ = ("table", "chain", "number", "line", "source", "_text", "_render")

    def __init__(self, table: str, chain: str, number: int, line: int | None, text: str | None,
                 source: str, render: Callable[[], str] | None = None) -> None:
        self.table, self.chain, self.number, self.line = table, chain, number, line
        self.source, self._text, self._render = source, text, render

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self._render() if self._render is not None else ""
        return self._text

    @property
    def location(self) -> str:
        where = f"map {self.chain} element {self.number}"
        return f"{self.source}:{self.line} ({where})" if self.line is not None else \
            f"{self.source} ({where})"

    def __repr__(self) -> str:
        return f"ElementRule({self.table} {self.chain} #{self.number}: {self.text!r})"


@dataclass(frozen=True, slots=True)
class EntryRule:
    """A rule that sends traffic for this service port into its chains.

    kind: "clusterIP", "externalIP", "loadBalancerIP" or "nodePort" (nat KUBE-SERVICES /
    KUBE-NODEPORTS; nft `service-ips` / `service-nodeports` elements). `address` is the matched
    destination without "/32" (None for NodePorts on every local address); `kind_inferred` is
    True when the kind was guessed (an iptables rule without comment; an nft external address that
    the rules do not tell apart as an externalIP or a LoadBalancer IP).
    """

    kind: str
    address: str | None
    port: int | None
    target: str
    rule: RuleRef
    kind_inferred: bool = False


@dataclass(frozen=True, slots=True)
class EndpointChain:
    """One endpoint as reached from the service's cluster-policy (via="svc") or local-policy
    (via="svl") chain.

    `chain` is the chain whose rule DNATs to it: its KUBE-SEP / nft endpoint- chain, or, for an
    nft 1.36 Service without affinity (no endpoint chains), the service-/local- chain whose
    `numgen … map` holds it. `probability` is the share of new connections it gets (iptables:
    from the kernel's fixed-point cascade; nft: indices of `numgen … mod N` that map to it / N).
    `local` is True when kube-proxy considers it local to this node. `hairpin` says whether the
    endpoint talking to itself through the Service is masqueraded (a KUBE-SEP / ≤1.35 endpoint-
    chain rule, or nft 1.36's `hairpin-connections` set).
    """

    address: str | None
    probability: float
    chain: str
    local: bool
    via: str
    hairpin: bool = False
    affinity: bool = False
    sep: ChainRef | None = field(default=None, repr=False, compare=False)
    jump: tuple[ChainRef, int] | None = field(default=None, repr=False, compare=False)

    @property
    def rules(self) -> tuple[RuleRef, ...]:
        """The SVC/SVL rule that jumps here, then the SEP chain's rules (made on first use)."""
        jump: tuple[RuleRef, ...] = (self.jump[0].rules[self.jump[1]],) \
            if self.jump is not None else ()
        return jump + (tuple(self.sep.rules) if self.sep is not None else ())


@dataclass(frozen=True, slots=True)
class MasqueradeRule:
    """A rule on this service's path that marks its packets for masquerade (iptables: a jump to
    KUBE-MARK-MASQ; nft: `meta mark set meta mark | 0x4000` or `jump mark-for-masquerade`), with
    its conditions as printed.

    reason: "cluster IP" (the local-traffic detector rule: top of SVC/SVL, nft ≤1.35 the internal
    chain, nft 1.36 the shared rule in `services`), "external" (EXT chain, eTP=Cluster),
    "local source" (EXT chain, eTP=Local, --src-type LOCAL / fib saddr type local), or "other".
    """

    chain: str
    condition: str
    reason: str
    ref: tuple[ChainRef, int] = field(repr=False, compare=False)

    @property
    def rule(self) -> RuleRef:
        """The rule itself (made on first use: a big node has one of these per Service)."""
        return self.ref[0].rules[self.ref[1]]


@dataclass(frozen=True, slots=True)
class FilterRule:
    """A filter verdict kube-proxy programmed for this service port.

    reason: "no endpoints" (REJECT), "no local endpoints" (DROP), "firewall" (KUBE-PROXY-FIREWALL
    / nft firewall- chain: drop for sources outside loadBalancerSourceRanges), "health check"
    (healthCheckNodePort ACCEPT) or "other". `chain` is the iptables chain, or for nft the map
    (`no-endpoint-services`, `no-endpoint-nodeports`) or firewall- chain holding the verdict;
    `verdict` is spelled as iptables does (REJECT, DROP, ACCEPT) in both modes.
    """

    chain: str
    verdict: str
    reason: str
    address: str | None
    port: int | None
    rule: RuleRef


@dataclass(frozen=True, slots=True)
class LocalHint:
    """An address the rules suggest is local to the node, and why."""

    address: str
    reason: str
    rule: RuleRef


@dataclass(frozen=True, slots=True)
class ServiceChains:
    """Everything kube-proxy programmed for one service port (namespace/name:port, protocol).

    `hash` is the chain-name hash shared by the port's chains: iptables' 16-character suffix of
    KUBE-SVC/SVL/EXT/FW, nft's 8-character H of service-/local-/external-/firewall-H-…
    ("" for an nft port known only from a `no-endpoint-*` element). The name fields are None when
    nothing names the service port (see `identify`). `port` is the service port number,
    `port_name` the port's name ("" when unnamed). `mode` is "iptables" or "nftables"; `family`
    is the IP family of the rules (4 or 6: nft keeps one table per family).
    """

    hash: str
    protocol: str
    namespace: str | None = None
    name: str | None = None
    port_name: str | None = None
    port: int | None = None
    cluster_ips: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    node_port: int | None = None
    health_check_node_port: int | None = None
    chains: dict[str, str | None] = field(default_factory=dict)
    endpoints: tuple[EndpointChain, ...] = ()
    affinity_seconds: int | None = None
    source_ranges: tuple[str, ...] = ()
    masquerade: tuple[MasqueradeRule, ...] = ()
    filter: tuple[FilterRule, ...] = ()
    entries: tuple[EntryRule, ...] = ()
    warnings: tuple[str, ...] = ()
    mode: str = "iptables"
    family: int = 4
    chain_list: tuple[ChainRef, ...] = field(default=(), repr=False, compare=False)
    rule_list: tuple[RuleRef, ...] = field(default=(), repr=False, compare=False)

    @property
    def rules(self) -> tuple[RuleRef, ...]:
        """Every rule involved, each once: entry rules, then the chains (FW, EXT, SVC, SVL, SEPs)
        in that order, then the filter-table rules. Rule objects are made on first use."""
        found: dict[int, RuleRef] = {}
        for entry in self.entries:
            found[id(entry.rule)] = entry.rule
        for chain in self.chain_list:
            for rule in chain.rules:
                found[id(rule)] = rule
        for f in self.filter:
            found[id(f.rule)] = f.rule
        for rule in self.rule_list:
            found[id(rule)] = rule
        return tuple(found.values())

    @property
    def spn(self) -> str | None:
        """kube-proxy's service port name: `ns/name:port`, or `ns/name` for an unnamed port."""
        if self.namespace is None or self.name is None:
            return None
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base

    @property
    def display_name(self) -> str:
        if self.spn is not None:
            return self.spn
        proto = f"{self.protocol} " if self.protocol else ""
        if self.hash:
            return f"(unnamed {proto}service port, chains *-{self.hash})"
        addresses = (*self.cluster_ips, *self.external_ips, *self.load_balancer_ips)
        where = f"{', '.join(addresses)} port {self.port}" if addresses else \
            f"node port {self.node_port}"
        return f"(unnamed {proto}service port, {where})"
