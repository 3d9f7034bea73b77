"""`svctrace doctor -n NS | -A` over the API: the real CLI against the stand-in API server
(real HTTPS), serving the real fixture objects. The per-Service checks must be explain's own:
each row is compared with what `explain` says about that Service."""

from __future__ import annotations

import base64
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from apiserver import FakeApiServer
from clusterkit import error_lines, run_cli
from doctorkit import DEMO_NS, PUB, SCENARIOS, doctor_json, ids, rows

from svctrace.explain.pipeline import explain_service, load_view
from svctrace.explain.report import ExplainOptions

SCENARIOS_API = SCENARIOS / "api" / "all.json"
PUB_SERVICES = ["billing", "dns-cache", "edge", "inventory", "ledger", "mail", "metrics",
                "node-cache", "orders", "queue", "search", "sessions", "storefront"]


def explained(kubeconfig: Path, namespace: str, name: str) -> dict[str, Any]:
    """What explain says about one Service (its pipeline, in-process, same server)."""
    opts = ExplainOptions(service=name, namespace=namespace, kubeconfig=str(kubeconfig))
    report = explain_service(load_view(opts), opts)
    return {"ids": [f.id for f in report.findings], "verdict": report.data["verdict"]}


@pytest.fixture(autouse=True)
def _no_local_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVCTRACE_NO_LOCAL_RULES", "1")      # explain in-process: API side only


def test_every_service_of_the_namespace_is_checked_as_explain_checks_it(
        kubeconfig: Path) -> None:
    doc = doctor_json("-n", PUB, "--all", kubeconfig=kubeconfig)
    got = rows(doc)
    assert sorted(got) == [f"{PUB}/{n}" for n in PUB_SERVICES]
    for name in PUB_SERVICES:
        want = explained(kubeconfig, PUB, name)
        assert ids(got[f"{PUB}/{name}"]) == want["ids"], name
        assert got[f"{PUB}/{name}"]["verdict"] == want["verdict"], name


def test_without_all_only_services_with_findings_are_listed_worst_first(
        kubeconfig: Path) -> None:
    doc = doctor_json("-n", PUB, kubeconfig=kubeconfig)
    listed = doc["services"]
    assert listed and all(r["findings"] for r in listed)
    order = {"error": 3, "warning": 2, "info": 1}
    ranks = [order[r["severity"]] for r in listed]
    assert ranks == sorted(ranks, reverse=True)
    summary = doc["summary"]
    assert summary["services"] == len(PUB_SERVICES)
    assert summary["healthy"] + len(listed) == len(PUB_SERVICES)
    assert summary["error"] + summary["warning"] + summary["info"] == len(listed)
    assert doc["schema"] == "svctrace/v1" and doc["kind"] == "doctor"


def test_all_namespaces(kubeconfig: Path) -> None:
    doc = doctor_json("-A", "--all", kubeconfig=kubeconfig)
    spaces = {r["namespace"] for r in doc["services"]}
    assert spaces == {PUB, DEMO_NS, "default"}
    assert doc["scope"] == "all namespaces"
    demo = rows(doc)[f"{DEMO_NS}/noendpoints"]
    assert ids(demo) == explained(kubeconfig, DEMO_NS, "noendpoints")["ids"]


def _continues(api: FakeApiServer, plural: str) -> list[str]:
    return [r.query.get("continue", "") for r in api.requests if r.path.endswith("/" + plural)]


def test_lists_are_read_page_by_page(api: FakeApiServer, kubeconfig: Path) -> None:
    whole = doctor_json("-A", "--all", kubeconfig=kubeconfig)
    api.requests.clear()
    paged = doctor_json("-A", "--all", "--chunk-size", "3", kubeconfig=kubeconfig)
    assert paged["services"] == whole["services"]
    pods = [r for r in api.requests if r.path == "/api/v1/pods"]
    assert len(pods) > 10 and all(r.query["limit"] == "3" for r in pods)
    tokens = _continues(api, "pods")
    assert tokens[0] == "" and all(tokens[1:])           # the first page, then each token
    offsets = [json.loads(base64.b64decode(t))["start"] for t in tokens[1:]]
    assert offsets == list(range(3, 3 * len(offsets) + 1, 3))


def test_an_expired_continue_token_restarts_the_list(api: FakeApiServer,
                                                     kubeconfig: Path) -> None:
    whole = doctor_json("-A", "--all", kubeconfig=kubeconfig)
    api.expire_continues = 1
    proc = run_cli("doctor", "-A", "--all", "--chunk-size", "5", "-o", "json",
                   kubeconfig=kubeconfig)
    assert proc.returncode == whole_status(whole), proc.stderr
    assert json.loads(proc.stdout)["services"] == whole["services"]
    assert "410 Expired" in proc.stderr and "listed them again from the start" in proc.stderr


def whole_status(doc: dict[str, Any]) -> int:
    return 1 if doc["summary"]["error"] else 0


def test_a_continue_token_that_expires_twice_is_a_clear_error(api: FakeApiServer,
                                                              kubeconfig: Path) -> None:
    api.expire_continues = 2
    proc = run_cli("doctor", "-A", "--chunk-size", "5", kubeconfig=kubeconfig)
    assert proc.returncode == 4
    error, hints = error_lines(proc.stderr)
    assert "expired the continue token (410 Gone)" in error and hints


def test_forbidden_pods_in_one_namespace_are_reported_and_the_rest_checked(
        api: FakeApiServer, kubeconfig: Path) -> None:
    api.fail(r"^/api/v1/pods$", 403)                          # no cluster-wide pod list
    api.fail(rf"^/api/v1/namespaces/{DEMO_NS}/pods$", 403)    # nor svctrace-demo's pods
    doc = doctor_json("-A", "--all", kubeconfig=kubeconfig)
    assert {r["namespace"] for r in doc["services"]} == {PUB, "default"}
    assert len(doc["services"]) == len(PUB_SERVICES) + 1
    [finding] = doc["findings"]
    assert finding["id"] == "DOCTOR-NAMESPACE-UNREADABLE" and DEMO_NS in finding["message"]
    assert finding["severity"] == "warning"
    assert run_cli("doctor", "-A", "--fail-on", "none", kubeconfig=kubeconfig).returncode == 0


@pytest.mark.parametrize("fail_on,status", [("none", 0), ("error", 1), ("warning", 1),
                                            ("info", 1)])
def test_exit_status_follows_fail_on(kubeconfig: Path, fail_on: str, status: int) -> None:
    proc = run_cli("doctor", "-n", PUB, "--fail-on", fail_on, kubeconfig=kubeconfig)
    assert proc.returncode == status, proc.stderr


def test_an_empty_namespace_exits_0(kubeconfig: Path) -> None:
    proc = run_cli("doctor", "-n", "empty-namespace", kubeconfig=kubeconfig)
    assert proc.returncode == 0, proc.stderr
    assert "0 Service(s) checked" in proc.stdout


def test_text_rows_end_with_the_explain_command(kubeconfig: Path) -> None:
    proc = run_cli("doctor", "-n", PUB, kubeconfig=kubeconfig)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"namespace {PUB} (live")
    billing = next(line for line in lines if f"{PUB}/billing" in line)
    assert billing.split()[0] == "error"
    assert billing.rstrip().endswith(f"svctrace explain svc/billing -n {PUB}")
    assert "SVC-NO-MATCHING-PODS" in proc.stdout
    assert f"{PUB}/dns-cache" not in proc.stdout                # healthy: counted, not listed


def test_explain_commands_are_shell_quoted(tmp_path: Path, kubeconfig: Path) -> None:
    snap = tmp_path / "my cluster;$(id).json"
    assert run_cli("snapshot", "-A", "-f", str(snap), kubeconfig=kubeconfig).returncode == 0
    doc = doctor_json("--snapshot", str(snap))
    for row in doc["services"]:
        argv = shlex.split(row["explain"])
        assert argv[:5] == ["svctrace", "explain", f"svc/{row['name']}", "-n", row["namespace"]]
        assert argv[5:] == ["--snapshot", str(snap)]


def test_snapshot_of_all_namespaces_gives_the_same_report(tmp_path: Path,
                                                          kubeconfig: Path) -> None:
    snap = tmp_path / "cluster.json"
    proc = run_cli("snapshot", "-A", "-f", str(snap), kubeconfig=kubeconfig)
    assert proc.returncode == 0, proc.stderr
    live = doctor_json("-A", "--all", kubeconfig=kubeconfig)
    offline = doctor_json("--snapshot", str(snap), "--all")
    strip = ("explain",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in offline["services"]] == \
        [{k: v for k, v in r.items() if k not in strip} for r in live["services"]]
    kinds = {i["kind"] for i in json.loads(snap.read_text())["items"]}
    assert kinds == {"Service", "EndpointSlice", "Pod", "Node"}


def test_snapshot_lists_page_by_page(api: FakeApiServer, tmp_path: Path,
                                     kubeconfig: Path) -> None:
    assert run_cli("snapshot", "-A", "-f", str(tmp_path / "c.json"),
                   kubeconfig=kubeconfig).returncode == 0
    assert all(r.query.get("limit") == "500" for r in api.requests
               if r.path in ("/api/v1/pods", "/api/v1/services", "/api/v1/nodes"))


@pytest.mark.parametrize("args,message", [
    (["-A", "-n", PUB], "-A and -n exclude each other"),
    (["-n", PUB, "-o", "xml"], "unknown output format 'xml'"),
    (["-n", PUB, "--parallel", "0"], "--parallel must be at least 1"),
    (["-n", PUB, "--chunk-size", "0"], "--chunk-size must be at least 1"),
    (["-n", PUB, "--node-timeout", "soon"], "invalid --node-timeout 'soon'"),
    (["-n", PUB, "--rules", "node1.txt"], "expected NODE=FILE"),
    (["-n", PUB, "--nodes", ","], "--nodes needs 'all' or node names"),
    (["-n", PUB, "--nodes", "all,node1"], "--nodes all cannot be combined"),
    (["-n", PUB, "--fail-on", "fatal"], "unknown --fail-on value 'fatal'"),
], ids=["A-and-n", "output", "parallel", "chunk-size", "node-timeout", "rules-form",
        "nodes-empty", "nodes-all-and-names", "fail-on"])
def test_usage_errors(kubeconfig: Path, args: list[str], message: str) -> None:
    proc = run_cli("doctor", *args, kubeconfig=kubeconfig)
    assert proc.returncode == 2
    error, _ = error_lines(proc.stderr)
    assert message in error


def test_cluster_unreachable_is_exit_4(api: FakeApiServer, kubeconfig: Path) -> None:
    api.fail(r"^/api/v1/namespaces/svctrace-pub/services$", 403)
    proc = run_cli("doctor", "-n", PUB, kubeconfig=kubeconfig)
    assert proc.returncode == 4
    error, _ = error_lines(proc.stderr)
    assert "access denied: cannot list services" in error


@pytest.mark.parametrize("typed,offered", [
    ("", ["all", "node1", "node2"]),
    ("n", ["node1", "node2"]),
    ("node1,", ["node1,node2"]),
    ("node2,node1,", []),
    ("a", ["all"]),
], ids=["first", "prefix", "after-comma", "all-taken", "the-word-all"])
def test_nodes_complete_with_node_names(typed: str, offered: list[str]) -> None:
    from svctrace.cli import complete
    from svctrace.cli.manpage import cli_root

    snapshot = str(SCENARIOS_API)
    got = complete.complete(cli_root(), ["doctor", "--snapshot", snapshot, "--nodes", typed])
    assert got.candidates == offered


def test_nodes_complete_with_live_node_names(kubeconfig: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from svctrace.cli import complete
    from svctrace.cli.manpage import cli_root

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))      # no names cached from before
    got = complete.complete(cli_root(), ["doctor", "--kubeconfig", str(kubeconfig), "-A",
                                         "--nodes", "node1,"])
    assert got.candidates == ["node1,node2"]


def _stderr_on_a_terminal(args: list[str], kubeconfig: Path) -> tuple[int, str, str]:
    """Run doctor with stderr on a pseudo-terminal and stdout on a pipe."""
    import os
    import pty
    import subprocess
    import sys

    from clusterkit import ROOT
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SVCTRACE_DEBUG")}
    env.update(no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost",
               SVCTRACE_NO_LOCAL_RULES="1", KUBECONFIG=str(kubeconfig), TERM="xterm")
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "svctrace", "doctor", *args], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=terminal, text=True)
    os.close(terminal)
    chunks = []
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:                     # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    out, _ = proc.communicate(timeout=60)
    os.close(controller)
    return proc.returncode, out, b"".join(chunks).decode("utf-8", "replace")


def test_progress_goes_to_stderr_only_on_a_terminal(api: FakeApiServer,
                                                    kubeconfig: Path) -> None:
    api.slow(r"/pods$", 0.6)                 # long enough for the display to draw
    status, out, err = _stderr_on_a_terminal(["-A", "--chunk-size", "20"], kubeconfig)
    assert status == 1
    assert "pods listed" in err and "services listed" in err
    assert "Service(s) checked" in out and "\x1b" not in out
    quiet = run_cli("doctor", "-A", kubeconfig=kubeconfig)     # stderr is a pipe
    assert quiet.stderr == ""
