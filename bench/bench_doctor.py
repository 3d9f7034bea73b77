"""Benchmark: `svctrace doctor` at cluster scale, against the test API server (real HTTPS).

    python bench/bench_doctor.py listing [--services 10000] [--pods 100000] [--nodes 1000]
    python bench/bench_doctor.py nodes [--nodes 50 200] [--services 1000] [--parallel 16]

listing: a cluster of SERVICES Services (ClusterIP, in 100 namespaces), one EndpointSlice
each, PODS Pods (cloned from the real objects of tests/fixtures/rig-v1.36) and NODES Nodes.
`doctor -A -o json` (a whole process, timed from start to exit, peak RSS from wait4) is
compared with the floor: the kubernetes client alone fetching the same four lists as raw JSON,
page by page (limit 500, following `continue`, as doctor does). Target (issue 9): at most 1.5x
the floor, peak RSS at most 500 MB.

nodes: every node has a running kube-proxy pod whose exec prints a kube-proxy-shaped
iptables-save dump of SERVICES Services (bench/gen_kubeproxy_dump.py, 5 endpoints each); the
API holds the same Services and EndpointSlices, so every node's digest is compared for real.
`doctor -A --nodes all --parallel N` for each node count: wall time and peak RSS (the RSS must
not grow with the node count). Target: at most 60 s for 200 nodes.

The server runs in a process of its own (it is Python too); the figures are printed, nothing
is asserted.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
sys.path.insert(0, str(ROOT / "bench"))

from apiserver import ExecScript, FakeApiServer  # noqa: E402
from gen_kubeproxy_dump import generate, ip4  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "rig-v1.36" / "api" / "all.json"
DUMP_ENDPOINTS = 5


def _fixture(kind: str) -> dict[str, Any]:
    items = json.loads(FIXTURE.read_text())["items"]
    return next(i for i in items if i["kind"] == kind)


# --- the cluster ------------------------------------------------------------------------------

def service_objects(index: int, ns: str, name: str, endpoints: list[dict[str, Any]],
                    node_port: int | None = None) -> list[dict[str, Any]]:
    """Service `ns/name` (port http 80 → 8080, ClusterIP as gen_kubeproxy_dump gives it) and
    its EndpointSlice with `endpoints`."""
    port: dict[str, Any] = {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}
    if node_port:
        port["nodePort"] = node_port
    cip = ip4((10, 96), index)
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": name, "namespace": ns, "uid": f"uid-svc-{index}",
                        "creationTimestamp": "2026-11-28T12:00:00Z"},
           "spec": {"type": "NodePort" if node_port else "ClusterIP", "clusterIP": cip,
                    "clusterIPs": [cip], "ports": [port], "selector": {"app": name},
                    "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                    "externalTrafficPolicy": "Cluster" if node_port else None,
                    "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}}
    if not node_port:
        del svc["spec"]["externalTrafficPolicy"]
    eps = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": f"{name}-abcde", "namespace": ns,
                        "labels": {"kubernetes.io/service-name": name,
                                   "endpointslice.kubernetes.io/managed-by":
                                       "endpointslice-controller.k8s.io"}},
           "addressType": "IPv4", "endpoints": endpoints,
           "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    return [svc, eps]


def pod_object(template: dict[str, Any], ns: str, app: str, index: int, ip: str,
               node: str) -> dict[str, Any]:
    pod = copy.deepcopy(template)
    pod["metadata"].update(name=f"{app}-{index}", namespace=ns, uid=f"uid-pod-{ip}",
                           labels={"app": app})
    pod["spec"]["nodeName"] = node
    pod["status"].update(podIP=ip, podIPs=[{"ip": ip}])
    return pod


def endpoint(ip: str, node: str, pod: str, ns: str) -> dict[str, Any]:
    return {"addresses": [ip], "conditions": {"ready": True, "serving": True,
                                              "terminating": False},
            "nodeName": node, "zone": "zone-a",
            "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}}


def node_object(template: dict[str, Any], index: int) -> dict[str, Any]:
    node = copy.deepcopy(template)
    node["metadata"]["name"] = f"node{index}"
    node["metadata"]["uid"] = f"uid-node-{index}"
    node["status"]["addresses"] = [{"type": "InternalIP",
                                    "address": f"10.{10 + index // 250}.{index % 250}.1"}]
    return node


def kube_proxy_pod(node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"kube-proxy-{node}", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-proxy"}},
            "spec": {"nodeName": node, "containers": [{"name": "kube-proxy", "image": "x"}]},
            "status": {"phase": "Running"}}


def listing_cluster(services: int, pods: int, nodes: int) -> list[dict[str, Any]]:
    """SERVICES Services in 100 namespaces, each selecting pods/services pods listed in its
    EndpointSlice, spread over NODES nodes."""
    pod_t, node_t = _fixture("Pod"), _fixture("Node")
    per = max(pods // services, 1)
    items: list[dict[str, Any]] = []
    for i in range(services):
        ns, name = f"bench-{i % 100:02d}", f"svc-{i:05d}"
        mine = []
        for j in range(per):
            k = i * per + j
            ip = f"10.{128 + k // 65000}.{k // 250 % 256}.{k % 250 + 1}"
            node = f"node{k % nodes}"
            mine.append(pod_object(pod_t, ns, name, j, ip, node))
        eps = [endpoint(p["status"]["podIP"], p["spec"]["nodeName"], p["metadata"]["name"], ns)
               for p in mine]
        items += service_objects(i, ns, name, eps) + mine
    return items + [node_object(node_t, n) for n in range(nodes)]


def nodes_cluster(services: int, nodes: int) -> list[dict[str, Any]]:
    """The Services and slices gen_kubeproxy_dump programs (5 endpoints each, every 100th
    without, every 50th a NodePort), and NODES nodes with a running kube-proxy pod each."""
    node_t = _fixture("Node")
    items: list[dict[str, Any]] = []
    nodeport_index = 0
    for i in range(services):
        ns, name = f"bench-{i % 20:02d}", f"svc-{i:05d}"
        n_ep = 0 if i % 100 == 99 else DUMP_ENDPOINTS
        node_port = None
        if i % 50 == 0 and n_ep:
            node_port, nodeport_index = 30000 + nodeport_index, nodeport_index + 1
        eps = [{"addresses": [ip4((10, 244), i * n_ep + j)],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": f"node{j % nodes}"} for j in range(n_ep)]
        objs = service_objects(i, ns, name, eps, node_port)
        del objs[0]["spec"]["selector"]            # endpoints without pods: no pod list needed
        items += objs
    items += [node_object(node_t, n) for n in range(nodes)]
    return items + [kube_proxy_pod(f"node{n}") for n in range(nodes)]


# --- the server, in a process of its own ---------------------------------------------------

def _serve(kind: str, args: dict[str, Any], workdir: str, ready: Any) -> None:
    items = listing_cluster(**args) if kind == "listing" else nodes_cluster(**args)
    cert_dir = Path(workdir) / "tls"
    cert_dir.mkdir(exist_ok=True)
    with FakeApiServer(items, cert_dir) as server:
        if kind == "nodes":
            dump = generate(args["services"], DUMP_ENDPOINTS).encode()
            server.on_exec("kube-system", "kube-proxy-*", ExecScript(stdout=dump, chunk=65536))
        server.requests = _Discard()
        ready.send(str(server.kubeconfig(Path(workdir) / f"kubeconfig-{kind}")))
        while True:
            time.sleep(3600)


class _Discard(list):  # type: ignore[type-arg]
    """The server records every request; a benchmark does not need them kept."""

    def append(self, item: Any) -> None:
        pass


def start_server(kind: str, workdir: str, **args: Any) -> tuple[Any, Path]:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(kind, args, workdir, child), daemon=True)
    proc.start()
    return proc, Path(parent.recv())


# --- measuring -----------------------------------------------------------------------------

FLOOR = r"""
import json, sys
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
core, disc = client.CoreV1Api(), client.DiscoveryV1Api()
for call in (core.list_service_for_all_namespaces, disc.list_endpoint_slice_for_all_namespaces,
             core.list_pod_for_all_namespaces, core.list_node):
    token = None
    while True:
        extra = {"_continue": token} if token else {}
        body = json.loads(call(limit=500, _preload_content=False, **extra).data)
        token = body["metadata"].get("continue")
        if not token:
            break
"""


def timed(argv: list[str], kubeconfig: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one process."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost",
               SVCTRACE_NO_LOCAL_RULES="1", KUBECONFIG=str(kubeconfig),
               PYTHONPATH=str(ROOT))
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed: {err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def bench_listing(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        server, kubeconfig = start_server("listing", workdir, services=args.services,
                                          pods=args.pods, nodes=args.nodes)
        try:
            floors, runs = [], []
            for _ in range(args.runs):
                floors.append(timed([sys.executable, "-c", FLOOR, str(kubeconfig)], kubeconfig))
                runs.append(timed([sys.executable, "-m", "svctrace", "doctor", "-A", "-o",
                                   "json", "--fail-on", "none"], kubeconfig))
        finally:
            server.terminate()
    floor, run = min(f[0] for f in floors), min(r[0] for r in runs)
    print(f"listing: {args.services} Services, {args.services} EndpointSlices, {args.pods} "
          f"Pods, {args.nodes} Nodes (best of {args.runs})")
    print(f"  floor (kubernetes client, raw JSON pages): {floor:.2f} s, "
          f"peak RSS {max(f[1] for f in floors):.0f} MB")
    print(f"  svctrace doctor -A -o json:                 {run:.2f} s, "
          f"peak RSS {max(r[1] for r in runs):.0f} MB")
    print(f"  ratio {run / floor:.2f}x (target <= 1.5x), RSS target <= 500 MB")


def bench_nodes(args: argparse.Namespace) -> None:
    for count in args.nodes:
        with tempfile.TemporaryDirectory() as workdir:
            server, kubeconfig = start_server("nodes", workdir, services=args.services,
                                              nodes=count)
            try:
                wall, rss = timed([sys.executable, "-m", "svctrace", "doctor", "-A", "--nodes",
                                   "all", "--parallel", str(args.parallel), "--node-timeout",
                                   "120s", "-o", "json", "--fail-on", "none"], kubeconfig)
            finally:
                server.terminate()
        print(f"nodes: {count} nodes x {args.services}-Service dumps, --parallel "
              f"{args.parallel}: {wall:.1f} s, peak RSS {rss:.0f} MB "
              f"({wall / count * 1000:.0f} ms per node)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    lst = sub.add_parser("listing")
    lst.add_argument("--services", type=int, default=10_000)
    lst.add_argument("--pods", type=int, default=100_000)
    lst.add_argument("--nodes", type=int, default=1_000)
    lst.add_argument("--runs", type=int, default=1)
    nds = sub.add_parser("nodes")
    nds.add_argument("--nodes", type=int, nargs="+", default=[50, 200])
    nds.add_argument("--services", type=int, default=1_000)
    nds.add_argument("--parallel", type=int, default=16)
    args = ap.parse_args()
    (bench_listing if args.what == "listing" else bench_nodes)(args)


if __name__ == "__main__":
    main()
