"""Helpers of the doctor tests (a module of its own: several test folders have a conftest)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "cluster"))

from clusterkit import FIXTURES, run_cli  # noqa: E402

SCENARIOS = FIXTURES / "rig-v1.36-scenarios"
SCENARIOS_NODE1 = (SCENARIOS / "node1.iptables-save.txt").read_bytes()
SCENARIOS_NODE2_NFT = (SCENARIOS / "node2.nft.txt").read_bytes()
PROXIES = {"node1": "kube-proxy-7xq2m", "node2": "kube-proxy-q9v4d"}
PUB, DEMO_NS = "svctrace-pub", "svctrace-demo"


def doctor_json(*args: str, kubeconfig: Path | None = None,
                status: tuple[int, ...] = (0, 1)) -> dict[str, Any]:
    """`svctrace doctor ARGS -o json` in a subprocess, its JSON document."""
    proc = run_cli("doctor", *args, "-o", "json", kubeconfig=kubeconfig)
    assert proc.returncode in status, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """ns/name → the Service's row."""
    return {f"{r['namespace']}/{r['name']}": r for r in doc["services"]}


def ids(row: dict[str, Any]) -> list[str]:
    return [f["id"] for f in row["findings"]]
