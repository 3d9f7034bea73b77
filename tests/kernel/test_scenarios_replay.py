"""Replay every node1 (iptables mode) case of kernel-cases.json against our own kernel.

For each case and each backend (iptables-legacy, iptables-nft):
  (i)  our kernel, loaded with node1's real kube-proxy dump, reproduces the recorded outcome set
       and masquerade — a check of the rig itself;
  (ii) svctrace's outcome set equals the kernel's and masquerade agrees per outcome.

sessionAffinity (ClientIP) cases: a fresh source sticks to one backend picked at random, so the
recorded pick is not reproducible. We assert stickiness (one backend for all probes), that the
pick is one of the Service's endpoints, that svctrace's fresh-client trace lists every endpoint
(kernel pick ⊆ svctrace set), and that svctrace's existing-client trace gives exactly the pick.
"""

from __future__ import annotations

import json
import re

import pytest
from judge import assert_tracer_matches_kernel, describe, svctrace_outcomes
from rig import BACKENDS, KERNEL_CASES, KernelResult, Probe, kernel_probe, probes_for

pytestmark = pytest.mark.kernel

ALL_CASES = json.loads(KERNEL_CASES.read_text())
CASES = [c for c in ALL_CASES if c["node"] == "node1" and c["mode"] == "iptables"]
AFFINITY_SERVICES = {"sessions"}
# every backend a sessions probe was recorded going to, over all sources: the Service's endpoints
AFFINITY_BACKENDS = {
    svc: set().union(*(c["observed"] for c in CASES if c["service"] == svc))
    for svc in AFFINITY_SERVICES
}


def case_id(c: dict) -> str:
    svc = c["service"] or "unallocated"
    return f"{svc}-{c['entry']}-{c['protocol']}{c['destPort']}-from-{c['source']}" + \
        ("-local" if c["from"] == "local" else "")


IDS = [case_id(c) for c in CASES]
assert len(set(IDS)) == len(IDS), "case ids must be unique"


def case_probe(c: dict) -> Probe:
    return Probe(c["source"], c["destination"], c["destPort"], c["protocol"],
                 local=c["from"] == "local")


def expected_outcomes(c: dict) -> set[str]:
    obs = c["observed"]
    return {obs["verdict"]} if "verdict" in obs else set(obs)


def expected_masquerade(c: dict) -> dict[str, bool]:
    masq = c["masquerade"]
    if masq == "mixed":
        masqed = set(c.get("masqueradedBackends", {}))
        return {k: k in masqed for k in expected_outcomes(c)}
    return {k: bool(masq) for k in expected_outcomes(c)}


_kernel_cache: dict[tuple[str, int], KernelResult] = {}


def kernel_for(scenario_rules: str, backend: str, idx: int) -> KernelResult:
    """Probe once per (backend, case); both tests of a case share the result."""
    key = (backend, idx)
    if key not in _kernel_cache:
        c = CASES[idx]
        outs = expected_outcomes(c)
        affinity = c["service"] in AFFINITY_SERVICES
        n = c["probes"] if affinity else max(c["probes"], probes_for(len(outs)))
        _kernel_cache[key] = kernel_probe(scenario_rules, backend, case_probe(c), n)
    return _kernel_cache[key]


def test_fixture_has_the_documented_node1_cases():
    assert len(ALL_CASES) == 102
    assert len(CASES) == 51


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("idx", range(len(CASES)), ids=IDS)
def test_kernel_reproduces_recording(scenario_rules, backend, idx):
    c = CASES[idx]
    k = kernel_for(scenario_rules, backend, idx)
    msg = f"recorded: {c['observed']} masquerade={c['masquerade']}\n" + describe(k)
    if c["service"] in AFFINITY_SERVICES:
        assert len(k.outcomes) == 1, "ClientIP affinity: the source did not stick\n" + msg
        assert k.outcomes <= AFFINITY_BACKENDS[c["service"]], msg
        assert set(k.masquerade.values()) == {c["masquerade"]}, msg
        return
    assert k.outcomes == expected_outcomes(c), msg
    assert k.masquerade == expected_masquerade(c), msg
    if "sendtoErrors" in c:
        assert dict(k.sendto_errors) == {"EPERM": len(k.results)}, msg
    elif c["from"] == "local":
        assert not k.sendto_errors, msg


def _sep_for(rules_text: str, backend_ep: str) -> str:
    """The SEP chain that records affinity (`recent --set`) and DNATs to `backend_ep`."""
    for line in rules_text.splitlines():
        m = re.match(r"-A (KUBE-SEP-\S+) .*--set --name (\S+) .*--to-destination (\S+)$", line)
        if m and m.group(3) == backend_ep:
            return m.group(2)
    raise AssertionError(f"no affinity SEP for {backend_ep}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("idx", range(len(CASES)), ids=IDS)
def test_svctrace_matches_kernel(scenario_rules, backend, idx):
    c = CASES[idx]
    k = kernel_for(scenario_rules, backend, idx)
    t = svctrace_outcomes(scenario_rules, case_probe(c))
    msg = describe(k, t)
    if c["service"] in AFFINITY_SERVICES:
        # a fresh client may get any endpoint; the kernel picked one and then stuck to it
        assert t.outcomes == AFFINITY_BACKENDS[c["service"]], msg
        assert k.outcomes <= t.outcomes, msg
        assert len(k.outcomes) == 1, "kernel not sticky\n" + msg
        for key, masq in k.masquerade.items():
            assert t.masquerade[key] == masq, msg
        assert not t.assumptions, msg
        # an existing client (its source already in the picked SEP's recent list) gets the pick
        (pick,) = k.outcomes
        hit = svctrace_outcomes(scenario_rules, case_probe(c),
                                affinity_hit=frozenset({_sep_for(scenario_rules, pick)}))
        assert hit.outcomes == {pick}, "existing client\n" + describe(k, hit)
        return
    assert_tracer_matches_kernel(k, t)      # also: kernel counts plausible under svctrace's shares
