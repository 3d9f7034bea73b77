"""The parser, judged on real kube-proxy captures and on every error a user can feed it."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svctrace.errors import RuleSyntaxError
from svctrace.rules.iptables_save import format_ruleset, parse_iptables_save, parse_rule_text

FIX = Path(__file__).parent.parent / "fixtures"
REAL_DUMPS = sorted(FIX.glob("*/node1.iptables-save*.txt"))


def _rule_lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if line.startswith("["):
            line = line[line.index("]") + 2:]
        if line.startswith("-A "):
            out.append(line)
    return out


@pytest.mark.parametrize("path", REAL_DUMPS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_dump_parses_completely(path: Path) -> None:
    text = path.read_text()
    rs = parse_iptables_save(text, str(path))
    rs.check()
    assert rs.backend == "nf_tables"            # node1 ran iptables with the nft backend
    assert set(rs.tables) == {"mangle", "filter", "nat"}
    assert [r.text for r in rs.rules()] == _rule_lines(text)


@pytest.mark.parametrize("path", REAL_DUMPS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_round_trip(path: Path) -> None:
    rs = parse_iptables_save(path.read_text(), str(path))
    again = parse_iptables_save(format_ruleset(rs), "again")
    assert format_ruleset(again) == format_ruleset(rs)
    assert [r.text for r in again.rules()] == [r.text for r in rs.rules()]
    assert {n: c.policy for n, c in again.tables["filter"].chains.items()} == \
        {n: c.policy for n, c in rs.tables["filter"].chains.items()}


def test_counters_are_kept(fixtures: Path) -> None:
    rs = parse_iptables_save(
        (fixtures / "rig-v1.36/node1.iptables-save-counters.txt").read_text(), "c")
    counted = [r for r in rs.rules() if r.counters and r.counters[0] > 0]
    assert counted, "the capture has non-zero counters from one connection to 10.96.0.1"
    assert any("10.96.0.1/32" in r.text for r in counted)


@pytest.mark.parametrize("line,expected", [
    pytest.param('-A X -m comment --comment "it\\\'s \\"quoted\\"" -j ACCEPT',
                 [("comment", "comment", ("it's \"quoted\"",), False)], id="escaped-quotes"),
    pytest.param("-A X ! -s 10.0.0.0/8 -d 10.96.0.1/32 -p tcp -m tcp ! --dport 80 -j DROP",
                 [("", "s", ("10.0.0.0/8",), True), ("", "d", ("10.96.0.1/32",), False),
                  ("", "p", ("tcp",), False), ("tcp", "dport", ("80",), True)], id="negation"),
    pytest.param("-A X -m tcp -p tcp -d 10.1.2.3 --dport 80 -j KUBE-SVC-X",
                 [("", "p", ("tcp",), False), ("", "d", ("10.1.2.3",), False),
                  ("tcp", "dport", ("80",), False)], id="restore-input-order"),
    pytest.param("-A X -p udp --dport 53 -j ACCEPT",
                 [("", "p", ("udp",), False), ("udp", "dport", ("53",), False)],
                 id="implicit-protocol-match"),
    pytest.param("-A X -m nfacct --nfacct-name  localhost_nps_accepted_pkts -j ACCEPT",
                 [("nfacct", "nfacct-name", ("localhost_nps_accepted_pkts",), False)],
                 id="nfacct-two-spaces"),
    pytest.param("-A X -m recent --rcheck --seconds 10800 --reap --name K --mask "
                 "255.255.255.255 --rsource -j K",
                 [("recent", "rcheck", (), False), ("recent", "seconds", ("10800",), False),
                  ("recent", "reap", (), False), ("recent", "name", ("K",), False),
                  ("recent", "mask", ("255.255.255.255",), False),
                  ("recent", "rsource", (), False)], id="recent-flags"),
    pytest.param("-A X -i cali+ -o eth0 -m mark ! --mark 0x4000/0x4000 -j RETURN",
                 [("", "i", ("cali+",), False), ("", "o", ("eth0",), False),
                  ("mark", "mark", ("0x4000/0x4000",), True)], id="interfaces-mark"),
    pytest.param("-A X -d fd00:10:96::1/128 -p tcp -m tcp --dport 80 -j DNAT "
                 "--to-destination [fd00:10:244::5]:8080",
                 [("", "d", ("fd00:10:96::1/128",), False), ("", "p", ("tcp",), False),
                  ("tcp", "dport", ("80",), False)], id="ipv6"),
])
def test_rule_tokens(line: str, expected: list[tuple[str, str, tuple[str, ...], bool]]) -> None:
    parsed = parse_rule_text(line)
    got = [(m.module, o.name, o.values, o.negated) for m in parsed.matches for o in m.options]
    assert got == expected


def test_goto_and_target_options() -> None:
    parsed = parse_rule_text("-A X -g KUBE-Y")
    assert parsed.target is not None and parsed.target.goto and parsed.target.name == "KUBE-Y"
    parsed = parse_rule_text("-A X -j DNAT --to-destination 10.0.0.1:80")
    assert parsed.target is not None and not parsed.target.goto
    assert parsed.target.get("to-destination").values == ("10.0.0.1:80",)  # type: ignore[union-attr]
    assert parse_rule_text("-A X -m comment --comment x").target is None


GOOD_HEAD = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"


@pytest.mark.parametrize("text,line,needle", [
    pytest.param("", 1, "no tables", id="empty"),
    pytest.param("hello world\n", 1, "cannot parse line", id="garbage"),
    pytest.param(GOOD_HEAD + "-A INPUT -j ACCEPT\n", 1, "no COMMIT", id="truncated"),
    pytest.param("*bogus\nCOMMIT\n", 1, 'unknown table "bogus"', id="unknown-table"),
    pytest.param(GOOD_HEAD + "-A NOPE -j ACCEPT\nCOMMIT\n", 5, 'undeclared chain "NOPE"',
                 id="undeclared-chain"),
    pytest.param("-A INPUT -j ACCEPT\n", 1, "grep output", id="rule-outside-table"),
    pytest.param(GOOD_HEAD + "*nat\nCOMMIT\n", 5, "missing COMMIT", id="nested-table"),
    pytest.param(GOOD_HEAD + ":FOO ACCEPT [0:0]\nCOMMIT\n", 5, "cannot have policy",
                 id="user-chain-policy"),
    pytest.param("*filter\n\x00\x01\x02\n", 2, "binary data", id="binary"),
    pytest.param("COMMIT\n", 1, "COMMIT without a table", id="stray-commit"),
])
def test_structural_errors_are_located(text: str, line: int, needle: str) -> None:
    with pytest.raises(RuleSyntaxError) as err:
        parse_iptables_save(text, "rules.txt")
    assert err.value.line == line
    assert err.value.message.startswith(f"rules.txt:{line}: ")
    assert needle in err.value.message


@pytest.mark.parametrize("rule,needle", [
    pytest.param("-A INPUT -s", 'option "-s" needs a value', id="missing-value"),
    pytest.param("-A INPUT -j", 'option "-j" needs a value', id="missing-target"),
    pytest.param("-A INPUT --dport 80 -j ACCEPT", 'before any "-m"', id="orphan-option"),
    pytest.param("-A INPUT -j ACCEPT -j DROP", "second target", id="two-targets"),
    pytest.param("-A INPUT ! ! -s 1.2.3.4 -j ACCEPT", 'double "!"', id="double-negation"),
    pytest.param("-A INPUT -x 1 -j ACCEPT", 'unknown option "-x"', id="unknown-option"),
    pytest.param("-A INPUT -j ACCEPT !", "at the end", id="trailing-bang"),
])
def test_rule_errors_are_located(rule: str, needle: str) -> None:
    rs = parse_iptables_save(GOOD_HEAD + rule + "\nCOMMIT\n", "r.txt")
    with pytest.raises(RuleSyntaxError) as err:
        rs.check()
    assert err.value.message.startswith("r.txt:5: ")
    assert needle in err.value.message


def test_restore_input_commands() -> None:
    text = ("*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SEP-OLD - [0:0]\n-X KUBE-SEP-OLD\n"
            "-A KUBE-SERVICES -j RETURN\n-I KUBE-SERVICES 1 -j ACCEPT\n:KUBE-NEW - [0:0]\n"
            "-A KUBE-NEW -j ACCEPT\n-F KUBE-NEW\nCOMMIT\n")
    rs = parse_iptables_save(text, "restore")
    nat = rs.tables["nat"]
    assert "KUBE-SEP-OLD" not in nat.chains
    assert [r.text for r in nat.chains["KUBE-SERVICES"].rules] == \
        ["-A KUBE-SERVICES -j ACCEPT", "-A KUBE-SERVICES -j RETURN"]
    assert len(nat.chains["KUBE-NEW"]) == 0


def test_warning_lines_and_ipv6_family() -> None:
    text = ("# Generated by ip6tables-save v1.8.9 (nf_tables) on now\n"
            "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n"
            "*nat\n:PREROUTING ACCEPT [0:0]\n:X - [0:0]\n"
            "-A X -d fd00:10:96::1/128 -j RETURN\nCOMMIT\n")
    rs = parse_iptables_save(text, "v6")
    assert rs.family == 6 and rs.backend == "nf_tables"
    assert rs.warnings and "legacy tables present" in rs.warnings[0]


_LINES = st.sampled_from([
    "*nat", "*filter", "*mangle", "*raw", "*bogus", "COMMIT", ":PREROUTING ACCEPT [0:0]",
    ":INPUT DROP [1:2]", ":KUBE-X - [0:0]", ":KUBE-Y - [0:0]", "-A KUBE-X -j KUBE-Y",
    "-A KUBE-Y -j RETURN", "-A PREROUTING -j KUBE-X", "-A INPUT -p tcp --dport 80 -j ACCEPT",
    "-A KUBE-X -m statistic --mode random --probability 0.5 -j KUBE-Y", "-A KUBE-X -s",
    "-A INPUT ! ! -j DROP", "# comment", "", "[1:2] -A KUBE-X -j ACCEPT", "garbage", "-X KUBE-Y",
    '-A KUBE-X -m comment --comment "a \\"b\\"" -j DNAT --to-destination 10.0.0.1:80',
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINES, max_size=14))
def test_any_text_parses_or_gives_a_located_error(lines: list[str]) -> None:
    text = "\n".join(lines)
    try:
        parse_iptables_save(text, "p.txt").check()
    except RuleSyntaxError as err:
        assert 1 <= err.line <= max(1, len(lines))
        assert err.message.startswith(f"p.txt:{err.line}: ")
