"""`doctor --nodes`: every node's rules read through its kube-proxy pod (the API's exec over a
websocket, real HTTPS), reduced to a digest and compared with what the API says that node
should have. The rules are real captures (rig-v1.36-scenarios); drift is made by changing the
API objects the rules were captured for, never by editing the rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from apiserver import ExecScript, FakeApiServer
from clusterkit import find, run_cli
from doctorkit import (
    DEMO_NS,
    PROXIES,
    PUB,
    SCENARIOS,
    SCENARIOS_NODE1,
    doctor_json,
    ids,
    interrupted,
    rows,
)


def nodes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in doc["nodes"]}


def finding(row: dict[str, Any], fid: str) -> dict[str, Any]:
    return next(f for f in row["findings"] if f["id"] == fid)


def test_every_node_is_read_and_the_real_captures_agree_with_the_api(
        api: FakeApiServer, kubeconfig: Path) -> None:
    doc = doctor_json("-A", "--all", "--nodes", "all", kubeconfig=kubeconfig)
    node1, node2 = nodes(doc)["node1"], nodes(doc)["node2"]
    assert node1["read"] and node1["mode"] == "iptables (nft)"
    assert node1["drift"] == {} and node1["unknownServicePorts"] == []
    assert node1["servicePorts"] > 15
    # node2 runs nftables mode: iptables-save shows no KUBE chains there, nft -j is read
    assert node2["read"] and node2["mode"] == "nftables", node2
    assert node2["drift"] == {} and node2["unknownServicePorts"] == []
    assert node2["servicePorts"] == node1["servicePorts"]
    assert not any(f["id"].startswith("RULES-") for r in doc["services"] for f in r["findings"])
    assert rows(doc)[f"{PUB}/search"]["verdict"].endswith("rules agree on 2 node(s)")
    assert doc["summary"]["nodes"] == {"read": 2, "failed": 0, "skipped": 0}
    ran = sorted((r.path.split("/")[-2], " ".join(r.query_all("command")))
                 for r in api.exec_requests)
    assert ran == sorted([(PROXIES["node1"], "iptables-save"),
                          (PROXIES["node2"], "iptables-save"),
                          (PROXIES["node2"], "nft -j list ruleset")])


def _drop_endpoint(items: list[dict[str, Any]], slice_name: str, address: str) -> None:
    s = find(items, "EndpointSlice", slice_name, PUB)
    s["endpoints"] = [e for e in s["endpoints"] if e["addresses"] != [address]]


def _add_endpoint(items: list[dict[str, Any]], slice_name: str, address: str) -> None:
    s = find(items, "EndpointSlice", slice_name, PUB)
    extra = copy.deepcopy(s["endpoints"][0])
    extra["addresses"] = [address]
    extra.pop("targetRef", None)
    s["endpoints"].append(extra)


def _delete_service(items: list[dict[str, Any]], name: str) -> None:
    items[:] = [i for i in items if not (i["metadata"].get("namespace") == PUB and (
        (i["kind"] == "Service" and i["metadata"]["name"] == name) or
        (i["kind"] == "EndpointSlice" and
         i["metadata"]["labels"].get("kubernetes.io/service-name") == name)))]


DRIFT = [
    ("stale-endpoint", lambda items: _drop_endpoint(items, "ledger-vhfzg", "10.244.1.57"),
     "ledger", "RULES-STALE-ENDPOINT", ["10.244.1.57:8443"]),
    ("missing-endpoint", lambda items: _add_endpoint(items, "ledger-vhfzg", "10.244.1.99"),
     "ledger", "RULES-MISSING-ENDPOINT", ["10.244.1.99:8443"]),
    ("missing-endpoint-two-ports", lambda items: _add_endpoint(items, "search-n4vrk",
                                                               "10.244.1.98"),
     "search", "RULES-MISSING-ENDPOINT", ["10.244.1.98:8080", "10.244.1.98:9000"]),
]


def served(request: pytest.FixtureRequest) -> Path:
    """Start the API server (after the test changed `items`); its kubeconfig."""
    path: Path = request.getfixturevalue("kubeconfig")
    return path


@pytest.mark.parametrize("change,service,fid,evidence", [d[1:] for d in DRIFT],
                         ids=[d[0] for d in DRIFT])
def test_drift_between_the_api_and_a_node(items: list[dict[str, Any]],
                                          request: pytest.FixtureRequest, change: Any,
                                          service: str, fid: str, evidence: list[str]) -> None:
    change(items)
    doc = doctor_json("-n", PUB, "--nodes", "node1", kubeconfig=served(request))
    row = rows(doc)[f"{PUB}/{service}"]
    found = finding(row, fid)
    assert found["severity"] == "error"
    assert found["message"].endswith("on 1/1 node(s): node1")
    assert sorted(e.rsplit(": ", 1)[1] for e in found["evidence"]) == evidence
    assert all(e.startswith(f"node1: {PUB}/{service}:") for e in found["evidence"])
    assert row["verdict"].startswith("fails at the rules: ")
    assert row["driftNodes"] == ["node1"]
    assert row["explain"] == f"svctrace explain svc/{service} -n {PUB} --node node1"
    assert nodes(doc)["node1"]["drift"] == {fid: len(evidence)}
    others = [r for r in doc["services"] if r["name"] != service]
    assert not any(f["id"].startswith("RULES-") for r in others for f in r["findings"])


def test_rules_for_a_service_the_api_no_longer_has(items: list[dict[str, Any]],
                                                   request: pytest.FixtureRequest) -> None:
    _delete_service(items, "ledger")
    kubeconfig = served(request)
    doc = doctor_json("-A", "--nodes", "node1", kubeconfig=kubeconfig)
    node1 = nodes(doc)["node1"]
    assert node1["unknownServicePorts"] == [f"{PUB}/ledger:https/tcp"]
    assert [f["id"] for f in node1["findings"]] == ["RULES-UNKNOWN-SERVICE"]
    # with -n another namespace, rules of svctrace-pub are not judged
    other = doctor_json("-n", DEMO_NS, "--nodes", "node1", kubeconfig=kubeconfig)
    assert nodes(other)["node1"]["unknownServicePorts"] == []


def test_traffic_policy_local_expects_different_endpoints_per_node(
        api: FakeApiServer, kubeconfig: Path) -> None:
    # node2 answers with node1's rules: right for the Services that send anywhere, wrong for
    # those whose endpoints depend on the node (eTP=Local edge, iTP=Local node-cache)
    api.on_exec("kube-system", PROXIES["node2"], ExecScript(stdout=SCENARIOS_NODE1))
    doc = doctor_json("-n", PUB, "--nodes", "all", kubeconfig=kubeconfig)
    got = rows(doc)
    edge = finding(got[f"{PUB}/edge"], "RULES-STALE-ENDPOINT")
    assert edge["message"].endswith("on 1/2 node(s): node2")
    assert sorted(edge["evidence"]) == [f"node2: {PUB}/edge:http: 10.244.1.44:8080 (node-local)",
                                        f"node2: {PUB}/edge:http: 10.244.1.45:8080 (node-local)"]
    cache = finding(got[f"{PUB}/node-cache"], "RULES-SERVICE-MISSING")
    assert cache["message"].endswith("on 1/2 node(s): node2")
    drifting = {r["name"] for r in doc["services"]
                if any(f["id"].startswith("RULES-") for f in r["findings"])}
    assert drifting == {"edge", "node-cache"}


def _forbid(api: FakeApiServer) -> None:
    api.fail(rf"/pods/{PROXIES['node1']}/exec$", 403)


def _stall(api: FakeApiServer) -> None:
    api.on_exec("kube-system", PROXIES["node1"],
                ExecScript(stdout=SCENARIOS_NODE1[:2000], stall=8.0))


def _hang_up(api: FakeApiServer) -> None:
    api.on_exec("kube-system", PROXIES["node1"],
                ExecScript(stdout=SCENARIOS_NODE1[:3000], chunk=1000, hang_up=True))


def _fails(api: FakeApiServer) -> None:
    api.on_exec("kube-system", PROXIES["node1"],
                ExecScript(stderr=b"iptables-save: command not found\n", exit_code=127))


def _no_pod(items: list[dict[str, Any]]) -> None:
    items[:] = [i for i in items if i["metadata"].get("name") != PROXIES["node1"]]


UNREADABLE = [
    ("exec-forbidden", _forbid, None, "access denied: cannot create pods/exec"),
    ("times-out", _stall, None, "1s"),
    ("hangs-up-mid-stream", _hang_up, None, "the connection was lost"),
    ("command-fails", _fails, None, "exit code 127"),
    ("no-kube-proxy-pod", None, _no_pod, "no running kube-proxy pod on node \"node1\""),
]


@pytest.mark.parametrize("server_change,items_change,reason", [u[1:] for u in UNREADABLE],
                         ids=[u[0] for u in UNREADABLE])
def test_a_node_that_cannot_be_read_is_reported_and_the_others_still_read(
        items: list[dict[str, Any]], request: pytest.FixtureRequest,
        server_change: Any, items_change: Any, reason: str) -> None:
    if items_change:
        items_change(items)
    kubeconfig = served(request)
    api: FakeApiServer = request.getfixturevalue("api")
    if server_change:
        server_change(api)
    api.on_exec("kube-system", PROXIES["node2"], ExecScript(stdout=SCENARIOS_NODE1))
    doc = doctor_json("-n", DEMO_NS, "--nodes", "all", "--node-timeout", "1s",
                      kubeconfig=kubeconfig)
    node1, node2 = nodes(doc)["node1"], nodes(doc)["node2"]
    assert not node1["read"] and reason in node1["reason"], node1["reason"]
    [f] = node1["findings"]
    assert f["id"] == "NODE-RULES-UNREADABLE" and f["severity"] == "error"
    assert node2["read"]


def test_offline_snapshot_and_saved_rules_give_the_same_report_as_live(
        api: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    snap = tmp_path / "cluster.json"
    assert run_cli("snapshot", "-A", "-f", str(snap), kubeconfig=kubeconfig).returncode == 0
    saved = tmp_path / "node1.txt"
    saved.write_bytes(SCENARIOS_NODE1)
    live = doctor_json("-A", "--all", "--nodes", "node1", kubeconfig=kubeconfig)
    offline = doctor_json("--snapshot", str(snap), "-A", "--all", "--rules", f"node1={saved}")

    def same(doc: dict[str, Any]) -> Any:
        return ([{k: v for k, v in r.items() if k != "explain"} for r in doc["services"]],
                [{k: v for k, v in n.items() if k != "source"} for n in doc["nodes"]],
                doc["summary"])

    assert same(offline) == same(live)


def test_offline_drift_names_the_saved_rules_in_the_explain_command(tmp_path: Path) -> None:
    snapshot = SCENARIOS / "api" / "all.json"
    stale = tmp_path / "node one.txt"
    # the node still has rules for an endpoint the API dropped: edit the API side (a copy)
    doc = json.loads(snapshot.read_text())
    _drop_endpoint(doc["items"], "ledger-vhfzg", "10.244.1.57")
    changed = tmp_path / "api.json"
    changed.write_text(json.dumps(doc))
    stale.write_bytes(SCENARIOS_NODE1)
    out = doctor_json("--snapshot", str(changed), "--rules", f"node1={stale}")
    row = rows(out)[f"{PUB}/ledger"]
    assert "RULES-STALE-ENDPOINT" in ids(row)
    assert row["explain"] == (f"svctrace explain svc/ledger -n {PUB} --snapshot {changed} "
                              f"--rules '{stale}' --node node1")


@pytest.mark.parametrize("args,status,message", [
    (["--nodes", "node7"], 3, 'node "node7" not found'),
], ids=["unknown-node"])
def test_node_errors(kubeconfig: Path, args: list[str], status: int, message: str) -> None:
    proc = run_cli("doctor", "-n", PUB, *args, kubeconfig=kubeconfig)
    assert proc.returncode == status
    assert message in proc.stderr


def test_nodes_need_the_live_cluster(tmp_path: Path) -> None:
    proc = run_cli("doctor", "--snapshot", str(SCENARIOS / "api" / "all.json"),
                   "--nodes", "all")
    assert proc.returncode == 2
    assert "--nodes reads the nodes' rules through the live cluster" in proc.stderr


def test_ctrl_c_while_reading_nodes_prints_what_was_gathered(api: FakeApiServer,
                                                              kubeconfig: Path) -> None:
    api.on_exec("kube-system", PROXIES["node2"],
                ExecScript(stdout=SCENARIOS_NODE1[:2000], stall=20.0))
    proc = interrupted(["-n", PUB, "--nodes", "all", "--parallel", "1", "-o", "json"],
                       kubeconfig, lambda: any(PROXIES["node2"] in r.path
                                               for r in api.exec_requests))
    assert proc.returncode == 130, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["interrupted"] is True
    assert len(doc["services"]) > 3                       # the Services were all checked
    assert [n["name"] for n in doc["nodes"]] == ["node1"] and doc["nodes"][0]["read"]
    assert doc["notChecked"] == ["1 node(s) whose rules were not read: node2"]
    assert doc["nodesSkipped"] == ["node2"]
    assert "svctrace: interrupted" in proc.stderr


def test_ctrl_c_while_listing_says_nothing_was_checked(api: FakeApiServer,
                                                       kubeconfig: Path) -> None:
    api.slow(r"/pods$", 20.0)
    proc = interrupted(["-n", PUB], kubeconfig,
                       lambda: any(r.path.endswith("/pods") for r in api.requests))
    assert proc.returncode == 130, proc.stderr
    assert "not checked (interrupted): every Service (interrupted while listing" in proc.stdout
