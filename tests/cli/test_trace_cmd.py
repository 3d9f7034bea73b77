"""`svctrace trace` end to end: the JSON contract and its Kubernetes-aware fields."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

FIX = Path(__file__).parent.parent / "fixtures"


def trace_json(rules: Path, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "svctrace", "trace", "--rules", str(rules),
                           *args, "-o", "json"], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=60, check=True)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("folder,dst,spn,n", [
    ("rig-v1.36", "10.96.219.159:80", "svctrace-demo/web:http", 4),
    ("rig-v1.36-large", "10.96.246.175:80", "svctrace-scale/scale-041:http", 4),
    ("rig-v1.36-scenarios", "10.96.242.133:5353", "svctrace-pub/dns-cache:dns-udp", 3),
])
def test_json_contract_and_service_port(folder: str, dst: str, spn: str, n: int) -> None:
    proto = ["--proto", "udp"] if "5353" in dst else []
    doc = trace_json(FIX / folder / "node1.iptables-save.txt", "--dst", dst, *proto)
    assert doc["schema"] == "svctrace/v1"
    assert doc["packet"]["scapy"] and doc["packet"]["destination"] == dst.split(":")[0]
    outcomes = doc["outcomes"]
    assert len(outcomes) == n
    assert {o["servicePort"] for o in outcomes} == {spn}
    assert sum(o["probability"] for o in outcomes) == pytest.approx(1.0)
    for o in outcomes:
        assert set(o) >= {"probability", "verdict", "destination", "masquerade", "path",
                          "assumptions"}
        assert all(set(s) >= {"table", "chain", "rule", "text"} for s in o["path"])


def test_service_port_without_any_comment(tmp_path: Path) -> None:
    text = (FIX / "rig-v1.36/node1.iptables-save.txt").read_text()
    stripped = re.sub(r' -m comment --comment ("(?:[^"\\]|\\.)*"|\S+)', "", text)
    (tmp_path / "r.txt").write_text(stripped)
    doc = trace_json(tmp_path / "r.txt", "--dst", "10.96.219.159:80")
    assert {o["servicePort"] for o in doc["outcomes"]} == \
        {"*-HBHJTNRYANUCOOJF"}
