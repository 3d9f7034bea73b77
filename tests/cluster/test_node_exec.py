"""`explain --node NAME`: the node's rules read by running iptables-save in its kube-proxy pod,
through the API's exec (channel.k8s.io over a websocket) of the stand-in API server over real
HTTPS. The real CLI in a subprocess, plus the reader in-process; only 127.0.0.1 is contacted."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
from apiserver import ExecScript, FakeApiServer, Request, load_items
from clusterkit import DEMO, DEMO_NS, FIXTURES, error_lines, kube_system_pod, run_cli

from svctrace.cluster.live import connect
from svctrace.cluster.node_exec import (
    NFT_JSON_COMMAND,
    NFT_TEXT_COMMAND,
    find_kube_proxy_pod,
    read_rules_through_exec,
)
from svctrace.errors import ClusterError, RulesError

RULES = (FIXTURES / "rig-v1.36" / "node1.iptables-save.txt").read_bytes()
PROXY = "kube-proxy-7xq2m"                       # the kube-proxy pod on node1
BACKENDS = ["10.244.1.11:8080", "10.244.1.12:8080", "10.244.2.13:8080", "10.244.2.14:8080"]
EXEC_PATH = f"/api/v1/namespaces/kube-system/pods/{PROXY}/exec"


pod = kube_system_pod


# kube-system as on a kubeadm cluster whose node2 lost its kube-proxy: the DaemonSet's pod on
# node1, CoreDNS on both nodes, node2 with only a kube-proxy that never started
KUBE_SYSTEM = [pod("coredns-5d78c9869d-2lq8x", "node1", **{"k8s-app": "kube-dns"}),
               pod(PROXY, "node1", **{"k8s-app": "kube-proxy"}),
               pod("coredns-5d78c9869d-r4tzk", "node2", **{"k8s-app": "kube-dns"}),
               pod("kube-proxy-b6wl9", "node2", phase="Pending", **{"k8s-app": "kube-proxy"})]


@pytest.fixture
def kube_system() -> list[dict[str, Any]]:
    """The kube-system pods (a test may parametrize this name to serve others)."""
    return KUBE_SYSTEM


@pytest.fixture
def exec_api(cert_dir: Path, kube_system: list[dict[str, Any]]) -> Any:
    """The demo namespace's objects plus kube-system; node1's kube-proxy prints node1's real
    iptables-save in 1000-byte frames."""
    items = copy.deepcopy(load_items(DEMO)) + copy.deepcopy(kube_system)
    with FakeApiServer(items, cert_dir) as server:
        server.on_exec("kube-system", PROXY, ExecScript(stdout=RULES, chunk=1000))
        yield server


@pytest.fixture
def exec_kubeconfig(exec_api: FakeApiServer, tmp_path: Path) -> Path:
    return exec_api.kubeconfig(tmp_path / "kubeconfig")


def explain(kubeconfig: Path, node: str, *extra: str) -> Any:
    return run_cli("explain", "svc/web", "-n", DEMO_NS, "--node", node, "-o", "json", *extra,
                   kubeconfig=kubeconfig)


def kube_system_lists(requests: list[Request]) -> list[Request]:
    return [r for r in requests if r.path == "/api/v1/namespaces/kube-system/pods"]


# --- the whole command -----------------------------------------------------------------------

def test_explain_reads_node1_rules_through_exec(exec_api: FakeApiServer,
                                                 exec_kubeconfig: Path) -> None:
    proc = explain(exec_kubeconfig, "node1")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["rules"]["source"] == [
        f"rules: iptables-save in kube-system/{PROXY} on node node1",
        "node: node1 (addresses 10.10.0.10, from --node)"]
    assert data["drift"] == []
    assert data["findings"] == []
    assert data["verdict"].endswith("reaches 4 healthy backend(s) (25%, 25%, 25%, 25%)")
    assert [t["entry"] for t in data["traces"]] == ["clusterIP", "clusterIP"]
    assert {t["source"] for t in data["traces"]} >= {"10.10.0.10"}     # from node1 itself
    for trace in data["traces"]:
        assert trace["destination"] == "10.96.219.159:80"
        assert sorted(o["destination"] for o in trace["outcomes"]) == BACKENDS
        assert {(o["verdict"], o["probability"]) for o in trace["outcomes"]} == {("ACCEPT",
                                                                                  0.25)}


def test_requests_made(exec_api: FakeApiServer, exec_kubeconfig: Path) -> None:
    """The Service's four reads, one LIST of kube-system pods on node1, one exec: nothing
    cluster-wide, nothing created."""
    assert explain(exec_kubeconfig, "node1").returncode == 0
    paths = [(r.method, r.path) for r in exec_api.requests]
    demo = [p for p in paths if f"/namespaces/{DEMO_NS}/" in p[1] or p[1] == "/api/v1/nodes"]
    assert len(demo) <= 4
    assert paths == [*demo, ("GET", "/api/v1/namespaces/kube-system/pods"), ("GET", EXEC_PATH)]
    assert "/api/v1/pods" not in [p for _, p in paths]                  # no cluster-wide LIST
    (listing,) = kube_system_lists(exec_api.requests)
    assert listing.query == {"fieldSelector": "spec.nodeName=node1"}
    assert listing.raw_query == "fieldSelector=spec.nodeName%3Dnode1"


def test_exec_request_runs_only_iptables_save(exec_api: FakeApiServer,
                                             exec_kubeconfig: Path) -> None:
    assert explain(exec_kubeconfig, "node1").returncode == 0
    (req,) = exec_api.exec_requests
    assert req.query_all("command") == ["iptables-save"]          # no arguments, nothing else
    assert {k: v.lower() for k, v in req.query.items() if k != "command"} == {
        "stdout": "true", "stderr": "true", "stdin": "false", "tty": "false"}
    assert req.headers["upgrade"].lower() == "websocket"
    assert req.headers["authorization"] == "Bearer s3cret"
    offered = [p.strip() for p in req.headers["sec-websocket-protocol"].split(",")]
    assert "v5.channel.k8s.io" in offered and "v4.channel.k8s.io" in offered
    assert exec_api.negotiated == ["v5.channel.k8s.io"]


# --- the node without a kube-proxy pod, and exec that goes wrong -------------------------

@pytest.mark.parametrize("kube_system", [
    pytest.param(KUBE_SYSTEM, id="only-a-pending-kube-proxy"),
    pytest.param([*KUBE_SYSTEM, pod("kube-proxy-q8d5n", "node2", phase="Failed",
                                    **{"k8s-app": "kube-proxy"})], id="and-a-failed-one"),
    pytest.param([p for p in KUBE_SYSTEM if p["spec"]["nodeName"] == "node1"],
                 id="no-pods-at-all-there"),
])
def test_node_without_kube_proxy_pod(exec_api: FakeApiServer, exec_kubeconfig: Path) -> None:
    proc = explain(exec_kubeconfig, "node2")
    assert proc.returncode == 5, proc.stderr
    assert proc.stdout == ""
    error, hints = error_lines(proc.stderr)
    assert 'no running kube-proxy pod on node "node2"' in error
    assert "kube-system" in error and "k8s-app=kube-proxy" in error
    assert len(hints) == 1 and "--rules rules.txt --node node2" in hints[0]
    assert exec_api.exec_requests == []                                 # nothing was run
    assert [r.query for r in kube_system_lists(exec_api.requests)] == [
        {"fieldSelector": "spec.nodeName=node2"}]


def _forbid(api: FakeApiServer) -> None:
    api.fail(r"/pods/[^/]+/exec$", 403)


def _gone(api: FakeApiServer) -> None:
    api.fail(r"/pods/[^/]+/exec$", 404)


def _script(**kwargs: Any) -> Any:
    return lambda api: api.on_exec("kube-system", PROXY, ExecScript(**kwargs))


PERMISSION = (b"iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: "
              b"Permission denied (you must be root)\n")
FAILURES = [
    # (id, set-up, extra CLI args, exit status, in the error line, in the hint)
    ("exec-forbidden", _forbid, [], 4,
     ['cannot create pods/exec in namespace "kube-system"', "403 Forbidden"],
     "create on pods/exec in kube-system"),
    ("pod-gone", _gone, [], 4,
     [f"exec in kube-system/{PROXY} failed: the API server answered 404"], None),
    ("command-fails", _script(stderr=PERMISSION, exit_code=4), [], 5,
     [f"iptables-save in kube-system/{PROXY} on node node1 failed",
      "non-zero exit code", "[iptables-save], exit code 4"], "Permission denied"),
    ("prints-nothing", _script(), [], 5,
     [f"iptables-save in kube-system/{PROXY} on node node1 printed nothing"],
     "iptables mode"),
    ("connection-lost", _script(stdout=RULES[:3000], chunk=1000, hang_up=True), [], 4,
     [f"exec in kube-system/{PROXY} failed: the connection was lost"], None),
    ("silent-past-timeout", _script(stdout=RULES[:1000], stall=6.0),
     ["--request-timeout", "1"], 4, [f"exec in kube-system/{PROXY}: no output for 1s"],
     "--request-timeout"),
]


@pytest.mark.parametrize("setup,args,status,in_error,in_hint",
                         [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_exec_failures(exec_api: FakeApiServer, exec_kubeconfig: Path, setup: Any,
                       args: list[str], status: int, in_error: list[str],
                       in_hint: str | None) -> None:
    setup(exec_api)
    started = time.monotonic()
    proc = explain(exec_kubeconfig, "node1", *args)
    assert time.monotonic() - started < 5.5           # no wait on a silent exec
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == ""
    error, hints = error_lines(proc.stderr)
    for text in in_error:
        assert text in error
    if in_hint:
        assert len(hints) == 1 and in_hint in hints[0]
    ran = [r.query_all("command") for r in exec_api.exec_requests]
    if status == 5:      # iptables-save did not show kube-proxy's rules: nft was asked too
        assert ran == [["iptables-save"], list(NFT_JSON_COMMAND), list(NFT_TEXT_COMMAND)]
    else:
        assert ran == [["iptables-save"]]


def test_snapshot_with_node_needs_rules(exec_api: FakeApiServer, tmp_path: Path) -> None:
    """Objects from a file and rules from a live node would not be from the same moment."""
    proc = run_cli("explain", "svc/web", "-n", DEMO_NS, "--snapshot", str(DEMO),
                   "--node", "node1", "-o", "json", home=tmp_path)
    assert proc.returncode == 2, proc.stderr
    error, hints = error_lines(proc.stderr)
    assert "--node without --rules" in error and "snapshot" in error
    assert len(hints) == 1 and "--rules FILE --node NAME" in hints[0]
    assert exec_api.requests == []


# --- in-process: the reader against the server ------------------------------------------

# a rule comment someone else wrote, in 1-byte frames: every multi-byte character is split
UTF8_RULES = ('*filter\n:INPUT ACCEPT [0:0]\n'
              '-A INPUT -p tcp --dport 22 -m comment --comment "café ☕ 測試" -j ACCEPT\n'
              'COMMIT\n').encode()


@pytest.mark.parametrize("stdout,chunk,protocols", [
    pytest.param(RULES, 1 << 16, ("v5.channel.k8s.io",), id="one-frame-v5"),
    pytest.param(RULES, 1000, ("v4.channel.k8s.io",), id="1000-byte-frames-v4"),
    pytest.param(RULES * 8, 1 << 20, ("v5.channel.k8s.io",), id="one-90k-frame"),
    pytest.param(UTF8_RULES, 1, ("v5.channel.k8s.io",), id="utf8-split-by-frames"),
])
def test_read_rules_through_exec(exec_api: FakeApiServer, exec_kubeconfig: Path,
                                 stdout: bytes, chunk: int,
                                 protocols: tuple[str, ...]) -> None:
    exec_api.protocols = protocols
    exec_api.on_exec("kube-system", PROXY, ExecScript(stdout=stdout, chunk=chunk,
                                                      stderr=b"# Warning: a note\n"))
    text, where = read_rules_through_exec(connect(str(exec_kubeconfig)), "node1")
    assert text == stdout.decode()                    # byte for byte, whatever the frames
    assert where == f"iptables-save in kube-system/{PROXY} on node node1"
    # no kube-proxy chains in what iptables-save printed: nft is asked too (it prints the
    # same here, without kube-proxy's table, so the iptables-save text is kept)
    ran = [["iptables-save"]] + ([list(NFT_JSON_COMMAND)] if b":KUBE-SERVICES " not in stdout
                                 else [])
    assert [r.query_all("command") for r in exec_api.exec_requests] == ran
    assert exec_api.negotiated == list(protocols) * len(ran)
    assert [r.path for r in exec_api.requests] == ["/api/v1/namespaces/kube-system/pods",
                                                   *[EXEC_PATH] * len(ran)]


def test_no_common_subprotocol_is_a_cluster_error(exec_api: FakeApiServer,
                                                  exec_kubeconfig: Path) -> None:
    exec_api.protocols = ("channel.k8s.io",)          # a server older than the client's offer
    with pytest.raises(ClusterError, match="failed: the API server answered 400: unable to "
                                           "upgrade"):
        read_rules_through_exec(connect(str(exec_kubeconfig)), "node1")


FIND = [
    # (id, kube-system pods, node asked, expected pod name or None for "none there")
    ("by-label", KUBE_SYSTEM, "node1", PROXY),
    ("label-before-name", [pod("kube-proxy-static", "node1"),
                           pod("proxy-ds-4k2xq", "node1", **{"k8s-app": "kube-proxy"})],
     "node1", "proxy-ds-4k2xq"),
    ("by-name-without-label", [pod("kube-proxy-node1", "node1", tier="node")], "node1",
     "kube-proxy-node1"),
    ("only-running", [pod("kube-proxy-old", "node1", phase="Succeeded",
                          **{"k8s-app": "kube-proxy"})], "node1", None),
    ("other-node-only", [pod("kube-proxy-zz", "node2", **{"k8s-app": "kube-proxy"})],
     "node1", None),
    ("pending-on-node2", KUBE_SYSTEM, "node2", None),
]


@pytest.mark.parametrize("pods,node,expected", [f[1:] for f in FIND], ids=[f[0] for f in FIND])
def test_find_kube_proxy_pod(cert_dir: Path, tmp_path: Path, pods: list[dict], node: str,
                             expected: str | None) -> None:
    with FakeApiServer(copy.deepcopy(pods), cert_dir) as api:
        conn = connect(str(api.kubeconfig(tmp_path / "kubeconfig")))
        if expected is None:
            with pytest.raises(RulesError, match=f'no running kube-proxy pod on node "{node}"'):
                find_kube_proxy_pod(conn, node)
        else:
            assert find_kube_proxy_pod(conn, node) == expected
        (listing,) = api.requests
        assert (listing.path, listing.query) == ("/api/v1/namespaces/kube-system/pods",
                                                 {"fieldSelector": f"spec.nodeName={node}"})


# --- a node in nftables mode ------------------------------------------------------------------

NFT_JSON = (FIXTURES / "rig-v1.36" / "node2.nft.json").read_bytes()
NFT_TEXT = (FIXTURES / "rig-v1.36" / "node2.nft.txt").read_bytes()
NODE2_PROXY = "kube-proxy-n2nft"
NO_KUBE = b"*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
NO_JSON = b"Error: JSON support not compiled-in\n"


def _nft_pod(args: list[str]) -> dict[str, Any]:
    proxy = pod(NODE2_PROXY, "node2", **{"k8s-app": "kube-proxy"})
    proxy["spec"]["containers"][0]["command"] = ["/usr/local/bin/kube-proxy", *args]
    return proxy


NFT_NODES = [
    # (id, pod args, iptables-save, nft -j, nft list: (stdout, exit code) each;
    #  the commands expected to run, the form read, what source says ran)
    ("no-kube-chains-in-iptables", [], (NO_KUBE, 0), (NFT_JSON, 0), (NFT_TEXT, 0),
     ["iptables-save", "nft -j list ruleset"], "nft-json", "nft -j list ruleset"),
    ("nft-without-json", [], (NO_KUBE, 0), (NO_JSON, 1), (NFT_TEXT, 0),
     ["iptables-save", "nft -j list ruleset", "nft list ruleset"], "nft-text",
     "nft list ruleset"),
    ("no-iptables-save-in-image", [], (b"", 127), (NFT_JSON, 0), (NFT_TEXT, 0),
     ["iptables-save", "nft -j list ruleset"], "nft-json", "nft -j list ruleset"),
    ("mode-flag-and-leftover-chains", ["--proxy-mode=nftables"], (RULES, 0), (NFT_JSON, 0),
     (NFT_TEXT, 0), ["iptables-save", "nft list ruleset"], "iptables-save+nft-text",
     "iptables-save and nft list ruleset"),
    ("iptables-mode", ["--proxy-mode", "iptables"], (RULES, 0), (NFT_JSON, 0), (NFT_TEXT, 0),
     ["iptables-save"], "iptables-save", "iptables-save"),
]


@pytest.mark.parametrize("args,ipt,nft_json,nft_text,ran,form,source",
                         [n[1:] for n in NFT_NODES], ids=[n[0] for n in NFT_NODES])
def test_nftables_node_through_exec(cert_dir: Path, tmp_path: Path, args: list[str],
                                    ipt: tuple[bytes, int], nft_json: tuple[bytes, int],
                                    nft_text: tuple[bytes, int], ran: list[str], form: str,
                                    source: str) -> None:
    from svctrace.rules.detect import parse_rules, rules_format

    with FakeApiServer(copy.deepcopy(load_items(DEMO)) + [_nft_pod(args)], cert_dir) as api:
        for command, (stdout, code) in ((("iptables-save",), ipt), (NFT_JSON_COMMAND, nft_json),
                                        (NFT_TEXT_COMMAND, nft_text)):
            api.on_exec("kube-system", NODE2_PROXY, ExecScript(stdout=stdout, exit_code=code),
                        command)
        text, where = read_rules_through_exec(connect(str(api.kubeconfig(tmp_path / "kc"))),
                                              "node2")
        assert [" ".join(r.query_all("command")) for r in api.exec_requests] == ran
    assert where == f"{source} in kube-system/{NODE2_PROXY} on node node2"
    assert rules_format(parse_rules(text, where)) == form


def test_explain_node_in_nftables_mode(cert_dir: Path, tmp_path: Path) -> None:
    """`explain svc/web --node node2` on a node whose kube-proxy runs nftables mode: its
    iptables-save has no KUBE-SERVICES, so the rules come from `nft -j list ruleset`."""
    with FakeApiServer(copy.deepcopy(load_items(DEMO)) + [_nft_pod([])], cert_dir) as api:
        api.on_exec("kube-system", NODE2_PROXY, ExecScript(stdout=NO_KUBE), ("iptables-save",))
        api.on_exec("kube-system", NODE2_PROXY, ExecScript(stdout=NFT_JSON, chunk=1000),
                    NFT_JSON_COMMAND)
        proc = explain(api.kubeconfig(tmp_path / "kubeconfig"), "node2")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["rules"]["source"][0] == \
        f"rules: nft -j list ruleset in kube-system/{NODE2_PROXY} on node node2"
    assert (data["rules"]["mode"], data["rules"]["format"]) == ("nftables", "nft-json")
    assert data["drift"] == [] and data["findings"] == []
    for trace in data["traces"]:
        assert sorted(o["destination"] for o in trace["outcomes"]) == BACKENDS
