"""`explain --node NAME --debug-pod IMAGE`: when the node has no running kube-proxy pod, a
short-lived privileged pod is created on it, iptables-save runs in it through exec, and it is
deleted whatever happens (errors, Ctrl-C, SIGTERM). The real CLI in a subprocess against the
stand-in API server over real HTTPS, plus the reader in-process; only 127.0.0.1 is contacted."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from apiserver import (
    PENDING,
    RUNNING,
    ExecScript,
    FakeApiServer,
    Request,
    lifecycle,
    load_items,
    terminated,
    waiting,
)
from clusterkit import DEMO, DEMO_NS, FIXTURES, ROOT, error_lines, kube_system_pod, run_cli

from svctrace.cluster.live import connect
from svctrace.cluster.node_exec import _Interrupts, debug_pod_name, read_rules_in_debug_pod
from svctrace.errors import RulesError

RULES = (FIXTURES / "rig-v1.36" / "node1.iptables-save.txt").read_bytes()
IMAGE = "registry.k8s.io/kube-proxy:v1.36.2"
BACKENDS = ["10.244.1.11:8080", "10.244.1.12:8080", "10.244.2.13:8080", "10.244.2.14:8080"]
PODS = "/api/v1/namespaces/kube-system/pods"
DEBUG_NAME = re.compile(r"^svctrace-debug-node2-[a-z0-9]{5}$")
DEBUG_GLOB = "svctrace-debug-node2-*"


pod = kube_system_pod


# node1 has its kube-proxy pod; node2's never started (as on a node where it crash-loops)
KUBE_SYSTEM = [pod("kube-proxy-7xq2m", "node1", **{"k8s-app": "kube-proxy"}),
               pod("kube-proxy-b6wl9", "node2", phase="Pending", **{"k8s-app": "kube-proxy"}),
               pod("coredns-5d78c9869d-r4tzk", "node2", **{"k8s-app": "kube-dns"})]


@pytest.fixture
def api(cert_dir: Path) -> Any:
    """The demo namespace plus kube-system; iptables-save in a debug pod on node2 prints
    node1's real rules (the rig's only saved ones) in 1000-byte frames."""
    items = copy.deepcopy(load_items(DEMO)) + copy.deepcopy(KUBE_SYSTEM)
    with FakeApiServer(items, cert_dir) as server:
        server.on_exec("kube-system", DEBUG_GLOB, ExecScript(stdout=RULES, chunk=1000))
        server.on_exec("kube-system", "kube-proxy-7xq2m", ExecScript(stdout=RULES, chunk=1000))
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> Path:
    return api.kubeconfig(tmp_path / "kubeconfig")


ARGS = ("explain", "svc/web", "-n", DEMO_NS, "-o", "json")


def explain(kubeconfig: Path, *extra: str, node: str = "node2") -> subprocess.CompletedProcess:
    return run_cli(*ARGS, "--node", node, *extra, kubeconfig=kubeconfig)


def with_debug_pod(kubeconfig: Path, *extra: str) -> subprocess.CompletedProcess:
    return explain(kubeconfig, "--debug-pod", IMAGE, *extra)


def calls(api: FakeApiServer) -> list[tuple[str, str]]:
    """The kube-system requests, debug pod's name replaced by NAME."""
    return [(r.method, re.sub(r"svctrace-debug-node2-[a-z0-9]{5}", "NAME", r.path))
            for r in api.requests if r.path.startswith(PODS)]


def posts(api: FakeApiServer) -> list[Request]:
    return [r for r in api.requests if r.method == "POST" and r.path == PODS]


def deletes(api: FakeApiServer) -> list[Request]:
    return [r for r in api.requests if r.method == "DELETE"]


def debug_pods_left(api: FakeApiServer) -> list[str]:
    return [p["metadata"]["name"] for p in api.created
            if api.pod_exists("kube-system", p["metadata"]["name"])]


# --- it works ---------------------------------------------------------------------------------

def test_debug_pod_reads_node2_rules(api: FakeApiServer, kubeconfig: Path) -> None:
    proc = with_debug_pod(kubeconfig)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    (created,) = api.created
    name = created["metadata"]["name"]
    assert DEBUG_NAME.match(name)
    assert data["rules"]["source"] == [
        f"rules: iptables-save in debug pod kube-system/{name} on node node2 (deleted)",
        "node: node2 (addresses 10.10.0.20, from --node)"]
    assert data["verdict"].endswith("reaches 4 healthy backend(s) (25%, 25%, 25%, 25%)")
    assert data["traces"]
    for trace in data["traces"]:
        assert sorted(o["destination"] for o in trace["outcomes"]) == BACKENDS
    assert debug_pods_left(api) == []


def test_the_pod_created(api: FakeApiServer, kubeconfig: Path) -> None:
    assert with_debug_pod(kubeconfig).returncode == 0
    (post,) = posts(api)
    sent = post.json()
    assert sent["metadata"]["namespace"] == "kube-system"
    assert sent["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "svctrace"}
    spec = sent["spec"]
    assert {k: spec[k] for k in ("nodeName", "hostNetwork", "hostPID", "restartPolicy",
                                 "tolerations", "activeDeadlineSeconds",
                                 "terminationGracePeriodSeconds")} == {
        "nodeName": "node2", "hostNetwork": True, "hostPID": False, "restartPolicy": "Never",
        "tolerations": [{"operator": "Exists"}], "activeDeadlineSeconds": 300,
        "terminationGracePeriodSeconds": 0}
    (container,) = spec["containers"]
    assert container == {"name": "iptables", "image": IMAGE, "command": ["sleep", "120"],
                         "securityContext": {"privileged": True}}


def test_order_exec_command_and_delete(api: FakeApiServer, kubeconfig: Path) -> None:
    """LIST (no kube-proxy on node2), POST, GET until Running, exec iptables-save, DELETE."""
    assert with_debug_pod(kubeconfig).returncode == 0
    assert calls(api) == [("GET", PODS), ("POST", PODS), ("GET", f"{PODS}/NAME"),
                          ("GET", f"{PODS}/NAME/exec"), ("DELETE", f"{PODS}/NAME")]
    (req,) = api.exec_requests
    assert req.query_all("command") == ["iptables-save"]          # nothing else, no argument
    (delete,) = deletes(api)
    assert delete.query.get("gracePeriodSeconds") == "0"
    assert delete.path == f"{PODS}/{api.created[0]['metadata']['name']}"


def test_waits_while_pending(api: FakeApiServer, kubeconfig: Path) -> None:
    api.pod_lifecycle = lifecycle(PENDING, PENDING, waiting("ContainerCreating", "starting"),
                                  RUNNING)
    assert with_debug_pod(kubeconfig).returncode == 0
    assert [m for m, p in calls(api) if p == f"{PODS}/NAME"] == ["GET"] * 3 + ["DELETE"]


def test_kube_proxy_pod_is_preferred(api: FakeApiServer, kubeconfig: Path) -> None:
    """--debug-pod is a fallback: node1 has a running kube-proxy pod, so nothing is created."""
    proc = explain(kubeconfig, "--debug-pod", IMAGE, node="node1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rules"]["source"][0] == \
        "rules: iptables-save in kube-system/kube-proxy-7xq2m on node node1"
    assert posts(api) == [] and deletes(api) == []


def test_without_the_flag_nothing_is_created(api: FakeApiServer, kubeconfig: Path) -> None:
    proc = explain(kubeconfig)
    assert proc.returncode == 5, proc.stderr
    error, hints = error_lines(proc.stderr)
    assert 'no running kube-proxy pod on node "node2"' in error
    assert len(hints) == 1
    assert "--rules rules.txt --node node2" in hints[0] and "--debug-pod IMAGE" in hints[0]
    assert posts(api) == [] and api.exec_requests == [] and deletes(api) == []


@pytest.mark.parametrize("args", [
    pytest.param(("--debug-pod", IMAGE), id="without-node"),
    pytest.param(("--node", "node2", "--rules", str(FIXTURES / "rig-v1.36" /
                                                    "node1.iptables-save.txt"),
                  "--debug-pod", IMAGE), id="with-rules"),
    pytest.param(("--node", "node2", "--debug-pod", " "), id="empty-image"),
])
def test_usage_errors(api: FakeApiServer, kubeconfig: Path, args: tuple[str, ...]) -> None:
    proc = run_cli(*ARGS, *args, kubeconfig=kubeconfig)
    assert proc.returncode == 2, proc.stderr
    error, _ = error_lines(proc.stderr)
    assert "--debug-pod" in error
    assert posts(api) == []


# --- it fails, and the pod goes anyway ------------------------------------------------------

def _forbid_create(api: FakeApiServer) -> None:
    api.fail(f"^{PODS}$", 403, method="POST")


def _reject_create(api: FakeApiServer) -> None:
    api.fail(f"^{PODS}$", 422, method="POST")


def _steps(*steps: dict[str, Any]) -> Any:
    def setup(api: FakeApiServer) -> None:
        api.pod_lifecycle = lifecycle(*steps)
    return setup


def _script(**kwargs: Any) -> Any:
    return lambda api: api.on_exec("kube-system", DEBUG_GLOB, ExecScript(**kwargs))


def _forbid_exec(api: FakeApiServer) -> None:
    api.fail(r"/pods/[^/]+/exec$", 403)


NOT_FOUND = 'exec: "sleep": executable file not found in $PATH'
PERMISSION = b"iptables-save v1.8.9 (legacy): Permission denied (you must be root)\n"
FAILURES = [
    # (id, set-up, exit status, in the error line, in the hint, created?, exec'd?)
    ("create-forbidden", _forbid_create, 4,
     ['cannot create pods in namespace "kube-system"', "403 Forbidden"],
     "create and delete on pods and create on pods/exec in kube-system", False, False),
    ("create-rejected", _reject_create, 4, ["the API server refused the debug pod (422)"],
     "--debug-pod IMAGE", False, False),
    ("image-pull-error", _steps(PENDING, waiting("ErrImagePull", "manifest unknown")), 5,
     ["did not start: ErrImagePull: manifest unknown", "debug pod kube-system/"],
     "an image the node can pull", True, False),
    ("image-pull-backoff", _steps(PENDING, waiting("ImagePullBackOff")), 5,
     ["did not start: ImagePullBackOff"], "an image the node can pull", True, False),
    ("no-sleep-in-image", _steps(PENDING, terminated("StartError", NOT_FOUND)), 5,
     ["did not start: its container ended (StartError, exit code 128)", NOT_FOUND],
     "contain sleep and iptables-save", True, False),
    ("pod-failed", _steps(PENDING, {"phase": "Failed", "reason": "DeadlineExceeded"}), 5,
     ["did not start: phase Failed (DeadlineExceeded)"], None, True, False),
    ("exec-forbidden", _forbid_exec, 4,
     ['cannot create pods/exec in namespace "kube-system"'], "pods/exec", True, True),
    ("exec-fails", _script(stderr=PERMISSION, exit_code=1), 5,
     ["iptables-save in debug pod kube-system/", "on node node2 failed", "exit code 1"],
     "Permission denied", True, True),
    ("prints-nothing", _script(), 5, ["on node node2 printed nothing"], "iptables mode",
     True, True),
    ("connection-lost", _script(stdout=RULES[:3000], chunk=1000, hang_up=True), 4,
     ["failed: the connection was lost"], None, True, True),
]


@pytest.mark.parametrize("setup,status,in_error,in_hint,created,execd",
                         [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_failures(api: FakeApiServer, kubeconfig: Path, setup: Any, status: int,
                  in_error: list[str], in_hint: str | None, created: bool,
                  execd: bool) -> None:
    setup(api)
    proc = with_debug_pod(kubeconfig)
    assert proc.returncode == status, proc.stderr
    assert proc.stdout == ""
    error, hints = error_lines(proc.stderr)
    for text in in_error:
        assert text in error
    if in_hint:
        assert len(hints) == 1 and in_hint in hints[0], hints
    assert len(posts(api)) == 1
    assert len(api.created) == int(created)
    # iptables-save failing or printing nothing: nft (-j, then text) is asked as well
    asked = 3 if execd and status == 5 else int(execd)
    assert len(api.exec_requests) == asked
    if created:
        name = api.created[0]["metadata"]["name"]
        assert calls(api)[-1] == ("DELETE", f"{PODS}/NAME")        # last, after everything
        assert [r.path for r in deletes(api)] == [f"{PODS}/{name}"]
        assert debug_pods_left(api) == []
    else:
        assert deletes(api) == []                                   # nothing to delete


@pytest.mark.parametrize("fault", [pytest.param(403, id="delete-forbidden"),
                                   pytest.param(500, id="delete-errors")])
def test_delete_failure_is_said(api: FakeApiServer, kubeconfig: Path, fault: int) -> None:
    """The pod may be left: the user is told its name and how to delete it, never silently."""
    api.fail(f"^{PODS}/svctrace-debug-[^/]+$", fault, method="DELETE")
    proc = with_debug_pod(kubeconfig)
    assert proc.returncode == 0, proc.stderr
    (name,) = [p["metadata"]["name"] for p in api.created]
    assert f"could not delete the debug pod kube-system/{name} ({fault}" in proc.stderr
    assert f"kubectl -n kube-system delete pod {name}" in proc.stderr
    assert json.loads(proc.stdout)["rules"]["source"][0].endswith(
        f"kube-system/{name} on node node2 (NOT deleted: delete it by hand)")
    assert len(deletes(api)) == (1 if fault == 403 else 2)        # a 5xx is tried again


# --- interrupted: Ctrl-C and SIGTERM --------------------------------------------------------

def _start(kubeconfig: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SVCTRACE_DEBUG")}
    env.update(no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost",
               SVCTRACE_NO_LOCAL_RULES="1", KUBECONFIG=str(kubeconfig))
    return subprocess.Popen([sys.executable, "-m", "svctrace", *ARGS, "--node", "node2",
                             "--debug-pod", IMAGE], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(predicate: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _interrupt(kubeconfig: Path, sig: int,
               ready: Any) -> tuple[subprocess.Popen[str], str, str]:
    """Start explain --debug-pod, send `sig` once `ready()` holds; (process, stdout, stderr)."""
    proc = _start(kubeconfig)
    try:
        _wait_for(ready)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, stdout, stderr


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGINT, id="ctrl-c"),
                                 pytest.param(signal.SIGTERM, id="sigterm")])
def test_interrupted_while_pending(api: FakeApiServer, kubeconfig: Path, sig: int) -> None:
    api.pod_lifecycle = lifecycle(PENDING)                  # held Pending: svctrace waits

    def waiting() -> bool:                                  # the POST was answered, and it
        return bool(api.created) and ("GET", f"{PODS}/NAME") in calls(api)   # is waiting

    proc, stdout, stderr = _interrupt(kubeconfig, sig, waiting)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "error" not in stderr and "could not delete" not in stderr
    assert stdout == ""
    (name,) = [p["metadata"]["name"] for p in api.created]
    assert [r.path for r in deletes(api)] == [f"{PODS}/{name}"]
    assert calls(api)[-1] == ("DELETE", f"{PODS}/NAME")
    assert api.exec_requests == []
    assert debug_pods_left(api) == []


@pytest.mark.parametrize("sig", [pytest.param(signal.SIGINT, id="ctrl-c"),
                                 pytest.param(signal.SIGTERM, id="sigterm")])
def test_interrupted_right_after_the_post(api: FakeApiServer, kubeconfig: Path,
                                          sig: int) -> None:
    """The signal lands as soon as the POST is seen, before its answer may have arrived."""
    api.pod_lifecycle = lifecycle(PENDING)
    proc, _, stderr = _interrupt(kubeconfig, sig, lambda: bool(posts(api)))
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert len(deletes(api)) == 1, stderr
    assert debug_pods_left(api) == []


# --- in-process ---------------------------------------------------------------------------------

def test_not_running_in_time(api: FakeApiServer, kubeconfig: Path) -> None:
    api.pod_lifecycle = lifecycle(PENDING, waiting("ContainerCreating", "pulling"))
    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    with pytest.raises(RulesError, match=r"was not running after 1s \(phase Pending, "
                                         r"ContainerCreating\)"):
        read_rules_in_debug_pod(connect(str(kubeconfig)), "node2", IMAGE, wait=1.0)
    assert time.monotonic() - started < 3
    assert len(deletes(api)) == 1 and debug_pods_left(api) == []
    assert signal.getsignal(signal.SIGTERM) is before           # the old handler is back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_reader_in_process(api: FakeApiServer, kubeconfig: Path) -> None:
    before = signal.getsignal(signal.SIGTERM)
    text, where = read_rules_in_debug_pod(connect(str(kubeconfig)), "node2", IMAGE)
    assert text == RULES.decode()
    assert re.fullmatch(r"iptables-save in debug pod kube-system/svctrace-debug-node2-"
                        r"[a-z0-9]{5} on node node2 \(deleted\)", where)
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("node,expected", [
    pytest.param("node2", r"svctrace-debug-node2-[a-z0-9]{5}", id="short"),
    pytest.param("ip-10-0-0-12.eu-west-1.compute.internal.example.com",
                 r"svctrace-debug-ip-10-0-0-12\.eu-west-1\.compute\.internal\.ex-[a-z0-9]{5}",
                 id="long-cut-to-63"),
    pytest.param("Node-A", r"svctrace-debug-node-a-[a-z0-9]{5}", id="lowercased"),
])
def test_debug_pod_name(node: str, expected: str) -> None:
    names = {debug_pod_name(node) for _ in range(20)}
    assert len(names) > 1                                       # random
    for name in names:
        assert re.fullmatch(expected, name) and len(name) <= 63, name


def test_an_interrupt_swallowed_by_a_finaliser_comes_back(capsys: Any) -> None:
    """A signal handled while a __del__ runs raises there, where Python ignores exceptions:
    it is remembered and raised again (quietly) at the next check."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    class Finalised:
        def __del__(self) -> None:
            interrupts._interrupt(signal.SIGTERM, None)

    with pytest.raises(KeyboardInterrupt):
        with _Interrupts() as interrupts:
            assert signal.getsignal(signal.SIGTERM) == interrupts._interrupt
            Finalised()                          # gone at once; its KeyboardInterrupt ignored
            assert interrupts.caught
            interrupts.check()
    assert "Exception ignored" not in capsys.readouterr().err
    assert {sig: signal.getsignal(sig) for sig in before} == before
