"""`svctrace explain … --rules FILE` on nftables-mode rules, as a user runs it (a real
subprocess; the real node2 captures; the objects captured with them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIX = Path(__file__).parent.parent / "fixtures"
DEMO, PUB = FIX / "rig-v1.36", FIX / "rig-v1.36-scenarios"
REPO = Path(__file__).parents[2]


def svctrace(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["SVCTRACE_NO_LOCAL_RULES"] = "1"
    return subprocess.run([sys.executable, "-m", "svctrace", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def explain(service: str, rules: Path, *extra: str, api: Path = DEMO / "api" / "all.json",
            ns: str = "svctrace-demo") -> subprocess.CompletedProcess[str]:
    return svctrace("explain", service, "-n", ns, "--snapshot", str(api), "--rules",
                    str(rules), *extra)


@pytest.mark.parametrize("dump,form", [("node2.nft.txt", "nft-text"),
                                       ("node2.nft.json", "nft-json")])
def test_explain_json_on_nft_rules(dump: str, form: str) -> None:
    done = explain("svc/web-np", DEMO / dump, "--node", "node2", "-o", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["rules"]["mode"], data["rules"]["format"]) == ("nftables", form)
    (port,) = data["rules"]["servicePorts"]
    assert port["chains"] == {"ext": "external-7BKSYBM6-svctrace-demo/web-np/tcp/http",
                              "fw": None,
                              "svc": "service-7BKSYBM6-svctrace-demo/web-np/tcp/http",
                              "svl": None}
    assert [e["probability"] for e in port["endpoints"]] == [0.25] * 4
    assert data["drift"] == [] and data["findings"] == []
    assert data["verdict"] == "traffic to 10.96.164.174:80 reaches 4 healthy backend(s) " \
        "(25%, 25%, 25%, 25%)"
    entries = {(t["entry"], t["client"]): t for t in data["traces"]}
    assert set(entries) == {("clusterIP", "pod"), ("clusterIP", "node"),
                            ("nodePort", "external")}
    node_port = entries[("nodePort", "external")]
    assert node_port["destination"] == "10.10.0.20:30080"
    assert {(o["verdict"], o["masquerade"]) for o in node_port["outcomes"]} == {("ACCEPT", True)}
    hooks = {h for t in data["traces"] for o in t["outcomes"] for h in o["hooks"]}
    assert hooks and all(s["table"] in ("ip kube-proxy",) for t in data["traces"]
                         for o in t["outcomes"] for s in o["path"])


def test_explain_text_names_the_mode_and_raw_shows_nft_lines() -> None:
    done = explain("svc/web", DEMO / "node2.nft.txt", "--node", "node2", "--raw")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "mode: kube-proxy nftables mode (read from `nft list ruleset` text)" in out
    assert "10.96.219.159 . tcp . 80 : goto service-WAPHUU2J-svctrace-demo/web/tcp/http" in out
    dnat = ("meta l4proto tcp dnat ip to numgen random mod 4 map { 0 : 10.244.1.11 . 8080, "
            "1 : 10.244.1.12 . 8080, 2 : 10.244.2.13 . 8080, 3 : 10.244.2.14 . 8080 }")
    assert out.count(dnat) == 1                    # one rule for all four endpoints
    assert "reaches 4 healthy backend(s)" in out


def test_explain_finds_the_node_from_nodeport_ips() -> None:
    done = explain("svc/web", DEMO / "node2.nft.json", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rules"]["source"][1].startswith(
        "node: node2 (addresses 10.10.0.20), assumed because the rules name its address")


def test_explain_fails_at_policy_for_etp_local_without_local_endpoint() -> None:
    done = explain("svc/edge", PUB / "node2.nft.txt", "--node", "node2", "-o", "json",
                   api=PUB / "api" / "all.json", ns="svctrace-pub")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["verdict"].startswith("fails at the policy")
    (node_port,) = [t for t in data["traces"] if t["entry"] == "nodePort"]
    assert {o["verdict"] for o in node_port["outcomes"]} == {"DROP"}


def test_explain_mode_split(tmp_path: Path) -> None:
    """A node with both modes' rules: RULES-MODE-SPLIT names both; the nft chains are shown
    and every packet meets both rule sets (kube-proxy's nft chains and the iptables ones)."""
    both = tmp_path / "both.txt"
    both.write_text((DEMO / "node1.iptables-save.txt").read_text() +
                    (DEMO / "node2.nft.txt").read_text())
    done = explain("svc/web", both, "--node", "node2", "-o", "json")
    data = json.loads(done.stdout)
    assert (data["rules"]["mode"], data["rules"]["format"]) == ("nftables",
                                                                "iptables-save+nft-text")
    (split,) = [f for f in data["findings"] if f["id"] == "RULES-MODE-SPLIT"]
    assert split["severity"] == "warning"
    assert any("nft table ip kube-proxy" in e for e in split["evidence"])
    assert any("KUBE-SERVICES" in e for e in split["evidence"])
    for trace in data["traces"]:
        for outcome in trace["outcomes"]:
            tables = {s["table"] for s in outcome["path"]}
            assert "ip kube-proxy" in tables and tables & {"filter", "nat"}
    assert done.returncode == 0, done.stderr
