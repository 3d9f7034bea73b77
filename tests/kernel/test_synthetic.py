"""Rulesets written here for what the real dumps lack: each case is a row with a readable id.

* kube-proxy-shaped IPv4 (kprules.py): hairpin on TCP and UDP, NodePort, affinity;
* kube-proxy-shaped IPv6 (ip6tables-legacy-restore / ip6tables-nft-restore): ClusterIP, hairpin,
  NodePort, a local client, REJECT with icmp6-port-unreachable;
* a hand-written (not kube-proxy) ruleset: -g goto and RETURN, user chains, a built-in chain with
  policy DROP, MARK and mark matches with a non-kube-proxy mark, multiport (lists, ranges,
  negation), DNAT without a port, MASQUERADE without DNAT, locally generated traffic.

For every row the kernel must do what the row says (the rig's check), and svctrace must agree.
"""

from __future__ import annotations

import pytest
from judge import assert_kernel_as_expected, assert_tracer_matches_kernel, svctrace_outcomes
from kprules import Service, kube_proxy_rules
from rig import BACKENDS, Probe, kernel_probe, probes_for

pytestmark = pytest.mark.kernel

# ---------------------------------------------------------------- kube-proxy shaped, IPv4
KP4 = kube_proxy_rules([
    Service("syn", "hp", "http", "10.96.50.10", 80,
            [("10.244.1.11", 8080), ("10.244.1.12", 8080), ("10.244.2.13", 8080)], node_port=31080),
    Service("syn", "dns", "dns", "10.96.50.53", 53, [("10.244.1.20", 5353), ("10.244.2.21", 5353)],
            proto="udp"),
    Service("syn", "sticky", "http", "10.96.50.80", 80,
            [("10.244.1.31", 80), ("10.244.2.32", 80)], affinity_seconds=600),
    Service("syn", "empty", "http", "10.96.50.99", 80, [], node_port=31099),
], pod_cidr="10.244.0.0/16")
HP = {"10.244.1.11:8080", "10.244.1.12:8080", "10.244.2.13:8080"}
DNS = {"10.244.1.20:5353", "10.244.2.21:5353"}

KP4_ROWS = [
    ("hairpin-tcp-source-is-endpoint", Probe("10.244.1.12", "10.96.50.10", 80), HP,
     {"10.244.1.12:8080"}),
    ("hairpin-tcp-other-pod", Probe("10.244.1.99", "10.96.50.10", 80), HP, False),
    ("hairpin-udp-source-is-endpoint", Probe("10.244.2.21", "10.96.50.53", 53, "udp"), DNS,
     {"10.244.2.21:5353"}),
    ("udp-clusterip-from-outside", Probe("203.0.113.9", "10.96.50.53", 53, "udp"), DNS, True),
    ("udp-clusterip-from-node", Probe("10.10.0.10", "10.96.50.53", 53, "udp"), DNS, True),
    ("nodeport-hairpin-from-endpoint", Probe("10.244.2.13", "10.10.0.10", 31080), HP, True),
    ("affinity-one-endpoint-per-source", Probe("172.16.5.20", "10.96.50.80", 80), None, True),
    ("no-endpoints-nodeport-reject", Probe("203.0.113.9", "10.10.0.10", 31099), {"REJECT"}, False),
    ("no-endpoints-clusterip-udp-untouched", Probe("203.0.113.9", "10.96.50.99", 80, "udp"),
     {"NO-NAT"}, False),
]

# ---------------------------------------------------------------- kube-proxy shaped, IPv6
KP6 = kube_proxy_rules([
    Service("syn", "web6", "http", "fd00:10:96::10", 80,
            [("fd00:10:244:1::11", 8080), ("fd00:10:244:2::12", 8080),
             ("fd00:10:244:2::13", 8080)], node_port=30080),
    Service("syn", "empty6", "http", "fd00:10:96::20", 80, []),
], pod_cidr="fd00:10:244::/48", family=6)
WEB6 = {"[fd00:10:244:1::11]:8080", "[fd00:10:244:2::12]:8080", "[fd00:10:244:2::13]:8080"}

KP6_ROWS = [
    ("v6-clusterip-from-outside", Probe("2001:db8::9", "fd00:10:96::10", 80), WEB6, True),
    ("v6-clusterip-from-pod", Probe("fd00:10:244:1::99", "fd00:10:96::10", 80), WEB6, False),
    ("v6-clusterip-hairpin", Probe("fd00:10:244:2::12", "fd00:10:96::10", 80), WEB6,
     {"[fd00:10:244:2::12]:8080"}),
    ("v6-clusterip-from-node", Probe("fd00:10:10::10", "fd00:10:96::10", 80), WEB6, True),
    ("v6-nodeport-on-node-ip", Probe("2001:db8::9", "fd00:10:10::10", 30080), WEB6, True),
    ("v6-no-endpoints-reject", Probe("2001:db8::9", "fd00:10:96::20", 80), {"REJECT"}, False),
    ("v6-other-port-untouched", Probe("2001:db8::9", "fd00:10:96::10", 81), {"NO-NAT"}, False),
]

# ---------------------------------------------------------------- hand-written, IPv4
USER = """\
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:TAG - [0:0]
-A PREROUTING -j TAG
-A TAG -s 198.18.0.0/15 -j MARK --set-xmark 0x100/0x100
-A TAG -p udp -j RETURN
-A TAG -s 203.0.113.0/24 -j MARK --or-mark 0x200
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:FRONT - [0:0]
:VIP-WEB - [0:0]
:SNAT-IT - [0:0]
:RANGE - [0:0]
-A PREROUTING -d 192.0.2.10/32 -j FRONT
-A PREROUTING -d 192.0.2.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.1.0.30:80
-A PREROUTING -d 192.0.2.20/32 -j RANGE
-A OUTPUT -d 192.0.2.10/32 -j FRONT
-A POSTROUTING -m mark --mark 0x100/0x100 -j SNAT-IT
-A FRONT -p tcp -m multiport --dports 80,443 -g VIP-WEB
-A FRONT -p tcp -j DNAT --to-destination 10.1.0.99
-A VIP-WEB -s 203.0.113.0/24 -j RETURN
-A VIP-WEB -p tcp -m tcp --dport 443 -j DNAT --to-destination 10.1.0.20:8443
-A VIP-WEB -p tcp -j DNAT --to-destination 10.1.0.10:8080
-A SNAT-IT -j MASQUERADE
-A RANGE -p tcp -m multiport --dports 8000:8010,9000 -j DNAT --to-destination 10.2.0.1
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:FWD-CHECK - [0:0]
-A FORWARD -j FWD-CHECK
-A FORWARD -d 10.2.0.0/16 -m mark --mark 0x200/0x200 -j REJECT --reject-with icmp-port-unreachable
-A FORWARD -d 10.1.0.0/16 -j ACCEPT
-A FORWARD -p udp -m multiport ! --dports 123,514 -j ACCEPT
-A OUTPUT -d 10.1.0.20/32 -p tcp -m multiport --dports 8443,8444 -j REJECT
-A FWD-CHECK -m mark --mark 0x100/0x100 -j ACCEPT
COMMIT
"""

USER_ROWS = [
    ("goto-then-dnat", Probe("10.10.0.60", "192.0.2.10", 80), {"10.1.0.10:8080"}, False),
    ("goto-then-dnat-443", Probe("10.10.0.60", "192.0.2.10", 443), {"10.1.0.20:8443"}, False),
    ("return-from-goto-chain-resumes-in-prerouting", Probe("203.0.113.9", "192.0.2.10", 80),
     {"10.1.0.30:80"}, False),
    ("multiport-miss-falls-to-dnat-without-port", Probe("10.10.0.60", "192.0.2.10", 22),
     {"10.1.0.99:22"}, False),
    ("mark-accepts-in-user-chain-and-masquerades", Probe("198.18.1.1", "192.0.2.20", 8005),
     {"10.2.0.1:8005"}, True),
    ("forward-policy-drop", Probe("10.10.0.60", "192.0.2.20", 8005), {"DROP"}, False),
    ("mark-or-then-reject", Probe("203.0.113.9", "192.0.2.20", 9000), {"REJECT"}, False),
    ("multiport-range-miss-then-policy-drop", Probe("10.10.0.60", "192.0.2.20", 8011), {"DROP"},
     False),
    ("masquerade-without-dnat", Probe("198.18.1.1", "192.0.2.20", 53, "udp"), {"NO-NAT"}, True),
    ("udp-return-skips-mark-then-accept", Probe("203.0.113.9", "192.0.2.20", 53, "udp"),
     {"NO-NAT"}, False),
    ("negated-multiport-falls-to-policy-drop", Probe("203.0.113.9", "192.0.2.20", 514, "udp"),
     {"DROP"}, False),
    ("local-goto-dnat", Probe("10.10.0.10", "192.0.2.10", 80), {"10.1.0.10:8080"}, False),
    ("local-dnat-then-filter-output-reject", Probe("10.10.0.10", "192.0.2.10", 443), {"REJECT"},
     False),
]


def _rows(rules: str, rows):
    return [pytest.param(rules, *r[1:], id=r[0]) for r in rows]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("rules", "probe", "outcomes", "masquerade"),
                         _rows(KP4, KP4_ROWS) + _rows(KP6, KP6_ROWS) + _rows(USER, USER_ROWS))
def test_synthetic(backend, rules, probe, outcomes, masquerade):
    tracer = svctrace_outcomes(rules, probe)
    if outcomes is None:            # ClientIP affinity: sticky to one of svctrace's endpoints
        k = kernel_probe(rules, backend, probe, 12)
        assert len(k.outcomes) == 1 and k.outcomes <= tracer.outcomes, (k.counts, tracer)
        assert len(tracer.outcomes) == 2
        return
    k = kernel_probe(rules, backend, probe, max(12, probes_for(len(outcomes))))
    assert_kernel_as_expected(k, outcomes, masquerade)
    assert_tracer_matches_kernel(k, tracer)
