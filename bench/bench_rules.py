#!/usr/bin/env python3
"""Benchmark `svctrace trace` and `svctrace rules -o json` against the kernel's own parsers.

    python bench/bench_rules.py [--runs 5] [--sizes 1000,10000] [--keep DIR]

For each size it generates a kube-proxy-shaped dump (bench/gen_kubeproxy_dump.py, 5 endpoints per
Service) and measures, each as the median of --runs runs of wall time from process start to exit,
with the peak RSS of the child (wait4 rusage):

  trace   python -m svctrace trace --rules DUMP --dst <a ClusterIP>:80
  rules   python -m svctrace rules --rules DUMP -o json   (all Services)
  nft     iptables-nft-restore --test < DUMP      (in a scratch network namespace)
  legacy  iptables-legacy-restore --test < DUMP   (same namespace)

Targets (issue 2, on the 10k dump): trace <= 0.35 x the faster reference, rules <= 1.0 x,
peak RSS <= 300 MB. A command that fails is reported with its exit status and stderr, and the
other measurements still run. Needs root for the network namespace (the references are skipped
without it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import gen_kubeproxy_dump  # noqa: E402  (bench/ is not a package)


class Result:
    def __init__(self, name: str) -> None:
        self.name = name
        self.times: list[float] = []
        self.rss_kb: list[int] = []
        self.error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times and self.error is None else None

    @property
    def peak_mb(self) -> float | None:
        return max(self.rss_kb) / 1024 if self.rss_kb and self.error is None else None


def run_once(argv: list[str], stdin_path: str | None) -> tuple[float, int, int, str]:
    """(wall seconds, peak RSS KiB, exit status, stderr tail) of one child process."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, cwd=REPO)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if stdin_path:
            stdin.close()  # type: ignore[union-attr]
    return wall, usage.ru_maxrss, proc.returncode, err.decode(errors="replace")[-400:]


def measure(name: str, argv: list[str], runs: int, stdin_path: str | None = None) -> Result:
    result = Result(name)
    for _ in range(runs):
        wall, rss, rc, err = run_once(argv, stdin_path)
        if rc != 0:
            result.error = f"exit {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}"
            break
        result.times.append(wall)
        result.rss_kb.append(rss)
    return result


def netns() -> str | None:
    if os.geteuid() != 0:
        return None
    name = f"svctrace-bench-{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", name], capture_output=True)
    return name if done.returncode == 0 else None


def bench_size(n: int, runs: int, workdir: Path, ns: str | None) -> dict[str, Result]:
    dump = workdir / f"dump{n}.txt"
    dump.write_text(gen_kubeproxy_dump.generate(n, 5))
    lines = dump.read_text().count("\n")
    print(f"\n{n} Services x 5 endpoints: {dump} ({lines} lines)", flush=True)
    py = [sys.executable, "-m", "svctrace"]
    results = {
        "trace": measure("trace", [*py, "trace", "--rules", str(dump), "--dst",
                                   "10.96.0.1:80"], runs),
        "rules": measure("rules", [*py, "rules", "--rules", str(dump), "-o", "json"], runs),
    }
    for backend in ("nft", "legacy"):
        if ns is None:
            results[backend] = Result(backend)
            results[backend].error = "skipped (needs root and ip netns)"
            continue
        results[backend] = measure(backend, ["ip", "netns", "exec", ns,
                                             f"iptables-{backend}-restore", "--test"],
                                   runs, str(dump))
    return results


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def report(n: int, results: dict[str, Result]) -> None:
    refs = [r.median for k, r in results.items() if k in ("nft", "legacy") and r.median]
    ref = min(refs) if refs else None
    print(f"{'command':8} {'median s':>9} {'runs':>5} {'peak RSS MB':>12} {'x faster ref':>13}"
          f" {'target':>8}")
    targets = {"trace": "<= 0.35", "rules": "<= 1.0"}
    for key, r in results.items():
        ratio = r.median / ref if r.median is not None and ref else None
        print(f"{key:8} {fmt(r.median, '9.3f')} {len(r.times):5d} {fmt(r.peak_mb, '12.1f')} "
              f"{fmt(ratio, '13.2f')} {targets.get(key, ''):>8}"
              + (f"   {r.error}" if r.error else ""))
    print(f"(faster reference: {fmt(ref, '.3f')} s; RSS target <= 300 MB)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--keep", help="write the dumps here and keep them")
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    ns = netns()
    try:
        with tempfile.TemporaryDirectory(prefix="svctrace-bench-") as tmp:
            workdir = Path(args.keep) if args.keep else Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            for n in sizes:
                report(n, bench_size(n, max(args.runs, 1), workdir, ns))
    finally:
        if ns is not None:
            subprocess.run(["ip", "netns", "del", ns], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
