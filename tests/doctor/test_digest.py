"""A node's rules reduced to a digest (`svctrace rules --digest`), judged on the real captures
of kube-proxy v1.36 (rig-v1.36*): shares, names without comments, and no drift between each
capture and the API objects it was captured for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from clusterkit import FIXTURES, error_lines, run_cli

from svctrace.cluster.snapshot import read_snapshot
from svctrace.diagnose.digest import api_names, node_digest
from svctrace.diagnose.expect import expected_ports
from svctrace.explain.doctor import DoctorOptions, run_doctor
from svctrace.rules.sources import load_ruleset

CAPTURES = [
    ("demo", FIXTURES / "rig-v1.36" / "api" / "all.json",
     FIXTURES / "rig-v1.36" / "node1.iptables-save.txt"),
    ("scenarios", FIXTURES / "rig-v1.36-scenarios" / "api" / "all.json",
     FIXTURES / "rig-v1.36-scenarios" / "node1.iptables-save.txt"),
    ("large-full-resync", FIXTURES / "rig-v1.36-large" / "api" / "all.json",
     FIXTURES / "rig-v1.36-large" / "node1.iptables-save.txt"),
    ("large-after-growth", FIXTURES / "rig-v1.36-large" / "api" / "all.json",
     FIXTURES / "rig-v1.36-large" / "node1.iptables-save.after-growth.txt"),
]
IDS = [c[0] for c in CAPTURES]


@pytest.mark.parametrize("api,rules", [c[1:] for c in CAPTURES], ids=IDS)
def test_shares_of_every_chain_add_up_to_one(api: Path, rules: Path) -> None:
    digest = node_digest(load_ruleset(str(rules)), "node1")
    assert digest["schema"] == "svctrace/v1" and digest["kind"] == "digest"
    for key, port in digest["servicePorts"].items():
        for chain in ("endpoints", "localEndpoints"):
            if port[chain]:
                assert sum(e["share"] for e in port[chain]) == pytest.approx(1, abs=1e-5), key
        assert not (port["reject"] and port["entries"]), key
        assert port["dangling"] == [], key


@pytest.mark.parametrize("api,rules", [c[1:] for c in CAPTURES], ids=IDS)
def test_each_capture_agrees_with_the_api_it_was_captured_for(api: Path, rules: Path) -> None:
    report = run_doctor(DoctorOptions(snapshot=str(api), rules=(("node1", str(rules)),)))
    [node] = report.nodes
    assert node.read and node.drift == {} and node.unknown == [], (node.drift, node.unknown)
    assert not any(f.id.startswith("RULES-") for r in report.rows for f in r.findings)
    assert node.service_ports >= len([r for r in report.rows if r.type != "ExternalName"])


def test_the_large_capture_has_a_port_for_every_service_of_the_api() -> None:
    _, api, rules = CAPTURES[2]
    digest = node_digest(load_ruleset(str(rules)), "node1")
    names = {json.loads(api.read_text())["items"][0]["metadata"]["namespace"]}
    scale = [k for k in digest["servicePorts"] if k.split("/")[0] in names]
    assert len(scale) == 300
    assert all(len(digest["servicePorts"][k]["endpoints"]) == 4 for k in scale)


def test_rules_digest_command_prints_the_digest(tmp_path: Path) -> None:
    rules = CAPTURES[1][2]
    proc = run_cli("rules", "--rules", str(rules), "--digest", "--node", "node1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == node_digest(load_ruleset(str(rules)), "node1")
    piped = run_cli("rules", "--rules", "-", "--digest", stdin=rules.read_text())
    assert json.loads(piped.stdout)["servicePorts"] == json.loads(proc.stdout)["servicePorts"]


@pytest.mark.parametrize("args,message", [
    (["--node", "node1"], "--node NAME goes with --digest"),
    (["svc/web", "--digest"], "--digest covers every Service"),
], ids=["node-without-digest", "service-with-digest"])
def test_rules_digest_usage(args: list[str], message: str) -> None:
    proc = run_cli("rules", "--rules", str(CAPTURES[0][2]), *args)
    assert proc.returncode == 2
    assert message in error_lines(proc.stderr)[0]


def _digest_keys(doc: dict[str, Any]) -> list[str]:
    return sorted(doc["servicePorts"])


def test_ports_without_comments_are_named_by_the_api(tmp_path: Path) -> None:
    # strip every comment, as kube-proxy does above 1,000 endpoints in places: the service
    # port is then known only by its chain hash, which the API's names resolve
    rules = CAPTURES[0][2].read_text()
    bare = re.sub(r' -m comment --comment (?:"[^"]*"|\S+)', "", rules)
    ruleset = load_ruleset(str(_write(tmp_path / "bare.txt", bare)))
    unnamed = node_digest(ruleset, "node1")
    assert all(k.startswith("*-") for k in _digest_keys(unnamed))
    state = read_snapshot(str(CAPTURES[0][1]))
    expected = [p for s in state.services for p in expected_ports(
        s, [x for x in state.slices if x.service_name == s.name], None, "")]
    named = node_digest(ruleset, "node1", api_names(expected))
    full = node_digest(load_ruleset(str(CAPTURES[0][2])), "node1")
    # a REJECT rule (no endpoints) has no chain of its own: only its comment names it
    chained = {k: v for k, v in full["servicePorts"].items()
               if k.split("/")[0] != "default" and (v["entries"] or v["endpoints"])}
    assert {k: v for k, v in named["servicePorts"].items() if not k.startswith("*-")} == chained
    assert len(chained) == 4


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
