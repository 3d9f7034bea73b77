"""Benchmark: `svctrace explain` with --rules on kube-proxy-shaped dumps of 1,000 and 10,000
Services (× 5 endpoints) plus a snapshot of one of those Services.

    python bench/bench_explain_rules.py [--runs 10]

Prints the median wall time (process start to exit) for each size, and the growth 1k → 10k.
Target (issue 4): ≤ 1.0 s median on the 10,000-Service dump.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_kubeproxy_dump import generate, ip4  # noqa: E402

ENDPOINTS = 5
NODE = ("node1", "10.10.0.10", "10.244.0.0/24")


def service_index(n_services: int) -> int:
    """The last Service of the dump that has endpoints (the generator leaves i % 100 == 99
    without): its rules sit at the end of every chain list."""
    return max(i for i in range(n_services) if i % 100 != 99)


def snapshot(i: int) -> dict:
    """The API objects kube-proxy would have turned into Service i's rules."""
    ns, name = f"bench-{i % 20:02d}", f"svc-{i:05d}"
    ips = [ip4((10, 244), i * ENDPOINTS + j) for j in range(ENDPOINTS)]
    meta = {"namespace": ns, "creationTimestamp": "2026-11-28T12:00:00Z"}
    items: list[dict] = [{
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, **meta},
        "spec": {"clusterIP": ip4((10, 96), i), "clusterIPs": [ip4((10, 96), i)],
                 "selector": {"app": name}, "type": "ClusterIP",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                            "targetPort": 8080}]}}, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": f"{name}-abcde", "labels": {"kubernetes.io/service-name": name},
                     **meta},
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": NODE[0],
                       "targetRef": {"kind": "Pod", "name": f"{name}-{j}", "namespace": ns}}
                      for j, ip in enumerate(ips)]}]
    for j, ip in enumerate(ips):
        items.append({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": f"{name}-{j}", "labels": {"app": name}, **meta},
                      "spec": {"nodeName": NODE[0], "containers": [
                          {"name": "c", "ports": [{"containerPort": 8080, "name": "http"}]}]},
                      "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                                 "conditions": [{"type": "Ready", "status": "True"}]}})
    items.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE[0]},
                  "spec": {"podCIDR": NODE[2]},
                  "status": {"addresses": [{"type": "InternalIP", "address": NODE[1]}],
                             "conditions": [{"type": "Ready", "status": "True"}]}})
    return {"apiVersion": "v1", "kind": "List", "items": items}


def measure(cmd: list[str], runs: int) -> tuple[float, dict]:
    env = {**os.environ, "SVCTRACE_NO_LOCAL_RULES": "1"}
    times, doc = [], {}
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"explain failed: {proc.stderr.decode()[-400:]}")
        doc = json.loads(proc.stdout)
    return statistics.median(times), doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1000, 10000):
            dump, snap = Path(tmp, f"dump{n}.txt"), Path(tmp, f"snap{n}.json")
            dump.write_text(generate(n, ENDPOINTS))
            i = service_index(n)
            snap.write_text(json.dumps(snapshot(i)))
            cmd = [sys.executable, "-m", "svctrace", "explain", f"svc/svc-{i:05d}", "-n",
                   f"bench-{i % 20:02d}", "--snapshot", str(snap), "--rules", str(dump),
                   "--node", NODE[0], "-o", "json"]
            median, doc = measure(cmd, args.runs)
            reached = {o["destination"] for t in doc["traces"] for o in t["outcomes"]}
            assert len(reached) == ENDPOINTS and not doc["drift"], "explain gave a wrong answer"
            lines = dump.read_text().count("\n")
            results[n] = median
            print(f"{n:>6} Services ({lines:>7} lines): explain median {median:.3f} s "
                  f"over {args.runs} runs; {len(doc['traces'])} traces, drift none")
    growth = results[10000] / results[1000]
    print(f"growth 1k → 10k: ×{growth:.2f}; target ≤ 1.0 s on 10k: "
          f"{'met' if results[10000] <= 1.0 else 'MISSED'}")


if __name__ == "__main__":
    main()
