"""Form detection: the content says which form a rules file is, and the model follows."""

from pathlib import Path

import pytest

from svctrace.errors import RulesError
from svctrace.model.nftables import ModeSplit, NftRuleset
from svctrace.model.ruleset import Ruleset
from svctrace.rules.detect import load_rules, parse_rules, rules_form, rules_format, rules_mode

FIX = Path(__file__).parent.parent / "fixtures"
IPT = (FIX / "rig-v1.36" / "node1.iptables-save.txt").read_text()
NFT_TEXT = (FIX / "rig-v1.36" / "node2.nft.txt").read_text()
NFT_JSON = (FIX / "rig-v1.36" / "node2.nft.json").read_text()
NFT_F = ("#!/usr/sbin/nft -f\n\nadd table ip kube-proxy { comment \"rules for kube-proxy\" ; }\n"
         "add chain ip kube-proxy services\n")

FORMS = {
    "iptables-save": (IPT, "iptables-save", "iptables", Ruleset),
    "nft-text": (NFT_TEXT, "nft-text", "nftables", NftRuleset),
    "nft-json": (NFT_JSON, "nft-json", "nftables", NftRuleset),
    "nft-f": (NFT_F, "nft-f", "nftables", NftRuleset),
    "iptables-then-nft": (IPT + NFT_TEXT, "iptables-save+nft-text", "split", ModeSplit),
    "nft-then-iptables": (NFT_TEXT + IPT, "iptables-save+nft-text", "split", ModeSplit),
    "iptables-then-nft-f": (IPT + NFT_F, "iptables-save+nft-f", "split", ModeSplit),
    "iptables-then-nft-json": (IPT + NFT_JSON, "iptables-save+nft-json", "split", ModeSplit),
}


@pytest.mark.parametrize("text,form,mode,kind", FORMS.values(), ids=FORMS.keys())
def test_form_and_mode_from_content(text: str, form: str, mode: str, kind: type) -> None:
    assert rules_form(text) == form
    rules = parse_rules(text, "node.rules")
    assert isinstance(rules, kind)
    assert rules_format(rules) == form
    assert rules_mode(rules) == mode


def test_split_file_keeps_each_parts_line_numbers() -> None:
    rules = parse_rules(IPT + NFT_TEXT, "both.txt")
    assert isinstance(rules, ModeSplit)
    offset = IPT.count("\n")
    first = next(iter(rules.nft.rules()))
    assert first.line is not None and first.line > offset
    assert (IPT + NFT_TEXT).splitlines()[first.line - 1].strip() == first.text
    alone = parse_rules(NFT_TEXT, "nft.txt")
    assert rules.nft == alone and rules.iptables.chain("nat", "KUBE-SERVICES") is not None


def test_nft_tables_beside_plain_iptables_rules_are_nftables_mode() -> None:
    plain = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n"
    rules = parse_rules(plain + NFT_TEXT, "docker-and-kp.txt")
    assert isinstance(rules, ModeSplit)
    assert rules_mode(rules) == "nftables"


def test_load_rules_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "node2.json"
    path.write_text(NFT_JSON)
    rules = load_rules(str(path))
    assert isinstance(rules, NftRuleset) and rules.source == str(path)


@pytest.mark.parametrize("text", ["hello world\n", "<html>\n", "ACCEPT all -- anywhere\n"],
                         ids=["prose", "html", "listing-line"])
def test_unknown_form_is_a_rules_error(text: str) -> None:
    with pytest.raises(RulesError) as err:
        rules_form(text)
    assert "not a rules file" in err.value.message
    assert err.value.exit_status == 5
