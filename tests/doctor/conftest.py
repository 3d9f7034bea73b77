"""doctor's tests: the stand-in API server of tests/cluster over real HTTPS, serving the real
fixture objects (both namespaces), kube-system with a kube-proxy pod per node whose exec prints
that node's real rules, and the real CLI in a subprocess."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "cluster"))
sys.path.insert(0, str(Path(__file__).parent))

import clusterkit  # noqa: E402
from apiserver import ExecScript, FakeApiServer, load_items  # noqa: E402
from clusterkit import fixture_items, kube_system_pod  # noqa: E402
from doctorkit import (  # noqa: E402
    DEFAULT_KUBERNETES,
    NFT_MODE_IPTABLES_SAVE,
    PROXIES,
    SCENARIOS_NODE1,
    SCENARIOS_NODE2_NFT,
)


def kube_system() -> list[dict[str, Any]]:
    """A running kube-proxy pod on each node (DaemonSet-style names and label), and CoreDNS."""
    return [kube_system_pod(pod, node, **{"k8s-app": "kube-proxy"})
            for node, pod in PROXIES.items()] + [
        kube_system_pod("coredns-5d78c9869d-2lq8x", "node1", **{"k8s-app": "kube-dns"})]

# shared with the other folders that use the stand-in API server
_no_proxy = clusterkit._no_proxy
cert_dir = clusterkit.cert_dir


@pytest.fixture
def items() -> list[dict[str, Any]]:
    """svctrace-pub, svctrace-demo and default/kubernetes as captured, the two nodes, and
    kube-system (a test may change them before the server's first answer)."""
    return fixture_items() + load_items(DEFAULT_KUBERNETES) + copy.deepcopy(kube_system())


@pytest.fixture
def api(items: list[dict[str, Any]], cert_dir: Path) -> Any:
    """The API server; node1's kube-proxy prints node1's real iptables-save (scenarios
    capture); node2 runs kube-proxy in nftables mode, so iptables-save there has no KUBE
    chains and `nft -j list ruleset` prints node2's real capture."""
    with FakeApiServer(items, cert_dir) as server:
        server.on_exec("kube-system", PROXIES["node1"], ExecScript(stdout=SCENARIOS_NODE1))
        server.on_exec("kube-system", PROXIES["node2"], ExecScript(stdout=NFT_MODE_IPTABLES_SAVE),
                       ("iptables-save",))
        server.on_exec("kube-system", PROXIES["node2"], ExecScript(stdout=SCENARIOS_NODE2_NFT),
                       ("nft", "-j", "list", "ruleset"))
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> Path:
    return api.kubeconfig(tmp_path / "kubeconfig", namespace="svctrace-pub")
