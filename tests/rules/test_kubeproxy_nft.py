"""kube-proxy's nftables mode read backwards, judged on the real v1.36 captures.

Expected values are facts from the fixture READMEs, API objects and dumps (addresses, chain
names, ports), or kube-proxy's own recipe applied to the API objects.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from svctrace.rules import kubeproxy_nft as kn

FIX = Path(__file__).parent.parent / "fixtures"
NFT_TEXT_DUMPS = sorted(FIX.glob("*/node2.nft.txt"))


# --- chain names (§2.4) ------------------------------------------------------------------------

@pytest.mark.parametrize("role,args,expected", [
    ("svc", ("svctrace-demo/web:http", "tcp"),
     "service-WAPHUU2J-svctrace-demo/web/tcp/http"),
    ("svc", ("ns1/svc1:p80", "TCP"), "service-ULMVA6XW-ns1/svc1/tcp/p80"),
    ("sep", ("ns1/svc1:p80", "tcp", "10.180.0.1:80"),
     "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"),
    ("sep", ("svctrace-demo/db:pg", "tcp", "10.244.1.21:5432"),
     "endpoint-ATUUOBUR-svctrace-demo/db/tcp/pg__10.244.1.21/5432"),
    ("affinity", ("svctrace-demo/db:pg", "tcp", "10.244.1.21:5432"),
     "affinity-ATUUOBUR-svctrace-demo/db/tcp/pg__10.244.1.21/5432"),
    ("ext", ("svctrace-demo/web-np:http", "tcp"),
     "external-7BKSYBM6-svctrace-demo/web-np/tcp/http"),
    ("fw", ("svctrace-pub/storefront:https", "tcp"),
     "firewall-Q35MHWFA-svctrace-pub/storefront/tcp/https"),
    ("svl", ("svctrace-pub/node-cache:redis", "tcp"),
     "local-KUHP3WKQ-svctrace-pub/node-cache/tcp/redis"),
    ("svc", ("svctrace-pub/dns-cache:dns-udp", "udp"),
     "service-J4MVPY4U-svctrace-pub/dns-cache/udp/dns-udp"),
], ids=lambda v: v.split("-", 1)[0] + "-" + v.split("-")[1] if isinstance(v, str)
    and re.match(r"^[a-z]+-[A-Z2-7]{8}-", v) else "")
def test_name_builders_match_the_real_capture(role: str, args: tuple[str, ...],
                                              expected: str) -> None:
    assert kn.chain_name(role, *args) == expected


@pytest.mark.parametrize("spn,proto,endpoint,path", [
    ("ns/web", "tcp", None, "ns/web/tcp/"),
    ("ns/web:http", "SCTP", None, "ns/web/sctp/http"),
    ("ns/web:http", "tcp", "[fd00::1]:80", "ns/web/tcp/http__fd00..1/80"),
    ("ns/web", "udp", "10.0.0.1:53", "ns/web/udp/__10.0.0.1/53"),
], ids=["unnamed-port", "sctp-upper", "ipv6-endpoint", "unnamed-with-endpoint"])
def test_chain_base_paths(spn: str, proto: str, endpoint: str | None, path: str) -> None:
    base = kn.chain_base(spn, proto, endpoint)
    assert base == f"{kn.name_hash(path)}-{path}"
    parsed = kn.parse_chain_name("service-" + base)
    assert parsed is not None and parsed.verified and parsed.spn == spn


def test_overlong_base_is_cut_and_not_trusted() -> None:
    base = kn.chain_base("ns/" + "n" * 300 + ":p", "tcp")
    assert len(base) == 240 and base.endswith("...")
    parsed = kn.parse_chain_name("service-" + base)
    assert parsed is None or not parsed.verified


def _per_service_names(path: Path) -> list[str]:
    """Every chain/set name defined or referenced (jump, goto, @set, map verdicts)."""
    return sorted(set(re.findall(r"(?<![\w-])@?([a-z]+-[A-Z2-7]{8}-[^\s,}]+)",
                                 path.read_text())))


@pytest.mark.parametrize("dump", NFT_TEXT_DUMPS, ids=lambda p: p.parent.name)
def test_every_per_service_name_in_the_captures_verifies(dump: Path) -> None:
    names = _per_service_names(dump)
    assert len(names) >= 8
    for name in names:
        parsed = kn.parse_chain_name(name)
        assert parsed is not None and parsed.verified, name
        endpoint = None
        if parsed.endpoint is not None:
            host, port = parsed.endpoint.rsplit("/", 1)
            endpoint = f"{host}:{port}"
        rebuilt = kn.chain_base(parsed.spn, parsed.protocol, endpoint)
        assert name.endswith("-" + rebuilt) and name.startswith(name[:-len(rebuilt)])


@pytest.mark.parametrize("name", [
    "services", "service-endpoints-check", "nodeport-endpoints-check", "firewall-check",
    "filter-prerouting-pre-dnat", "cluster-ips-check", "reject-chain", "masquerading",
    "service-ips", "no-endpoint-services", "service-abcdefgh-ns/n/tcp/p", "service-ABCDEFGH",
    "KUBE-SVC-HBHJTNRYANUCOOJF",
])
def test_fixed_and_foreign_names_are_not_service_chains(name: str) -> None:
    assert kn.parse_chain_name(name) is None


def test_tampered_hash_is_not_verified() -> None:
    parsed = kn.parse_chain_name("service-WAPHUU2K-svctrace-demo/web/tcp/http")
    assert parsed is not None and not parsed.verified
