"""Facts about the node that the rules give away: its own pod subnet, and so a source address a
pod on this node really could have (issue 10 point 8).

A pod→Service trace from an address outside the node's pod subnet meets per-node CNI rules
(flannel's `-s 10.244.0.0/24 -d 10.244.0.0/16 -j RETURN`) as traffic from another node, and is
masqueraded where a real pod's packet is not. So the default source is taken inside the node's
own subnet where the rules show it, and the caller says which address was chosen and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network

from svctrace.model.ruleset import Chain, Rule, Ruleset
from svctrace.rules.kubeproxy import infer_pod_cidr
from svctrace.rules.ruletext import _fields, _target

Network = IPv4Network | IPv6Network
_BRIDGES = ("cni0", "cbr0", "docker0", "kube-bridge", "weave")


@dataclass(frozen=True)
class PodSource:
    address: str
    network: str
    why: str


def _net(text: str) -> Network | None:
    try:
        return ip_network(text, strict=False)
    except ValueError:
        return None


def node_subnet_hints(ruleset: Ruleset) -> list[tuple[Network, str]]:
    """(subnet, why) for every rule that names this node's own pod subnet."""
    hints: list[tuple[Network, str]] = []
    for name, chain in _postrouting_chains(ruleset):
        for rule in chain.rules:
            if " -s " not in rule.text and " -d " not in rule.text:
                continue
            hint = _hint(name, rule.text, rule)
            if hint is not None:
                hints.append((hint[0], f"{hint[1]} ({rule.location})"))
    return hints


def _postrouting_chains(ruleset: Ruleset) -> list[tuple[str, Chain]]:
    """nat POSTROUTING and the chains it jumps to: where CNI plugins masquerade (flannel's
    FLANNEL-POSTRTG, the bridge plugin's CNI-…, Docker's rules). kube-proxy's own chains name the
    cluster, not the node, and a big node has 60,000 of them: they are not read."""
    nat = ruleset.tables.get("nat")
    post = nat.chains.get("POSTROUTING") if nat is not None else None
    if nat is None or post is None:
        return []
    out = [("POSTROUTING", post)]
    for text in post.texts():
        target = text.rsplit(" -j ", 1)[-1].split(" ", 1)[0]
        chain = nat.chains.get(target) if not target.startswith("KUBE-") else None
        if chain is not None and all(chain is not c for _, c in out):
            out.append((target, chain))
    return out


def _hint(chain: str, text: str, rule: Rule) -> tuple[Network, str] | None:
    fields = _fields(rule)
    src, dst = fields.get("s"), fields.get("d")
    target = _target(rule) or ""
    if chain.startswith("FLANNEL") or "flanneld" in text:
        # flannel: `-s NODE_SUBNET -d CLUSTER_CIDR -j RETURN` (traffic inside the overlay)
        if src and dst and not src[1] and not dst[1] and target == "RETURN":
            s, d = _net(src[0]), _net(dst[0])
            if s is not None and d is not None and s.version == d.version and \
                    s.prefixlen > d.prefixlen and s.subnet_of(d):  # type: ignore[arg-type]
                return s, "flannel's rule for this node's subnet"
        # and `! -s CLUSTER_CIDR -d NODE_SUBNET -j RETURN` (others reaching this node's pods)
        if src and dst and src[1] and not dst[1] and target == "RETURN":
            s, d = _net(src[0]), _net(dst[0])
            if s is not None and d is not None and s.version == d.version and \
                    d.prefixlen > s.prefixlen and d.subnet_of(s):  # type: ignore[arg-type]
                return d, "flannel's rule for this node's subnet"
    if target == "MASQUERADE" and src and not src[1]:
        out_if = fields.get("o")
        if out_if and out_if[1] and out_if[0] in _BRIDGES:
            s = _net(src[0])
            if s is not None and s.num_addresses > 1:
                return s, f"the masquerade rule for the {out_if[0]} bridge"
    return None


def pod_source(ruleset: Ruleset, family: int, pod_cidr: str | None = None) -> PodSource | None:
    """A source address 'a pod on this node' would have, and why: inside the node's own pod
    subnet where the rules show it (within the cluster pod CIDR when that is known), else
    inside the cluster pod CIDR (`pod_cidr`, or kube-proxy's local-traffic detector)."""
    cluster_text = pod_cidr or infer_pod_cidr(ruleset)
    cluster = _net(cluster_text) if cluster_text else None
    candidates = [(n, why) for n, why in node_subnet_hints(ruleset) if n.version == family and
                  (cluster is None or (n.version == cluster.version and
                                       n.subnet_of(cluster)))]  # type: ignore[arg-type]
    if candidates:
        net, why = max(candidates, key=lambda c: c[0].prefixlen)
        return PodSource(_inside(net), str(net), f"this node's pod subnet, from {why}")
    if cluster is None or cluster.version != family:
        return None
    how = "--pod-cidr" if pod_cidr else "kube-proxy's local-traffic detector (! -s CIDR)"
    return PodSource(_inside(cluster), str(cluster),
                     f"the cluster pod CIDR, from {how}; this node's own subnet is not in the "
                     "rules")


def _inside(net: Network) -> str:
    """An address near the top of `net` (no endpoint usually sits there)."""
    return str(net.broadcast_address - 2 if net.num_addresses > 4 else net.network_address)
