"""kube-proxy's iptables mode read backwards, judged on the real v1.36 captures.

Expected values are facts from the fixture READMEs and dumps (addresses, chain names, ports).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from svctrace.model.kubeproxy import ServiceChains
from svctrace.render.rules import services_data
from svctrace.rules import kubeproxy as kp
from svctrace.rules.iptables_save import parse_iptables_save

FIX = Path(__file__).parent.parent / "fixtures"
DEMO = FIX / "rig-v1.36" / "node1.iptables-save.txt"
PUB = FIX / "rig-v1.36-scenarios" / "node1.iptables-save.txt"
LARGE = FIX / "rig-v1.36-large" / "node1.iptables-save.txt"
GROWTH = FIX / "rig-v1.36-large" / "node1.iptables-save.after-growth.txt"
REAL_DUMPS = sorted(FIX.glob("*/node1.iptables-save*.txt"))
_CACHE: dict[Path, list[ServiceChains]] = {}


def services(path: Path) -> list[ServiceChains]:
    if path not in _CACHE:
        _CACHE[path] = kp.map_services(parse_iptables_save(path.read_text(), str(path)))
    return _CACHE[path]


def by_spn(path: Path) -> dict[str, ServiceChains]:
    return {s.spn: s for s in services(path) if s.spn is not None}


# --- chain names -------------------------------------------------------------------------------

@pytest.mark.parametrize("builder,args,expected", [
    (kp.service_chain, ("ns1/svc1:p80", "tcp"), "KUBE-SVC-XPGD46QRK7WJZT7O"),
    (kp.service_chain, ("ns2/svc2:p80", "tcp"), "KUBE-SVC-GNZBNJ2PO5MGZ6GT"),
    (kp.endpoint_chain, ("ns1/svc1:p80", "tcp", "10.180.0.1:80"), "KUBE-SEP-SXIVWICOYRO3J4NJ"),
    (kp.service_chain, ("default/kubernetes:https", "tcp"), "KUBE-SVC-NPX46M4PTMTKRN6Y"),
    (kp.service_chain, ("svctrace-demo/web:http", "tcp"), "KUBE-SVC-HBHJTNRYANUCOOJF"),
    (kp.external_chain, ("svctrace-demo/web-np:http", "tcp"), "KUBE-EXT-EEOTSVSMR5XS6DNG"),
    (kp.local_chain, ("svctrace-pub/edge:http", "tcp"), "KUBE-SVL-RZICFQKD7QZXUEAJ"),
    (kp.firewall_chain, ("svctrace-pub/storefront:https", "tcp"), "KUBE-FW-EMC3MBKHLFIHFFZR"),
    (kp.service_chain, ("svctrace-pub/dns-cache:dns-udp", "udp"), "KUBE-SVC-QLSL3AVN4T7RJL77"),
    (kp.service_chain, ("svctrace-pub/dns-cache:dns-udp", "UDP"), "KUBE-SVC-QLSL3AVN4T7RJL77"),
    (kp.endpoint_chain, ("svctrace-demo/web:http", "tcp", "10.244.1.11:8080"),
     "KUBE-SEP-SKKSE4QLGHVT6RFB"),
    (kp.endpoint_chain, ("svctrace-demo/db:pg", "tcp", "10.244.1.21:5432"),
     "KUBE-SEP-ARWNNFV7R7A65DJG"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("KUBE-") else "")
def test_chain_name_builders(builder, args, expected) -> None:
    assert builder(*args) == expected


_SEP_DNAT = re.compile(r'^-A (KUBE-SEP-\w+) -p (\w+) -m comment --comment "([^"]+)" .*'
                       r"-j DNAT --to-destination (\S+)$", re.M)


@pytest.mark.parametrize("path", [DEMO, PUB], ids=lambda p: p.parent.name)
def test_every_commented_sep_chain_name_is_its_hash(path: Path) -> None:
    found = _SEP_DNAT.findall(path.read_text())
    assert len(found) >= 12
    for chain, proto, spn, endpoint in found:
        assert kp.endpoint_chain(spn, proto, endpoint) == chain


def test_identify_maps_hashes_to_names() -> None:
    names = kp.identify(["svctrace-demo/web:http", ("svctrace-pub/dns-cache:dns-udp", "udp")])
    assert names["HBHJTNRYANUCOOJF"] == "svctrace-demo/web:http"
    assert names["QLSL3AVN4T7RJL77"] == "svctrace-pub/dns-cache:dns-udp"
    assert kp.chain_hash("svctrace-demo/web:http", "udp") in names     # all protocols tried
    assert kp.chain_hash("svctrace-pub/dns-cache:dns-udp", "tcp") not in names


# --- probabilities -----------------------------------------------------------------------------

@pytest.mark.parametrize("printed,stored", [
    ("0.50000000000", 2**30), ("0.33333333349", 715827883), ("0.25000000000", 2**29),
    ("0.20000000019", 429496730), ("0.0000099999", 21475),
])
def test_kernel_probability_is_the_31_bit_threshold(printed: str, stored: int) -> None:
    assert kp.kernel_probability(printed) == stored / 2**31


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "abc"])
def test_kernel_probability_rejects_non_probabilities(bad: str) -> None:
    with pytest.raises(ValueError):
        kp.kernel_probability(bad)


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_kubeproxy_dump", Path(__file__).parents[2] / "bench" / "gen_kubeproxy_dump.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 16, 50, 100])
def test_cascade_shares_are_equal(n: int) -> None:
    text = _generator().generate(2, n)            # service 0 is a NodePort, service 1 plain
    found = kp.map_services(parse_iptables_save(text, f"gen-{n}"))
    assert [len(s.endpoints) for s in found] == [n, n]
    for s in found:
        assert all(abs(e.probability - 1 / n) < 1e-9 for e in s.endpoints)
        assert abs(sum(e.probability for e in s.endpoints) - 1) < 1e-12


# --- the real captures: every service port -----------------------------------------------------

WEB_EPS = ["10.244.1.11:8080", "10.244.1.12:8080", "10.244.2.13:8080", "10.244.2.14:8080"]
DEMO_CASES = {
    # spn: (protocol, port, cluster IPs, node port, chains present, endpoint addresses)
    "default/kubernetes:https": ("tcp", 443, ["10.96.0.1"], None, {"svc"}, ["10.10.0.1:6443"]),
    "svctrace-demo/web:http": ("tcp", 80, ["10.96.219.159"], None, {"svc"}, WEB_EPS),
    "svctrace-demo/web-np:http": ("tcp", 80, ["10.96.164.174"], 30080, {"svc", "ext"}, WEB_EPS),
    "svctrace-demo/db:pg": ("tcp", 5432, ["10.96.176.123"], None, {"svc"}, ["10.244.1.21:5432"]),
    "svctrace-demo/ext-db:pg": ("tcp", 5432, ["10.96.200.86"], None, {"svc"},
                                ["10.244.1.31:5432", "10.244.2.32:5432"]),
    "svctrace-demo/noendpoints:http": ("tcp", 80, ["10.96.155.77"], None, set(), []),
}
PUB_CASES = {
    "svctrace-pub/storefront:https": ("tcp", 443, ["10.96.206.3"], 32443, {"svc", "ext", "fw"},
                                      ["10.244.1.41:8443", "10.244.1.42:8443",
                                       "10.244.2.41:8443"]),
    "svctrace-pub/edge:http": ("tcp", 80, ["10.96.13.244"], 30880, {"svc", "svl", "ext"},
                               ["10.244.1.44:8080", "10.244.1.45:8080"] * 2),
    "svctrace-pub/node-cache:redis": ("tcp", 6379, ["10.96.70.164"], None, set(), []),
    "svctrace-pub/dns-cache:dns-udp": ("udp", 5353, ["10.96.242.133"], None, {"svc"},
                                       ["10.244.1.50:5353", "10.244.2.50:5353",
                                        "10.244.2.51:5353"]),
    "svctrace-pub/search:http": ("tcp", 80, ["10.96.110.165"], None, {"svc"},
                                 ["10.244.1.53:8080", "10.244.2.53:8080", "10.244.2.54:8080"]),
    "svctrace-pub/search:grpc": ("tcp", 9000, ["10.96.110.165"], None, {"svc"},
                                 ["10.244.1.53:9000", "10.244.2.53:9000", "10.244.2.54:9000"]),
    "svctrace-pub/ledger:https": ("tcp", 443, ["10.96.48.164"], None, {"svc", "ext"},
                                  ["10.244.1.56:8443", "10.244.1.57:8443", "10.244.2.56:8443"]),
    "svctrace-pub/sessions:http": ("tcp", 80, ["10.96.213.109"], None, {"svc"},
                                   ["10.244.1.59:3000", "10.244.1.60:3000", "10.244.2.59:3000",
                                    "10.244.2.60:3000"]),
    "svctrace-pub/inventory:http": ("tcp", 80, ["10.96.90.38"], None, {"svc"},
                                    ["10.244.1.62:8000", "10.244.1.63:8000", "10.244.1.64:8000",
                                     "10.244.2.62:8000", "10.244.2.63:8000"]),
    "svctrace-pub/orders:http": ("tcp", 8080, ["10.96.241.30"], None, {"svc"},
                                 ["10.244.2.66:8080"]),
    "svctrace-pub/billing:http": ("tcp", 80, ["10.96.121.15"], None, set(), []),
    "svctrace-pub/metrics:scrape": ("tcp", 9090, ["10.96.161.109"], None, set(), []),
}
CASES = [(DEMO, spn, *v) for spn, v in DEMO_CASES.items()] + \
        [(PUB, spn, *v) for spn, v in {**DEMO_CASES, **PUB_CASES}.items()]


@pytest.mark.parametrize("path,expected", [(DEMO, DEMO_CASES), (PUB, {**DEMO_CASES, **PUB_CASES})],
                         ids=["rig-v1.36", "rig-v1.36-scenarios"])
def test_exactly_the_programmed_service_ports_are_found(path: Path, expected: dict) -> None:
    found = services(path)
    assert sorted(s.spn for s in found) == sorted(expected)     # queue, mail: no rules
    assert all(not s.warnings for s in found)
    keys = [(s.namespace, s.name, s.port) for s in found]
    assert keys == sorted(keys)


@pytest.mark.parametrize("path,spn,proto,port,cips,node_port,roles,eps", CASES,
                         ids=[f"{c[0].parent.name}:{c[1]}" for c in CASES])
def test_service_port(path, spn, proto, port, cips, node_port, roles, eps) -> None:
    s = by_spn(path)[spn]
    assert (s.protocol, s.port, list(s.cluster_ips), s.node_port) == (proto, port, cips,
                                                                       node_port)
    assert {r for r, name in s.chains.items() if name} == roles
    for role in roles:
        assert s.chains[role] == {"svc": kp.service_chain, "svl": kp.local_chain,
                                  "ext": kp.external_chain, "fw": kp.firewall_chain}[role](
            spn, proto)
    assert [e.address for e in s.endpoints] == eps
    for e in s.endpoints:
        assert e.chain == kp.endpoint_chain(spn, proto, e.address)
        assert e.hairpin                                   # every SEP has its hairpin rule
    for via in ("svc", "svl"):
        shares = [e.probability for e in s.endpoints if e.via == via]
        assert all(abs(p - 1 / len(shares)) < 1e-9 for p in shares)
    if eps:
        assert [m.condition for m in s.masquerade if m.reason == "cluster IP"] == \
            ["! -s 10.244.0.0/16"]


@pytest.mark.parametrize("spn,chain,verdict,reason,address,port", [
    ("svctrace-pub/billing:http", "KUBE-SERVICES", "REJECT", "no endpoints", "10.96.121.15", 80),
    ("svctrace-pub/metrics:scrape", "KUBE-SERVICES", "REJECT", "no endpoints",
     "10.96.161.109", 9090),
    ("svctrace-pub/node-cache:redis", "KUBE-SERVICES", "DROP", "no local endpoints",
     "10.96.70.164", 6379),
    ("svctrace-pub/storefront:https", "KUBE-PROXY-FIREWALL", "DROP", "firewall",
     "192.0.2.77", 443),
    ("svctrace-demo/noendpoints:http", "KUBE-SERVICES", "REJECT", "no endpoints",
     "10.96.155.77", 80),
], ids=lambda v: v if isinstance(v, str) and "/" in v else None)
def test_filter_rules(spn, chain, verdict, reason, address, port) -> None:
    s = by_spn(PUB)[spn]
    assert [(f.chain, f.verdict, f.reason, f.address, f.port) for f in s.filter] == \
        [(chain, verdict, reason, address, port)]
    assert s.filter[0].rule.table == "filter"


def test_storefront_load_balancer_with_source_ranges() -> None:
    s = by_spn(PUB)["svctrace-pub/storefront:https"]
    assert s.load_balancer_ips == ("192.0.2.77",)
    assert s.source_ranges == ("198.18.0.0/15",)
    assert {(e.kind, e.address, e.target) for e in s.entries} >= {
        ("loadBalancerIP", "192.0.2.77", "KUBE-FW-EMC3MBKHLFIHFFZR"),
        ("nodePort", None, "KUBE-EXT-EMC3MBKHLFIHFFZR")}
    assert [m.reason for m in s.masquerade if m.chain.startswith("KUBE-EXT-")] == ["external"]


def test_edge_local_policy_reaches_only_local_endpoints() -> None:
    s = by_spn(PUB)["svctrace-pub/edge:http"]
    local = [e for e in s.endpoints if e.via == "svl"]
    assert [e.address for e in local] == ["10.244.1.44:8080", "10.244.1.45:8080"]
    assert all(e.local for e in s.endpoints)       # the SVC ones are the same two pods
    ext = [(m.reason, m.condition) for m in s.masquerade if m.chain == s.chains["ext"]]
    assert ext == [("local source", "-m addrtype --src-type LOCAL")]


def test_ledger_external_ip_masquerades_everything() -> None:
    s = by_spn(PUB)["svctrace-pub/ledger:https"]
    assert s.external_ips == ("198.51.100.20",)
    assert [(m.reason, m.condition) for m in s.masquerade if m.chain == s.chains["ext"]] == \
        [("external", "")]


@pytest.mark.parametrize("path,spn,seconds", [
    (PUB, "svctrace-pub/sessions:http", 1800), (DEMO, "svctrace-demo/db:pg", 10800),
    (PUB, "svctrace-pub/inventory:http", None),
])
def test_affinity(path: Path, spn: str, seconds: int | None) -> None:
    s = by_spn(path)[spn]
    assert s.affinity_seconds == seconds
    assert all(e.affinity == (seconds is not None) for e in s.endpoints)


def test_rules_of_a_service_are_its_original_lines() -> None:
    s = by_spn(PUB)["svctrace-pub/orders:http"]
    text = PUB.read_text().splitlines()
    assert [r.text for r in s.rules] == [text[r.line - 1] for r in s.rules]
    assert {r.chain for r in s.rules} == {"KUBE-SERVICES", "KUBE-SVC-RITLZQ7YFEV6DTZE",
                                          "KUBE-SEP-GOFF2BQQBBYHOVFD"}
    assert [r.chain for r in s.endpoints[0].rules] == ["KUBE-SVC-RITLZQ7YFEV6DTZE",
                                                       "KUBE-SEP-GOFF2BQQBBYHOVFD",
                                                       "KUBE-SEP-GOFF2BQQBBYHOVFD"]


# --- large-cluster mode: no per-endpoint comments ----------------------------------------------

def _scale_endpoints(i: int) -> list[str]:
    """README: service i, endpoint j (1-4) is 10.245.<i div 60>.<(i mod 60)*4 + j>."""
    return [f"10.245.{i // 60}.{(i % 60) * 4 + j}:8080" for j in range(1, 5)]


@pytest.mark.parametrize("path", [LARGE, GROWTH], ids=["full-resync", "after-growth"])
def test_large_cluster_mode_all_300_services(path: Path) -> None:
    found = by_spn(path)
    scale = {spn: s for spn, s in found.items() if spn.startswith("svctrace-scale/")}
    assert len(scale) == 300
    for i in range(300):
        s = scale[f"svctrace-scale/scale-{i:03d}:http"]
        assert sorted(e.address for e in s.endpoints) == sorted(_scale_endpoints(i))
        assert all(abs(e.probability - 0.25) < 1e-9 for e in s.endpoints)
    assert scale["svctrace-scale/scale-000:http"].cluster_ips == ("10.96.20.6",)
    assert len(found) == 306


def test_large_dump_has_no_sep_comments_and_growth_dump_maps_the_same() -> None:
    assert '-A KUBE-SEP-' in LARGE.read_text()
    assert not re.search(r'^-A KUBE-SEP-\S+ .*--comment', LARGE.read_text(), re.M)
    assert services_data(services(LARGE)) == services_data(services(GROWTH))


def _strip_comments(text: str) -> str:
    return re.sub(r' -m comment --comment (?:"[^"]*"|\S+)', "", text)


def test_no_comments_at_all_same_structure_names_from_identify() -> None:
    rs = parse_iptables_save(_strip_comments(PUB.read_text()), "stripped")
    bare = kp.map_services(rs)
    with_nat = [s for s in services(PUB) if any(s.chains.values())]
    assert all(s.spn is None for s in bare)
    assert sorted(s.hash for s in bare) == sorted(s.hash for s in with_nat)
    named = kp.map_services(rs, names=kp.identify(s.spn for s in services(PUB)))
    strip = ("filter", "warnings")
    got = [{k: v for k, v in d.items() if k not in strip}
           for d in services_data(named)["services"]]
    want = [{k: v for k, v in d.items() if k not in strip}
            for d in services_data(with_nat)["services"]]
    assert got == want


# --- node facts --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", REAL_DUMPS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_infer_pod_cidr(path: Path) -> None:
    rs = parse_iptables_save(path.read_text(), str(path))
    assert kp.infer_pod_cidr(rs) == "10.244.0.0/16"       # --cluster-cidr of the rig


def test_infer_pod_cidr_none_without_detector() -> None:
    text = PUB.read_text().replace("! -s 10.244.0.0/16 ", "").replace(" -s 10.244.0.0/16", "")
    assert kp.infer_pod_cidr(parse_iptables_save(text, "x")) is None


def test_local_hints() -> None:
    assert kp.infer_local_hints(parse_iptables_save(PUB.read_text(), "x")) == []
    # nodePortAddresses set: kube-proxy dispatches to KUBE-NODEPORTS per node IP (§1.4.4);
    # a source range containing the node IP adds the LB VIP as an allowed source (§1.4.7).
    text = PUB.read_text().replace(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be '
        'the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
        '-A KUBE-SERVICES -d 10.10.0.10/32 -m comment --comment "kubernetes service nodeports; '
        'NOTE: this must be the last rule in this chain" -j KUBE-NODEPORTS').replace(
        "-A KUBE-FW-EMC3MBKHLFIHFFZR -m comment",
        '-A KUBE-FW-EMC3MBKHLFIHFFZR -s 192.0.2.77/32 -m comment --comment "svctrace-pub/'
        'storefront:https loadbalancer IP" -j KUBE-EXT-EMC3MBKHLFIHFFZR\n'
        "-A KUBE-FW-EMC3MBKHLFIHFFZR -m comment")
    hints = kp.infer_local_hints(parse_iptables_save(text, "x"))
    assert [(h.address, h.reason.split()[0]) for h in hints] == [
        ("10.10.0.10", "nodeport"), ("192.0.2.77", "loadbalancer")]


# --- the text fast path agrees with the parser -------------------------------------------------

_KEYS = ("s", "d", "p", "dport", "comment", "probability", "seconds", "src-type", "dst-type",
         "rcheck", "set", "to-destination", "j")


@pytest.mark.parametrize("path", REAL_DUMPS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_text_fields_agree_with_parser(path: Path) -> None:
    rs = parse_iptables_save(path.read_text(), str(path))
    checked = 0
    for rule in rs.rules():
        fast = kp._fields(rule)
        slow = kp._parsed_fields(rule)
        for key in _KEYS:
            assert (key in fast) == (key in slow), (rule.location, key)
            if key in fast:
                assert fast[key][0] == slow[key][0] and fast[key][1] == slow[key][1], \
                    (rule.location, key)
        assert kp._target(rule) == (rule.target.name if rule.target else None)
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("line", [
    '-A KUBE-SVC-X -m comment --comment "a -j KUBE-SEP-FAKE" -j KUBE-SEP-REAL',
    '-A KUBE-SVC-X -m comment --comment "x \\" --probability 0.5" -j KUBE-SEP-REAL',
    "-A KUBE-SVC-X -m comment --comment --probability -j KUBE-SEP-REAL",
    '-A KUBE-FW-X -m comment --comment "other traffic -j DROP"',
])
def test_tricky_lines_follow_the_parser(line: str) -> None:
    rs = parse_iptables_save(f"*nat\n:{line.split()[1]} - [0:0]\n{line}\nCOMMIT\n", "x")
    rule = rs.chain("nat", line.split()[1]).rules[0]
    assert kp._target(rule) == (rule.target.name if rule.target else None)
    assert kp._fields(rule).get("probability") == kp._parsed_fields(rule).get("probability")
