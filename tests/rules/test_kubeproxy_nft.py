"""kube-proxy's nftables mode read backwards, judged on the real v1.36 captures.

Expected values are facts from the fixture READMEs, API objects and dumps (addresses, chain
names, ports), or kube-proxy's own recipe applied to the API objects.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svctrace.model.kubeproxy import ServiceChains
from svctrace.rules import kubeproxy_nft as kn
from svctrace.rules.nft_json import parse_nft_json

FIX = Path(__file__).parent.parent / "fixtures"
NFT_TEXT_DUMPS = sorted(FIX.glob("*/node2.nft.txt"))


# --- chain names (§2.4) ------------------------------------------------------------------------

@pytest.mark.parametrize("role,args,expected", [
    ("svc", ("svctrace-demo/web:http", "tcp"),
     "service-WAPHUU2J-svctrace-demo/web/tcp/http"),
    ("svc", ("ns1/svc1:p80", "TCP"), "service-ULMVA6XW-ns1/svc1/tcp/p80"),
    ("sep", ("ns1/svc1:p80", "tcp", "10.180.0.1:80"),
     "endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80"),
    ("sep", ("svctrace-demo/db:pg", "tcp", "10.244.1.21:5432"),
     "endpoint-ATUUOBUR-svctrace-demo/db/tcp/pg__10.244.1.21/5432"),
    ("affinity", ("svctrace-demo/db:pg", "tcp", "10.244.1.21:5432"),
     "affinity-ATUUOBUR-svctrace-demo/db/tcp/pg__10.244.1.21/5432"),
    ("ext", ("svctrace-demo/web-np:http", "tcp"),
     "external-7BKSYBM6-svctrace-demo/web-np/tcp/http"),
    ("fw", ("svctrace-pub/storefront:https", "tcp"),
     "firewall-Q35MHWFA-svctrace-pub/storefront/tcp/https"),
    ("svl", ("svctrace-pub/node-cache:redis", "tcp"),
     "local-KUHP3WKQ-svctrace-pub/node-cache/tcp/redis"),
    ("svc", ("svctrace-pub/dns-cache:dns-udp", "udp"),
     "service-J4MVPY4U-svctrace-pub/dns-cache/udp/dns-udp"),
], ids=lambda v: v.split("-", 1)[0] + "-" + v.split("-")[1] if isinstance(v, str)
    and re.match(r"^[a-z]+-[A-Z2-7]{8}-", v) else "")
def test_name_builders_match_the_real_capture(role: str, args: tuple[str, ...],
                                              expected: str) -> None:
    assert kn.chain_name(role, *args) == expected


@pytest.mark.parametrize("spn,proto,endpoint,path", [
    ("ns/web", "tcp", None, "ns/web/tcp/"),
    ("ns/web:http", "SCTP", None, "ns/web/sctp/http"),
    ("ns/web:http", "tcp", "[fd00::1]:80", "ns/web/tcp/http__fd00..1/80"),
    ("ns/web", "udp", "10.0.0.1:53", "ns/web/udp/__10.0.0.1/53"),
], ids=["unnamed-port", "sctp-upper", "ipv6-endpoint", "unnamed-with-endpoint"])
def test_chain_base_paths(spn: str, proto: str, endpoint: str | None, path: str) -> None:
    base = kn.chain_base(spn, proto, endpoint)
    assert base == f"{kn.name_hash(path)}-{path}"
    parsed = kn.parse_chain_name("service-" + base)
    assert parsed is not None and parsed.verified and parsed.spn == spn


def test_overlong_base_is_cut_and_not_trusted() -> None:
    base = kn.chain_base("ns/" + "n" * 300 + ":p", "tcp")
    assert len(base) == 240 and base.endswith("...")
    parsed = kn.parse_chain_name("service-" + base)
    assert parsed is None or not parsed.verified


def _per_service_names(path: Path) -> list[str]:
    """Every chain/set name defined or referenced (jump, goto, @set, map verdicts)."""
    return sorted(set(re.findall(r"(?<![\w-])@?([a-z]+-[A-Z2-7]{8}-[^\s,}]+)",
                                 path.read_text())))


@pytest.mark.parametrize("dump", NFT_TEXT_DUMPS, ids=lambda p: p.parent.name)
def test_every_per_service_name_in_the_captures_verifies(dump: Path) -> None:
    names = _per_service_names(dump)
    assert len(names) >= 8
    for name in names:
        parsed = kn.parse_chain_name(name)
        assert parsed is not None and parsed.verified, name
        endpoint = None
        if parsed.endpoint is not None:
            host, port = parsed.endpoint.rsplit("/", 1)
            endpoint = f"{host}:{port}"
        rebuilt = kn.chain_base(parsed.spn, parsed.protocol, endpoint)
        assert name.endswith("-" + rebuilt) and name.startswith(name[:-len(rebuilt)])


@pytest.mark.parametrize("name", [
    "services", "service-endpoints-check", "nodeport-endpoints-check", "firewall-check",
    "filter-prerouting-pre-dnat", "cluster-ips-check", "reject-chain", "masquerading",
    "service-ips", "no-endpoint-services", "service-abcdefgh-ns/n/tcp/p", "service-ABCDEFGH",
    "KUBE-SVC-HBHJTNRYANUCOOJF",
])
def test_fixed_and_foreign_names_are_not_service_chains(name: str) -> None:
    assert kn.parse_chain_name(name) is None


def test_tampered_hash_is_not_verified() -> None:
    parsed = kn.parse_chain_name("service-WAPHUU2K-svctrace-demo/web/tcp/http")
    assert parsed is not None and not parsed.verified


# --- every service port of the real captures, against the API objects ---------------------------

NODE = "node2"                       # the capture's nftables node
DEMO, PUB, LARGE = FIX / "rig-v1.36", FIX / "rig-v1.36-scenarios", FIX / "rig-v1.36-large"
_DEMO_API = [DEMO / "api" / "all.json", DEMO / "api" / "default-kubernetes.json"]
API = {DEMO: _DEMO_API, PUB: [*_DEMO_API, PUB / "api" / "all.json"],
       LARGE: [*_DEMO_API, LARGE / "api" / "all.json"]}
_MAPPED: dict[Path, list[ServiceChains]] = {}


def mapped(path: Path) -> list[ServiceChains]:
    """The service ports of a capture (JSON, or text where there is no JSON)."""
    if path.suffix == ".txt":
        return mapped_text(path)
    if path not in _MAPPED:
        _MAPPED[path] = kn.map_services(parse_nft_json(path.read_text(), str(path)))
    return _MAPPED[path]


def _api_items(rig: Path) -> list[dict]:
    return [i for f in API[rig] for i in json.loads(f.read_text())["items"]]


def _categorize(endpoints: list[dict], local_only: bool) -> list[dict]:
    """kube-proxy's CategorizeEndpoints (§0.1): ready ones, else serving+terminating ones."""
    pool = [e for e in endpoints if not local_only or e.get("nodeName") == NODE]
    cond = [e.get("conditions", {}) for e in pool]
    ready = [e for e, c in zip(pool, cond, strict=True) if c.get("ready", True)]
    return ready or [e for e, c in zip(pool, cond, strict=True)
                     if c.get("serving", True) and c.get("terminating", False)]


@functools.cache
def expected_ports(rig: Path) -> dict[str, dict]:
    """What kube-proxy must have programmed on node2 for every service port, from the API."""
    items = _api_items(rig)
    out: dict[str, dict] = {}
    for svc in (i for i in items if i["kind"] == "Service"):
        meta, spec = svc["metadata"], svc["spec"]
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") in (None, "None"):
            continue
        lb_ips = [i["ip"] for i in svc.get("status", {}).get("loadBalancer", {}).get(
            "ingress", []) if i.get("ip") and i.get("ipMode") != "Proxy"]
        slices = [s for s in items if s["kind"] == "EndpointSlice" and
                  s["metadata"]["namespace"] == meta["namespace"] and
                  s["metadata"]["labels"].get("kubernetes.io/service-name") == meta["name"]]
        for port in spec["ports"]:
            name = port.get("name") or ""
            spn = f"{meta['namespace']}/{meta['name']}" + (f":{name}" if name else "")
            eps = [(e, p["port"]) for s in slices for p in s.get("ports") or []
                   if (p.get("name") or "") == name and p["protocol"] == port["protocol"]
                   for e in s["endpoints"]]
            external = bool(port.get("nodePort") or lb_ips or spec.get("externalIPs"))
            etp_local = external and spec.get("externalTrafficPolicy") == "Local"
            itp_local = spec.get("internalTrafficPolicy") == "Local"

            def addresses(local: bool, eps: list = eps) -> list[str]:
                by_ep = {id(e): p for e, p in eps}
                chosen = _categorize([e for e, _ in eps], local)
                return sorted(f"{e['addresses'][0]}:{by_ep[id(e)]}" for e in chosen)

            cluster = addresses(False) if not itp_local or external else []
            local = addresses(True) if itp_local or etp_local else []
            out[spn] = {
                "protocol": port["protocol"].lower(), "port": port["port"],
                "clusterIPs": [spec["clusterIP"]], "nodePort": port.get("nodePort"),
                "externalIPs": spec.get("externalIPs", []), "loadBalancerIPs": lb_ips,
                "sourceRanges": spec.get("loadBalancerSourceRanges", []),
                "svc": cluster, "svl": local, "any": bool(addresses(False)),
                "affinity": (spec.get("sessionAffinityConfig", {}).get("clientIP", {}).get(
                    "timeoutSeconds", 10800) if spec.get("sessionAffinity") == "ClientIP"
                    else None),
            }
    return out


RIGS = [(DEMO / "node2.nft.json", DEMO), (PUB / "node2.nft.json", PUB),
        (LARGE / "node2.nft.txt", LARGE)]
PORT_CASES = [(dump, rig, spn) for dump, rig in RIGS for spn in sorted(expected_ports(rig))]


@pytest.mark.parametrize("dump,rig", RIGS, ids=[r.name for _, r in RIGS])
def test_exactly_the_api_service_ports_are_found(dump: Path, rig: Path) -> None:
    found = mapped(dump)
    assert sorted(s.spn for s in found) == sorted(expected_ports(rig))
    assert all(not s.warnings for s in found), [s.warnings for s in found if s.warnings]
    assert {s.mode for s in found} == {"nftables"} and {s.family for s in found} == {4}


@pytest.mark.parametrize("dump,rig,spn", PORT_CASES,
                         ids=[f"{r.name}:{spn}" for _, r, spn in PORT_CASES])
def test_service_port_matches_the_api(dump: Path, rig: Path, spn: str) -> None:
    want = expected_ports(rig)[spn]
    got = next(s for s in mapped(dump) if s.spn == spn)
    assert (got.protocol, got.port, list(got.cluster_ips)) == \
        (want["protocol"], want["port"], want["clusterIPs"])
    assert got.node_port == want["nodePort"]
    assert list(got.load_balancer_ips) == want["loadBalancerIPs"]
    assert list(got.external_ips) == want["externalIPs"]
    assert list(got.source_ranges) == want["sourceRanges"]
    assert got.affinity_seconds == want["affinity"]
    for via in ("svc", "svl"):
        eps = [e for e in got.endpoints if e.via == via]
        assert [e.address for e in eps] == want[via], via
        assert all(abs(e.probability - 1 / len(eps)) < 1e-12 for e in eps)
        assert bool(eps) == (got.chains[via] is not None)
    if want["any"]:
        assert not any(f.reason == "no endpoints" for f in got.filter)
    else:
        assert [(f.verdict, f.reason, f.address) for f in got.filter
                if f.chain == "no-endpoint-services"] == \
            [("REJECT", "no endpoints", want["clusterIPs"][0])]
        assert not got.endpoints and not any(got.chains.values())


# --- the two modes agree on what the cluster asked for --------------------------------------------

def _cluster_view(services: list[ServiceChains]) -> dict[str, tuple]:
    return {s.spn: (s.protocol, s.port, s.cluster_ips, s.node_port, s.affinity_seconds,
                    [(e.address, round(e.probability, 9)) for e in s.endpoints if e.via == "svc"])
            for s in services if s.spn is not None}


@pytest.mark.parametrize("rig", ["rig-v1.36", "rig-v1.36-scenarios", "rig-v1.36-large"])
def test_nft_node_and_iptables_node_agree_on_every_service_port(rig: str) -> None:
    """node1 (iptables mode) and node2 (nftables mode) watched the same API: every service
    port, cluster IP, node port, affinity and cluster-wide endpoint share must agree."""
    from svctrace.rules.iptables_save import parse_iptables_save
    from svctrace.rules.kubeproxy import map_services as map_iptables

    iptables = FIX / rig / "node1.iptables-save.txt"
    ipt = _cluster_view(map_iptables(parse_iptables_save(iptables.read_text(), "node1")))
    nft = _cluster_view(mapped_text(FIX / rig / "node2.nft.txt"))
    assert len(nft) >= 6 and nft == ipt


def mapped_text(path: Path) -> list[ServiceChains]:
    from svctrace.rules.sources import load_ruleset

    if path not in _MAPPED:
        ruleset = load_ruleset(str(path))
        assert ruleset.format == "nft-text"
        _MAPPED[path] = kn.map_services(ruleset)
    return _MAPPED[path]


def test_large_capture_maps_every_service_without_warnings() -> None:
    found = mapped_text(FIX / "rig-v1.36-large" / "node2.nft.txt")
    assert len(found) >= 300 and all(s.spn and not s.warnings for s in found)
    for s in found:
        for via in ("svc", "svl"):
            shares = [e.probability for e in s.endpoints if e.via == via]
            assert not shares or abs(sum(shares) - 1) < 1e-12


# --- particular behaviours of the 1.36 layout ---------------------------------------------------

def _port(spn: str) -> ServiceChains:
    return next(s for s in mapped(PUB / "node2.nft.json") if s.spn == spn)


@pytest.mark.parametrize("spn,expected", [
    ("svctrace-pub/storefront:https", [("external-", "", "external"),
                                        ("services", "ip daddr @cluster-ips ip saddr != "
                                         "10.244.0.0/16", "cluster IP")]),
    ("svctrace-pub/ledger:https", [("external-", "", "external"),
                                   ("services", "ip daddr @cluster-ips ip saddr != "
                                    "10.244.0.0/16", "cluster IP")]),
    ("svctrace-pub/edge:http", [("external-", "fib saddr type local", "local source"),
                                ("services", "ip daddr @cluster-ips ip saddr != 10.244.0.0/16",
                                 "cluster IP")]),
    ("svctrace-pub/billing:http", []),
], ids=["lb-etp-cluster", "external-ip", "etp-local", "no-endpoints"])
def test_masquerade_marks(spn: str, expected: list[tuple[str, str, str]]) -> None:
    got = [(m.chain if m.chain == "services" else m.chain.split("-")[0] + "-", m.condition,
            m.reason) for m in _port(spn).masquerade]
    assert got == expected


def test_hairpin_and_local_come_from_the_hairpin_set() -> None:
    eps = {e.address: (e.hairpin, e.local) for e in _port("svctrace-pub/search:grpc").endpoints}
    assert eps == {"10.244.1.53:9000": (False, False), "10.244.2.53:9000": (True, True),
                   "10.244.2.54:9000": (True, True)}


@pytest.mark.parametrize("spn,filters", [
    ("svctrace-pub/storefront:https",
     [("firewall-Q35MHWFA-svctrace-pub/storefront/tcp/https", "DROP", "firewall", "192.0.2.77",
       443, "ip saddr != 198.18.0.0/15 drop")]),
    ("svctrace-pub/edge:http",
     [("no-endpoint-nodeports", "DROP", "no local endpoints", None, 30880,
       'tcp . 30880 comment "svctrace-pub/edge:http" : drop')]),
    ("svctrace-pub/metrics:scrape",
     [("no-endpoint-services", "REJECT", "no endpoints", "10.96.161.109", 9090,
       '10.96.161.109 . tcp . 9090 comment "svctrace-pub/metrics:scrape" : goto reject-chain')]),
], ids=["source-ranges", "etp-local-nodeport", "no-endpoints"])
def test_filter_verdicts_with_the_lines_nft_printed(spn: str, filters: list[tuple]) -> None:
    got = [(f.chain, f.verdict, f.reason, f.address, f.port, f.rule.text)
           for f in _port(spn).filter]
    assert got == filters


@pytest.mark.parametrize("spn,entries", [
    ("svctrace-pub/storefront:https", [("clusterIP", "10.96.206.3", 443, False),
                                        ("loadBalancerIP", "192.0.2.77", 443, False),
                                        ("nodePort", None, 32443, False)]),
    ("svctrace-pub/ledger:https", [("clusterIP", "10.96.48.164", 443, False),
                                   ("externalIP", "198.51.100.20", 443, True)]),
    ("svctrace-pub/node-cache:redis", [("clusterIP", "10.96.70.164", 6379, False)]),
], ids=["lb", "external-ip-inferred", "itp-local"])
def test_entry_points(spn: str, entries: list[tuple]) -> None:
    got = sorted(((e.kind, e.address, e.port, e.kind_inferred) for e in _port(spn).entries),
                 key=str)
    assert got == sorted(entries, key=str)


def test_layout_markers() -> None:
    ruleset = parse_nft_json((PUB / "node2.nft.json").read_text(), "x")
    assert [kn.layout(t) for t in kn.kube_proxy_tables(ruleset)] == ["1.36", "1.36"]


# --- `svctrace rules` on nft dumps, end to end ----------------------------------------------------

REPO = Path(__file__).parents[2]


def svctrace(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}   # piped: never cropped
    return subprocess.run([sys.executable, "-m", "svctrace", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("rig", ["rig-v1.36", "rig-v1.36-scenarios"])
def test_rules_json_is_the_same_from_text_and_json_dumps(rig: str) -> None:
    docs = {}
    for form, suffix in (("nft-text", "txt"), ("nft-json", "json")):
        path = FIX / rig / f"node2.nft.{suffix}"
        done = svctrace("rules", "--rules", str(path), "-o", "json")
        assert done.returncode == 0, done.stderr
        docs[form] = json.loads(done.stdout)
        assert (docs[form]["schema"], docs[form]["mode"], docs[form]["format"],
                docs[form]["source"]) == ("svctrace/v1", "nftables", form, str(path))
    strip = {"source", "format"}
    text, js = ({k: v for k, v in d.items() if k not in strip} for d in docs.values())
    assert text == js and len(text["services"]) >= 6
    names = [(s["namespace"], s["name"], s["port"]) for s in text["services"]]
    assert names == sorted(names)


@pytest.mark.parametrize("dump", ["node2.nft.txt", "node2.nft.json"])
def test_rules_one_service(dump: str) -> None:
    done = svctrace("rules", "--rules", str(DEMO / dump), "svc/web", "-n", "svctrace-demo",
                    "-o", "json")
    assert done.returncode == 0, done.stderr
    (web,) = json.loads(done.stdout)["services"]
    assert (web["namespace"], web["name"], web["portName"], web["family"]) == \
        ("svctrace-demo", "web", "http", "IPv4")
    assert [(e["address"], e["probability"]) for e in web["endpoints"]] == [
        (f"10.244.{a}:8080", 0.25) for a in ("1.11", "1.12", "2.13", "2.14")]
    assert web["chains"]["svc"] == "service-WAPHUU2J-svctrace-demo/web/tcp/http"


@pytest.mark.parametrize("fmt,expected", [
    ("text", ["kube-proxy nftables mode, `nft list ruleset` text",
              "svctrace-pub/storefront:https", "map service-ips loadbalancer IP 192.0.2.77:443",
              "firewall-Q35MHWFA-svctrace-pub/storefront/tcp/https  allowed sources "
              "198.18.0.0/15; others are dropped here, before DNAT",
              "33.3% numgen map → DNAT 10.244.1.41:8443",
              "chain firewall-Q35MHWFA-svctrace-pub/storefront/tcp/https DROP"]),
    ("wide", ["map service-ips #", "192.0.2.77 . tcp . 443 : goto "
              "external-Q35MHWFA-svctrace-pub/storefront/tcp/https",
              "kube-proxy #1 meta l4proto tcp dnat ip to numgen random mod 3 map { 0 : "
              "10.244.1.41 . 8443, 1 : 10.244.1.42 . 8443, 2 : 10.244.2.41 . 8443 }",
              "ip saddr != 198.18.0.0/15 drop"]),
])
def test_rules_text_and_wide_show_nft_lines(fmt: str, expected: list[str]) -> None:
    done = svctrace("rules", "storefront", "--rules", str(PUB / "node2.nft.txt"), "-o", fmt)
    assert done.returncode == 0, done.stderr
    for line in expected:
        assert line in done.stdout, line


def test_rules_on_iptables_names_its_mode_too() -> None:
    done = svctrace("rules", "--rules", str(DEMO / "node1.iptables-save.txt"), "-o", "json")
    data = json.loads(done.stdout)
    assert (data["mode"], data["format"]) == ("iptables", "iptables-save")
    assert {s["family"] for s in data["services"]} == {"IPv4"}
    text = svctrace("rules", "--rules", str(DEMO / "node1.iptables-save.txt"))
    assert text.stdout.splitlines()[0].endswith("kube-proxy iptables mode, iptables-save output")


def test_rules_unknown_service_on_nft_exits_3() -> None:
    done = svctrace("rules", "nosuch", "-n", "svctrace-demo", "--rules",
                    str(DEMO / "node2.nft.json"))
    assert done.returncode == 3 and done.stdout == ""
    assert done.stderr.startswith("svctrace: error: ") and "Traceback" not in done.stderr


def test_rules_on_a_node_with_both_modes(tmp_path: Path) -> None:
    """`{ iptables-save; nft list ruleset; }` from a node that switched modes: every service
    port appears once per mode, each naming its mode; the document says "split"."""
    both = tmp_path / "both.txt"
    both.write_text((DEMO / "node1.iptables-save.txt").read_text() +
                    (DEMO / "node2.nft.txt").read_text())
    done = svctrace("rules", "--rules", str(both), "-o", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["mode"], data["format"]) == ("split", "iptables-save+nft-text")
    web = [(s["mode"], s["chains"]["svc"]) for s in data["services"] if s["name"] == "web"]
    assert web == [("iptables", "KUBE-SVC-HBHJTNRYANUCOOJF"),
                   ("nftables", "service-WAPHUU2J-svctrace-demo/web/tcp/http")]
    text = svctrace("rules", "web", "--rules", str(both))
    assert "rules of both kube-proxy modes" in text.stdout.splitlines()[0]
    assert "(iptables mode)" in text.stdout and "(nftables mode)" in text.stdout


# --- the two current layouts (hand-written dumps in kube-proxy's nft -f form) -------------------

LAYOUTS = {"1.34-1.35": FIX / "nft" / "eval-v1.35.nft", "1.36": FIX / "nft" / "eval-v1.36.nft"}


def mapped_any(path: Path) -> list[ServiceChains]:
    from svctrace.rules.sources import load_ruleset

    if path not in _MAPPED:
        _MAPPED[path] = kn.map_services(load_ruleset(str(path)))
    return _MAPPED[path]


def _view_of_both_layouts(s: ServiceChains) -> tuple:
    """What the cluster asked for, the same whatever the layout."""
    return (s.family, s.protocol, s.port, s.cluster_ips, s.external_ips, s.load_balancer_ips,
            s.node_port, s.source_ranges, s.affinity_seconds,
            {r: n for r, n in s.chains.items() if n},
            [(e.address, round(e.probability, 12), e.via, e.affinity) for e in s.endpoints],
            [(f.chain, f.verdict, f.reason, f.address, f.port) for f in s.filter],
            [(e.kind, e.address, e.port) for e in s.entries])


def test_both_layouts_map_to_the_same_service_ports() -> None:
    old, new = ({s.spn: _view_of_both_layouts(s) for s in mapped_any(p)}
                for p in LAYOUTS.values())
    assert len(old) >= 15 and old == new
    assert all(not s.warnings for p in LAYOUTS.values() for s in mapped_any(p))


@pytest.mark.parametrize("name,path", LAYOUTS.items(), ids=list(LAYOUTS))
def test_layout_is_told_from_the_dump(name: str, path: Path) -> None:
    from svctrace.rules.sources import load_ruleset

    tables = kn.kube_proxy_tables(load_ruleset(str(path)))   # type: ignore[arg-type]
    assert [t.family for t in tables] == ["ip", "ip6"]
    assert {kn.layout(t) for t in tables} == {name}


def test_1_35_layout_endpoint_chains_hairpin_and_masquerade() -> None:
    """≤ 1.35: a numgen vmap of `goto endpoint-…`, each endpoint chain masquerading the
    endpoint itself (local or not), the ClusterIP mark in the internal chain."""
    web = next(s for s in mapped_any(LAYOUTS["1.34-1.35"]) if s.spn == "eval/web:http")
    assert [(e.chain, e.hairpin, e.local) for e in web.endpoints] == [
        (kn.chain_name("sep", "eval/web:http", "tcp", e.address or ""), True, False)
        for e in web.endpoints]
    assert [(m.chain, m.condition, m.reason) for m in web.masquerade] == [
        ("external-TJCN7JB7-eval/web/tcp/http", "", "external"),
        ("service-TJCN7JB7-eval/web/tcp/http", "ip daddr 10.96.1.10 ip saddr != 10.244.0.0/16",
         "cluster IP")]
    for e in web.endpoints:      # the vmap rule that picks it, then its own chain's rules
        ip = (e.address or "").split(":")[0]
        assert [r.text for r in e.rules][1:] == [f"ip saddr {ip} jump mark-for-masquerade",
                                                 f"meta l4proto tcp dnat to {e.address}"]
        assert e.rules[0].text.startswith("numgen random mod 3 vmap {")


def test_1_36_layout_hairpin_only_for_this_nodes_endpoints() -> None:
    web = next(s for s in mapped_any(LAYOUTS["1.36"]) if s.spn == "eval/web:http")
    assert [(e.address, e.hairpin, e.local) for e in web.endpoints] == [
        ("10.244.1.11:8080", True, True), ("10.244.2.12:8080", False, False),
        ("10.244.2.13:8080", False, False)]
    assert {e.chain for e in web.endpoints} == {web.chains["svc"]}


def test_api_names_lb_ips_the_maps_cannot_tell_from_external_ips() -> None:
    lbopen = next(s for s in mapped_any(LAYOUTS["1.36"]) if s.spn == "eval/lbopen:http")
    assert (lbopen.external_ips, lbopen.load_balancer_ips) == (("192.0.2.51",), ())
    named = kn.with_load_balancer_ips(lbopen, {"192.0.2.51"})
    assert (named.external_ips, named.load_balancer_ips) == ((), ("192.0.2.51",))
    assert [(e.kind, e.kind_inferred) for e in named.entries if e.address == "192.0.2.51"] == \
        [("loadBalancerIP", False)]
    assert kn.with_load_balancer_ips(lbopen, {"192.0.2.99"}) is lbopen


# --- invariants over generated service ports ----------------------------------------------

def _nft_json_doc(n: int, port: int, vmap: bool) -> str:
    """One service port with `n` endpoints in kube-proxy's JSON shape: a `numgen` vmap of
    endpoint chains (≤ 1.35) or a `numgen` DNAT map (1.36)."""
    spn, eps = "ns/svc:p", [f"10.244.{i // 250}.{i % 250 + 1}:{port}" for i in range(n)]
    svc = kn.chain_name("svc", spn, "tcp")
    objs: list[dict] = [{"table": {"family": "ip", "name": "kube-proxy"}},
                        {"chain": {"family": "ip", "table": "kube-proxy", "name": svc}}]
    numgen = {"numgen": {"mode": "random", "mod": n, "offset": 0}}
    if vmap:
        chains = [kn.chain_name("sep", spn, "tcp", ep) for ep in eps]
        expr = [{"vmap": {"key": numgen, "data": {"set": [[i, {"goto": {"target": c}}]
                                                          for i, c in enumerate(chains)]}}}]
        for ep, chain in zip(eps, chains, strict=True):
            ip, p = ep.split(":")
            objs += [{"chain": {"family": "ip", "table": "kube-proxy", "name": chain}},
                     {"rule": {"family": "ip", "table": "kube-proxy", "chain": chain, "expr": [
                         {"dnat": {"addr": ip, "port": int(p)}}]}}]
    else:
        data = [[i, {"concat": ep.split(":")[:1] + [port]}] for i, ep in enumerate(eps)]
        expr = [{"dnat": {"family": "ip", "addr": {"map": {"key": numgen,
                                                           "data": {"set": data}}}}}]
    objs.append({"rule": {"family": "ip", "table": "kube-proxy", "chain": svc, "expr": expr}})
    return json.dumps({"nftables": objs})


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), port=st.integers(1, 65535), vmap=st.booleans())
def test_numgen_shares_are_exact_and_sum_to_one(n: int, port: int, vmap: bool) -> None:
    (s,) = kn.map_services(parse_nft_json(_nft_json_doc(n, port, vmap), "generated"))
    assert s.spn == "ns/svc:p" and not s.warnings
    assert [e.address for e in s.endpoints] == \
        [f"10.244.{i // 250}.{i % 250 + 1}:{port}" for i in range(n)]
    assert all(e.probability == 1 / n for e in s.endpoints)
    assert abs(sum(e.probability for e in s.endpoints) - 1) < 1e-9


@pytest.mark.parametrize("path", [DEMO / "node2.nft.json", PUB / "node2.nft.txt",
                                  *LAYOUTS.values()], ids=lambda p: p.parent.name + "/" + p.name)
def test_mapping_one_service_port_equals_the_full_mapping(path: Path) -> None:
    """map_services(only=…) (what explain uses) finds exactly what the full mapping finds."""
    from svctrace.render.rules import service_data
    from svctrace.rules.sources import load_ruleset

    ruleset = load_ruleset(str(path))
    full = kn.map_services(ruleset)       # type: ignore[arg-type]
    assert full
    for s in full:
        assert s.spn is not None
        one = [c for c in kn.map_services(ruleset, only={s.spn})  # type: ignore[arg-type]
               if c.family == s.family]
        assert [service_data(c) for c in one] == [service_data(s)]
