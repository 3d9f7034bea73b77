"""Replay every node2 (nftables mode) case of kernel-cases.json through svctrace's nft engine.

node2 ran kube-proxy v1.36.2 in nftables mode; `kernel-cases.json` records what its kernel did
with 51 kinds of probes (backends picked, verdict, masquerade). Each case is predicted from both
captures of node2's rules, `nft list ruleset` text and `nft -j list ruleset` JSON: the outcome
set equals the kernel's, masquerade agrees per outcome, no backend the kernel never picked is
predicted, the shares sum to 1 and nothing was assumed.

sessionAffinity (ClientIP) cases: a fresh source sticks to one backend picked at random, so the
recorded pick is not reproducible. svctrace's fresh-client trace must list every backend of the
Service (the kernel's pick is among them) and its existing-client trace (--affinity-hit with the
picked endpoint) must give exactly the pick.

The recording is also replayed on our own kernel: node2's text capture loaded with `nft -f`
into the nft rig (which holds node2's address) reproduces every recorded outcome set and
masquerade — a check that the rig judges nftables rules the way a real node does.
"""

from __future__ import annotations

import functools
import json
import math

import pytest
from judge import describe
from nft_rig import CAPTURE, NODE2_IP, POOL, load_nft_capture, nft_probe, require_nft
from rig import KERNEL_CASES, Probe, probes_for
from test_scenarios_replay import case_id

from svctrace.model.packet import make_packet
from svctrace.model.trace import node_context
from svctrace.trace.nft_engine import trace_nft

ALL_CASES = json.loads(KERNEL_CASES.read_text())
CASES = [c for c in ALL_CASES if c["node"] == "node2" and c["mode"] == "nftables"]
FORMS = ("nft-text", "nft-json")
AFFINITY = {svc: set().union(*(c["observed"] for c in CASES if c["service"] == svc))
            for svc in ("sessions",)}


IDS = [case_id(c) for c in CASES]
assert len(set(IDS)) == len(IDS), "case ids must be unique"


def expected(c: dict) -> dict[str, bool]:
    """Kernel outcome → masquerade, from the recording."""
    obs = c["observed"]
    keys = {obs["verdict"]} if "verdict" in obs else set(obs)
    if c["masquerade"] == "mixed":
        return {k: k in c.get("masqueradedBackends", {}) for k in keys}
    return {k: bool(c["masquerade"]) for k in keys}


@functools.cache
def predicted(form: str, idx: int, hit: str | None = None) -> tuple[dict[str, set[bool]], float,
                                                                    list[str]]:
    c = CASES[idx]
    packet = make_packet(c["source"], c["destination"], c["protocol"], 40000, c["destPort"])
    node = node_context([NODE2_IP], affinity_hit=frozenset({hit} if hit else ()))
    trace = trace_nft(packet, load_nft_capture(form), node)
    outcomes: dict[str, set[bool]] = {}
    for o in trace.outcomes:
        key = o.verdict if o.verdict != "ACCEPT" else (o.destination or "NO-NAT")
        outcomes.setdefault(key, set()).add(o.masquerade)
    assumed = [a.describe() for o in trace.outcomes for a in o.assumptions]
    return outcomes, sum(o.probability for o in trace.outcomes), assumed


def test_fixture_has_the_documented_node2_cases():
    assert len(CASES) == 51
    assert {c["from"] for c in CASES} == {"external", "local"}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("idx", range(len(CASES)), ids=IDS)
def test_svctrace_predicts_the_kernel(form, idx):
    c = CASES[idx]
    outcomes, total, assumed = predicted(form, idx)
    msg = f"kernel: {c['observed']} masquerade={c['masquerade']}\nsvctrace: {outcomes}"
    assert math.isclose(total, 1.0, abs_tol=1e-9), msg
    assert not assumed, msg
    if c["service"] in AFFINITY:
        assert set(outcomes) == AFFINITY[c["service"]], msg
        assert set(c["observed"]) <= set(outcomes), msg
        for key in c["observed"]:
            assert outcomes[key] == {bool(c["masquerade"])}, msg
        return
    want = expected(c)
    assert set(outcomes) == set(want), msg
    for key, masq in want.items():
        assert outcomes[key] == {masq}, msg


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("idx", [i for i, c in enumerate(CASES) if c["service"] in AFFINITY],
                         ids=[IDS[i] for i, c in enumerate(CASES) if c["service"] in AFFINITY])
def test_existing_affinity_client_gets_its_pick(form, idx):
    (pick,) = CASES[idx]["observed"]
    outcomes, total, _ = predicted(form, idx, pick)
    assert set(outcomes) == {pick}
    assert math.isclose(total, 1.0, abs_tol=1e-9)


@pytest.fixture(scope="module")
def capture_text():
    require_nft()
    yield CAPTURE["nft-text"].read_text()
    POOL.close()


@pytest.mark.parametrize("idx", range(len(CASES)), ids=IDS)
def test_our_kernel_reproduces_the_recording(capture_text, idx):
    c = CASES[idx]
    want = expected(c)
    affinity = c["service"] in AFFINITY
    n = 12 if affinity else max(min(c["probes"], 40), probes_for(len(want)))
    probe = Probe(c["source"], c["destination"], c["destPort"], c["protocol"],
                  local=c["from"] == "local")
    k = nft_probe(capture_text, probe, n)
    msg = f"recorded: {c['observed']} masquerade={c['masquerade']}\n" + describe(k)
    if affinity:
        assert len(k.outcomes) == 1 and k.outcomes <= AFFINITY[c["service"]], msg
        assert set(k.masquerade.values()) == {c["masquerade"]}, msg
        return
    assert k.outcomes == set(want), msg
    for key, masq in k.masquerade.items():
        assert masq == want[key] or key in ("DROP", "REJECT"), msg
