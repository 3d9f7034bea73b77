"""The live path: the real kubernetes client over real HTTPS against the stand-in API server.
Asserts the requests made, and that every failure becomes one SvctraceError."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from apiserver import FakeApiServer
from clusterkit import DEMO_NS, PUB, find

from svctrace.cluster.live import connect, list_names, load_live_view
from svctrace.diagnose.cluster import explain_cluster
from svctrace.errors import ClusterError, NotFoundError

REQUESTS = [
    # (service, namespace, paths requested, in order)
    ("edge", PUB, ["services/edge", "endpointslices", "pods", "nodes"]),
    ("billing", PUB, ["services/billing", "endpointslices", "pods", "pods"]),
    ("ext-db", DEMO_NS, ["services/ext-db", "endpointslices", "nodes"]),
    ("mail", PUB, ["services/mail"]),
]


def _short(path: str) -> str:
    """`/api/v1/namespaces/ns/services/edge` → `services/edge`; a list → its resource."""
    parts = path.split("/")
    return "/".join(parts[-2:]) if parts[-2] == "services" else parts[-1]


@pytest.mark.parametrize("name,namespace,paths", REQUESTS, ids=[r[0] for r in REQUESTS])
def test_requests_made(api: FakeApiServer, kubeconfig: Path, name: str, namespace: str,
                       paths: list[str]) -> None:
    load_live_view(name, namespace, None, str(kubeconfig))
    assert [_short(r.path) for r in api.requests] == paths
    assert len(api.requests) <= 4
    # pods only ever in the Service's namespace, never cluster-wide
    assert all(f"/namespaces/{namespace}/pods" in r.path for r in api.requests
               if r.path.endswith("/pods"))


def test_selectors_sent_to_the_server(api: FakeApiServer, kubeconfig: Path) -> None:
    load_live_view("billing", None, None, str(kubeconfig))
    queries = [r.query for r in api.requests]
    assert queries[1] == {"labelSelector": "kubernetes.io/service-name=billing"}
    assert queries[2] == {"labelSelector": "app=billing,tier=backedn"}
    assert "labelSelector" not in queries[3]          # near misses: the namespace's pods


def test_context_namespace_is_the_default(api: FakeApiServer, kubeconfig: Path) -> None:
    view = load_live_view("edge", None, None, str(kubeconfig))
    assert view.service.namespace == PUB
    assert api.requests[0].headers["authorization"] == "Bearer s3cret"


def test_kubeconfig_list_and_context(api: FakeApiServer, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    first = tmp_path / "first"
    first.write_text(json.dumps({"apiVersion": "v1", "kind": "Config", "clusters": [],
                                 "contexts": [], "users": []}))
    second = api.kubeconfig(tmp_path / "second", namespace=DEMO_NS, context="demo")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{first}:{second}")
    conn = connect(None, "demo")
    assert (conn.context, conn.namespace) == ("demo", DEMO_NS)
    assert load_live_view("web", None, "demo", None).service.namespace == DEMO_NS


def test_live_view_is_explained(api: FakeApiServer, kubeconfig: Path) -> None:
    view = load_live_view("inventory", None, None, str(kubeconfig))
    ids = [f.id for f in explain_cluster(view).findings]
    assert ids == ["SVC-PODS-NOT-READY"]


def _err(fn, *args) -> ClusterError:
    with pytest.raises(ClusterError) as err:
        fn(*args)
    return err.value


@pytest.mark.parametrize("path,status,words", [
    ("/services/edge", 401, ["401", "credentials"]),
    ("/services/edge", 403, ["cannot get services", PUB, "403"]),
    ("/endpointslices", 403, ["cannot list endpointslices", "403"]),
    ("/pods", 403, ["cannot list pods", "403"]),
    ("/services/edge", 500, ["500", "get services"]),
    ("/pods", 503, ["503", "list pods"]),
], ids=["401", "403-service", "403-slices", "403-pods", "500", "503-pods"])
def test_api_errors(api: FakeApiServer, kubeconfig: Path, path: str, status: int,
                    words: list[str]) -> None:
    api.fail(path, status)
    err = _err(load_live_view, "edge", None, None, str(kubeconfig))
    assert all(w in err.message for w in words), err.message
    if status == 403:
        assert "services, endpointslices, pods and nodes" in err.hint


def test_forbidden_nodes_only_degrade(api: FakeApiServer, kubeconfig: Path) -> None:
    api.fail("^/api/v1/nodes", 403)
    view = load_live_view("edge", None, None, str(kubeconfig))
    assert not view.nodes_known and view.notes
    ex = explain_cluster(view)
    assert "SVC-ETP-LOCAL-NO-LOCAL-ENDPOINTS" in [f.id for f in ex.findings]


def test_not_found_suggests(api: FakeApiServer, kubeconfig: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        load_live_view("edgee", None, None, str(kubeconfig))
    assert "edge" in err.value.hint
    with pytest.raises(NotFoundError) as err:
        load_live_view("web", None, None, str(kubeconfig))          # lives in svctrace-demo
    assert DEMO_NS in err.value.hint
    assert err.value.exit_status == 3


def test_slow_server_times_out(api: FakeApiServer, kubeconfig: Path) -> None:
    api.slow("/services/edge", 3.0)
    err = _err(load_live_view, "edge", None, None, str(kubeconfig), 0.5)
    assert "did not answer within 0.5s" in err.message


def test_connection_refused(api: FakeApiServer, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = json.loads(api.kubeconfig(tmp_path / "kc").read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    (tmp_path / "kc").write_text(json.dumps(config))
    err = _err(load_live_view, "edge", PUB, None, str(tmp_path / "kc"))
    assert "connection refused" in err.message


def test_tls_failure(api: FakeApiServer, tmp_path: Path) -> None:
    kc = api.kubeconfig(tmp_path / "kc", ca=False)
    err = _err(load_live_view, "edge", PUB, None, str(kc))
    assert "TLS" in err.message


def test_no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    err = _err(connect, None, None)
    assert "no kubeconfig found" in err.message and err.exit_status == 4


def test_unknown_context(api: FakeApiServer, kubeconfig: Path) -> None:
    err = _err(connect, str(kubeconfig), "prod")
    assert 'context "prod" not found' in err.message and "rig" in err.hint


def test_invalid_kubeconfig(tmp_path: Path) -> None:
    (tmp_path / "kc").write_text("clusters: [\n")
    err = _err(connect, str(tmp_path / "kc"), None)
    assert "kubeconfig" in err.message


@pytest.mark.parametrize("kind,expected", [
    ("services", ["billing", "dns-cache", "edge"]),
    ("namespaces", [DEMO_NS, PUB]),
    ("contexts", ["rig"]),
    ("nodes", ["node1", "node2"]),
    ("pods-not-a-kind", []),
])
def test_list_names(api: FakeApiServer, kubeconfig: Path, kind: str,
                    expected: list[str]) -> None:
    names = list_names(kind, None, None, str(kubeconfig), 2.0)
    assert names[: len(expected)] == expected


def test_list_names_never_raises(tmp_path: Path) -> None:
    assert list_names("services", None, None, str(tmp_path / "none"), 0.2) == []


def test_fixture_untouched_by_tests(items: list[dict]) -> None:
    # the server serves copies: what a test modifies never reaches the fixture files
    assert find(items, "Service", "billing")["spec"]["selector"]["tier"] == "backedn"


@pytest.mark.parametrize("code", [
    "from kubernetes import client; assert client.V1Pod and client.CoreV1Api",
    "import kubernetes.dynamic; from kubernetes import watch, utils; assert watch.Watch",
    "from kubernetes import config; assert config.load_kube_config",
    "import kubernetes; assert kubernetes.__version__ == '36.0.3'",
], ids=["client-models", "dynamic", "config", "version"])
def test_light_import_leaves_the_library_whole(code: str) -> None:
    """After the light import, the rest of the library still imports as usual."""
    import subprocess
    import sys
    prog = ("from svctrace.cluster.live import import_client_light\nimport_client_light()\n"
            "import sys\nassert 'kubernetes.client.models.v1_pod' not in sys.modules\n" + code)
    proc = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
