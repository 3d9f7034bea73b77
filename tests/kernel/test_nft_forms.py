"""The real `nft` judges the nft readers: every test dump is loaded with `nft -f` into a
scratch netns and listed back as `nft list ruleset`, `nft -j list ruleset` and
`nft -a -s -n list ruleset`; the dump itself and the three listings must give equal models,
and the text svctrace renders for JSON rules must be what nft printed for them.

Dumps: the real kube-proxy 1.36 captures (`*/node2.nft.txt`) and every hand-written dump in
tests/fixtures/nft/ (1.36 layout in list form, 1.34-1.35 layout in kube-proxy's transaction
form, firewalld-like, Docker/CNI-like with inet, ip6 and netdev tables).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from nftforms import listed_forms, nft_check, require_nft

from svctrace.model.nftables import NftRuleset
from svctrace.rules.detect import parse_rules, rules_form

FIX = Path(__file__).resolve().parent.parent / "fixtures"
DUMPS = sorted(FIX.glob("*/node2.nft.txt")) + sorted((FIX / "nft").glob("*.nft"))


@pytest.fixture(scope="module", autouse=True)
def _nft_installed() -> None:
    require_nft()


def _model(text: str, name: str) -> NftRuleset:
    rules = parse_rules(text, name)
    assert isinstance(rules, NftRuleset), f"{name} did not read as nft rules"
    rules.check()
    return rules


def _rule_texts(rules: NftRuleset) -> dict[tuple[str, str, str], list[str]]:
    return {(c.table_family, c.table_name, c.name): [r.text for r in c.rules]
            for c in rules.chains()}


@pytest.fixture(scope="module", params=DUMPS, ids=lambda p: f"{p.parent.name}/{p.name}")
def forms(request: pytest.FixtureRequest) -> dict[str, NftRuleset]:
    path: Path = request.param
    dump = path.read_text()
    listed = listed_forms(dump)
    out = {"dump": _model(dump, str(path))}
    out.update({form: _model(text, f"{form} of {path.name}") for form, text in listed.items()})
    assert sum(1 for form in out if form.startswith("table ")) == len(out["dump"].tables)
    return out


def test_each_table_listed_alone_reads_as_in_the_ruleset(forms: dict[str, NftRuleset]) -> None:
    for table in forms["dump"].tables:
        for form in ("table", "table-json"):
            alone = forms[f"{form} {table.family} {table.name}"]
            assert alone.tables == (table,), f"nft {form} {table.family} {table.name}"


def test_the_listings_are_in_the_forms_detected(forms: dict[str, NftRuleset]) -> None:
    assert forms["text"].format == "nft-text"
    assert forms["json"].format == "nft-json"
    assert forms["handles-stateless-numeric"].format == "nft-text"
    assert {r.format for form, r in forms.items() if form.startswith("table")} <= {
        "nft-text", "nft-json"}
    assert forms["dump"].format in ("nft-text", "nft-f")


@pytest.mark.parametrize("form", ["text", "json", "handles-stateless-numeric"])
def test_every_form_gives_the_model_of_the_dump(forms: dict[str, NftRuleset],
                                                form: str) -> None:
    assert forms[form] == forms["dump"]
    rules = list(forms[form].rules())
    assert rules, "no rules read: the comparison would be vacuous"
    assert all(r.statements for r in rules)


def test_json_rules_render_as_nft_printed_them(forms: dict[str, NftRuleset]) -> None:
    assert _rule_texts(forms["json"]) == _rule_texts(forms["text"])


def test_handles_are_read_only_from_the_handles_listing(forms: dict[str, NftRuleset]) -> None:
    with_handles = forms["handles-stateless-numeric"]
    assert all(r.handle is not None for r in with_handles.rules())
    assert all(c.handle is not None for c in with_handles.chains())
    assert all(r.handle is None for r in forms["text"].rules())
    json_handles = {(r.family, r.table, r.chain, r.number): r.handle
                    for r in forms["json"].rules()}
    assert json_handles == {(r.family, r.table, r.chain, r.number): r.handle
                            for r in with_handles.rules()}


def test_dump_forms_are_detected_from_content() -> None:
    forms = {p.name: rules_form(p.read_text()) for p in DUMPS}
    assert set(forms.values()) == {"nft-text", "nft-f"}, forms


def _malformed() -> dict[str, str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "nft"))
    from malformed_nft import MALFORMED
    return {name: text for name, (text, _, _, nft_rejects) in MALFORMED.items() if nft_rejects}


@pytest.mark.parametrize("name", sorted(_malformed()))
def test_nft_also_rejects_what_svctrace_calls_malformed(name: str) -> None:
    assert nft_check(_malformed()[name]) != "", f"nft -c accepts the {name} case"


@pytest.mark.parametrize("form", ["text", "f"])
def test_generated_benchmark_dump_loads_and_reads_back(form: str) -> None:
    """bench/gen_nft_dump.py writes what nft accepts, and at 1,000 Services the readers still
    agree with nft (the benchmark's 10,000-Service dumps are the same shapes, ten times)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    from gen_nft_dump import generate

    dump = generate(1000, 5, 10, form)
    listed = listed_forms(dump)
    model = _model(dump, f"generated-{form}")
    assert _model(listed["json"], "json") == model == _model(listed["text"], "text")
    table = model.table("ip", "kube-proxy")
    assert table is not None
    service_ips = table.set("service-ips")
    assert service_ips is not None and len(service_ips.elements) == 990   # every 100th: none
    assert len([c for c in table.chains if c.startswith("external-")]) == 100
