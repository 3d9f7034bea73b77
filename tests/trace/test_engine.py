"""The evaluator on hand-written rulesets: one row per kernel behaviour it must get right.

The real kernel judges the same engine in tests/kernel; these rows pin the semantics down."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svctrace.errors import RulesError
from svctrace.model.packet import make_packet
from svctrace.model.trace import node_context
from svctrace.rules.iptables_save import parse_iptables_save
from svctrace.trace.engine import trace_packet

NAT = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-SVC-A - [0:0]
:KUBE-SEP-1 - [0:0]
:KUBE-SEP-2 - [0:0]
:KUBE-SEP-3 - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -j KUBE-SERVICES
-A POSTROUTING -j KUBE-POSTROUTING
-A KUBE-MARK-MASQ -j MARK --set-xmark 0x8000/0x8000
-A KUBE-POSTROUTING -m mark ! --mark 0x8000/0x8000 -j RETURN
-A KUBE-POSTROUTING -j MARK --set-xmark 0x8000/0x0
-A KUBE-POSTROUTING -j MASQUERADE --random-fully
-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A
-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-NODEPORTS -p tcp -m tcp --dport 30080 -j KUBE-MARK-MASQ
-A KUBE-NODEPORTS -p tcp -m tcp --dport 30080 -j KUBE-SVC-A
-A KUBE-SVC-A ! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ
-A KUBE-SVC-A -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-1
-A KUBE-SVC-A -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-2
-A KUBE-SVC-A -j KUBE-SEP-3
-A KUBE-SEP-1 -s 10.244.1.1/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-1 -p tcp -m tcp -j DNAT --to-destination 10.244.1.1:8080
-A KUBE-SEP-2 -s 10.244.1.2/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-2 -p tcp -m tcp -j DNAT --to-destination 10.244.1.2:8080
-A KUBE-SEP-3 -s 10.244.1.3/32 -j KUBE-MARK-MASQ
-A KUBE-SEP-3 -p tcp -m tcp -j DNAT --to-destination 10.244.1.3:8080
COMMIT
"""
FILTER = """*filter
:INPUT ACCEPT [0:0]
:FORWARD {forward} [0:0]
:OUTPUT ACCEPT [0:0]
:CUSTOM - [0:0]
:SUB - [0:0]
{rules}
COMMIT
"""
BACKENDS = {"10.244.1.1:8080", "10.244.1.2:8080", "10.244.1.3:8080"}
NODE = node_context(["192.168.0.2"])


def trace(text: str, src: str, dst: str, dport: int = 80, proto: str = "tcp", node=NODE,
          iface: str | None = None):
    return trace_packet(make_packet(src, dst, proto, 41000, dport, iface),
                        parse_iptables_save(text, "t"), node)


def shares(t) -> dict[str, float]:
    return t.destinations


@pytest.mark.parametrize("src,dst,dport,expect,masq", [
    pytest.param("10.244.2.9", "10.96.0.10", 80, BACKENDS, set(), id="pod-to-clusterip"),
    pytest.param("203.0.113.9", "10.96.0.10", 80, BACKENDS, BACKENDS, id="outside-masq"),
    pytest.param("10.244.1.2", "10.96.0.10", 80, BACKENDS, {"10.244.1.2:8080"}, id="hairpin"),
    pytest.param("203.0.113.9", "192.168.0.2", 30080, BACKENDS, BACKENDS, id="nodeport"),
    pytest.param("192.168.0.2", "10.96.0.10", 80, BACKENDS, BACKENDS, id="node-itself"),
    pytest.param("127.0.0.1", "127.0.0.5", 30080, BACKENDS, BACKENDS, id="localhost-nodeport"),
    pytest.param("10.244.2.9", "10.96.0.10", 81, {"ACCEPT"}, set(), id="other-port-untouched"),
    pytest.param("203.0.113.9", "192.168.0.9", 30080, {"ACCEPT"}, set(), id="not-local-no-np"),
])
def test_cascade(src, dst, dport, expect, masq) -> None:
    t = trace(NAT, src, dst, dport)
    got = shares(t)
    assert set(got) == expect
    assert sum(got.values()) == pytest.approx(1.0, abs=1e-9)
    if expect == BACKENDS:
        assert all(abs(p - 1 / 3) < 1e-9 for p in got.values()), got   # equal shares
    assert {o.destination for o in t.outcomes if o.masquerade} == masq


def test_mark_value_is_read_from_the_rules_not_assumed() -> None:
    # this ruleset uses 0x8000, not kube-proxy's default 0x4000
    t = trace(NAT, "203.0.113.9", "10.96.0.10")
    assert all(o.masquerade for o in t.outcomes)
    t = trace(NAT.replace("! --mark 0x8000/0x8000", "! --mark 0x4000/0x4000"),
              "203.0.113.9", "10.96.0.10")
    assert not any(o.masquerade for o in t.outcomes)


def _filter(rules: str, forward: str = "ACCEPT") -> str:
    return FILTER.format(rules=rules, forward=forward)


@pytest.mark.parametrize("rules,policy,verdict", [
    pytest.param("-A FORWARD -p tcp -m tcp --dport 80 -j REJECT", "ACCEPT", "REJECT",
                 id="reject"),
    pytest.param("-A FORWARD -j CUSTOM\n-A CUSTOM -s 10.0.0.0/8 -j RETURN\n-A CUSTOM -j DROP",
                 "ACCEPT", "ACCEPT", id="return-from-custom"),
    pytest.param("-A FORWARD -g CUSTOM\n-A FORWARD -j DROP\n-A CUSTOM -s 10.0.0.0/8 -j RETURN",
                 "ACCEPT", "ACCEPT", id="goto-returns-to-caller-of-caller"),
    pytest.param("-A FORWARD -j CUSTOM\n-A FORWARD -j DROP\n-A CUSTOM -s 10.0.0.0/8 -j RETURN",
                 "ACCEPT", "DROP", id="jump-returns-after-rule"),
    pytest.param("", "DROP", "DROP", id="policy-drop"),
    pytest.param("-A FORWARD -j SUB\n-A SUB -j MARK --set-mark 0x10\n"
                 "-A FORWARD -m mark --mark 0x10 -j ACCEPT\n-A FORWARD -j DROP",
                 "ACCEPT", "ACCEPT", id="mark-then-match"),
    pytest.param("-A FORWARD -p tcp -m multiport --dports 22,70:90 -j DROP", "ACCEPT", "DROP",
                 id="multiport-range"),
    pytest.param("-A FORWARD -m conntrack --ctstate NEW -j DROP", "ACCEPT", "DROP",
                 id="ctstate-new"),
    pytest.param("-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j DROP", "ACCEPT",
                 "ACCEPT", id="ctstate-established"),
    pytest.param("-A FORWARD -m state --state NEW -j REJECT", "ACCEPT", "REJECT", id="state"),
    pytest.param("-A FORWARD -i eth+ -j DROP", "ACCEPT", "DROP", id="iface-wildcard"),
    pytest.param("-A FORWARD ! -i eth+ -j DROP", "ACCEPT", "ACCEPT", id="iface-negated"),
    pytest.param("-A FORWARD -j LOG --log-prefix x\n-A FORWARD -j DROP", "ACCEPT", "DROP",
                 id="log-continues"),
])
def test_filter_semantics(rules: str, policy: str, verdict: str) -> None:
    t = trace(_filter(rules, policy), "10.1.1.1", "10.2.2.2", 80, iface="eth0")
    assert [o.verdict for o in t.outcomes] == [verdict]
    assert not t.outcomes[0].assumptions


def test_unknown_match_is_not_assumed_to_match() -> None:
    t = trace(_filter("-A FORWARD -m u32 --u32 0x0=0x0 -j DROP"), "10.1.1.1",
              "10.2.2.2")
    (o,) = t.outcomes
    assert o.verdict == "ACCEPT"
    assert len(o.assumptions) == 1
    assert o.assumptions[0].what == 'not evaluated: match "u32"'
    assert o.assumptions[0].assumed == "did not match"


def test_unknown_target_is_recorded() -> None:
    t = trace(_filter("-A FORWARD -j TEE --gateway 1.2.3.4"), "10.1.1.1", "10.2.2.2")
    (o,) = t.outcomes
    assert o.verdict == "ACCEPT" and 'target "TEE"' in o.assumptions[0].what


def test_unknown_input_interface_is_an_assumption() -> None:
    t = trace(_filter("-A FORWARD -i eth0 -j DROP"), "10.1.1.1", "10.2.2.2")
    assert t.outcomes[0].verdict == "ACCEPT" and t.outcomes[0].assumptions


def test_loop_is_reported_not_hung() -> None:
    with pytest.raises(RulesError, match="jump loop"):
        trace(_filter("-A FORWARD -j CUSTOM\n-A CUSTOM -j SUB\n-A SUB -j CUSTOM"),
              "10.1.1.1", "10.2.2.2")


AFFINITY = NAT.replace(
    "-A KUBE-SVC-A -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-1",
    "-A KUBE-SVC-A -m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-2 --mask "
    "255.255.255.255 --rsource -j KUBE-SEP-2\n"
    "-A KUBE-SVC-A -m statistic --mode random --probability 0.33333333349 -j KUBE-SEP-1")


def test_affinity_new_client_gets_every_backend() -> None:
    assert set(shares(trace(AFFINITY, "10.244.2.9", "10.96.0.10"))) == BACKENDS


@pytest.mark.parametrize("hit", ["KUBE-SEP-2", "10.244.1.2:8080"])
def test_affinity_existing_client_sticks(hit: str) -> None:
    node = node_context(["192.168.0.2"], affinity_hit=frozenset({hit}))
    assert shares(trace(AFFINITY, "10.244.2.9", "10.96.0.10", node=node)) == \
        {"10.244.1.2:8080": 1.0}


def test_family_mismatch_is_an_error() -> None:
    with pytest.raises(RulesError, match="IPv4"):
        trace(NAT, "fd00::1", "fd00::2")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=99), min_size=1, max_size=8),
       st.booleans())
def test_probabilities_always_sum_to_one(percents: list[int], with_tail: bool) -> None:
    rules = [f"-A FORWARD -m statistic --mode random --probability {p / 100:.11f} "
             f"-j {'DROP' if i % 2 else 'REJECT'}" for i, p in enumerate(percents)]
    if with_tail:
        rules.append("-A FORWARD -j CUSTOM\n-A CUSTOM -m statistic --mode random "
                     "--probability 0.25 -j DROP")
    t = trace(_filter("\n".join(rules)), "10.1.1.1", "10.2.2.2")
    assert sum(o.probability for o in t.outcomes) == pytest.approx(1.0, abs=1e-8)
    assert len(t.outcomes) <= len(percents) + 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["FORWARD", "CUSTOM", "SUB"]),
                          st.sampled_from(["-j CUSTOM", "-j SUB", "-g SUB", "-j RETURN",
                                           "-j ACCEPT", "-j DROP", "-s 10.0.0.0/8 -j RETURN",
                                           "-m statistic --mode random --probability 0.5 -j SUB",
                                           "-j MARK --set-mark 1"])),
                max_size=10))
def test_tracing_terminates(rules: list[tuple[str, str]]) -> None:
    text = _filter("\n".join(f"-A {c} {r}" for c, r in rules))
    try:
        t = trace(text, "10.1.1.1", "10.2.2.2")
    except RulesError as err:
        assert "loop" in err.message
        return
    assert t.outcomes
    assert sum(o.probability for o in t.outcomes) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("rule,verdict", [
    pytest.param("-A INPUT -i lo -j ACCEPT\n-A INPUT -j DROP", "ACCEPT", id="lo-accepted"),
    pytest.param("-A INPUT ! -i lo -j ACCEPT\n-A INPUT -j DROP", "DROP", id="not-lo-dropped"),
])
def test_local_delivery_arrives_on_lo(rule: str, verdict: str) -> None:
    t = trace(_filter(rule), "192.168.0.2", "192.168.0.2", 22)
    assert [o.verdict for o in t.outcomes] == [verdict]
    assert t.outcomes[0].hook_path == ("OUTPUT", "POSTROUTING", "INPUT")
    assert not t.outcomes[0].assumptions
