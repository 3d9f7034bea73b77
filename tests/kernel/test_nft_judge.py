"""The real kernel judges svctrace's nftables evaluator on hand-written kube-proxy dumps.

tests/fixtures/nft/eval-v1.36.nft and eval-v1.35.nft hold the same Services in kube-proxy's
1.36 layout and in its 1.34–1.35 layout, both in the `nft -f` transaction form kube-proxy
writes. Each is loaded with `nft -f` into the node namespace of the nft rig and probed with
scapy; conntrack tells which backend each probe reached and whether it was masqueraded.

For every case and layout:
  (i)   the kernel did what the case table says (a check of the rig and of the dumps);
  (ii)  svctrace, reading the rules the kernel listed back (`nft -j list ruleset`), predicts
        the kernel's outcome set and masquerade, with shares that sum to 1 and no assumption;
  (iii) the same from the dump file itself, read by svctrace's `nft -f` reader.

ClientIP affinity: the kernel sticks a new client to one endpoint picked at random; svctrace's
fresh-client trace must contain the pick and its existing-client trace (--affinity-hit) must
give exactly the pick.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import pytest
from judge import assert_tracer_matches_kernel, describe
from nft_rig import DUMPS, POOL, nft_outcomes, nft_probe, parse_nft, require_nft
from rig import Probe, probes_for

LAYOUTS = ("1.36", "1.35")
EXT, POD, NODE = "10.10.0.60", "10.244.2.250", "10.10.0.10"
EXT6, POD6, NODE6 = "fd00:10:10::60", "fd00:10:244:2::250", "fd00:10:10::10"


def eps(port: int, *hosts: str) -> set[str]:
    return {f"[{h}]:{port}" if ":" in h else f"{h}:{port}" for h in hosts}


WEB = eps(8080, "10.244.1.11", "10.244.2.12", "10.244.2.13")
LB = eps(8443, "10.244.1.21", "10.244.2.22")
EXTIP = eps(8443, "10.244.1.41", "10.244.2.42")
ETP_ALL = eps(8080, "10.244.1.51", "10.244.2.52")
ITP = eps(6379, "10.244.1.61", "10.244.1.62")
DNS = eps(5353, "10.244.1.54", "10.244.2.55")
SESSIONS = eps(3000, "10.244.1.81", "10.244.2.82")
WEB6 = eps(8080, "fd00:10:244:1::11", "fd00:10:244:2::12")


@dataclass(frozen=True)
class Case:
    id: str
    probe: Probe
    outcomes: set[str]
    masquerade: bool | set[str]                 # True/False for all, or the masqueraded ones
    per_layout: tuple[tuple[str, bool | set[str]], ...] = ()   # layout → other masquerade

    def masq(self, layout: str) -> bool | set[str]:
        return dict(self.per_layout).get(layout, self.masquerade)


def P(src: str, dst: str, dport: int, proto: str = "tcp", local: bool | None = None) -> Probe:
    return Probe(src, dst, dport, proto, local)


CASES = [
    Case("clusterip-from-pod", P(POD, "10.96.1.10", 80), WEB, False),
    Case("clusterip-from-outside", P(EXT, "10.96.1.10", 80), WEB, True),
    Case("clusterip-from-node", P(NODE, "10.96.1.10", 80), WEB, True),
    Case("nodeport-from-outside", P(EXT, NODE, 30080), WEB, True),
    Case("nodeport-from-pod", P(POD, NODE, 30080), WEB, True),
    Case("nodeport-from-node", P(NODE, NODE, 30080), WEB, True),
    Case("nodeport-on-localhost", P("127.0.0.1", "127.0.0.1", 30080), {"NO-NAT"}, False),
    Case("nodeport-on-a-secondary-ip", P(EXT, "10.10.0.20", 30080), {"NO-NAT"}, False),
    Case("clusterip-wrong-port-rejected", P(EXT, "10.96.1.10", 81), {"REJECT"}, False),
    Case("clusterip-wrong-protocol-rejected", P(EXT, "10.96.1.10", 80, "udp"), {"REJECT"},
         False),
    Case("unallocated-clusterip-dropped", P(EXT, "10.96.123.45", 80), {"DROP"}, False),
    Case("hairpin-local-endpoint", P("10.244.1.11", "10.96.1.10", 80), WEB,
         {"10.244.1.11:8080"}),
    Case("hairpin-remote-endpoint", P("10.244.2.12", "10.96.1.10", 80), WEB, set(),
         (("1.35", {"10.244.2.12:8080"}),)),
    Case("lb-source-in-range", P("198.18.5.9", "192.0.2.50", 443), LB, True),
    Case("lb-source-outside-range", P("198.20.0.1", "192.0.2.50", 443), {"DROP"}, False),
    Case("lb-from-pod-outside-range", P(POD, "192.0.2.50", 443), {"DROP"}, False),
    Case("lb-from-node-outside-range", P(NODE, "192.0.2.50", 443), {"DROP"}, False),
    Case("lb-nodeport-ignores-ranges", P(EXT, NODE, 30443), LB, True),
    Case("lb-without-ranges", P(EXT, "192.0.2.51", 80), eps(8080, "10.244.2.31"), True),
    Case("lb-without-ranges-from-pod", P(POD, "192.0.2.51", 80), eps(8080, "10.244.2.31"),
         True),
    Case("externalip-from-outside", P(EXT, "198.51.100.40", 443), EXTIP, True),
    Case("externalip-from-pod", P(POD, "198.51.100.40", 443), EXTIP, True),
    Case("externalip-from-node", P(NODE, "198.51.100.40", 443), EXTIP, True),
    Case("externalip-other-port-untouched", P(EXT, "198.51.100.40", 80), {"NO-NAT"}, False),
    Case("etp-local-from-outside", P(EXT, NODE, 30880), eps(8080, "10.244.1.51"), False),
    Case("etp-local-from-pod", P(POD, NODE, 30880), ETP_ALL, False),
    Case("etp-local-from-node", P(NODE, NODE, 30880), ETP_ALL, True),
    Case("etp-local-none-here-from-outside", P(EXT, NODE, 30881), {"DROP"}, False),
    Case("etp-local-none-here-from-pod", P(POD, NODE, 30881), eps(8080, "10.244.2.56"), False),
    Case("etp-local-none-here-from-node", P(NODE, NODE, 30881), eps(8080, "10.244.2.56"), True),
    Case("itp-local-from-pod", P(POD, "10.96.1.60", 6379), ITP, False),
    Case("itp-local-from-outside", P(EXT, "10.96.1.60", 6379), ITP, True),
    Case("itp-local-none-here-dropped", P(POD, "10.96.1.65", 6379), {"DROP"}, False),
    Case("itp-local-none-here-from-node", P(NODE, "10.96.1.65", 6379), {"DROP"}, False),
    Case("terminating-endpoint-fallback", P(POD, "10.96.1.70", 8080),
         eps(8080, "10.244.2.71"), False),
    Case("no-endpoints-rejected", P(EXT, "10.96.1.90", 80), {"REJECT"}, False),
    Case("no-endpoints-nodeport-rejected", P(EXT, NODE, 30090), {"REJECT"}, False),
    Case("no-endpoints-from-node", P(NODE, "10.96.1.90", 80), {"REJECT"}, False),
    Case("udp-from-pod", P(POD, "10.96.1.53", 53, "udp"), DNS, False),
    Case("udp-from-outside", P(EXT, "10.96.1.53", 53, "udp"), DNS, True),
    Case("sctp-from-pod", P(POD, "10.96.1.132", 9999, "sctp"), eps(9999, "10.244.2.133"), False),
    Case("ipv6-clusterip-from-pod", P(POD6, "fd00:10:96::10", 80), WEB6, False),
    Case("ipv6-clusterip-from-outside", P(EXT6, "fd00:10:96::10", 80), WEB6, True),
    Case("ipv6-clusterip-from-node", P(NODE6, "fd00:10:96::10", 80), WEB6, True),
    Case("ipv6-nodeport", P(EXT6, NODE6, 30080), WEB6, True),
    Case("ipv6-nodeport-any-local-address", P(EXT6, "fd00:10:10::20", 30080), WEB6, True),
    Case("ipv6-no-endpoints-rejected", P(EXT6, "fd00:10:96::90", 80), {"REJECT"}, False),
    Case("ipv6-wrong-port-rejected", P(EXT6, "fd00:10:96::10", 81), {"REJECT"}, False),
    Case("ipv6-unallocated-dropped", P(EXT6, "fd00:10:96::99", 80), {"DROP"}, False),
]
AFFINITY = [
    Case("affinity-from-pod", P(POD, "10.96.1.80", 80), SESSIONS, False),
    Case("affinity-from-outside", P(EXT, "10.96.1.80", 80), SESSIONS, True),
]
assert len({c.id for c in CASES + AFFINITY}) == len(CASES + AFFINITY)


@pytest.fixture(scope="module", autouse=True)
def _nft_rig():
    require_nft()
    yield
    POOL.close()


def dump(layout: str) -> str:
    return (DUMPS / f"eval-v{layout}.nft").read_text()


@functools.cache
def listed_back(layout: str):
    """svctrace reading what the kernel lists after loading the dump (`nft -j list ruleset`)."""
    rig = POOL.get()
    rig.load(dump(layout))
    return parse_nft(rig.save(json_form=True), f"kernel:eval-v{layout}", "nft-json")


@functools.cache
def read_directly(layout: str):
    path = DUMPS / f"eval-v{layout}.nft"
    return parse_nft(path.read_text(), str(path), "nft-f")


_kernel: dict[tuple[str, str], object] = {}


def kernel(layout: str, case: Case):
    key = (layout, case.id)
    if key not in _kernel:
        _kernel[key] = nft_probe(dump(layout), case.probe, probes_for(len(case.outcomes)))
    return _kernel[key]


def expected_masq(case: Case, layout: str) -> dict[str, bool]:
    masq = case.masq(layout)
    if isinstance(masq, bool):
        return {k: masq and k not in ("DROP", "REJECT") for k in case.outcomes}
    return {k: k in masq for k in case.outcomes}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel_does_what_the_table_says(layout, case):
    k = kernel(layout, case)
    msg = f"expected {sorted(case.outcomes)} masquerade={case.masq(layout)}\n" + describe(k)
    assert k.outcomes == case.outcomes, msg
    assert k.masquerade == expected_masq(case, layout), msg


@pytest.mark.parametrize("reader", ["listed-back", "nft-f"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_svctrace_matches_kernel(reader, layout, case):
    ruleset = listed_back(layout) if reader == "listed-back" else read_directly(layout)
    assert_tracer_matches_kernel(kernel(layout, case), nft_outcomes(ruleset, case.probe))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", AFFINITY, ids=[c.id for c in AFFINITY])
def test_affinity_pick_is_predicted(layout, case):
    k = nft_probe(dump(layout), case.probe, 12)
    assert len(k.outcomes) == 1, "the kernel did not stick to one endpoint\n" + describe(k)
    (pick,) = k.outcomes
    assert pick in case.outcomes
    assert k.masquerade == {pick: case.masquerade}
    fresh = nft_outcomes(listed_back(layout), case.probe)
    assert fresh.outcomes == case.outcomes and not fresh.assumptions, describe(k, fresh)
    assert fresh.masquerade == {o: case.masquerade for o in case.outcomes}
    hit = nft_outcomes(listed_back(layout), case.probe, affinity_hit=frozenset({pick}))
    assert hit.outcomes == {pick}, "existing client\n" + describe(k, hit)
