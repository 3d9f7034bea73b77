"""Benchmark: `svctrace explain --rules` on kube-proxy-shaped nftables dumps (1.36 layout) of
1,000 and 10,000 Services (× 5 endpoints, a NodePort on every 10th), beside the same Services
as iptables-save, with a snapshot of one of those Services.

    python bench/bench_nft_explain.py [--runs 5]

Prints, for each size and mode, the median wall time (process start to exit) and the nft /
iptables ratio. The answer is checked (5 backends reached, no drift) before it is timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen_kubeproxy_dump  # noqa: E402  (bench/ is not a package)
import gen_nft_dump  # noqa: E402
from bench_explain_rules import ENDPOINTS, NODE, measure, service_index, snapshot  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1000, 10000):
            i = service_index(n)
            snap = Path(tmp, f"snap{n}.json")
            snap.write_text(json.dumps(snapshot(i)))
            dumps = {"nftables": gen_nft_dump.generate(n, ENDPOINTS, 10, "text"),
                     "iptables": gen_kubeproxy_dump.generate(n, ENDPOINTS, 10)}
            medians = {}
            for mode, text in dumps.items():
                dump = Path(tmp, f"{mode}{n}.txt")
                dump.write_text(text)
                cmd = [sys.executable, "-m", "svctrace", "explain", f"svc/svc-{i:05d}", "-n",
                       f"bench-{i % 20:02d}", "--snapshot", str(snap), "--rules", str(dump),
                       "--node", NODE[0], "-o", "json"]
                medians[mode], doc = measure(cmd, args.runs)
                reached = {o["destination"] for t in doc["traces"] for o in t["outcomes"]}
                assert len(reached) == ENDPOINTS and not doc["drift"], f"wrong answer ({mode})"
                assert doc["rules"]["mode"] == mode
                print(f"{n:>6} Services, {mode:8}: explain median {medians[mode]:.3f} s over "
                      f"{args.runs} runs ({dump.stat().st_size / 1e6:.1f} MB)", flush=True)
            print(f"{n:>6} Services: nftables / iptables = "
                  f"{medians['nftables'] / medians['iptables']:.2f}")


if __name__ == "__main__":
    main()
