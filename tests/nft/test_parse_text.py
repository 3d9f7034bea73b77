"""The nft language reader (`nft list` text and `nft -f` input), judged on the real kube-proxy
1.36 captures: the text and the JSON nft printed for the same node give equal models."""

from pathlib import Path

import pytest

from svctrace.model.nftables import NftRuleset
from svctrace.rules.nft_json import parse_nft_json
from svctrace.rules.nft_text import parse_nft_text, resolve_priority

FIX = Path(__file__).parent.parent / "fixtures"
CAPTURES = sorted(FIX.glob("*/node2.nft.json"))


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.parent.name)
def test_text_and_json_captures_give_equal_models(capture: Path) -> None:
    from_json = parse_nft_json(capture.read_text(), str(capture))
    text_path = capture.with_suffix(".txt")
    from_text = parse_nft_text(text_path.read_text(), str(text_path))
    from_text.check()
    assert from_text.format == "nft-text"
    assert from_text == from_json
    # the comparison is not vacuous: every rule and element was read
    assert sum(len(c.rules) for c in from_text.chains()) == \
        sum(len(c.rules) for c in from_json.chains()) > 40


def test_rules_keep_their_line_and_text() -> None:
    path = FIX / "rig-v1.36" / "node2.nft.txt"
    lines = path.read_text().splitlines()
    rs = parse_nft_text(path.read_text(), str(path))
    for rule in rs.rules():
        assert rule.line is not None
        assert lines[rule.line - 1].strip() == rule.text
        assert rule.location == f"{path}:{rule.line}"


PRIORITIES = {
    "number": ("-110", "ip", "prerouting", -110),
    "dstnat-minus-10": ("dstnat - 10", "ip", "prerouting", -110),
    "filter": ("filter", "inet", "input", 0),
    "filter-plus-10": ("filter + 10", "ip6", "forward", 10),
    "srcnat": ("srcnat", "ip", "postrouting", 100),
    "raw": ("raw", "ip", "prerouting", -300),
    "mangle": ("mangle", "ip", "output", -150),
    "security": ("security", "ip", "input", 50),
    "bridge-filter": ("filter", "bridge", "forward", -200),
    "unknown-name": ("frobnicate", "ip", "input", None),
    "bad-offset": ("filter * 2", "ip", "input", None),
}


@pytest.mark.parametrize("text,family,hook,want", PRIORITIES.values(), ids=PRIORITIES.keys())
def test_priorities(text: str, family: str, hook: str, want: int | None) -> None:
    assert resolve_priority(text, family, hook) == want


# every dump with exact-key sets (docker-like.nft has interval sets only)
LOOKUP_DUMPS = sorted(FIX.glob("*/node2.nft.*")) + sorted(
    p for p in (FIX / "nft").glob("*.nft") if p.name != "docker-like.nft")


@pytest.mark.parametrize("path", LOOKUP_DUMPS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_lookup_finds_every_exact_key_and_nothing_else(path: Path) -> None:
    from svctrace.rules.detect import parse_rules

    text = path.read_text()
    full = parse_rules(text, str(path))
    assert isinstance(full, NftRuleset)
    found = 0
    for table in full.tables:
        for name, nft_set in table.sets.items():
            if nft_set.interval:
                continue
            fresh = parse_rules(text, str(path))
            assert isinstance(fresh, NftRuleset)
            fresh_table = fresh.table(table.family, table.name)
            assert fresh_table is not None
            lazy = fresh_table.sets[name]
            for element in nft_set.elements:
                assert lazy.lookup(element.key) == element
                found += 1
            assert lazy.lookup(["192.0.2.254", "tcp", 1]) is None
            assert lazy.lookup("192.0.2.254") is None
    assert found > 0


def test_lookup_reads_only_the_element_it_finds() -> None:
    path = FIX / "rig-v1.36" / "node2.nft.txt"
    table = parse_nft_text(path.read_text(), str(path)).table("ip", "kube-proxy")
    assert table is not None
    service_ips = table.sets["service-ips"]
    hit = service_ips.lookup(["10.96.219.159", "tcp", 80])
    assert hit is not None and hit.value == {
        "goto": {"target": "service-WAPHUU2J-svctrace-demo/web/tcp/http"}}
    assert service_ips.lookup(["10.96.219.159", "udp", 80]) is None
    assert service_ips._elements is None            # the other elements were never read


def test_a_dormant_tables_chains_are_not_run() -> None:
    text = ("table inet off {\n\tflags dormant\n\tchain in {\n\t\ttype filter hook input "
            "priority filter; policy drop;\n\t}\n}\ntable inet on {\n\tchain in {\n\t\t"
            "type filter hook input priority filter; policy drop;\n\t}\n}\n")
    rules = parse_nft_text(text, "dormant.nft")
    assert rules.table("inet", "off") is not None
    assert [c.table_name for c in rules.base_chains("input")] == ["on"]
