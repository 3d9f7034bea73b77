"""Waits that end (issue 11, item 4): --request-timeout bounds each request end to end against
a server that trickles its answer a byte at a time (no single read ever waits long), that
trickles its headers, or that delays the exec upgrade; and the command as a whole has an
overall deadline. The real client over real HTTPS to the stand-in API server."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
from apiserver import ExecScript, FakeApiServer, load_items
from clusterkit import DEMO, DEMO_NS, error_lines, kube_system_pod, run_cli

from svctrace.cluster.live import connect, load_live_view
from svctrace.errors import ClusterError

PROXY = "kube-proxy-7xq2m"
EXEC_PATH = f"/api/v1/namespaces/kube-system/pods/{PROXY}/exec"


def _elapsed(fn: Any, *args: Any, **kwargs: Any) -> tuple[BaseException | None, float]:
    began = time.monotonic()
    try:
        fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - returned to the test
        return err, time.monotonic() - began
    return None, time.monotonic() - began


TRICKLES = [
    # (id, trickle the headers too)
    ("body", False),
    ("headers", True),
]


@pytest.mark.parametrize("headers", [t[1] for t in TRICKLES], ids=[t[0] for t in TRICKLES])
def test_a_trickling_answer_is_cut_at_the_timeout(api: FakeApiServer, kubeconfig: Path,
                                                  headers: bool) -> None:
    api.trickle("/services/edge$", 0.1, headers=headers)     # 10 bytes a second
    err, took = _elapsed(load_live_view, "edge", None, None, str(kubeconfig), 1.0)
    assert isinstance(err, ClusterError) and "did not answer within 1s" in err.message, err
    assert took < 2.5, took                          # minutes before


def test_a_trickling_answer_through_the_cli(api: FakeApiServer, kubeconfig: Path) -> None:
    api.trickle("/services/edge$", 0.2)
    began = time.monotonic()
    proc = run_cli("explain", "edge", "--request-timeout", "2s", kubeconfig=kubeconfig)
    took = time.monotonic() - began
    line, _ = error_lines(proc.stderr)
    assert proc.returncode == 4 and "did not answer within 2s" in line
    assert took < 10, took            # minutes before


def test_a_slow_but_steady_answer_within_the_timeout_is_read(api: FakeApiServer,
                                                             kubeconfig: Path) -> None:
    api.slow("/services/edge$", 0.3)
    assert load_live_view("edge", None, None, str(kubeconfig), 2.0).service.name == "edge"


def test_the_overall_deadline_ends_many_slow_requests(api: FakeApiServer,
                                                      kubeconfig: Path) -> None:
    """Each request is within its timeout, the four together are not within the deadline."""
    api.slow("/api", 0.4)
    conn = connect(str(kubeconfig), None, 1.0, deadline=time.monotonic() + 1.0)
    began = time.monotonic()
    with pytest.raises(ClusterError) as err:
        conn.fetch_service_view("edge", "svctrace-pub")
    assert "did not end within its overall limit" in err.value.message
    assert "--request-timeout" in err.value.hint
    assert time.monotonic() - began < 2.0
    assert 1 <= len(api.requests) < 4                # cut before the last one


@pytest.fixture
def exec_api(cert_dir: Path) -> Any:
    items = copy.deepcopy(load_items(DEMO)) + [kube_system_pod(PROXY, "node1",
                                                               **{"k8s-app": "kube-proxy"})]
    with FakeApiServer(items, cert_dir) as server:
        yield server


def test_a_delayed_exec_upgrade_is_cut_at_the_timeout(exec_api: FakeApiServer,
                                                      tmp_path: Path) -> None:
    exec_api.slow(EXEC_PATH, 60)
    kc = exec_api.kubeconfig(tmp_path / "kc")
    began = time.monotonic()
    proc = run_cli("explain", "svc/web", "-n", DEMO_NS, "--node", "node1",
                   "--request-timeout", "1s", kubeconfig=kc)
    took = time.monotonic() - began
    line, _ = error_lines(proc.stderr)
    assert proc.returncode == 4 and "did not start it within 1s" in line, proc.stderr
    assert took < 10, took            # 60 s before


def test_exec_output_that_goes_on_meets_the_deadline(exec_api: FakeApiServer,
                                                     tmp_path: Path) -> None:
    """iptables-save output in 4-byte frames 50 ms apart (20 s in all): never silent for a
    request timeout, so only the overall deadline ends it, on time."""
    from svctrace.cluster.node_exec import read_rules_through_exec
    exec_api.on_exec("kube-system", PROXY, ExecScript(stdout=b"# x\n" * 400, chunk=4,
                                                      pace=0.05))
    conn = connect(str(exec_api.kubeconfig(tmp_path / "kc")), None, 1.0,
                   deadline=time.monotonic() + 2.0)
    err, took = _elapsed(read_rules_through_exec, conn, "node1")
    assert isinstance(err, ClusterError) and "overall limit" in err.message, err
    assert took < 3.5, took                          # 20 s before
