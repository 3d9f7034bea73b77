"""`rules` and `trace` on the layouts older kube-proxy versions wrote (issue 10 point 4), on
half-written nodes, and on other agents' chains (points 6, 7). The dumps are written by
tests/kernel/kplayouts.py from each version's proxier; the kernel judges the same dumps in
tests/kernel/test_realworld_layouts.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "kernel"))

from kplayouts import PORTALS_EXAMPLE, PRE_122_EXAMPLE, V1_1_EXAMPLE  # noqa: E402

from svctrace.model.packet import make_packet  # noqa: E402
from svctrace.model.trace import node_context  # noqa: E402
from svctrace.rules.iptables_save import parse_iptables_save  # noqa: E402
from svctrace.rules.kubeproxy import (  # noqa: E402
    chain_hash,
    infer_pod_cidr,
    layout_notes,
    map_services,
)
from svctrace.trace.engine import trace_packet  # noqa: E402

REPO = Path(__file__).parents[2]

PRE_122, V1_1, PORTALS = PRE_122_EXAMPLE, V1_1_EXAMPLE, PORTALS_EXAMPLE


def services(text: str) -> dict[str, object]:
    return {f"{s.namespace}/{s.name}:{s.port_name}": s
            for s in map_services(parse_iptables_save(text, "layout.txt"))}


def svctrace(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "svctrace", *args], cwd=REPO, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_pre_122_masquerade_rules_are_listed_where_they_are() -> None:
    web = services(PRE_122)["old/web:http"]
    where = {(m.chain, m.reason, m.condition) for m in web.masquerade}
    assert ("KUBE-SERVICES", "cluster IP", "! -s 10.244.0.0/16") in where
    assert any(c == "KUBE-NODEPORTS" and r == "external" for c, r, _ in where)
    assert any(c == "KUBE-SERVICES" and r == "external" for c, r, _ in where)   # externalIP
    assert web.external_ips == ("192.0.2.50",) and web.node_port == 30080


def test_pre_122_rules_and_trace_agree_on_masquerade(tmp_path: Path) -> None:
    path = tmp_path / "pre122.txt"
    path.write_text(PRE_122)
    rules = json.loads(svctrace("rules", "--rules", str(path), "-o", "json").stdout)
    web = next(s for s in rules["services"] if s["name"] == "web")
    assert any(m["reason"] == "cluster IP" for m in web["masquerade"])
    done = svctrace("trace", "--rules", str(path), "--src", "10.10.0.60", "--dst",
                    "10.96.10.10:80", "-o", "json")
    assert all(o["masquerade"] for o in json.loads(done.stdout)["outcomes"])


def test_pre_122_pod_cidr_is_inferred_and_trace_needs_no_src(tmp_path: Path) -> None:
    assert infer_pod_cidr(parse_iptables_save(PRE_122, "p")) == "10.244.0.0/16"
    path = tmp_path / "pre122.txt"
    path.write_text(PRE_122)
    done = svctrace("trace", "--rules", str(path), "--dst", "10.96.10.10:80", "-o", "json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["packet"]["source"].startswith("10.244.")
    assert {o["destination"] for o in doc["outcomes"]} == {"10.244.1.11:8080",
                                                            "10.244.2.12:8080"}
    assert not any(o["masquerade"] for o in doc["outcomes"])


def test_xlb_is_the_external_chain_with_local_endpoints() -> None:
    local = services(PRE_122)["old/local:http"]
    assert local.chains["ext"] is not None and local.chains["ext"].startswith("KUBE-XLB-")
    via_xlb = [e for e in local.endpoints if e.via == "ext"]
    assert [(e.address, e.local, e.probability) for e in via_xlb] == \
        [("10.244.1.21:8080", True, 1.0)]
    nolocal = services(PRE_122)["old/nolocal:"]
    assert [(f.verdict, f.reason) for f in nolocal.filter] == [("DROP", "no local endpoints")]
    assert nolocal.name == "nolocal" and nolocal.port_name == ""


def test_v1_1_names_affinity_and_mark_masquerade() -> None:
    found = services(V1_1)
    web, sticky = found["old/web:"], found["old/sticky:"]
    assert (web.namespace, web.name, web.port_name) == ("old", "web", "")
    assert (web.affinity_seconds, sticky.affinity_seconds) == (None, 180)
    assert [(e.address, e.hairpin, e.affinity) for e in sticky.endpoints] == \
        [("10.244.1.31:80", True, True), ("10.244.2.32:80", True, True)]
    assert any(m.chain == "KUBE-NODEPORTS" for m in web.masquerade)
    assert not web.warnings and not sticky.warnings


def test_dnat_straight_from_kube_svc_is_an_endpoint() -> None:
    """A KUBE-SVC chain that DNATs itself, with no KUBE-SEP chain between."""
    svc = "KUBE-SVC-" + chain_hash("old/web:", "tcp")
    text = (f"*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:{svc} - [0:0]\n"
            "-A PREROUTING -j KUBE-SERVICES\n"
            f'-A KUBE-SERVICES -d 10.0.0.50/32 -p tcp -m comment --comment "old/web: cluster IP" '
            f"-m tcp --dport 80 -j {svc}\n"
            f"-A {svc} -m statistic --mode random --probability 0.50000000000 -p tcp "
            "-j DNAT --to-destination 10.244.9.9:80\n"
            f"-A {svc} -p tcp -j DNAT --to-destination 10.244.9.10:80\nCOMMIT\n")
    (web,) = services(text).values()
    assert [(e.address, e.probability, e.chain) for e in web.endpoints] == \
        [("10.244.9.9:80", 0.5, svc), ("10.244.9.10:80", 0.5, svc)]


def test_portals_say_the_userspace_proxy_picks_the_endpoint() -> None:
    dns = services(PORTALS)["old/kube-dns:dns"]
    assert (dns.name, dns.port_name, dns.protocol, dns.port) == ("kube-dns", "dns", "udp", 53)
    assert dns.cluster_ips == ("10.0.0.10",) and not dns.endpoints
    assert any("userspace proxy" in w and "60906" in w for w in dns.warnings)
    rs = parse_iptables_save(PORTALS, "p")
    trace = trace_packet(make_packet("10.10.0.60", "10.0.0.10", "udp", 40000, 53), rs,
                         node_context(["10.10.0.10"]))
    assert [o.destination for o in trace.outcomes] == ["10.10.0.10:60906"]


# ------------------------------------------------ half-written nodes (point 4, last items)

UNHOOKED = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-SVC-BBBBBBBBBBBBBBBB - [0:0]
:KUBE-SEP-CCCCCCCCCCCCCCCC - [0:0]
:KUBE-SEP-DDDDDDDDDDDDDDDD - [0:0]
-A OUTPUT -j KUBE-SERVICES
-A KUBE-SERVICES -d 10.96.0.5/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-AAAAAAAAAAAAAAAA
-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-CCCCCCCCCCCCCCCC
-A KUBE-SVC-BBBBBBBBBBBBBBBB -j KUBE-SEP-DDDDDDDDDDDDDDDD
-A KUBE-SEP-CCCCCCCCCCCCCCCC -p tcp -j DNAT --to-destination 10.244.0.5:80
COMMIT
"""


def test_unhooked_dispatch_and_unreached_chains_are_said(tmp_path: Path) -> None:
    (note,) = layout_notes(parse_iptables_save(UNHOOKED, "u"))
    assert "PREROUTING does not jump to KUBE-SERVICES" in note
    by_hash = {s.hash: s for s in map_services(parse_iptables_save(UNHOOKED, "u"))}
    assert any("no rule in nat KUBE-SERVICES" in w for w in by_hash["BBBBBBBBBBBBBBBB"].warnings)
    assert not any("no rule in" in w for w in by_hash["AAAAAAAAAAAAAAAA"].warnings)
    assert any("is empty" in w for w in by_hash["BBBBBBBBBBBBBBBB"].warnings)  # SEP-D: no DNAT
    assert [e.address for e in by_hash["BBBBBBBBBBBBBBBB"].endpoints] == [None]
    path = tmp_path / "u.txt"
    path.write_text(UNHOOKED)
    for args in (("rules",), ("trace", "--src", "1.2.3.4", "--dst", "10.96.0.5:80")):
        done = svctrace(*args, "--rules", str(path))
        assert done.returncode == 0, done.stderr
        assert done.stderr.count("does not jump to KUBE-SERVICES") == 1


def test_ipvs_mode_is_named_and_leftovers_flagged() -> None:
    text = """*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-SERVICES ! -s 10.244.0.0/16 -m comment --comment "Kubernetes service cluster ip + port \
for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ
-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT
COMMIT
"""
    (note,) = layout_notes(parse_iptables_save(text, "ipvs"))
    assert "IPVS mode" in note and "1 KUBE-SVC/KUBE-SEP chains here are leftovers" in note


# ------------------------------------------------ other agents and physdev (points 6, 7)

AGENTS = """*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:FLANNEL-POSTRTG - [0:0]
:EXT - [0:0]
-A PREROUTING -d 192.0.2.50/32 -p tcp -m physdev ! --physdev-is-in -j EXT
-A POSTROUTING -j FLANNEL-POSTRTG
-A EXT -p tcp -j DNAT --to-destination 10.244.3.3:80
-A FLANNEL-POSTRTG -s 10.244.0.0/24 -d 10.244.0.0/16 -j RETURN
-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER-USER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A DOCKER-ISOLATION-STAGE-1 -d 10.244.9.0/24 -j DROP
-A DOCKER-USER -j RETURN
COMMIT
"""


@pytest.mark.parametrize(("src", "dst", "in_iface", "expect"), [
    pytest.param("10.244.1.5", "8.8.8.8", None, ("ACCEPT", None, "flannel"),
                 id="flannel-masquerades-pod-to-outside"),
    pytest.param("10.244.0.5", "10.244.2.5", None, ("ACCEPT", None, None),
                 id="flannel-returns-own-subnet"),
    pytest.param("203.0.113.9", "10.244.9.9", None, ("DROP", "Docker", None),
                 id="docker-isolation-drops"),
    pytest.param("203.0.113.9", "192.0.2.50", None, ("ACCEPT", None, None),
                 id="physdev-external-client-not-bridged"),
    pytest.param("10.244.0.7", "192.0.2.50", "cni0", ("ACCEPT", None, "flannel"),
                 id="physdev-from-bridge-port"),
])
def test_other_agents_decide_and_are_named(src, dst, in_iface, expect) -> None:
    rs = parse_iptables_save(AGENTS, "agents")
    from svctrace.model.agents import deciding_agents
    trace = trace_packet(make_packet(src, dst, "tcp", 40000, 80, in_iface), rs,
                         node_context(["10.10.0.10"]))
    (o,) = trace.outcomes
    agents = deciding_agents(o)
    assert (o.verdict, agents["verdict"], agents["masquerade"]) == expect
    assert not o.assumptions
    if dst == "192.0.2.50":
        assert (o.destination is None) == (in_iface is not None)


# ------------------------------------------------ wording (point 12)

def test_assumptions_read_as_sentences_and_names_have_no_doubled_spaces(tmp_path: Path) -> None:
    rs = parse_iptables_save(AGENTS.replace("-A FORWARD -j DOCKER-USER",
                                            "-A FORWARD -i eth9 -j DROP"), "w")
    trace = trace_packet(make_packet("203.0.113.9", "10.244.7.7", "tcp", 40000, 80), rs,
                         node_context(["10.10.0.10"]))
    (o,) = trace.outcomes
    (assumption,) = o.assumptions
    assert assumption.describe().endswith(
        "not evaluated: the input interface (-i) is unknown; give --in-interface; assumed it did "
        "not match")
    path = tmp_path / "u.txt"
    path.write_text(UNHOOKED)
    out = svctrace("rules", "--rules", str(path)).stdout
    assert "(unnamed service port, chains *-BBBBBBBBBBBBBBBB)" in out and "  service" not in out
    done = svctrace("trace", "--rules", str(path), "--src", "10.10.0.10", "--local-ip",
                    "10.10.0.10", "--dst", "10.96.0.5:80")       # from the node: OUTPUT is hooked
    assert "(service port *-AAAAAAAAAAAAAAAA)" in done.stdout
    assert "service port (service port" not in done.stdout


def test_xlb_drop_is_rendered_without_a_port(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text(PRE_122)
    out = svctrace("rules", "--rules", str(path), "svc/nolocal", "-n", "old").stdout
    assert "DROP  any destination  (no local endpoints)" in out and "None" not in out
