"""Every malformed input is one located RulesError (exit 5) quoting the offending token, never
a traceback; what svctrace does not understand in a well-formed rule is kept as data."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from malformed_nft import MALFORMED  # noqa: E402

from svctrace.errors import RulesError  # noqa: E402
from svctrace.rules.nft_text import parse_nft_text  # noqa: E402


@pytest.mark.parametrize("text,line,parts,nft_rejects", MALFORMED.values(),
                         ids=MALFORMED.keys())
def test_malformed_input_is_a_located_rules_error(text: str, line: int, parts: tuple[str, ...],
                                                  nft_rejects: bool) -> None:
    with pytest.raises(RulesError) as err:
        parse_nft_text(text, "dump.nft").check()
    assert err.value.message.startswith(f"dump.nft:{line}: "), err.value.message
    for part in parts:
        assert part in err.value.message
    assert err.value.exit_status == 5


def test_lazily_read_rules_report_their_own_line() -> None:
    text = ("table ip t {\n\tchain c {\n\t\taccept\n\t\tip saddr 10.0.0.0/8 accept\n"
            "\t\tip daddr 1.2.3.999 drop\n\t}\n}\n")
    rules = parse_nft_text(text, "late.nft")        # structure is fine: no error yet
    chain = rules.tables[0].chains["c"]
    assert [r.statements[-1] for r in chain.rules[:2]] == [{"accept": None}, {"accept": None}]
    with pytest.raises(RulesError, match=r'^late\.nft:5: bad IPv4 address "1\.2\.3\.999"'):
        chain.rules[2].statements  # noqa: B018


UNKNOWN = {
    "queue-statement": ("ip saddr 10.0.0.1 queue num 3 bypass", 1, "queue num 3 bypass"),
    "osf-expression": ('osf name "Linux" accept', 0, 'osf name "Linux"'),
    "before-comment": ('synproxy mss 1460 comment "x"', 0, "synproxy mss 1460"),
    "ct-object-assignment": ('ct timeout set "aggressive-tcp"', 0,
                             'ct timeout set "aggressive-tcp"'),
    "named-limit-then-verdict": ('limit name "l1" accept', 0, 'limit name "l1"'),
    "named-quota-then-jump": ('quota name "q1" jump over', 0, 'quota name "q1"'),
}


@pytest.mark.parametrize("rule,index,kept", UNKNOWN.values(), ids=UNKNOWN.keys())
def test_unknown_expressions_are_kept_as_data(rule: str, index: int, kept: str) -> None:
    rules = parse_nft_text(f"table ip t {{\n\tchain c {{\n\t\t{rule}\n\t}}\n}}\n", "x.nft")
    (only,) = rules.tables[0].chains["c"].rules
    assert only.statements[index] == {"unknown": kept}
    assert only.text == rule
    if rule.endswith(" accept"):
        assert only.statements[-1] == {"accept": None}
    if rule.endswith(" jump over"):
        assert only.statements[-1] == {"jump": {"target": "over"}}


def test_an_error_in_a_long_element_list_names_its_own_line() -> None:
    good = ",\n\t\t\t     ".join(f"10.0.{i // 250}.{i % 250}" for i in range(400))
    text = (f"table ip t {{\n\tset s {{\n\t\ttype ipv4_addr\n\t\telements = {{ {good},\n"
            "\t\t\t     10.9.9.x }\n\t}\n}\n")
    with pytest.raises(RulesError) as err:
        parse_nft_text(text, "big.nft").check()
    assert err.value.message == 'big.nft:404: bad IPv4 address "10.9.9.x"'
