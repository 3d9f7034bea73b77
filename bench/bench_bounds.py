#!/usr/bin/env python3
"""Measure what the input and trace bounds cost (issue 11, items 1 and 5).

    python bench/bench_bounds.py [--runs 3] [--keep DIR]

Each case runs `python -m svctrace …` --runs times and prints the median wall time, the peak
RSS (wait4 rusage of the child: this script is small, so the figure is the child's own) and
the exit status:

  endless inputs   /dev/zero (stops at its first NUL byte), `yes '# x'` on stdin at the
                   default limit (512M) and at --max-input-size 64M
  deep chains      a trace through a 2,000- and a 20,000-deep jump chain (iptables-legacy
                   loads both; the old recursive walk failed from about 250)
  forks            40 statistic matches nested 50/50 (2^40 ways: cut off at the 17th level),
                   three 50-endpoint cascades in a row (125,000 ways: cut off at 50,000
                   branches), and a kube-proxy cascade of 20,000 endpoints (traced whole)

Targets: endless inputs stop with exit 5 and, at 64M, under 200 MB; nested forks are cut off in
well under a second, too many branches under 200 MB; deep chains and the cascade trace with
exit 0.
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

REPO = Path(__file__).resolve().parent.parent
SVCTRACE = [sys.executable, "-m", "svctrace"]
NAT = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
       ":POSTROUTING ACCEPT [0:0]"]
VIP = "10.96.77.7"
TRACE = ["trace", "--dst", f"{VIP}:80", "--src", "203.0.113.9", "-o", "json"]


def deep_chain(depth: int) -> str:
    lines = [*NAT, *(f":C{i} - [0:0]" for i in range(depth)), "-A PREROUTING -j C0"]
    lines += [f"-A C{i} -j C{i + 1}" for i in range(depth - 1)]
    lines.append(f"-A C{depth - 1} -p tcp -j DNAT --to-destination 10.244.0.1:8080")
    return "\n".join([*lines, "COMMIT", ""])


def nested_forks(levels: int) -> str:
    lines = [*NAT, *(f":F{i} - [0:0]" for i in range(levels + 1)), "-A PREROUTING -j F0"]
    for i in range(levels):
        lines += [f"-A F{i} -m statistic --mode random --probability 0.5 -j F{i + 1}",
                  f"-A F{i} -j F{i + 1}"]
    lines.append(f"-A F{levels} -p tcp -j DNAT --to-destination 10.244.0.1:8080")
    return "\n".join([*lines, "COMMIT", ""])


def cascade(endpoints: int) -> str:
    lines = [*NAT, ":KUBE-SVC-X - [0:0]", *(f":SEP{i} - [0:0]" for i in range(endpoints)),
             f"-A PREROUTING -d {VIP}/32 -p tcp -j KUBE-SVC-X"]
    lines += [f"-A KUBE-SVC-X -m statistic --mode random --probability "
              f"{1 / (endpoints - i):.11f} -j SEP{i}" for i in range(endpoints - 1)]
    lines.append(f"-A KUBE-SVC-X -j SEP{endpoints - 1}")
    lines += [f"-A SEP{i} -p tcp -j DNAT --to-destination 10.{i >> 16}.{(i >> 8) & 255}."
              f"{i & 255}:8080" for i in range(endpoints)]
    return "\n".join([*lines, "COMMIT", ""])


def nested_cascades(width: int, levels: int) -> str:
    """`levels` cascades of `width` endpoints in a row: width^levels ways, nested `levels`
    deep (within MAX_NESTED), so only the branch count in all stops it."""
    lines = [*NAT, *(f":L{d} - [0:0]" for d in range(levels)), ":END - [0:0]",
             "-A PREROUTING -j L0"]
    for d in range(levels):
        nxt = f"L{d + 1}" if d + 1 < levels else "END"
        lines += [f"-A L{d} -m statistic --mode random --probability {1 / (width - i):.11f} "
                  f"-j {nxt}" for i in range(width - 1)]
        lines.append(f"-A L{d} -j {nxt}")
    lines.append("-A END -p tcp -j DNAT --to-destination 10.244.0.1:8080")
    return "\n".join([*lines, "COMMIT", ""])


def run_once(argv: list[str], feeder: list[str] | None) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit status) of one svctrace run."""
    source = subprocess.Popen(feeder, stdout=subprocess.PIPE) if feeder else None
    try:
        start = time.perf_counter()
        proc = subprocess.Popen([*SVCTRACE, *argv], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL,
                                stdin=source.stdout if source else subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if source is not None:
            source.kill()
            source.wait()
    return wall, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", help="write the generated dumps here (default: a temp dir)")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="svctrace-bounds-"))
    work.mkdir(parents=True, exist_ok=True)
    dumps = {"deep-2000": deep_chain(2000), "deep-20000": deep_chain(20000),
             "forks-40": nested_forks(40), "cascades-50x50x50": nested_cascades(50, 3),
             "cascade-20000": cascade(20000)}
    for name, text in dumps.items():
        (work / f"{name}.txt").write_text(text)
    yes = ["yes", "# x"]
    cases = [
        ("/dev/zero (default limit)", ["rules", "--rules", "/dev/zero"], None),
        ("endless stdin, default limit", ["rules", "--rules", "-"], yes),
        ("endless stdin, --max-input-size 64M",
         ["rules", "--rules", "-", "--max-input-size", "64M"], yes),
        *((f"trace {name}", [*TRACE, "--rules", str(work / f"{name}.txt")], None)
          for name in dumps),
    ]
    print(f"{'case':40} {'wall s':>8} {'peak MB':>8} {'exit':>5}")
    for label, argv, feeder in cases:
        runs = [run_once(argv, feeder) for _ in range(args.runs)]
        wall = statistics.median(r[0] for r in runs)
        peak = max(r[1] for r in runs)
        print(f"{label:40} {wall:8.2f} {peak:8.0f} {runs[-1][2]:5d}")


if __name__ == "__main__":
    main()
