"""On-node reading: `svctrace explain` run *inside* a node netns reads that netns's own rules.

A fresh netns with node1's address (10.10.0.10) is loaded with node1's real kube-proxy dump
through iptables-legacy, through iptables-nft, or both (a "split" node), and
`ip netns exec NS python -m svctrace explain svc/web …` runs there without --rules. It must name
the backend and reader it used, trace the Service to its 4 backends, report no drift, report
RULES-BACKEND-SPLIT exactly when both backends hold KUBE chains, and leave every table exactly
as it was: iptables-{legacy,nft}-save output (minus the timestamp comments), `nft list tables`
and /proc/net/ip{,6}_tables_names identical before and after. In particular, reading must not
instantiate an empty legacy table on an nft-only node (python-iptables or `iptables-legacy -L`
would).

Also: the python-iptables fallback reader gives the same traces as iptables-legacy-save and
changes nothing, and a netns without KUBE chains makes explain skip the rule steps with a note.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import pytest
from nodeexec import NetfilterState, NodeNetns
from rig import NODE_IP

pytestmark = pytest.mark.kernel

SNAPSHOT = "tests/fixtures/rig-v1.36/api/all.json"
EXPLAIN_WEB = ("explain", "svc/web", "-n", "svctrace-demo", "--snapshot", SNAPSHOT, "-o", "json")
WEB = {f"10.244.{n}:8080" for n in ("1.11", "1.12", "2.13", "2.14")}
SKIPPED_NOTE = "rule steps skipped"
NO_KUBE_NOTE = "no kube-proxy chains (KUBE-SERVICES)"


@dataclass(frozen=True)
class Mode:
    """How the netns's rules were loaded, and what svctrace must say it read."""

    id: str
    loads: tuple[str, ...]            # backends restored into the netns, in order
    backend: str                      # the backend explain must report
    reader: str                       # the reader explain must report
    hide_legacy_save: bool = False    # run with a PATH lacking iptables-legacy-save


MODES = [
    Mode("legacy", ("legacy",), "legacy", "iptables-legacy-save"),
    Mode("nft", ("nft",), "nft", "iptables-nft-save"),
    # both hold KUBE chains: either may be explained, but it must be said which (checked below)
    Mode("split", ("nft", "legacy"), "", ""),
    # no iptables-legacy-save installed: the python-iptables fallback reads the legacy tables
    Mode("legacy-via-python-iptables", ("legacy",), "legacy", "python-iptables",
         hide_legacy_save=True),
]


@dataclass
class Run:
    mode: Mode
    netns: NodeNetns
    before: NetfilterState
    proc: subprocess.CompletedProcess
    after: NetfilterState

    @property
    def doc(self) -> dict:
        assert self.proc.returncode == 0, self.why()
        try:
            return json.loads(self.proc.stdout)
        except ValueError:
            raise AssertionError("explain printed no JSON\n" + self.why()) from None

    def why(self) -> str:
        return (f"netns {self.netns.name} ({self.mode.id}); explain exited "
                f"{self.proc.returncode}\nstderr:\n{self.proc.stderr}\nstdout:\n"
                f"{self.proc.stdout[:2000]}")


def _path_without(tool: str) -> str:
    """A PATH folder holding everything svctrace may run on a node except `tool`."""
    folder = tempfile.mkdtemp(prefix="svtn-path-")
    for name in ("ip", "iptables-nft-save", "ip6tables-nft-save", "ip6tables-legacy-save",
                 "iptables-legacy-save", "ldconfig"):
        found = shutil.which(name)
        if name != tool and found:
            os.symlink(found, os.path.join(folder, name))
    return folder


def explain_in(ns: NodeNetns, mode: Mode) -> subprocess.CompletedProcess:
    if not mode.hide_legacy_save:
        return ns.svctrace(*EXPLAIN_WEB)
    folder = _path_without("iptables-legacy-save")
    try:
        return ns.svctrace(*EXPLAIN_WEB, env={"PATH": folder})
    finally:
        shutil.rmtree(folder)


@pytest.fixture(scope="module", params=MODES, ids=[m.id for m in MODES])
def run(request, demo_rules) -> Run:
    """The netns of one mode, explain run once inside it, the tables before and after."""
    mode: Mode = request.param
    ns = NodeNetns(mode.id[:6])
    try:
        for backend in mode.loads:
            ns.load(demo_rules, backend)
        before = ns.state()
        proc = explain_in(ns, mode)
        after = ns.state()
        yield Run(mode, ns, before, proc, after)
    finally:
        ns.release()


def _sources(r: Run) -> list[str]:
    return r.doc["rules"]["source"]


def test_names_the_backend_and_reader_it_read(run):
    src = _sources(run)
    if run.mode.id == "split":
        line = src[0]
        assert line in ("rules: iptables-legacy-save on this node (legacy backend)",
                        "rules: iptables-nft-save on this node (nft backend)"), run.why()
    else:
        assert src[0] == f"rules: {run.mode.reader} on this node ({run.mode.backend} backend)", \
            run.why()
    assert src[1].startswith("node: node1 (addresses "), run.why()
    assert NODE_IP in src[1] and src[1].endswith("from this machine)"), run.why()


def test_traces_reach_the_four_web_backends_without_drift(run):
    doc = run.doc
    assert doc["drift"] == [], run.why()
    got = {(t["entry"], t["client"], t["source"], t["destination"]) for t in doc["traces"]}
    assert got == {("clusterIP", "pod", "10.244.255.253", "10.96.219.159:80"),
                   ("clusterIP", "node", NODE_IP, "10.96.219.159:80")}, run.why()
    for t in doc["traces"]:
        assert {o["destination"] for o in t["outcomes"]} == WEB, run.why()
        assert {o["verdict"] for o in t["outcomes"]} == {"ACCEPT"}, run.why()
        assert abs(sum(o["probability"] for o in t["outcomes"]) - 1) < 1e-9, run.why()
    assert doc["verdict"].startswith("traffic to 10.96.219.159:80 reaches 4 healthy backend(s)")


def test_split_reported_exactly_when_both_backends_hold_kube_chains(run):
    findings = {f["id"]: f for f in run.doc["findings"]}
    if run.mode.id != "split":
        assert not {i for i in findings if i.startswith("RULES-")}, run.why()
        return
    assert "RULES-BACKEND-SPLIT" in findings, run.why()
    split = findings["RULES-BACKEND-SPLIT"]
    # it says which backend's rules were explained, and that is the one the source line names
    explained = "legacy" if "(legacy backend)" in _sources(run)[0] else "nft"
    assert f"explained the {explained} ones" in json.dumps(split), run.why()


def test_ruleset_left_byte_for_byte_unchanged(run):
    assert run.proc.returncode == 0, run.why()
    assert run.before.differences(run.after) == [], run.why()
    legacy_names = run.after.proc["/proc/net/ip_tables_names"]
    if "legacy" not in run.mode.loads:
        assert legacy_names == "", "a legacy table appeared on the nft-only netns"
    else:
        assert sorted(legacy_names.split()) == ["filter", "mangle", "nat"]


# --- the python-iptables reader, directly ----------------------------------------------------

IPTC_READ = ("-c", "import sys; from svctrace.rules.node import read_legacy_with_iptc; "
             "sys.stdout.write(read_legacy_with_iptc(4))")
CLIENT = "203.0.113.10"
IPTC_PACKETS = [
    # id, src, dst, dport, proto, expected destinations (so the comparison is not vacuous)
    ("clusterip-from-pod", "10.244.1.250", "10.96.219.159", 80, "tcp", WEB),
    ("clusterip-from-outside", CLIENT, "10.96.219.159", 80, "tcp", WEB),
    ("clusterip-from-node", NODE_IP, "10.96.219.159", 80, "tcp", WEB),
    ("nodeport-30080-on-node-ip", CLIENT, NODE_IP, 30080, "tcp", WEB),
    ("nodeport-30080-on-localhost", "127.0.0.1", "127.0.0.1", 30080, "tcp", WEB),
    ("affinity-db-from-pod", "10.244.1.250", "10.96.176.123", 5432, "tcp", {"10.244.1.21:5432"}),
    ("noendpoints-reject", "10.244.1.250", "10.96.155.77", 80, "tcp", {None}),
]


def _trace_shape(text: str, source: str, src: str, dst: str, dport: int, proto: str):
    from svctrace.model.packet import make_packet
    from svctrace.model.trace import node_context
    from svctrace.rules.iptables_save import parse_iptables_save
    from svctrace.trace.engine import trace_packet

    ruleset = parse_iptables_save(text, source)
    trace = trace_packet(make_packet(src, dst, protocol=proto, sport=40000, dport=dport),
                         ruleset, node_context([NODE_IP, "127.0.0.1"]))
    return sorted((round(o.probability, 9), o.verdict, o.destination, o.masquerade, o.snat_to,
                   o.reject_with, tuple(o.hook_path),
                   tuple((s.table, s.chain, s.rule) for s in o.path),
                   tuple(a.describe() for a in o.assumptions))
                  for o in trace.outcomes)


def _read_with_iptc(prefix: str, rules: str, backend: str):
    """Run the python-iptables reader in a fresh netns loaded through `backend`;
    (process, netfilter state before, state after)."""
    ns = NodeNetns(prefix)
    try:
        ns.load(rules, backend)
        before = ns.state()
        p = ns.python(*IPTC_READ)
        return p, before, ns.state()
    finally:
        ns.release()


@pytest.fixture(scope="module")
def iptc_read(demo_rules):
    """(save text, python-iptables text, state before, state after) of a legacy netns."""
    p, before, after = _read_with_iptc("iptc", demo_rules, "legacy")
    assert p.returncode == 0, p.stderr
    yield before.saves["iptables-legacy-save"], p.stdout, before, after


def test_python_iptables_reader_leaves_ruleset_unchanged(iptc_read):
    _, text, before, after = iptc_read
    assert before.differences(after) == []
    assert text.startswith("# Generated by svctrace from python-iptables (legacy)\n")


def test_python_iptables_reader_has_the_same_chains_and_rules(iptc_read):
    from svctrace.rules.iptables_save import parse_iptables_save

    save, text, _, _ = iptc_read
    a, b = parse_iptables_save(save, "save"), parse_iptables_save(text, "iptc")
    shape = {t: {c: len(ch.rules) for c, ch in tab.chains.items()} for t, tab in a.tables.items()}
    assert {t: {c: len(ch.rules) for c, ch in tab.chains.items()}
            for t, tab in b.tables.items()} == shape
    assert sum(n for chains in shape.values() for n in chains.values()) > 50


@pytest.mark.parametrize(("src", "dst", "dport", "proto", "expected"),
                         [pytest.param(*r[1:], id=r[0]) for r in IPTC_PACKETS])
def test_python_iptables_reader_traces_equal_the_save_reader(iptc_read, src, dst, dport, proto,
                                                             expected):
    save, text, _, _ = iptc_read
    by_save = _trace_shape(save, "iptables-legacy-save", src, dst, dport, proto)
    by_iptc = _trace_shape(text, "python-iptables", src, dst, dport, proto)
    assert by_iptc == by_save
    assert {o[2] for o in by_save} == expected


def test_python_iptables_reader_creates_no_legacy_table_on_an_nft_node(demo_rules):
    """On an nft-only netns the fallback opens nothing: no empty legacy table appears."""
    p, before, after = _read_with_iptc("iptcnft", demo_rules, "nft")
    assert p.returncode == 0, p.stderr
    assert before.differences(after) == []
    assert after.proc["/proc/net/ip_tables_names"] == ""
    assert "*nat" not in p.stdout


# --- no kube-proxy chains at all -------------------------------------------------------------

OTHER_RULES = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
"""

NO_KUBE = [
    pytest.param((), id="no-rules-at-all"),
    pytest.param(("legacy",), id="other-rules-legacy"),
    pytest.param(("nft",), id="other-rules-nft"),
]


@pytest.mark.parametrize("loads", NO_KUBE)
def test_no_kube_chains_skips_the_rule_steps_with_a_note(loads):
    ns = NodeNetns("nokube")
    try:
        for backend in loads:
            ns.load(OTHER_RULES, backend)
        before = ns.state()
        p = ns.svctrace(*EXPLAIN_WEB)
        after = ns.state()
    finally:
        ns.release()
    why = f"explain exited {p.returncode}\nstderr:\n{p.stderr}\nstdout:\n{p.stdout[:1000]}"
    assert p.returncode == 0, why
    assert SKIPPED_NOTE in p.stderr and NO_KUBE_NOTE in p.stderr, why
    doc = json.loads(p.stdout)
    assert not {"rules", "traces", "drift"} & set(doc), why
    assert doc["verdict"].endswith("rules not checked"), why
    assert before.differences(after) == []

