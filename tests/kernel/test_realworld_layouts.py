"""Older kube-proxy layouts (issue 10 point 4), loaded on both backends: the kernel forwards each
probe, and svctrace's trace must agree (outcomes, shares, masquerade, no assumptions).

The dumps come from kplayouts.py, written from what each kube-proxy version programmed.
"""

from __future__ import annotations

import pytest
from judge import assert_kernel_as_expected, assert_tracer_matches_kernel, svctrace_outcomes
from kplayouts import PORTALS_EXAMPLE, PRE_122_EXAMPLE, V1_1_EXAMPLE
from rig import BACKENDS, Probe, kernel_probe, probes_for

pytestmark = pytest.mark.kernel

CLIENT, NODE, POD = "10.10.0.60", "10.10.0.10", "10.244.1.250"

PRE_122, V1_1, PORTALS = PRE_122_EXAMPLE, V1_1_EXAMPLE, PORTALS_EXAMPLE
WEB = {"10.244.1.11:8080", "10.244.2.12:8080"}
LOCAL_BOTH = {"10.244.1.21:8080", "10.244.2.22:8080"}

# id, rules, probe, kernel outcomes (None: ClientIP affinity), masquerade
ROWS = [
    ("pre122-clusterip-from-client", PRE_122, Probe(CLIENT, "10.96.10.10", 80), WEB, True),
    ("pre122-clusterip-from-pod", PRE_122, Probe(POD, "10.96.10.10", 80), WEB, False),
    ("pre122-nodeport-from-client", PRE_122, Probe(CLIENT, NODE, 30080), WEB, True),
    ("pre122-externalip-physdev-from-client", PRE_122, Probe(CLIENT, "192.0.2.50", 80), WEB,
     True),
    ("pre122-hairpin-endpoint", PRE_122, Probe("10.244.2.12", "10.96.10.10", 80), WEB,
     {"10.244.2.12:8080"}),
    ("pre122-xlb-local-endpoint", PRE_122, Probe(CLIENT, NODE, 30081), {"10.244.1.21:8080"},
     False),
    ("pre122-xlb-pod-short-circuit", PRE_122, Probe(POD, NODE, 30081), LOCAL_BOTH, False),
    ("pre122-xlb-no-local-endpoint-drop", PRE_122, Probe(CLIENT, NODE, 30082), {"DROP"}, False),
    ("pre122-no-endpoints-reject", PRE_122, Probe(CLIENT, "10.96.10.40", 80), {"REJECT"}, False),
    ("v1.1-clusterip-no-masquerade", V1_1, Probe(CLIENT, "10.0.0.50", 80), WEB, False),
    ("v1.1-nodeport-marked-0x4d415351", V1_1, Probe(CLIENT, NODE, 30080), WEB, True),
    ("v1.1-hairpin-mark", V1_1, Probe("10.244.1.11", "10.0.0.50", 80), WEB,
     {"10.244.1.11:8080"}),
    ("v1.1-recent-affinity", V1_1, Probe(CLIENT, "10.0.0.60", 80), None, False),
    ("portals-container-redirect-udp", PORTALS, Probe(CLIENT, "10.0.0.10", 53, "udp"),
     {f"{NODE}:60906"}, False),
    # UDP: a TCP probe to a closed port is reset before the rig can read its NAT back
    ("portals-nodeport-redirect-udp", PORTALS, Probe(CLIENT, NODE, 30053, "udp"),
     {f"{NODE}:60906"}, False),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("rules", "probe", "outcomes", "masquerade"),
                         [pytest.param(*r[1:], id=r[0]) for r in ROWS])
def test_old_layout_traces_like_the_kernel(backend, rules, probe, outcomes, masquerade):
    tracer = svctrace_outcomes(rules, probe, source="old-layout")
    if outcomes is None:            # ClientIP affinity: the kernel sticks to one endpoint
        k = kernel_probe(rules, backend, probe, 12)
        assert len(k.outcomes) == 1 and k.outcomes <= tracer.outcomes, (k.counts, tracer)
        assert len(tracer.outcomes) == 2 and not tracer.assumptions
        return
    k = kernel_probe(rules, backend, probe, max(12, probes_for(len(outcomes))))
    assert_kernel_as_expected(k, outcomes, masquerade)
    assert_tracer_matches_kernel(k, tracer)
