"""`sudo svctrace explain svc/web` on a node in nftables mode: run *inside* a netns holding
kube-proxy's real nft tables (node2's capture, loaded with nft -f), without --rules. explain
must read kube-proxy's tables itself, name what it read and the mode, trace the Service to
its 4 backends through them, and change nothing. With node1's iptables rules left beside them
(a mode switch that left the old mode's rules behind) it must also warn RULES-MODE-SPLIT and
trace through both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nftforms import require_nft
from nodeexec import NodeNetns

pytestmark = pytest.mark.kernel

FIX = Path(__file__).resolve().parent.parent / "fixtures"
KP_NFT = (FIX / "rig-v1.36" / "node2.nft.txt").read_text()
KP_IPTABLES = (FIX / "rig-v1.36" / "node1.iptables-save.txt").read_text()
EXPLAIN_WEB = ("explain", "svc/web", "-n", "svctrace-demo", "--snapshot",
               str(FIX / "rig-v1.36" / "api" / "all.json"), "-o", "json")
WEB = {f"10.244.{n}:8080" for n in ("1.11", "1.12", "2.13", "2.14")}
NODES = {"nftables": (), "mode-split": ("legacy",)}      # id → iptables backends beside nft


@pytest.fixture(scope="module", params=list(NODES))
def explained(request: pytest.FixtureRequest) -> tuple[str, dict, list[str], str]:
    require_nft()
    with NodeNetns(f"kpx{list(NODES).index(request.param)}") as ns:
        ns.must(["nft", "-f", "-"], input=KP_NFT)
        for backend in NODES[request.param]:
            ns.load(KP_IPTABLES, backend)
        before = (ns.state(), ns.must(["nft", "list", "ruleset"]))
        proc = ns.svctrace(*EXPLAIN_WEB)
        after = (ns.state(), ns.must(["nft", "list", "ruleset"]))
    assert proc.returncode == 0, proc.stderr
    changes = before[0].differences(after[0])
    if before[1] != after[1]:
        changes.append("nft list ruleset changed")
    return request.param, json.loads(proc.stdout), changes, proc.stderr


def test_reads_kube_proxys_tables_itself(explained: tuple[str, dict, list[str], str]) -> None:
    node, doc, _, _ = explained
    source = doc["rules"]["source"][0]
    assert source.startswith("rules: ") and source.endswith(
        "nft on this node (tables ip kube-proxy, ip6 kube-proxy)")
    assert ("iptables-legacy-save on this node (legacy backend)" in source) == \
        (node == "mode-split")
    assert doc["rules"]["mode"] == "nftables"
    (port,) = doc["rules"]["servicePorts"]
    assert port["chains"]["svc"] == "service-WAPHUU2J-svctrace-demo/web/tcp/http"


def test_traces_reach_the_four_backends(explained: tuple[str, dict, list[str], str]) -> None:
    _, doc, _, _ = explained
    assert doc["traces"]
    for trace in doc["traces"]:
        assert {o["destination"] for o in trace["outcomes"]} == WEB
        assert {round(o["probability"], 9) for o in trace["outcomes"]} == {0.25}
    assert doc["drift"] == []


def test_mode_split_is_reported(explained: tuple[str, dict, list[str], str]) -> None:
    node, doc, _, _ = explained
    ids = [f["id"] for f in doc["findings"]]
    assert ("RULES-MODE-SPLIT" in ids) == (node == "mode-split")
    if node == "mode-split":
        (split,) = [f for f in doc["findings"] if f["id"] == "RULES-MODE-SPLIT"]
        assert split["severity"] == "warning"
        tables = {s["table"] for t in doc["traces"] for o in t["outcomes"] for s in o["path"]}
        assert "ip kube-proxy" in tables and tables & {"nat", "filter"}


def test_nothing_is_created_or_changed(explained: tuple[str, dict, list[str], str]) -> None:
    _, _, changes, _ = explained
    assert changes == []
