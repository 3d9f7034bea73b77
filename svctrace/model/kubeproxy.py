"""What kube-proxy (iptables mode) programmed for one service port, read back from a ruleset.

Plain frozen data, no I/O. Built by `svctrace.rules.kubeproxy.map_services`; rendered by
`svctrace.render.rules`. Every value keeps the `Rule` objects it came from, so a renderer can show
the lines exactly as iptables-save printed them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from svctrace.model.ruleset import Chain, Rule

CHAIN_ROLES = ("svc", "svl", "ext", "fw")


@dataclass(frozen=True, slots=True)
class EntryRule:
    """A rule that sends traffic for this service port into its chains.

    kind: "clusterIP", "externalIP", "loadBalancerIP" or "nodePort" (nat KUBE-SERVICES /
    KUBE-NODEPORTS). `address` is the matched destination without "/32" (None for NodePorts on
    every local address); `kind_inferred` is True when the rule had no comment and the kind was
    guessed from the target chain.
    """

    kind: str
    address: str | None
    port: int | None
    target: str
    rule: Rule
    kind_inferred: bool = False


@dataclass(frozen=True, slots=True)
class EndpointChain:
    """One KUBE-SEP chain as reached from the service's KUBE-SVC (via="svc") or KUBE-SVL chain.

    `probability` is the share of new connections the load-balancing cascade of that chain sends
    here, computed from the kernel's fixed-point probabilities. `local` is True when the endpoint
    is reached from the KUBE-SVL chain, i.e. kube-proxy considers it local to this node.
    `hairpin` says whether the SEP chain masquerades the endpoint talking to itself.
    """

    address: str | None
    probability: float
    chain: str
    local: bool
    via: str
    hairpin: bool = False
    affinity: bool = False
    sep: Chain | None = field(default=None, repr=False, compare=False)
    jump: tuple[Chain, int] | None = field(default=None, repr=False, compare=False)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The SVC/SVL rule that jumps here, then the SEP chain's rules (made on first use)."""
        jump = (self.jump[0].rules[self.jump[1]],) if self.jump is not None else ()
        return jump + (tuple(self.sep.rules) if self.sep is not None else ())


@dataclass(frozen=True, slots=True)
class MasqueradeRule:
    """A jump to KUBE-MARK-MASQ on this service's path, with its conditions as printed.

    reason: "cluster IP" (the local-traffic detector rule at the top of SVC/SVL),
    "external" (EXT chain, eTP=Cluster), "local source" (EXT chain, eTP=Local, --src-type LOCAL),
    or "other".
    """

    chain: str
    condition: str
    reason: str
    ref: tuple[Chain, int] = field(repr=False, compare=False)

    @property
    def rule(self) -> Rule:
        """The rule itself (made on first use: a big node has one of these per Service)."""
        return self.ref[0].rules[self.ref[1]]


@dataclass(frozen=True, slots=True)
class FilterRule:
    """A filter-table verdict kube-proxy programmed for this service port.

    reason: "no endpoints" (REJECT), "no local endpoints" (DROP), "firewall" (KUBE-PROXY-FIREWALL
    drop for sources outside loadBalancerSourceRanges), "health check" (healthCheckNodePort ACCEPT)
    or "other".
    """

    chain: str
    verdict: str
    reason: str
    address: str | None
    port: int | None
    rule: Rule


@dataclass(frozen=True, slots=True)
class LocalHint:
    """An address the rules suggest is local to the node, and why."""

    address: str
    reason: str
    rule: Rule


@dataclass(frozen=True, slots=True)
class ServiceChains:
    """Everything kube-proxy programmed for one service port (namespace/name:port, protocol).

    `hash` is the 16-character chain-name suffix shared by KUBE-SVC/SVL/EXT/FW; the name fields
    are None when no rule carried a comment that names the service port (see `identify`).
    `port` is the service port number, `port_name` the port's name ("" when unnamed).
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
    chain_list: tuple[Chain, ...] = field(default=(), repr=False, compare=False)
    rule_list: tuple[Rule, ...] = field(default=(), repr=False, compare=False)

    @property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule involved, each once: entry rules, then the chains (FW, EXT, SVC, SVL, SEPs)
        in that order, then the filter-table rules. Rule objects are made on first use."""
        found: dict[int, Rule] = {}
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
        proto = f"{self.protocol} " if self.protocol else ""
        return self.spn or f"(unnamed {proto}service port, chains *-{self.hash})"
