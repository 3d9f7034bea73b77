"""The kernel judges nodes where kube-proxy is not alone.

A node holding both modes' rules: kube-proxy's nft tables (the 1.36 dump) and iptables rules
left in iptables-nft (a mode switch that left them behind). Both see every packet: at each
hook the kernel runs iptables' built-in chains (mangle -150, nat -100/100, filter 0) and the
nft base chains in priority order. svctrace reads the two as one file (iptables-save output
followed by the nft dump: a ModeSplit) and must predict what the kernel did: an iptables
mangle mark before nft's nat decides nft's masquerade, an iptables DNAT for an address nft
does not handle, an iptables filter DROP for one of the endpoints nft DNATed to.

Then other owners' nft tables beside kube-proxy's (a firewall's inet table, a nat chain at an
earlier priority, two chains at the same priority): every base chain runs, the first NAT at
a hook wins, and of chains with equal priorities the one created last runs first.
"""

from __future__ import annotations

import functools

import pytest
from judge import assert_kernel_as_expected, assert_tracer_matches_kernel
from nft_rig import DUMPS, NODE_IPS, POOL, nft_outcomes, require_nft
from rig import Probe, probes_for

from svctrace.model.nftables import ModeSplit
from svctrace.rules.detect import parse_rules

LEFTOVER = """*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -s 10.244.2.77/32 -j MARK --set-xmark 0x4000/0x4000
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.200.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.244.9.9:8080
COMMIT
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -d 10.244.2.13/32 -p tcp -m tcp --dport 8080 -j DROP
COMMIT
"""
WEB = {"10.244.1.11:8080", "10.244.2.12:8080", "DROP"}
CASES = [
    ("nft-dnat-then-iptables-filter-drop", Probe("10.244.2.250", "10.96.1.10", 80), WEB, False),
    ("iptables-mark-makes-nft-masquerade", Probe("10.244.2.77", "10.96.1.10", 80), WEB,
     {"10.244.1.11:8080", "10.244.2.12:8080"}),
    ("iptables-dnat-nft-passes", Probe("10.10.0.60", "10.96.200.1", 80), {"10.244.9.9:8080"},
     False),
    ("iptables-dnat-from-node", Probe("10.10.0.10", "10.96.200.1", 80), {"10.244.9.9:8080"},
     False),
]


@pytest.fixture(scope="module")
def split_rig():
    require_nft()
    rig = POOL.get()
    rig.load_split((DUMPS / "eval-v1.36.nft").read_text(), LEFTOVER)
    yield rig
    POOL.close()


@functools.cache
def split_rules() -> ModeSplit:
    text = LEFTOVER + (DUMPS / "eval-v1.36.nft").read_text()
    rules = parse_rules(text, "split.txt")
    assert isinstance(rules, ModeSplit) and rules.format == "iptables-save+nft-f"
    return rules


@pytest.mark.parametrize("probe,outcomes,masq", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_svctrace_matches_kernel_on_a_split_node(split_rig, probe, outcomes, masq):
    split_rig.load_split((DUMPS / "eval-v1.36.nft").read_text(), LEFTOVER)
    split_rig.reset_state()
    k = split_rig.probe(probe, probes_for(len(outcomes)))
    assert_kernel_as_expected(k, outcomes, masq)
    rules = split_rules()
    t = nft_outcomes(rules.nft, probe, local_ips=NODE_IPS, iptables=rules.iptables)
    assert_tracer_matches_kernel(k, t)


# Other owners' tables beside kube-proxy's (a firewall, a CNI): every base chain runs.
OTHERS = """
add table inet fw
add chain inet fw forward { type filter hook forward priority 10 ; policy accept ; }
add rule inet fw forward ip saddr 10.244.2.251 tcp dport 8080 drop
add table ip early
add chain ip early pre { type nat hook prerouting priority -150 ; }
add rule ip early pre ip saddr 10.244.2.252 tcp dport 80 dnat to 10.244.7.7:8080
add table ip first
add chain ip first check { type filter hook forward priority 5 ; }
add rule ip first check ip saddr 10.244.2.253 meta mark set 0x1
add table ip second
add chain ip second check { type filter hook forward priority 5 ; }
add rule ip second check meta mark 0x1 drop
"""
OTHER_CASES = [
    ("firewall-after-kube-proxy-dnat", Probe("10.244.2.251", "10.96.1.10", 80), {"DROP"}, False),
    ("earlier-nat-chain-wins", Probe("10.244.2.252", "10.96.1.10", 80), {"10.244.7.7:8080"},
     False),
    # equal priorities: the chain created last runs first, so the drop sees no mark yet
    ("equal-priority-last-created-first", Probe("10.244.2.253", "10.96.1.10", 80),
     {"10.244.1.11:8080", "10.244.2.12:8080", "10.244.2.13:8080"}, False),
    ("untouched-by-the-others", Probe("10.244.2.250", "10.96.1.10", 80),
     {"10.244.1.11:8080", "10.244.2.12:8080", "10.244.2.13:8080"}, False),
]


@pytest.mark.parametrize("probe,outcomes,masq", [c[1:] for c in OTHER_CASES],
                         ids=[c[0] for c in OTHER_CASES])
def test_other_owners_tables_run_too(split_rig, probe, outcomes, masq):
    text = (DUMPS / "eval-v1.36.nft").read_text() + OTHERS
    split_rig.load(text)
    split_rig.reset_state()
    k = split_rig.probe(probe, probes_for(len(outcomes)))
    assert_kernel_as_expected(k, outcomes, masq)
    assert_tracer_matches_kernel(k, nft_outcomes(parse_rules(text, "others.nft"), probe))
