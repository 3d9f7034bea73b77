"""The small real kube-proxy dump (tests/fixtures/rig-v1.36/node1.iptables-save.txt).

Each row: a probe, what the kernel must do with it (checked first: that is the rig working),
then svctrace must produce the same outcome set and masquerade. Both iptables backends.
"""

from __future__ import annotations

import pytest
from judge import (
    assert_kernel_as_expected,
    assert_tracer_matches_kernel,
    describe,
    svctrace_cli_outcomes,
    svctrace_outcomes,
)
from rig import BACKENDS, Probe, kernel_probe, probes_for

pytestmark = pytest.mark.kernel

WEB = {f"10.244.{n}:8080" for n in ("1.11", "1.12", "2.13", "2.14")}     # web and web-np
EXT_DB = {"10.244.1.31:5432", "10.244.2.32:5432"}
CLIENT, POD, NODE = "10.10.0.60", "10.244.1.250", "10.10.0.10"

# id, probe, kernel outcome set, masquerade (bool for all, or the set of masqueraded outcomes)
ROWS = [
    ("web-clusterip-from-client", Probe(CLIENT, "10.96.219.159", 80), WEB, True),
    ("web-clusterip-from-pod", Probe(POD, "10.96.219.159", 80), WEB, False),
    ("web-clusterip-from-node", Probe(NODE, "10.96.219.159", 80), WEB, True),
    ("web-clusterip-hairpin-from-endpoint", Probe("10.244.2.13", "10.96.219.159", 80), WEB,
     {"10.244.2.13:8080"}),
    ("web-clusterip-udp-not-a-service-port", Probe(CLIENT, "10.96.219.159", 80, "udp"),
     {"NO-NAT"}, False),
    ("web-np-nodeport-on-node-ip-from-client", Probe(CLIENT, NODE, 30080), WEB, True),
    ("web-np-nodeport-on-node-ip-from-pod", Probe(POD, NODE, 30080), WEB, True),
    ("web-np-nodeport-on-node-ip-from-node", Probe(NODE, NODE, 30080), WEB, True),
    ("web-np-nodeport-on-localhost-from-node", Probe("127.0.0.1", "127.0.0.1", 30080), WEB, True),
    ("web-np-clusterip-from-pod", Probe(POD, "10.96.164.174", 80), WEB, False),
    ("node-ip-closed-port-delivered-locally", Probe(CLIENT, NODE, 31999), {"NO-NAT"}, False),
    ("db-affinity-from-client", Probe(CLIENT, "10.96.176.123", 5432), {"10.244.1.21:5432"}, True),
    ("db-affinity-from-pod", Probe(POD, "10.96.176.123", 5432), {"10.244.1.21:5432"}, False),
    ("ext-db-clusterip-from-pod", Probe(POD, "10.96.200.86", 5432), EXT_DB, False),
    ("noendpoints-reject-from-client", Probe(CLIENT, "10.96.155.77", 80), {"REJECT"}, False),
    ("noendpoints-reject-from-node", Probe(NODE, "10.96.155.77", 80), {"REJECT"}, False),
    ("kubernetes-default-from-node", Probe(NODE, "10.96.0.1", 443), {"10.10.0.1:6443"}, True),
    ("kubernetes-default-from-pod", Probe(POD, "10.96.0.1", 443), {"10.10.0.1:6443"}, False),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("probe", "outcomes", "masquerade"),
                         [pytest.param(*r[1:], id=r[0]) for r in ROWS])
def test_demo_dump(demo_rules, backend, probe, outcomes, masquerade):
    k = kernel_probe(demo_rules, backend, probe, max(12, probes_for(len(outcomes))))
    assert_kernel_as_expected(k, outcomes, masquerade)
    if probe.is_local and outcomes & {"DROP", "REJECT"}:
        assert dict(k.sendto_errors) == {"EPERM": len(k.results)}, describe(k)
    assert_tracer_matches_kernel(k, svctrace_outcomes(demo_rules, probe))


@pytest.mark.parametrize("backend", BACKENDS)
def test_demo_affinity_is_sticky_across_connections(demo_rules, backend):
    """db has one endpoint but ClientIP affinity: a second round keeps the recorded source."""
    probe = Probe(CLIENT, "10.96.176.123", 5432)
    first = kernel_probe(demo_rules, backend, probe, 4)
    again = kernel_probe(demo_rules, backend, probe, 4, fresh=False)
    assert first.outcomes == again.outcomes == {"10.244.1.21:5432"}
    existing = svctrace_outcomes(demo_rules, probe,
                                 affinity_hit=frozenset({"KUBE-SEP-ARWNNFV7R7A65DJG"}))
    assert existing.outcomes == {"10.244.1.21:5432"}
    assert existing.masquerade == {"10.244.1.21:5432": True}


CLI_ROWS = [
    ("web-clusterip-from-client", Probe(CLIENT, "10.96.219.159", 80)),
    ("noendpoints-reject-from-node", Probe(NODE, "10.96.155.77", 80)),
]


@pytest.mark.parametrize("probe", [pytest.param(r[1], id=r[0]) for r in CLI_ROWS])
def test_demo_dump_through_cli(demo_rules, probe):
    """`python -m svctrace trace ... -o json` agrees with the kernel too (legacy backend)."""
    k = kernel_probe(demo_rules, "legacy", probe, probes_for(4))
    assert_tracer_matches_kernel(k, svctrace_cli_outcomes(demo_rules, probe))


@pytest.mark.parametrize("backend", BACKENDS)
def test_kernel_outcomes_helper(demo_rules, backend):
    """The plain helper: (outcome set, masquerade per outcome)."""
    from rig import kernel_outcomes

    outcomes, masq = kernel_outcomes(demo_rules, backend, Probe(POD, "10.96.219.159", 80), 40)
    assert outcomes == WEB
    assert masq == dict.fromkeys(WEB, False)
