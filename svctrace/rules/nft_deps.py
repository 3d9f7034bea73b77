"""nft's payload dependency elimination, as it shows when nft lists a rule: a protocol match
that a later expression implies is not printed (src/payload.c in the nftables sources).
`meta l4proto tcp tcp dport 80` lists as `tcp dport 80`, `meta l4proto tcp th dport 80` as
`tcp dport 80`; in an inet table `meta nfproto ipv4 ip saddr …` as `ip saddr …`. Applied to
what the text readers build, so `nft -f` input and nft's listings give equal models."""

from __future__ import annotations

from typing import Any

from svctrace.model.nftables import Statement

L4_PAYLOAD = {"tcp": "tcp", "udp": "udp", "sctp": "sctp", "udplite": "udplite", "dccp": "dccp",
              "icmp": "icmp", "ipv6-icmp": "icmpv6", "esp": "esp", "ah": "ah", "comp": "comp",
              "igmp": "igmp", "gre": "gre"}
L3_PAYLOAD = {"ipv4": "ip", "ipv6": "ip6"}


def _dependency(stmt: Statement, family: str) -> str | None:
    """The payload protocol a `==` protocol match provides, if nft treats it as implied."""
    match = stmt.get("match")
    if not match or match["op"] != "==" or not isinstance(match["right"], str):
        return None
    left = match["left"]
    if left == {"meta": {"key": "l4proto"}} or \
            (family == "ip" and left == {"payload": {"protocol": "ip", "field": "protocol"}}) or \
            (family == "ip6" and left == {"payload": {"protocol": "ip6", "field": "nexthdr"}}):
        return L4_PAYLOAD.get(match["right"])
    if family == "inet" and left == {"meta": {"key": "nfproto"}}:
        return L3_PAYLOAD.get(match["right"])
    return None


def _payloads(expr: Any) -> list[dict[str, Any]]:
    """The payload expressions inside `expr` (a concatenation's parts included)."""
    if isinstance(expr, dict):
        if "payload" in expr:
            return [expr["payload"]]
        if "concat" in expr:
            return [p for part in expr["concat"] for p in _payloads(part)]
    return []


def _keys(stmt: Statement) -> list[dict[str, Any]]:
    body = stmt.get("match") or stmt.get("vmap")
    if not body:
        return []
    return _payloads(body.get("left", body.get("key")))


def drop_dependencies(statements: list[Statement], family: str) -> list[Statement]:
    """Remove protocol matches a later payload implies, as nft does when it lists a rule."""
    out = list(statements)
    for i in range(len(out) - 1, -1, -1):
        proto = _dependency(out[i], family)
        if proto is None:
            continue
        later = [p for stmt in out[i + 1:] for p in _keys(stmt)]
        if any(p.get("protocol") == proto for p in later):
            del out[i]
        elif proto in ("tcp", "udp", "sctp", "udplite", "dccp") and any(
                p.get("protocol") == "th" for p in later):
            for p in later:
                if p.get("protocol") == "th":
                    p["protocol"] = proto
            del out[i]
    return out
