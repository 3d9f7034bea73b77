#!/usr/bin/env python3
"""Benchmark `svctrace trace` and `svctrace rules -o json` on kube-proxy nftables dumps against
the same Services in iptables mode and against nft's own parser.

    python bench/bench_nft.py [--runs 5] [--sizes 1000,10000] [--nft-runs 1] [--keep DIR]

For each size it generates the Services with 5 endpoints each, a NodePort on every 10th, as a
1.36-layout nft dump (bench/gen_nft_dump.py, `nft list ruleset` text) and as the iptables-save
twin (bench/gen_kubeproxy_dump.py), and measures, as the median of --runs runs of wall time
from process start to exit, with the peak RSS of the child (wait4 rusage):

  trace-nft       python -m svctrace trace --rules NFT_DUMP --dst <a ClusterIP>:80 --src <pod>
  trace-nft-f     the same on the dump in kube-proxy's `nft -f` form
  trace-iptables  python -m svctrace trace --rules IPTABLES_DUMP --dst … --src …
  rules-nft       python -m svctrace rules --rules NFT_DUMP -o json   (every Service)
  rules-iptables  python -m svctrace rules --rules IPTABLES_DUMP -o json
  nft-check       nft -c -f NFT_DUMP   (in a scratch network namespace; --nft-runs runs)

Targets (issue 8, on the 10k dump): trace-nft <= 1.0 x trace-iptables, rules-nft <= 1.0 x
rules-iptables ("x iptables" compares each row with its own command on the iptables dump),
trace-nft <= 0.05 x nft-check, peak RSS <= 300 MB. Needs root for the namespace (nft-check is
skipped without it).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import gen_kubeproxy_dump  # noqa: E402  (bench/ is not a package)
import gen_nft_dump  # noqa: E402
from bench_rules import Result, fmt, measure, netns  # noqa: E402

DST, SRC = "10.96.0.1:80", "10.244.250.9"
CPU: dict[str, float] = {}      # command → mean CPU seconds (user + system) of one run


def timed(name: str, argv: list[str], runs: int) -> Result:
    """bench_rules.measure, plus the CPU time the runs used (children's rusage): on a busy
    machine wall time says little, CPU time still compares the commands."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = measure(name, argv, runs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.times:
        CPU[name] = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) \
            / len(result.times)
    return result


def bench_size(n: int, runs: int, nft_runs: int, workdir: Path, ns: str | None
               ) -> dict[str, Result]:
    nft_dump, nft_f = workdir / f"nft{n}.txt", workdir / f"nft{n}.nft"
    ipt_dump = workdir / f"iptables{n}.txt"
    nft_dump.write_text(gen_nft_dump.generate(n, 5, 10, "text"))
    nft_f.write_text(gen_nft_dump.generate(n, 5, 10, "f"))
    ipt_dump.write_text(gen_kubeproxy_dump.generate(n, 5, 10))
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB"
                      for p in (nft_dump, nft_f, ipt_dump))
    print(f"\n{n} Services x 5 endpoints: {sizes}", flush=True)
    py = [sys.executable, "-m", "svctrace", "trace", "--dst", DST, "--src", SRC, "--rules"]
    results = {
        "trace-nft": timed("trace-nft", [*py, str(nft_dump)], runs),
        "trace-nft-f": timed("trace-nft-f", [*py, str(nft_f)], runs),
        "trace-iptables": timed("trace-iptables", [*py, str(ipt_dump)], runs),
    }
    rules = [sys.executable, "-m", "svctrace", "rules", "-o", "json", "--rules"]
    results["rules-nft"] = timed("rules-nft", [*rules, str(nft_dump)], runs)
    results["rules-iptables"] = timed("rules-iptables", [*rules, str(ipt_dump)], runs)
    if ns is None:
        results["nft-check"] = Result("nft-check")
        results["nft-check"].error = "skipped (needs root and ip netns)"
    else:
        results["nft-check"] = timed("nft-check", ["ip", "netns", "exec", ns, "nft", "-c",
                                                   "-f", str(nft_dump)], nft_runs)
    return results


def report(results: dict[str, Result]) -> None:
    check = results["nft-check"].median
    print(f"{'command':15} {'median s':>9} {'runs':>5} {'peak RSS MB':>12} {'x iptables':>11} "
          f"{'x nft -c':>9} {'cpu s':>7} {'cpu x ipt':>10} {'cpu x nft -c':>13}")
    for key, r in results.items():
        twin = results.get(key.split("-")[0] + "-iptables")
        vs_ipt = _ratio(r.median, twin.median if twin is not None else None)
        vs_check = _ratio(r.median, check)
        cpu, cpu_ipt = CPU.get(r.name), CPU.get(twin.name) if twin is not None else None
        cpu_check = CPU.get("nft-check")
        cols = [fmt(r.median, ".3f"), str(len(r.times)), fmt(r.peak_mb, ".1f"),
                fmt(vs_ipt, ".2f"), fmt(vs_check, ".3f"), fmt(cpu, ".2f"),
                fmt(_ratio(cpu, cpu_ipt), ".2f"), fmt(_ratio(cpu, cpu_check), ".3f")]
        widths = (9, 5, 12, 11, 9, 7, 10, 13)
        print(f"{key:15} " + " ".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))
              + (f"   {r.error}" if r.error else ""))
    print("(targets on 10k: trace-nft and rules-nft <= 1.0 x iptables, trace-nft <= 0.05 x "
          "nft -c; RSS <= 300 MB)")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nft-runs", type=int, default=1, help="runs of nft -c -f (slow: ~25 s "
                    "on the 10k dump)")
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--keep", help="write the dumps here and keep them")
    args = ap.parse_args()
    ns = netns()
    try:
        with tempfile.TemporaryDirectory(prefix="svctrace-bench-nft-") as tmp:
            workdir = Path(args.keep) if args.keep else Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            for n in (int(x) for x in args.sizes.split(",")):
                report(bench_size(n, max(args.runs, 1), max(args.nft_runs, 1), workdir, ns))
    finally:
        if ns is not None:
            subprocess.run(["ip", "netns", "del", ns], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
