"""The kernel decides again: every trace `svctrace explain` prints is replayed into netfilter.

For every Service of the fixtures (rig-v1.36 `svctrace-demo`, rig-v1.36-scenarios
`svctrace-pub`, and the `default/web` examples), `python -m svctrace explain svc/NAME -o json
--snapshot … --rules node1's dump --node node1` runs once. Each entry in its "traces"
(entry point, source, destination, outcomes) becomes packets: node1's same rules are loaded into
the rig's node netns (iptables-legacy and iptables-nft), and the packet is sent from the client
netns — or from the node netns itself when the trace's source is node1's address 10.10.0.10
(locally generated, nat OUTPUT). The kernel's conntrack entries and ICMP replies then say where
each copy went. Asserted per trace and backend:

* the kernel picks only destinations explain listed, and all of them (set equality: enough probes
  that each listed backend shows up all but surely), with counts plausible under explain's shares;
* DROP / REJECT verdicts agree (they are outcomes of their own in the sets above);
* masquerade agrees for every destination the kernel picked.

ClientIP session affinity makes one source stick to one backend, so there a few fresh clients
(conntrack and xt_recent flushed) each stick to one pick, and every pick must be one explain
listed (subset, not equality).

The table below lists every trace explain must produce, so a trace that disappears (or a new
Service in a fixture) fails loudly instead of silently not being checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from judge import binomially_plausible, outcome_key
from rig import BACKENDS, NODE_IP, KernelResult, Probe, kernel_probe, probes_for, sets_text

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Fixture:
    namespace: str
    snapshot: str                  # relative to the repository
    rules: str                     # node1's iptables-save


FIXTURES = {
    "demo": Fixture("svctrace-demo", "tests/fixtures/rig-v1.36/api/all.json",
                    "tests/fixtures/rig-v1.36/node1.iptables-save.txt"),
    "pub": Fixture("svctrace-pub", "tests/fixtures/rig-v1.36-scenarios/api/all.json",
                   "tests/fixtures/rig-v1.36-scenarios/node1.iptables-save.txt"),
    "example-web": Fixture("default", "examples/web/cluster.json",
                           "examples/web/node1.iptables-save.txt"),
    "example-broken": Fixture("default", "examples/broken/cluster.json",
                              "examples/broken/node1.iptables-save.txt"),
}


def cluster_ip(port: int) -> tuple[str, ...]:
    return (f"clusterIP:{port}/pod", f"clusterIP:{port}/node")


# (fixture, Service) -> every trace explain prints for it, as "entry:port/client"
TRACES: dict[tuple[str, str], tuple[str, ...]] = {
    ("demo", "db"): cluster_ip(5432),
    ("demo", "ext-db"): cluster_ip(5432),
    ("demo", "noendpoints"): cluster_ip(80),
    ("demo", "web"): cluster_ip(80),
    ("demo", "web-np"): (*cluster_ip(80), "nodePort:30080/external"),
    ("pub", "billing"): cluster_ip(80),
    ("pub", "dns-cache"): cluster_ip(5353),
    ("pub", "edge"): (*cluster_ip(80), "nodePort:30880/external"),
    ("pub", "inventory"): cluster_ip(80),
    ("pub", "ledger"): (*cluster_ip(443), "externalIP:443/external"),
    ("pub", "mail"): (),                       # ExternalName: no virtual IP, nothing to trace
    ("pub", "metrics"): cluster_ip(9090),
    ("pub", "node-cache"): cluster_ip(6379),
    ("pub", "orders"): cluster_ip(8080),
    ("pub", "queue"): (),                      # headless
    ("pub", "search"): (*cluster_ip(80), *cluster_ip(9000)),
    ("pub", "sessions"): cluster_ip(80),
    ("pub", "storefront"): (*cluster_ip(443), "nodePort:32443/external",
                            "loadBalancer:443/allowed", "loadBalancer:443/disallowed"),
    ("example-web", "web"): cluster_ip(80),
    ("example-broken", "web"): cluster_ip(80),
}

AFFINITY_ROUNDS = 6        # fresh clients per ClientIP-affinity trace
AFFINITY_COPIES = 3        # probes per fresh client (they must all stick)


def trace_key(t: dict) -> str:
    return f"{t['entry']}:{t['destination'].rsplit(':', 1)[1]}/{t['client']}"


# --- explain, once per Service, in parallel --------------------------------------------------

def _explain(fx: str, service: str) -> dict:
    f = FIXTURES[fx]
    argv = [sys.executable, "-m", "svctrace", "explain", f"svc/{service}", "-n", f.namespace,
            "--snapshot", f.snapshot, "--rules", f.rules, "--node", "node1", "-o", "json"]
    env = {**os.environ, "SVCTRACE_NO_LOCAL_RULES": "1"}
    p = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    what = f"{' '.join(argv[1:])} exited {p.returncode}\nstderr:\n{p.stderr}"
    # 0: healthy; 1: error findings (no endpoints, stale rules…) — both print the full report
    assert p.returncode in (0, 1) and "Traceback" not in p.stderr, what
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        raise AssertionError("no JSON on stdout\n" + what) from None
    doc["_argv"] = " ".join(argv[1:])
    return doc


@pytest.fixture(scope="module")
def explained() -> dict[tuple[str, str], dict | AssertionError]:
    def one(key):
        try:
            return _explain(*key)
        except AssertionError as err:
            return err

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(TRACES, pool.map(one, TRACES), strict=True))


def explain_doc(explained, fx: str, service: str) -> dict:
    doc = explained[(fx, service)]
    if isinstance(doc, AssertionError):
        raise doc
    return doc


@cache
def rules_text(fx: str) -> str:
    return (REPO / FIXTURES[fx].rules).read_text()


# --- the table is complete, and explain produced exactly these traces ------------------------

@pytest.mark.parametrize("fx", FIXTURES)
def test_table_lists_every_service_of_the_fixture(fx):
    f = FIXTURES[fx]
    items = json.loads((REPO / f.snapshot).read_text())["items"]
    services = {i["metadata"]["name"] for i in items
                if i["kind"] == "Service" and i["metadata"]["namespace"] == f.namespace}
    assert services == {svc for (x, svc) in TRACES if x == fx}


@pytest.mark.parametrize(("fx", "service"), list(TRACES), ids=[f"{x}/{s}" for x, s in TRACES])
def test_explain_traces_every_entry_point(explained, fx, service):
    doc = explain_doc(explained, fx, service)
    got = [trace_key(t) for t in doc.get("traces", [])]
    assert sorted(got) == sorted(TRACES[(fx, service)]), doc["_argv"]
    for t in doc.get("traces", []):
        assert t["outcomes"], f"{trace_key(t)}: no outcomes\n{doc['_argv']}"
        assert abs(sum(o["probability"] for o in t["outcomes"]) - 1) < 1e-6, trace_key(t)
        assert not any(o["assumptions"] for o in t["outcomes"]), \
            f"{trace_key(t)}: explain assumed something; the kernel comparison needs exact rules"


# --- the kernel decides again ----------------------------------------------------------------

@dataclass(frozen=True)
class Expected:
    """What explain says about one trace, reduced to what the kernel can show."""

    outcomes: frozenset[str]               # "ip:port" | NO-NAT | DROP | REJECT
    shares: dict[str, float]
    masquerade: dict[str, bool | str]


def expected_from(trace: dict) -> Expected:
    shares: dict[str, float] = {}
    masq: dict[str, set[bool]] = {}
    for o in trace["outcomes"]:
        key = outcome_key(o["destination"], o["verdict"])
        shares[key] = shares.get(key, 0.0) + o["probability"]
        masq.setdefault(key, set()).add(bool(o["masquerade"]))
    return Expected(frozenset(shares), shares,
                    {k: (next(iter(v)) if len(v) == 1 else "mixed") for k, v in masq.items()})


def probe_for(doc: dict, trace: dict) -> Probe:
    ports = {p["servicePortName"]: p for p in doc["service"]["ports"]}
    proto = ports[trace["servicePort"]]["protocol"].lower()
    dst, dport = trace["destination"].rsplit(":", 1)
    # the node's own address as source: a locally generated packet, sent from the node netns
    return Probe(trace["source"], dst.strip("[]"), int(dport), proto,
                 local=trace["source"] == NODE_IP)


def describe(trace: dict, exp: Expected, kernel: list[KernelResult]) -> str:
    lines = [f"trace: {trace['entry']} {trace['destination']} from {trace['client']} "
             f"{trace['source']}",
             f"explain: {sets_text(exp.outcomes)} shares="
             f"{ {k: round(v, 4) for k, v in exp.shares.items()} } masquerade={exp.masquerade}"]
    for k in kernel:
        lines.append(f"kernel : {k.probe} -> {sets_text(k.outcomes)} counts={dict(k.counts)} "
                     f"masquerade={k.masquerade}")
    return "\n".join(lines)


def _kernel_cases() -> list:
    params = []
    for (fx, service), keys in TRACES.items():
        for key in keys:
            for backend in BACKENDS:
                params.append(pytest.param(fx, service, key, backend,
                                           id=f"{fx}/{service}/{key.replace('/', '-from-')}"
                                              f"-{backend}"))
    return params


@pytest.mark.parametrize(("fx", "service", "key", "backend"), _kernel_cases())
def test_kernel_picks_what_explain_listed(explained, fx, service, key, backend):
    doc = explain_doc(explained, fx, service)
    trace = next((t for t in doc.get("traces", []) if trace_key(t) == key), None)
    assert trace is not None, f"explain printed no {key} trace\n{doc['_argv']}"
    exp = expected_from(trace)
    probe = probe_for(doc, trace)
    rules = rules_text(fx)
    affinity = doc["service"]["sessionAffinity"] == "ClientIP"

    if affinity:
        rounds = [kernel_probe(rules, backend, probe, AFFINITY_COPIES, fresh=True)
                  for _ in range(AFFINITY_ROUNDS)]
        msg = describe(trace, exp, rounds)
        for k in rounds:
            assert len(k.outcomes) == 1, "ClientIP affinity: a client did not stick\n" + msg
        picked = set().union(*(k.outcomes for k in rounds))
        assert picked <= exp.outcomes, "the kernel picked what explain did not list\n" + msg
        if len(exp.outcomes) == 1:
            assert picked == exp.outcomes, msg
        results = rounds
    else:
        n = max(12, probes_for(len(exp.outcomes)))
        k = kernel_probe(rules, backend, probe, n)
        msg = describe(trace, exp, [k])
        assert k.outcomes <= exp.outcomes, "the kernel picked what explain did not list\n" + msg
        assert k.outcomes == exp.outcomes, "explain listed what the kernel never picked\n" + msg
        for out, share in exp.shares.items():
            assert binomially_plausible(k.counts[out], len(k.results), share), \
                f"the kernel picked {out} {k.counts[out]}/{len(k.results)} times, " \
                f"explain says p={share}\n" + msg
        results = [k]

    for k in results:
        for out, masq in k.masquerade.items():
            if out in ("DROP", "REJECT"):
                continue           # nothing left the node: no masquerade to see
            assert exp.masquerade[out] == masq, f"masquerade differs for {out}\n" + msg
    if exp.outcomes <= {"DROP", "REJECT"}:
        # the verdict the kernel gave every copy is explain's (REJECT answered, DROP silent)
        assert {r.outcome for k in results for r in k.results} == set(exp.outcomes), msg
