"""Benchmark: `svctrace explain` for one Service against the local test API server.

A namespace of 5,000 pods where the Service selects 50 (one EndpointSlice of 50 endpoints,
10 nodes), all cloned from the real objects in tests/fixtures/rig-v1.36. Each run is a whole
process, `python -m svctrace explain svc/web -o json`, timed from start to exit.

    python bench/bench_explain.py [--runs 15] [--pods 5000] [--selected 50]

Targets (issue 3): at most 4 API requests, a median of at most 0.6 s.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "cluster"))

from apiserver import FakeApiServer  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "rig-v1.36" / "api" / "all.json"
NAMESPACE = "svctrace-demo"


def _fixture(kind: str, name: str) -> dict:
    items = json.loads(FIXTURE.read_text())["items"]
    return next(i for i in items if i["kind"] == kind and i["metadata"]["name"] == name)


def _pod(template: dict, index: int, app: str) -> dict:
    pod = copy.deepcopy(template)
    ip = f"10.{244 + index // 65000}.{index // 250 % 256}.{index % 250 + 2}"
    pod["metadata"].update(name=f"{app}-{index}", uid=f"uid-{index}")
    pod["metadata"]["labels"] = {"app": app}
    pod["spec"]["nodeName"] = f"node{index % 10 + 1}"
    pod["status"].update(podIP=ip, podIPs=[{"ip": ip}])
    return pod


def _slice(template: dict, pods: list[dict]) -> dict:
    slice_ = copy.deepcopy(template)
    endpoint = slice_["endpoints"][0]
    slice_["endpoints"] = [
        {**copy.deepcopy(endpoint), "addresses": [p["status"]["podIP"]],
         "nodeName": p["spec"]["nodeName"],
         "targetRef": {"kind": "Pod", "name": p["metadata"]["name"], "namespace": NAMESPACE,
                       "uid": p["metadata"]["uid"]}} for p in pods]
    return slice_


def _node(template: dict, index: int) -> dict:
    node = copy.deepcopy(template)
    node["metadata"]["name"] = f"node{index}"
    node["status"]["addresses"] = [{"type": "InternalIP", "address": f"10.10.0.{index}"}]
    return node


def build_objects(total: int, selected: int) -> list[dict]:
    """The Service `web`, its slice, `total` pods of which `selected` carry app=web, 10 nodes."""
    pod = _fixture("Pod", "web-0")
    pods = [_pod(pod, i, "web" if i < selected else f"other{i % 40}") for i in range(total)]
    web_slice = next(i for i in json.loads(FIXTURE.read_text())["items"]
                     if i["kind"] == "EndpointSlice"
                     and i["metadata"]["labels"].get("kubernetes.io/service-name") == "web")
    node = _fixture("Node", "node1")
    return ([_fixture("Service", "web"), _slice(web_slice, pods[:selected])] + pods
            + [_node(node, i) for i in range(1, 11)])


def run_once(kubeconfig: Path) -> float:
    # SVCTRACE_NO_LOCAL_RULES: measure the cluster half, not this machine's iptables-save
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "no_proxy": "127.0.0.1,localhost",
           "NO_PROXY": "127.0.0.1,localhost", "SVCTRACE_NO_LOCAL_RULES": "1"}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "svctrace", "explain", "svc/web",
                           "-n", NAMESPACE, "-o", "json", "-q"], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or json.loads(proc.stdout)["schema"] != "svctrace/v1":
        sys.exit(f"explain failed (rc={proc.returncode}): {proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--selected", type=int, default=50)
    args = parser.parse_args()
    objects = build_objects(args.pods, args.selected)
    with tempfile.TemporaryDirectory() as tmp, \
            FakeApiServer(objects, Path(tmp)) as server:
        kubeconfig = server.kubeconfig(Path(tmp) / "kubeconfig", namespace=NAMESPACE)
        run_once(kubeconfig)                          # warm the OS file cache
        times, counts = [], []
        for _ in range(args.runs):
            before = len(server.requests)
            times.append(run_once(kubeconfig))
            counts.append(len(server.requests) - before)
        paths = [r.path + ("?" + "&".join(f"{k}={v}" for k, v in r.query.items())
                           if r.query else "") for r in server.requests[-counts[-1]:]]
    median = statistics.median(times)
    print(f"explain svc/web: {args.pods} pods in the namespace, {args.selected} selected, "
          f"{args.runs} runs")
    print(f"  wall time: median {median:.3f} s, min {min(times):.3f} s, max {max(times):.3f} s"
          f"  (target <= 0.6 s: {'ok' if median <= 0.6 else 'MISSED'})")
    print(f"  API requests per run: {max(counts)}  (target <= 4: "
          f"{'ok' if max(counts) <= 4 else 'MISSED'})")
    for path in paths:
        print(f"    GET {path}")


if __name__ == "__main__":
    main()
