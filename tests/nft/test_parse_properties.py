"""Property: what svctrace prints for a rule (the text of JSON-read rules) reads back to the
same statements, for rules built from the expressions kube-proxy, firewalld and Docker use."""

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from svctrace.rules.nft_format import format_rule
from svctrace.rules.nft_lang import drop_dependencies, parse_rule

FLAGS = ["invalid", "established", "related", "new", "untracked"]

ipv4 = st.integers(1, 2**32 - 2).map(lambda n: str(ipaddress.IPv4Address(n)))
port = st.integers(1, 65535)
chain = st.from_regex(r"[a-z][a-z0-9-]{0,10}(/[a-z0-9]{1,6}){0,3}", fullmatch=True)


@st.composite
def prefix(draw: st.DrawFn) -> dict:
    net = ipaddress.ip_network((draw(st.integers(0, 2**32 - 1)), draw(st.integers(1, 31))),
                               strict=False)
    return {"prefix": {"addr": str(net.network_address), "len": net.prefixlen}}


def payload(proto: str, field: str) -> dict:
    return {"payload": {"protocol": proto, "field": field}}


def match(left: dict, right: object, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def two_or_more(values: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(values, min_size=2, max_size=4, unique_by=repr).map(lambda v: {"set": v})


matches = st.one_of(
    st.builds(match, st.sampled_from([payload("ip", "saddr"), payload("ip", "daddr")]),
              st.one_of(ipv4, prefix(), two_or_more(ipv4), st.from_regex(r"@[a-z-]{1,9}",
                                                                          fullmatch=True)),
              st.sampled_from(["==", "!="])),
    st.builds(match, st.sampled_from([payload("tcp", "dport"), payload("udp", "sport"),
                                      payload("th", "dport")]),
              st.one_of(port, two_or_more(port),
                        st.tuples(port, port).map(lambda p: {"range": sorted(p)})),
              st.sampled_from(["==", "!="])),
    st.builds(match, st.just({"meta": {"key": "l4proto"}}),
              st.one_of(st.sampled_from(["tcp", "udp", "sctp"]),
                        two_or_more(st.sampled_from(["tcp", "udp", "sctp", "icmp"])))),
    st.builds(match, st.just({"&": [{"meta": {"key": "mark"}}, 16384]}),
              st.sampled_from([0, 16384]), st.sampled_from(["==", "!="])),
    st.builds(lambda flags: match({"ct": {"key": "state"}},
                                  flags[0] if len(flags) == 1 else flags, "in"),
              st.lists(st.sampled_from(FLAGS), min_size=1, max_size=3, unique=True).map(
                  lambda f: sorted(f, key=FLAGS.index))),
    st.builds(match, st.just({"meta": {"key": "iifname"}}),
              st.from_regex(r"[a-z][a-z0-9]{0,6}\*?", fullmatch=True),
              st.sampled_from(["==", "!="])),
    st.builds(match, st.just({"fib": {"result": "type", "flags": ["daddr"]}}),
              st.sampled_from(["local", "unicast"]), st.sampled_from(["==", "!="])),
)

actions = st.one_of(
    st.sampled_from([{"accept": None}, {"drop": None}, {"return": None}, {"counter": None},
                     {"masquerade": {"flags": "fully-random"}},
                     {"reject": {"type": "icmp", "expr": "port-unreachable"}},
                     {"mangle": {"key": {"meta": {"key": "mark"}},
                                 "value": {"|": [{"meta": {"key": "mark"}}, 16384]}}}]),
    st.builds(lambda verb, target: {verb: {"target": target}},
              st.sampled_from(["jump", "goto"]), chain),
    st.builds(lambda addr, p: {"dnat": {"addr": addr, "port": p}}, ipv4, port),
    st.builds(lambda n, eps: {"vmap": {"key": {"numgen": {"mode": "random", "mod": n,
                                                          "offset": 0}},
                                       "data": {"set": [[i, {"goto": {"target": e}}]
                                                        for i, e in enumerate(eps)]}}},
              st.integers(1, 4), st.lists(chain, min_size=1, max_size=4)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(matches, max_size=4), st.lists(actions, min_size=1, max_size=2),
       st.one_of(st.none(), st.from_regex(r"[a-zA-Z0-9 /:._-]{1,30}", fullmatch=True)))
def test_printed_rules_read_back_to_their_statements(ms: list, acts: list,
                                                     comment: str | None) -> None:
    statements = tuple(ms + acts)
    text = format_rule(statements, "ip", comment)
    got, got_comment = parse_rule(text, "ip", "prop.nft", 1)
    assert got_comment == comment
    assert list(got) == drop_dependencies([dict(s) for s in statements], "ip"), text
