"""Invariants of the nft evaluator on random rulesets: tracing terminates, the outcomes'
probabilities are exact and sum to 1, and every branch ends in a verdict."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from svctrace.model.nftables import NftChain, NftRule, NftRuleset, NftTable
from svctrace.model.packet import make_packet
from svctrace.model.trace import node_context
from svctrace.trace.nft_engine import trace_nft

HOOKS = [("filter", "prerouting"), ("nat", "prerouting"), ("filter", "forward"),
         ("filter", "input"), ("nat", "postrouting")]

DADDR = {"payload": {"protocol": "ip", "field": "daddr"}}
DPORT = {"payload": {"protocol": "th", "field": "dport"}}
matches = st.one_of(
    st.builds(lambda a: {"match": {"op": "==", "left": DADDR, "right": f"10.96.0.{a}"}},
              st.integers(1, 3)),
    st.builds(lambda p, op: {"match": {"op": op, "left": DPORT, "right": p}},
              st.sampled_from([80, 443]), st.sampled_from(["==", "!="])),
    st.just({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "new"}}),
    st.just({"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}},
                       "right": "local"}}),
    st.just({"mangle": {"key": {"meta": {"key": "mark"}},
                        "value": {"|": [{"meta": {"key": "mark"}}, 16384]}}}),
)


def verdicts(chain_index: int, chains: int) -> st.SearchStrategy[Any]:
    simple = [{"accept": None}, {"drop": None}, {"return": None}, {"continue": None},
              {"reject": None}, {"counter": None}]
    later = [f"c{i}" for i in range(chain_index + 1, chains)]     # no loops: only forward
    options = [st.sampled_from(simple)]
    if later:
        options.append(st.builds(lambda k, t: {k: {"target": t}},
                                 st.sampled_from(["jump", "goto"]), st.sampled_from(later)))
        options.append(st.builds(
            lambda n, targets: {"vmap": {"key": {"numgen": {"mode": "random", "mod": n,
                                                            "offset": 0}},
                                         "data": {"set": [[i, {"goto": {"target": targets[i]}}]
                                                          for i in range(n)]}}},
            st.integers(1, 4), st.lists(st.sampled_from(later), min_size=4, max_size=4)))
    nat = st.builds(lambda n: {"dnat": {"family": "ip", "addr": {"map": {
        "key": {"numgen": {"mode": "inc", "mod": n, "offset": 0}},
        "data": {"set": [[i, {"concat": [f"10.244.1.{i + 1}", 8080]}] for i in range(n)]}}}}},
        st.integers(1, 5))
    return st.one_of(*options, nat, st.just({"masquerade": None}))


@st.composite
def rulesets(draw: st.DrawFn) -> NftRuleset:
    n = draw(st.integers(1, 5))
    chains: dict[str, NftChain] = {}
    for i in range(n):
        rules = []
        for number in range(1, draw(st.integers(0, 4)) + 1):
            stmts = (*draw(st.lists(matches, max_size=2)), draw(verdicts(i, n)))
            rules.append(NftRule("ip", "t", f"c{i}", number, None, number, repr(stmts), "p",
                                 statements=tuple(stmts)))
        chains[f"c{i}"] = NftChain(f"c{i}", "ip", "t", rules=tuple(rules))
    for j, (kind, hook) in enumerate(draw(st.lists(st.sampled_from(HOOKS), min_size=1,
                                                   max_size=4, unique=True))):
        target = draw(st.sampled_from(sorted(chains)))
        jump = NftRule("ip", "t", f"b{j}", 1, None, 1, f"jump {target}", "p",
                       statements=({"jump": {"target": target}},))
        chains[f"b{j}"] = NftChain(f"b{j}", "ip", "t", kind, hook, draw(st.integers(-200, 200)),
                                   draw(st.sampled_from(["accept", "drop"])), rules=(jump,))
    return NftRuleset((NftTable("ip", "t", chains, {}),), "property", "nft-json")


@settings(max_examples=150, deadline=None)
@given(rulesets(), st.sampled_from(["10.96.0.1", "10.96.0.2", "10.10.0.10"]),
       st.sampled_from([80, 443]), st.booleans())
def test_tracing_terminates_and_probabilities_sum_to_one(ruleset, dst, dport, from_node):
    src = "10.10.0.10" if from_node else "10.244.2.9"
    packet = make_packet(src, dst, "tcp", 40000, dport)
    trace = trace_nft(packet, ruleset, node_context(["10.10.0.10"]))
    assert trace.outcomes
    # exact Fractions inside; each outcome's float is rounded to 9 decimals
    assert abs(sum(o.probability for o in trace.outcomes) - 1.0) <= 1e-9 * len(trace.outcomes)
    for o in trace.outcomes:
        assert o.verdict in ("ACCEPT", "DROP", "REJECT")
        assert 0 < o.probability <= 1
        assert not o.assumptions
