"""The nft evaluator, case by case: small rulesets in `nft -f` form, one packet each.

Each case states what the kernel does (nft(8), kube-proxy-semantics.md §2.8) and checks the
outcome set: (verdict, destination after DNAT, masquerade, probability).
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from svctrace.errors import RulesError
from svctrace.model.packet import make_packet
from svctrace.model.trace import node_context
from svctrace.rules.detect import parse_rules
from svctrace.rules.iptables_save import parse_iptables_save
from svctrace.trace.nft_engine import trace_nft

NODE = "10.10.0.10"
BASE = {
    "pre": "add chain ip t pre { type filter hook prerouting priority 0 ; }",
    "fwd": "add chain ip t fwd { type filter hook forward priority 0 ; }",
    "in": "add chain ip t in { type filter hook input priority 0 ; }",
    "out": "add chain ip t out { type filter hook output priority 0 ; }",
    "dnat": "add chain ip t dnat { type nat hook prerouting priority -100 ; }",
    "odnat": "add chain ip t odnat { type nat hook output priority -100 ; }",
    "snat": "add chain ip t snat { type nat hook postrouting priority 100 ; }",
}


def rules(*lines: str, chains: tuple[str, ...] = ()):
    """An `nft -f` ruleset of table `ip t`: the base chains the rule lines name, and `chains`."""
    used = [k for k in BASE if any(f" t {k} " in f" {line} " for line in lines)]
    text = ["add table ip t", *(BASE[k] for k in used),
            *(f"add chain ip t {c}" for c in chains), *lines]
    return parse_rules("\n".join(text) + "\n", "case.nft")


def trace(ruleset, src="10.244.2.9", dst="10.96.0.10", dport=80, proto="tcp", local=(NODE,),
          iif=None, hit=(), iptables=None):
    packet = make_packet(src, dst, proto, 40000, dport, iif)
    return trace_nft(packet, ruleset, node_context(list(local), affinity_hit=frozenset(hit)),
                     iptables)


def outcomes(t) -> set[tuple]:
    return {(o.verdict, o.destination, o.masquerade, Fraction(o.probability).limit_denominator(
        1000)) for o in t.outcomes}


ONE = Fraction(1)

VERDICT_CASES = [
    ("policy-drop", ["add chain ip t x { type filter hook forward priority 0 ; policy drop ; }"],
     {("DROP", None, False, ONE)}),
    ("accept-ends-only-its-base-chain",
     ["add rule ip t pre accept",
      "add chain ip t late { type filter hook prerouting priority 10 ; }",
      "add rule ip t late drop"], {("DROP", None, False, ONE)}),
    ("priority-not-listing-order",
     ["add chain ip t late { type filter hook forward priority 10 ; }",
      "add rule ip t late meta mark 0x1 drop",
      "add chain ip t early { type filter hook forward priority -10 ; }",
      "add rule ip t early meta mark set 0x1"], {("DROP", None, False, ONE)}),
    ("equal-priority-last-created-runs-first",   # checked in a netns: the kernel does so
     ["add chain ip t one { type filter hook forward priority 5 ; }",
      "add rule ip t one meta mark set 0x1",
      "add chain ip t two { type filter hook forward priority 5 ; }",
      "add rule ip t two meta mark 0x1 drop"], {("ACCEPT", None, False, ONE)}),
    ("jump-then-return-continues", ["add rule ip t fwd jump c", "add rule ip t fwd drop",
                                    "add rule ip t c return", "add rule ip t c accept"],
     {("DROP", None, False, ONE)}),
    ("goto-falls-back-to-the-policy", ["add rule ip t fwd goto c", "add rule ip t fwd drop",
                                       "add rule ip t c counter"],
     {("ACCEPT", None, False, ONE)}),
    ("goto-returns-after-the-last-jump",
     ["add rule ip t fwd jump a", "add rule ip t fwd drop", "add rule ip t a goto c",
      "add rule ip t a accept", "add rule ip t c counter"], {("DROP", None, False, ONE)}),
    ("continue-goes-on", ["add rule ip t fwd continue", "add rule ip t fwd drop"],
     {("DROP", None, False, ONE)}),
    ("reject-ends-the-packet", ["add rule ip t fwd reject",
                                "add rule ip t fwd accept"], {("REJECT", None, False, ONE)}),
    ("counter-log-are-no-ops", ["add rule ip t fwd counter log prefix \"x\" drop"],
     {("DROP", None, False, ONE)}),
]


@pytest.mark.parametrize("lines,expected", [c[1:] for c in VERDICT_CASES],
                         ids=[c[0] for c in VERDICT_CASES])
def test_verdicts(lines, expected):
    assert outcomes(trace(rules(*lines, chains=("a", "c")))) == expected


@pytest.mark.parametrize("rule,reject_with", [
    ("reject", "icmp port-unreachable"),
    ("reject with tcp reset", "tcp reset"),
    ("reject with icmp type host-unreachable", "icmp host-unreachable"),
    ("reject with icmpx type admin-prohibited", "icmpx admin-prohibited"),
], ids=["plain", "tcp-reset", "icmp-type", "icmpx"])
def test_reject_forms(rule, reject_with):
    (o,) = trace(rules(f"add rule ip t fwd {rule}")).outcomes
    assert (o.verdict, o.reject_with) == ("REJECT", reject_with)


MATCH_CASES = [   # (id, match, packet overrides, matches?)
    ("daddr", "ip daddr 10.96.0.10", {}, True),
    ("daddr-neq", "ip daddr != 10.96.0.10", {}, False),
    ("saddr-prefix", "ip saddr 10.244.0.0/16", {}, True),
    ("saddr-not-in-anon-set", "ip saddr != { 10.244.2.9, 192.0.2.0/24 }", {}, False),
    ("anon-set-of-ports", "tcp dport { 80, 443 }", {}, True),
    ("port-range", "th dport 1-100", {}, True),
    ("udp-dport-on-tcp", "udp dport 80", {}, False),
    ("udp-dport-neq-on-tcp-never-matches", "udp dport != 80", {}, False),
    ("l4proto", "meta l4proto udp", {"proto": "udp"}, True),
    ("sctp-dport", "sctp dport 80", {"proto": "sctp"}, True),
    ("ip6-on-ipv4-never-matches", "ip6 saddr != ::1", {}, False),
    ("ct-state-new", "ct state new", {}, True),
    ("ct-state-established", "ct state established,related", {}, False),
    ("ct-status-dnat-before-nat", "ct status dnat", {}, False),
    ("fib-daddr-local", "fib daddr type local", {"dst": NODE}, True),
    ("fib-daddr-not-local", "fib daddr type local", {}, False),
    ("fib-loopback-always-local", "fib daddr type local", {"dst": "127.0.0.5"}, True),
    ("fib-saddr-local", "fib saddr type local", {"src": NODE, "dst": "10.244.1.5"}, True),
    ("mark-bit-clear", "meta mark & 0x4000 == 0", {}, True),
    ("iifname-wildcard", 'iifname "veth*"', {"iif": "veth1"}, True),
    ("iifname-neq", 'iifname != "cni0"', {"iif": "eth0"}, True),
    ("tcp-flags-syn", "tcp flags & (syn | ack) == syn", {}, True),
]


@pytest.mark.parametrize("match,packet,matched", [c[1:] for c in MATCH_CASES],
                         ids=[c[0] for c in MATCH_CASES])
def test_matches(match, packet, matched):
    hook = "in" if packet.get("dst") == NODE or packet.get("dst", "").startswith("127.") else \
        "out" if packet.get("src") == NODE else "fwd"
    t = trace(rules(f"add rule ip t {hook} {match} drop"), **packet)
    assert {o.verdict for o in t.outcomes} == {"DROP" if matched else "ACCEPT"}
    assert not [a for o in t.outcomes for a in o.assumptions]


def test_named_sets_intervals_and_concatenations():
    r = rules(
        "add set ip t nets { type ipv4_addr ; flags interval ; }",
        "add element ip t nets { 10.244.0.0/16, 192.0.2.1-192.0.2.9 }",
        "add set ip t pairs { type ipv4_addr . inet_proto . inet_service ; }",
        "add element ip t pairs { 10.96.0.10 . tcp . 80 }",
        "add rule ip t fwd ip saddr @nets ip daddr . meta l4proto . th dport @pairs drop")
    assert {o.verdict for o in trace(r).outcomes} == {"DROP"}
    assert {o.verdict for o in trace(r, src="192.0.2.5").outcomes} == {"DROP"}
    assert {o.verdict for o in trace(r, src="192.0.2.10").outcomes} == {"ACCEPT"}
    assert {o.verdict for o in trace(r, dport=81).outcomes} == {"ACCEPT"}


def test_vmap_miss_is_no_match_and_hit_takes_the_verdict():
    r = rules("add map ip t m { type inet_proto . inet_service : verdict ; }",
              "add element ip t m { tcp . 80 : goto c, udp . 53 : drop }",
              "add rule ip t fwd meta l4proto . th dport vmap @m", "add rule ip t fwd reject",
              "add rule ip t c accept", chains=("c",))
    assert {o.verdict for o in trace(r).outcomes} == {"ACCEPT"}
    assert {o.verdict for o in trace(r, proto="udp", dport=53).outcomes} == {"DROP"}
    assert {o.verdict for o in trace(r, dport=81).outcomes} == {"REJECT"}


@pytest.mark.parametrize("expr,shares", [
    ("numgen random mod 3", [Fraction(1, 3)] * 3),
    ("numgen inc mod 2", [Fraction(1, 2)] * 2),
    ("numgen random mod 4 offset 10", [Fraction(1, 4)] * 4),
], ids=["random", "inc", "offset"])
def test_numgen_forks_with_exact_shares(expr, shares):
    n = len(shares)
    base = 10 if "offset" in expr else 0
    entries = ", ".join(f"{base + i} : 10.244.1.{i + 1} . 8080" for i in range(n))
    t = trace(rules(f"add rule ip t dnat meta l4proto tcp dnat ip addr . port to {expr} map "
                    f"{{ {entries} }}"))
    got = sorted((o.destination, Fraction(o.probability).limit_denominator(100))
                 for o in t.outcomes)
    assert got == [(f"10.244.1.{i + 1}:8080", s) for i, s in enumerate(shares)]


def test_numgen_vmap_forks_into_chains():
    t = trace(rules("add rule ip t dnat numgen random mod 2 vmap { 0 : goto a, 1 : goto c }",
                    "add rule ip t a dnat to 10.244.1.1", "add rule ip t c dnat to 10.244.1.2:81",
                    chains=("a", "c")))
    assert outcomes(t) == {("ACCEPT", "10.244.1.1:80", False, Fraction(1, 2)),
                           ("ACCEPT", "10.244.1.2:81", False, Fraction(1, 2))}


def test_two_numgens_in_one_rule_fork_both_ways():
    t = trace(rules("add rule ip t pre meta mark set numgen random mod 2",
                    "add rule ip t fwd meta mark 1 numgen inc mod 3 0 drop"))
    assert sorted((o.verdict, Fraction(o.probability).limit_denominator(100))
                  for o in t.outcomes) == [("ACCEPT", Fraction(1, 6)), ("ACCEPT", Fraction(1, 6)),
                                           ("ACCEPT", Fraction(1, 2)), ("DROP", Fraction(1, 6))]


def test_a_rule_that_stops_keeps_what_it_did_before():
    # nft runs a rule's expressions in order: a mark set before a match that fails stays set;
    # the numgen after it forks each branch from the rule's start, not from half-way
    t = trace(rules("add rule ip t pre meta mark set meta mark ^ 0x1 numgen random mod 2 0",
                    "add rule ip t fwd meta mark 0x1 drop"))
    assert [(o.verdict, o.probability) for o in t.outcomes] == [("DROP", 0.5), ("DROP", 0.5)]


def test_map_miss_stops_the_rule():
    t = trace(rules("add rule ip t dnat dnat to th dport map { 81 : 10.244.1.1 }",
                    "add rule ip t dnat dnat to 10.244.1.2:8080"))
    assert outcomes(t) == {("ACCEPT", "10.244.1.2:8080", False, ONE)}


def test_routing_uses_the_rewritten_destination():
    t = trace(rules(f"add rule ip t dnat dnat to {NODE}:8080", "add rule ip t fwd drop"))
    (o,) = t.outcomes
    assert (o.verdict, o.destination, o.hook_path) == ("ACCEPT", f"{NODE}:8080",
                                                       ("PREROUTING", "INPUT"))


def test_first_nat_decision_at_a_hook_wins():
    r = rules("add chain ip t early { type nat hook prerouting priority -150 ; }",
              "add rule ip t early dnat to 10.244.1.1",
              "add rule ip t dnat dnat to 10.244.1.2")
    assert outcomes(trace(r)) == {("ACCEPT", "10.244.1.1:80", False, ONE)}


def test_ct_status_dnat_after_nat_and_masquerade_in_postrouting():
    r = rules("add rule ip t dnat dnat to 10.244.1.1",
              "add rule ip t snat ct status dnat masquerade")
    assert outcomes(trace(r)) == {("ACCEPT", "10.244.1.1:80", True, ONE)}
    (o,) = trace(rules("add rule ip t snat snat to 192.0.2.1")).outcomes
    assert (o.masquerade, o.snat_to) == (True, "192.0.2.1")


@pytest.mark.parametrize("ops,final,drops", [
    ("meta mark set meta mark | 0x4000", 0x4001, True),
    ("meta mark set meta mark & 0xffffbfff", 0x1, False),
    ("meta mark set meta mark ^ 0x4001", 0x4000, True),
], ids=["or", "and", "xor"])
def test_mark_arithmetic(ops, final, drops):
    t = trace(rules("add rule ip t pre meta mark set 0x1", f"add rule ip t pre {ops}",
                    f"add rule ip t fwd meta mark {final:#x} meta mark & 0x4000 != 0 drop"))
    assert {o.verdict for o in t.outcomes} == {"DROP" if drops else "ACCEPT"}


def test_local_packet_to_a_local_address_comes_back_through_input_without_nat():
    r = rules("add rule ip t odnat dnat to 127.0.0.1:8080", "add rule ip t dnat dnat to 1.1.1.1",
              'add rule ip t in iifname "lo" ct status dnat drop')
    (o,) = trace(r, src=NODE, dst="10.96.0.10").outcomes
    assert o.hook_path == ("OUTPUT", "POSTROUTING", "PREROUTING", "INPUT")
    assert (o.verdict, o.destination) == ("DROP", "127.0.0.1:8080")


def test_update_adds_to_a_dynamic_set_and_affinity_hit_fills_it():
    r = rules("add set ip t aff { type ipv4_addr ; flags dynamic,timeout ; timeout 3h ; }",
              "add rule ip t dnat ip saddr @aff dnat to 10.244.1.1",
              "add rule ip t dnat update @aff { ip saddr } dnat to 10.244.1.2")
    assert outcomes(trace(r)) == {("ACCEPT", "10.244.1.2:80", False, ONE)}
    assert outcomes(trace(r, hit=("aff",))) == {("ACCEPT", "10.244.1.1:80", False, ONE)}
    r2 = rules("add set ip t aff { type ipv4_addr ; flags dynamic,timeout ; timeout 3h ; }",
               "add rule ip t pre update @aff { ip saddr }",
               "add rule ip t fwd ip saddr @aff drop")
    assert {o.verdict for o in trace(r2).outcomes} == {"DROP"}


@pytest.mark.parametrize("rule,what", [
    ("meta skuid 0 drop", "meta skuid"),
    ("iifname \"eth0\" drop", "iifname"),
    ("limit rate 10/second drop", "limit"),
], ids=["meta-skuid", "iifname-unknown", "limit"])
def test_what_cannot_be_evaluated_is_an_assumption(rule, what):
    (o,) = trace(rules(f"add rule ip t fwd {rule}")).outcomes
    assert o.verdict == "ACCEPT"
    (a,) = o.assumptions
    assert what in a.what and a.assumed == "did not match" and a.chain == "fwd"


def test_jump_loop_is_reported():
    r = rules("add rule ip t fwd jump a", "add rule ip t a jump c", "add rule ip t c jump a",
              chains=("a", "c"))
    with pytest.raises(RulesError, match="jump loop"):
        trace(r)


def test_nesting_deeper_than_the_kernel_allows_is_reported():
    names = [f"c{i}" for i in range(20)]
    r = rules("add rule ip t fwd jump c0",
              *(f"add rule ip t {a} jump {b}" for a, b in zip(names, names[1:], strict=False)),
              chains=tuple(names))
    with pytest.raises(RulesError, match="deeper than 16"):
        trace(r)


def test_inet_tables_see_both_families_and_nfproto():
    r = parse_rules("add table inet f\n"
                    "add chain inet f fwd { type filter hook forward priority 0 ; }\n"
                    "add rule inet f fwd meta nfproto ipv6 drop\n"
                    "add rule inet f fwd ip daddr 10.96.0.10 reject\n", "inet.nft")
    assert {o.verdict for o in trace(r).outcomes} == {"REJECT"}
    assert {o.verdict for o in trace(r, src="fd00::9", dst="fd00::10").outcomes} == {"DROP"}


@pytest.mark.parametrize("prio,winner", [(-150, "10.244.1.1:80"), (-50, "10.244.9.9:80")],
                         ids=["nft-first", "iptables-first"])
def test_iptables_chains_run_at_their_classic_priorities(prio, winner):
    ipt = parse_iptables_save("*nat\n:PREROUTING ACCEPT [0:0]\n"
                              "-A PREROUTING -d 10.96.0.10/32 -j DNAT --to-destination "
                              "10.244.9.9\nCOMMIT\n", "ipt.txt")
    nft = rules(f"add chain ip t n {{ type nat hook prerouting priority {prio} ; }}",
                "add rule ip t n dnat to 10.244.1.1")
    (o,) = trace(nft, iptables=ipt).outcomes
    assert o.destination == winner


def test_ingress_chains_are_reported_not_run():
    r = parse_rules("add table netdev n\n"
                    "add chain netdev n in { type filter hook ingress device lo priority 0 ; }\n"
                    "add rule netdev n in drop\n", "ingress.nft")
    (o,) = trace(r).outcomes
    assert o.verdict == "ACCEPT"
    (a,) = o.assumptions
    assert "hook ingress" in a.what and a.assumed == "let the packet pass"
    (o,) = trace(r, src=NODE).outcomes            # locally generated: no ingress
    assert not o.assumptions
