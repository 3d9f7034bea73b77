"""A node's kube-proxy rules reduced to a small digest, and the digest compared with the API.

`node_digest(ruleset, node)` is a plain function of (rules, node) → JSON: for every service
port, its entry points, the endpoints (with shares) its cluster chain and its node-local chain
send to, whether a REJECT/DROP stands in for endpoints, and rules that point at nothing. It is
written against the mode-neutral ServiceChains (svctrace.model.kubeproxy), so a reader of
another kube-proxy mode that fills ServiceChains plugs into `digest_of_chains`. `doctor` keeps
only digests (a few hundred bytes per service port), never a node's whole ruleset.

`compare_digest(digest, expected)` then says, per service port, where the node disagrees
with what the API says it should have (svctrace.diagnose.expect).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from svctrace.diagnose.expect import ExpectedPort
from svctrace.model.kubeproxy import ServiceChains
from svctrace.model.nftables import ModeSplit, NftRuleset
from svctrace.model.ruleset import Ruleset
from svctrace.rules.kubeproxy import chain_hash, map_services

SCHEMA = "svctrace/v1"
SHARE_DIGITS = 6


def node_digest(ruleset: Ruleset, node: str | None,
                names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The digest of an iptables-mode ruleset. `names` (chain hash → service port name, from
    the API) names service ports whose rules carry no comment (above 1,000 endpoints)."""
    mode = "iptables" + (f" ({_backend(ruleset.backend)})" if ruleset.backend else "")
    return digest_of_chains(map_services(ruleset, names, lean=True), node, mode,
                            ruleset.source)


def rules_digest(rules: Ruleset | NftRuleset | ModeSplit, node: str | None,
                 names: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The digest of a node's rules in whichever mode kube-proxy wrote them (its nft tables
    first: on a node with both, those are the live ones); None without kube-proxy rules."""
    from svctrace.rules import kubeproxy_nft

    nft = rules.nft if isinstance(rules, ModeSplit) else \
        rules if isinstance(rules, NftRuleset) else None
    if nft is not None and kubeproxy_nft.kube_proxy_tables(nft):
        mode = "nftables" + (" (iptables rules too)" if isinstance(rules, ModeSplit) else "")
        return digest_of_chains(kubeproxy_nft.map_services(nft), node, mode, rules.source)
    ipt = rules.iptables if isinstance(rules, ModeSplit) else \
        rules if isinstance(rules, Ruleset) else None
    if ipt is not None and ipt.chain("nat", "KUBE-SERVICES") is not None:
        return node_digest(ipt, node, names)
    return None


def _backend(backend: str) -> str:
    return "nft" if backend == "nf_tables" else backend


def digest_of_chains(chains: Iterable[ServiceChains], node: str | None, mode: str,
                     source: str) -> dict[str, Any]:
    """The digest of service ports already read from a node's rules (any kube-proxy mode)."""
    ports = {port_key(c): port_digest(c) for c in chains}
    return {"schema": SCHEMA, "kind": "digest", "node": node, "mode": mode, "source": source,
            "servicePorts": dict(sorted(ports.items()))}


def port_key(c: ServiceChains) -> str:
    """`ns/name:port/tcp` when the service port is known, else `*-HASH` (its chains' suffix)."""
    return f"{c.spn}/{c.protocol}" if c.spn else f"*-{c.hash}"


def expected_key(spn: str, protocol: str) -> str:
    return f"{spn}/{protocol}"


def port_digest(c: ServiceChains) -> dict[str, Any]:
    """One service port: what its rules do, without the rules."""
    def shares(via: str) -> list[dict[str, Any]]:
        return [{"address": e.address, "share": round(e.probability, SHARE_DIGITS)}
                for e in c.endpoints if e.via == via]

    dangling = [w for w in c.warnings if "jump to missing chain" in w]
    dangling += [f"{e.chain}: no DNAT target" for e in c.endpoints if not e.address]
    return {
        "hash": c.hash,
        "entries": [{"kind": k, "address": a or None, "port": p or None} for k, a, p in
                    sorted({(e.kind, e.address or "", e.port or 0) for e in c.entries})],
        "endpoints": shares("svc"),
        "localEndpoints": shares("svl"),
        "reject": any(f.reason == "no endpoints" for f in c.filter),
        "dropNoLocal": any(f.reason == "no local endpoints" for f in c.filter),
        "dangling": sorted(dangling),
    }


# --- comparing with the API -----------------------------------------------------------------

@dataclass(frozen=True)
class PortDrift:
    """One disagreement between a node's rules and the API, for one service port."""

    finding: str            # RULES-SERVICE-MISSING | RULES-MISSING-ENDPOINT | ... (ids as explain)
    spn: str
    detail: str


def api_names(expected: Iterable[ExpectedPort]) -> dict[str, str]:
    """chain hash → service port name, for `node_digest(names=…)`."""
    return {chain_hash(e.spn, e.protocol): e.spn for e in expected}


def compare_port(expected: ExpectedPort, got: Mapping[str, Any] | None) -> list[PortDrift]:
    """Where one service port's digest (None: no rules for it) disagrees with the API."""
    spn = expected.spn
    if got is None or not got.get("entries"):
        if expected.has_entry:
            n = len(expected.reachable)
            return [PortDrift("RULES-SERVICE-MISSING", spn, f"{n} endpoint(s) in the API, no "
                              "rules for this service port on the node")]
        return []
    out = []
    if expected.any_endpoints and got.get("reject"):
        out.append(PortDrift("RULES-STALE-REJECT", spn, "a REJECT rule says the port has no "
                             "endpoints, but the API lists " + ", ".join(sorted(
                                 expected.reachable))))
    out += _set_drift(spn, expected.cluster, got.get("endpoints") or [], "")
    if expected.local is not None:
        out += _set_drift(spn, expected.local, got.get("localEndpoints") or [], " (node-local)")
    out += [PortDrift("RULES-DANGLING", spn, d) for d in got.get("dangling") or []]
    return out


def _set_drift(spn: str, expected: frozenset[str] | None, got: list[dict[str, Any]],
               which: str) -> list[PortDrift]:
    if expected is None:
        return []
    programmed = {e["address"] for e in got if e.get("address")}
    return ([PortDrift("RULES-MISSING-ENDPOINT", spn, f"{ep}{which}")
             for ep in sorted(expected - programmed)] +
            [PortDrift("RULES-STALE-ENDPOINT", spn, f"{ep}{which}")
             for ep in sorted(programmed - expected)])


def unknown_ports(digest: Mapping[str, Any], known: set[str],
                  namespaces: set[str] | None) -> list[str]:
    """Service ports in the rules that no Service of the API has (None: every namespace is
    known; else only ports named in those namespaces are judged)."""
    out = []
    for key in digest.get("servicePorts") or {}:
        if key in known:
            continue
        if namespaces is not None and (key.startswith("*-") or key.split("/", 1)[0]
                                       not in namespaces):
            continue
        out.append(key)
    return out
