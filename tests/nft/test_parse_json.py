"""The `nft -j` reader, judged on the real kube-proxy 1.36 captures (JSON and text of the same
node) and on JSON that is not nft's."""

from pathlib import Path

import pytest

from svctrace.errors import RulesError
from svctrace.rules.nft_json import parse_nft_json

FIX = Path(__file__).parent.parent / "fixtures"
CAPTURES = sorted(FIX.glob("*/node2.nft.json"))


def _listed_chains(text: str) -> dict[tuple[str, str, str], list[str]]:
    """(family, table, chain) → rule lines, straight from `nft list ruleset` text."""
    out: dict[tuple[str, str, str], list[str]] = {}
    table = chain = None
    for line in text.splitlines():
        words = line.split()
        if line.startswith("table "):
            table = (words[1], words[2])
        elif words[:1] == ["chain"] and table:
            chain = out.setdefault((*table, words[1]), [])
        elif words[:1] == ["}"]:
            chain = None
        elif chain is not None and words and not line.strip().startswith(
                ("type ", "comment ")):
            chain.append(line.strip())
    return out


@pytest.fixture(params=CAPTURES, ids=lambda p: p.parent.name)
def capture(request: pytest.FixtureRequest) -> Path:
    return request.param  # type: ignore[no-any-return]


def test_rules_in_listing_order_with_nft_text(capture: Path) -> None:
    rs = parse_nft_json(capture.read_text(), str(capture))
    listed = _listed_chains(capture.with_suffix(".txt").read_text())
    got = {(c.table_family, c.table_name, c.name): [r.text for r in c.rules]
           for c in rs.chains()}
    assert got == listed
    for chain in rs.chains():
        assert [r.number for r in chain.rules] == list(range(1, len(chain.rules) + 1))


def test_tables_and_base_chains(capture: Path) -> None:
    rs = parse_nft_json(capture.read_text(), str(capture))
    assert [(t.family, t.name) for t in rs.tables] == [("ip", "kube-proxy"),
                                                        ("ip6", "kube-proxy")]
    assert rs.format == "nft-json"
    kp = rs.table("ip", "kube-proxy")
    assert kp is not None
    base = {c.name: (c.type, c.hook, c.priority, c.policy) for c in kp.chains.values()
            if c.is_base}
    assert base == {                                   # kube-proxy-semantics.md §2.1
        "filter-prerouting-pre-dnat": ("filter", "prerouting", -110, "accept"),
        "filter-output-pre-dnat": ("filter", "output", -110, "accept"),
        "filter-input": ("filter", "input", 0, "accept"),
        "filter-forward": ("filter", "forward", 0, "accept"),
        "filter-output": ("filter", "output", 0, "accept"),
        "nat-prerouting": ("nat", "prerouting", -100, "accept"),
        "nat-output": ("nat", "output", -100, "accept"),
        "nat-postrouting": ("nat", "postrouting", 100, "accept"),
    }
    assert [c.name for c in rs.base_chains("output", ("ip", "inet"))] == [
        "filter-output-pre-dnat", "nat-output", "filter-output"]


def test_sets_and_maps_of_the_1_36_capture() -> None:
    path = FIX / "rig-v1.36" / "node2.nft.json"
    kp = parse_nft_json(path.read_text(), str(path)).table("ip", "kube-proxy")
    assert kp is not None
    service_ips = kp.set("@service-ips")
    assert service_ips is not None and service_ips.is_vmap
    assert service_ips.type == ("ipv4_addr", "inet_proto", "inet_service")
    web = next(e for e in service_ips.elements if e.key == ["10.96.219.159", "tcp", 80])
    assert web.value == {"goto": {"target": "service-WAPHUU2J-svctrace-demo/web/tcp/http"}}
    no_ep = kp.set("no-endpoint-services")
    assert no_ep is not None
    assert [(e.key, e.comment) for e in no_ep.elements] == [
        (["10.96.155.77", "tcp", 80], "svctrace-demo/noendpoints:http")]
    affinity = next(s for s in kp.sets.values() if s.name.startswith("affinity-"))
    assert (affinity.timeout, affinity.size, affinity.flags) == (10800, 65535,
                                                                 frozenset({"timeout"}))
    cluster_ips = kp.set("cluster-ips")
    assert cluster_ips is not None and not cluster_ips.is_map
    assert "10.96.219.159" in [e.key for e in cluster_ips.elements]


BAD_JSON = {
    "not-json": ('{"nftables": [', ":1: not JSON"),
    "no-nftables-list": ('{"tables": []}', "not `nft -j` output"),
    "object-not-one-key": ('{"nftables": [{"table": {}, "chain": {}}]}',
                           "nftables[0]: not an nft object"),
    "unknown-object": ('{"nftables": [{"frobnicate": {}}]}',
                       'nftables[0] (frobnicate): unknown object "frobnicate"'),
    "unknown-family": ('{"nftables": [{"table": {"family": "ipx", "name": "t"}}]}',
                       'unknown family "ipx"'),
    "chain-before-table": ('{"nftables": [{"chain": {"family": "ip", "table": "t", '
                           '"name": "c"}}]}', "table ip t is not declared"),
    "rule-of-unknown-chain": ('{"nftables": [{"table": {"family": "ip", "name": "t"}}, '
                              '{"rule": {"family": "ip", "table": "t", "chain": "c", '
                              '"expr": []}}]}', "nftables[1] (rule): rule for undeclared chain c"),
    "expr-not-statements": ('{"nftables": [{"table": {"family": "ip", "name": "t"}}, '
                            '{"chain": {"family": "ip", "table": "t", "name": "c"}}, '
                            '{"rule": {"family": "ip", "table": "t", "chain": "c", '
                            '"expr": [1]}}]}', '"expr" is not a list of statements'),
    "priority-not-number": ('{"nftables": [{"table": {"family": "ip", "name": "t"}}, '
                            '{"chain": {"family": "ip", "table": "t", "name": "c", '
                            '"prio": "dstnat"}}]}', 'priority is not a number: "dstnat"'),
    "map-element-not-pair": ('{"nftables": [{"table": {"family": "ip", "name": "t"}}, '
                             '{"map": {"family": "ip", "table": "t", "name": "m", '
                             '"type": "ipv4_addr", "map": "verdict", "elem": ["1.2.3.4"]}}]}',
                             'map element is not a [key, value] pair: "1.2.3.4"'),
    "missing-name": ('{"nftables": [{"table": {"family": "ip"}}]}',
                     'missing or invalid "name": null'),
}


@pytest.mark.parametrize("text,message", BAD_JSON.values(), ids=BAD_JSON.keys())
def test_json_that_is_not_nfts_is_a_located_rules_error(text: str, message: str) -> None:
    with pytest.raises(RulesError) as err:
        parse_nft_json(text, "dump.json")
    assert err.value.message.startswith("dump.json:")
    assert message in err.value.message
    assert err.value.exit_status == 5
