"""The real CLI in a subprocess: `python -m svctrace explain|snapshot …`. Exit statuses,
one-line errors without tracebacks, and live, snapshot and `svctrace snapshot` output giving
the same JSON for the same objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from apiserver import FakeApiServer
from clusterkit import DEMO, DEMO_NS, PUB, SCENARIOS, run_cli

ALL_PUB = ["billing", "dns-cache", "edge", "inventory", "ledger", "mail", "metrics",
           "node-cache", "orders", "queue", "search", "sessions", "storefront"]


def _json(proc) -> dict:
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout)


def test_live_and_snapshot_give_the_same_json(api: FakeApiServer, kubeconfig: Path,
                                              tmp_path: Path) -> None:
    """One `svctrace snapshot`, then every Service three ways: live, from the kubectl-format
    fixture, and from the snapshot svctrace wrote."""
    snap = tmp_path / "pub.json"
    assert run_cli("snapshot", "-f", str(snap), kubeconfig=kubeconfig).returncode == 0
    for name in ALL_PUB:
        live = _json(run_cli("explain", name, "-o", "json", kubeconfig=kubeconfig))
        kubectl = _json(run_cli("explain", name, "-o", "json", "--snapshot", str(SCENARIOS)))
        ours = _json(run_cli("explain", name, "-o", "json", "--snapshot", str(snap)))
        assert live == kubectl == ours, name


def test_json_shape(tmp_path: Path) -> None:
    data = _json(run_cli("explain", "svc/orders", "-o", "json", "--snapshot", str(SCENARIOS)))
    assert data["schema"] == "svctrace/v1"
    assert {"service", "pods", "endpoints", "findings"} <= set(data)
    assert [f["id"] for f in data["findings"]] == ["SVC-ENDPOINT-TERMINATING",
                                                   "SVC-SINGLE-ENDPOINT"]
    assert set(data["findings"][0]) == {"id", "severity", "message", "evidence", "command"}
    assert [p["name"] for p in data["pods"]] == sorted(p["name"] for p in data["pods"])
    assert data["service"]["ports"][0]["servicePortName"] == "svctrace-pub/orders:http"
    terminating = [e for e in data["endpoints"] if e["terminating"]]
    assert [(e["pod"], e["ready"], e["serving"]) for e in terminating] == [
        ("orders-59d7c8b6f-p4n7j", False, True)]


def test_yaml_output_is_the_json_document() -> None:
    as_yaml = run_cli("explain", "edge", "-o", "yaml", "--snapshot", str(SCENARIOS))
    as_json = run_cli("explain", "edge", "-o", "json", "--snapshot", str(SCENARIOS))
    assert yaml.safe_load(as_yaml.stdout) == json.loads(as_json.stdout)


@pytest.mark.parametrize("ref", ["svc/edge", "service/edge", "services/edge", "edge"])
def test_service_reference_forms(ref: str) -> None:
    proc = run_cli("explain", ref, "-o", "json", "--snapshot", str(SCENARIOS))
    assert _json(proc)["service"]["name"] == "edge"


@pytest.mark.parametrize("name,fail_on,status", [
    ("billing", "error", 1), ("edge", "error", 0), ("edge", "warning", 1),
    ("orders", "warning", 0), ("orders", "info", 1), ("billing", "none", 0),
    ("search", "info", 0),
], ids=lambda v: str(v))
def test_fail_on(name: str, fail_on: str, status: int) -> None:
    proc = run_cli("explain", name, "--snapshot", str(SCENARIOS), "--fail-on", fail_on,
                   "-o", "json")
    assert proc.returncode == status


def test_text_output_and_skipped_rules_note() -> None:
    proc = run_cli("explain", "billing", "--snapshot", str(SCENARIOS), "--color", "never")
    assert proc.returncode == 1
    assert "SVC-NO-MATCHING-PODS" in proc.stdout and "tier=backend" in proc.stdout
    assert "\x1b[" not in proc.stdout
    assert "rule steps skipped" in proc.stderr and "--rules" in proc.stderr
    quiet = run_cli("explain", "billing", "--snapshot", str(SCENARIOS), "-q")
    assert quiet.stderr == "" and "SVC-NO-MATCHING-PODS" in quiet.stdout


def test_wide_output_has_more_columns() -> None:
    wide = run_cli("explain", "edge", "--snapshot", str(SCENARIOS), "-o", "wide")
    assert "WORKLOAD" in wide.stdout and "HINTS" in wide.stdout
    assert "edge-66c8f7d9b5-zj4tf" in wide.stdout


def test_node_side_options_are_declared() -> None:
    proc = run_cli("explain", "--help")
    assert proc.returncode == 0
    for option in ("--rules", "--node", "--local-ip", "--probe", "--raw", "--entry", "--src",
                   "--from", "--request-timeout", "--fail-on", "--snapshot", "--context"):
        assert option in proc.stdout, option


BAD = [
    # (id, args, exit status, words in the error line)
    ("unknown-service", ["explain", "nosuch", "--snapshot", str(SCENARIOS)], 3, "not found"),
    ("near-name", ["explain", "biling", "-n", PUB, "--snapshot", str(SCENARIOS)], 3,
     "not found"),
    ("not-a-service", ["explain", "pod/web", "--snapshot", str(DEMO)], 2, "not a Service"),
    ("bad-output", ["explain", "web", "-o", "table", "--snapshot", str(DEMO)], 2,
     "output format"),
    ("bad-fail-on", ["explain", "web", "--fail-on", "fatal", "--snapshot", str(DEMO)], 2,
     "--fail-on"),
    ("bad-timeout", ["explain", "web", "--request-timeout", "soon", "--snapshot", str(DEMO)], 2,
     "--request-timeout"),
    ("missing-snapshot", ["explain", "web", "--snapshot", "/nonexistent.json"], 2,
     "/nonexistent.json"),
    ("snapshot-A-and-names", ["snapshot", "-A", "-f", "-", "web"], 2, "-A"),
]


@pytest.mark.parametrize("args,status,words", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_input(args: list[str], status: int, words: str, tmp_path: Path) -> None:
    proc = run_cli(*args, home=tmp_path)
    assert proc.returncode == status, proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("svctrace: error: ") and words in first, proc.stderr


def test_malformed_snapshot_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: List\nitems:\n  - kind: Service\n    metadata: {name: x}\n"
                   "    spec: {ports: [{port: eighty}]}\n")
    proc = run_cli("explain", "x", "--snapshot", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"svctrace: error: {bad}")


@pytest.mark.parametrize("fault,status,words", [
    ("401", 4, "401"), ("403", 4, "cannot get services"), ("500", 4, "500"),
    ("404-service", 3, "not found"), ("slow", 4, "did not answer"),
])
def test_live_failures_are_one_line(api: FakeApiServer, kubeconfig: Path, fault: str,
                                    status: int, words: str) -> None:
    args = ["explain", "edge"]
    if fault == "slow":
        api.slow("/services/edge", 3.0)
        args += ["--request-timeout", "300ms"]
    elif fault == "404-service":
        args = ["explain", "egde"]
    else:
        api.fail("/services/", int(fault))
    proc = run_cli(*args, kubeconfig=kubeconfig)
    assert proc.returncode == status
    assert proc.stderr.startswith("svctrace: error: ") and words in proc.stderr


def test_no_kubeconfig_is_exit_4(tmp_path: Path) -> None:
    proc = run_cli("explain", "web", home=tmp_path)
    assert proc.returncode == 4 and "no kubeconfig found" in proc.stderr


def test_context_flag_and_kubeconfig_flag(api: FakeApiServer, tmp_path: Path) -> None:
    kc = api.kubeconfig(tmp_path / "other", namespace=DEMO_NS, context="demo")
    proc = run_cli("explain", "web", "--kubeconfig", str(kc), "--context", "demo", "-o", "json")
    assert proc.returncode == 0 and _json(proc)["service"]["namespace"] == DEMO_NS
    bad = run_cli("explain", "web", "--kubeconfig", str(kc), "--context", "prod")
    assert bad.returncode == 4 and 'context "prod"' in bad.stderr


def test_snapshot_of_named_services_as_yaml(api: FakeApiServer, kubeconfig: Path,
                                            tmp_path: Path) -> None:
    out = tmp_path / "edge.yaml"
    proc = run_cli("snapshot", "svc/edge", "-f", str(out), kubeconfig=kubeconfig)
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(out.read_text())
    kinds = [i["kind"] for i in doc["items"]]
    assert kinds == ["Service"] + ["EndpointSlice"] + ["Pod"] * 3 + ["Node"] * 2
    assert doc["svctrace"]["clusterVersion"] == "v1.36.2"
    assert doc["svctrace"]["namespace"] == PUB and doc["svctrace"]["capturedAt"].endswith("Z")
    explained = run_cli("explain", "edge", "--snapshot", str(out), "-o", "json")
    assert [f["id"] for f in _json(explained)["findings"]] == [
        "SVC-ETP-LOCAL-NO-LOCAL-ENDPOINTS", "SVC-PODS-NOT-READY"]


def test_snapshot_to_stdout_all_namespaces(api: FakeApiServer, kubeconfig: Path) -> None:
    proc = run_cli("snapshot", "-A", "-f", "-", kubeconfig=kubeconfig)
    assert proc.returncode == 0
    doc = json.loads(proc.stdout)
    spaces = {i["metadata"].get("namespace") for i in doc["items"] if i["kind"] == "Service"}
    assert spaces == {PUB, DEMO_NS} and doc["svctrace"]["namespace"] is None
    assert all(i.get("apiVersion") and i.get("kind") for i in doc["items"])


def test_snapshot_without_node_permission(api: FakeApiServer, kubeconfig: Path) -> None:
    api.fail("^/api/v1/nodes", 403)
    proc = run_cli("snapshot", "-f", "-", kubeconfig=kubeconfig)
    assert proc.returncode == 0 and "nodes are not readable" in proc.stderr
    assert not [i for i in json.loads(proc.stdout)["items"] if i["kind"] == "Node"]
