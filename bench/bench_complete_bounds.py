"""Hostile-file benchmark for shell completion: what one TAB costs when the file on the line
is /dev/zero, a FIFO nobody writes, a YAML alias bomb or a snapshot above the scan limit.

    python bench/bench_complete_bounds.py [--runs 3] [--strict]

Each TAB is `svctrace __complete` as the shell scripts run it, in a child capped at 2 GB of
address space; the figures are the median wall time and the peak RSS of the child, next to
the same TAB on the rig's small snapshot (the floor). Targets (issue 11 item 2): no TAB
waits past the one-second deadline plus start-up, none grows past 200 MB. (Before the
bounds: /dev/zero reached 16.5 GB in 30 s, a YAML bomb hung over 60 s, a 127 MB snapshot
took 19 s.) --strict exits 1 when a target is missed.
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

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests/fixtures/rig-v1.36/api/all.json"
MAX_RSS_MB, SLACK_S = 200, 1.0

MEASURE = """
import resource, subprocess, sys
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True, preexec_fn=cap, timeout=120)
print(len(proc.stdout.splitlines()) - 1, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def tab(words: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Seconds, peak RSS (MB) and number of candidates of one TAB."""
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "svctrace",
                          "__complete", "--", *words], capture_output=True, text=True,
                         env=env, timeout=180, check=True).stdout.split()
    return time.monotonic() - started, int(out[1]) / 1024, int(out[0])


def hostile_files(tmp: Path) -> dict[str, Path]:
    from svctrace.cli.complete_files import SNAPSHOT_SCAN_LIMIT
    bomb = ["apiVersion: v1", "kind: List", "items:",
            "- &a0 {kind: Service, metadata: {name: web, namespace: ns}, "
            "spec: {ports: [{port: 80}]}}"]
    bomb += [f"- &a{i} {{kind: List, items: [{', '.join([f'*a{i - 1}'] * 9)}]}}"
             for i in range(1, 10)]
    (tmp / "bomb.yaml").write_text("\n".join(bomb) + "\n")
    doc = json.loads(SNAPSHOT.read_text())
    template = json.dumps(next(i for i in doc["items"] if i["kind"] == "Service"))
    for n in range(SNAPSHOT_SCAN_LIMIT // len(template) + 10):
        doc["items"].append(json.loads(template.replace('"name": "db"', f'"name": "b{n}"')))
    (tmp / "big.json").write_text(json.dumps(doc))
    os.mkfifo(tmp / "fifo")
    return {"bomb": tmp / "bomb.yaml", "big": tmp / "big.json", "fifo": tmp / "fifo"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    from svctrace.cli.complete import LIVE_TIMEOUT
    with tempfile.TemporaryDirectory() as tmp:
        files = hostile_files(Path(tmp))
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(tmp) / "cache"),
               "PYTHONPATH": str(ROOT)}
        env.pop("KUBECONFIG", None)
        env.pop("SVCTRACE_COMPLETION_TIMEOUT", None)
        cases = {
            "rig snapshot (floor)": ["explain", "--snapshot", str(SNAPSHOT), "svc/w"],
            "--snapshot /dev/zero": ["explain", "--snapshot", "/dev/zero", "svc/"],
            "--rules /dev/zero": ["rules", "--rules", "/dev/zero", "svc/"],
            "--snapshot FIFO": ["explain", "--snapshot", str(files["fifo"]), ""],
            "--snapshot YAML bomb": ["explain", "--snapshot", str(files["bomb"]), "-n", ""],
            f"--snapshot {files['big'].stat().st_size / 2**20:.1f} MB":
                ["explain", "--snapshot", str(files["big"]), "svc/w"],
        }
        rows = {name: [tab(words, env) for _ in range(max(args.runs, 1))]
                for name, words in cases.items()}
    print(f"median of {max(args.runs, 1)} runs, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}")
    floor = statistics.median(r[0] for r in rows["rig snapshot (floor)"])
    missed = 0
    for name, runs in rows.items():
        seconds = statistics.median(r[0] for r in runs)
        rss = max(r[1] for r in runs)
        ok = seconds <= floor + LIVE_TIMEOUT + SLACK_S and rss <= MAX_RSS_MB
        missed += not ok
        print(f"  {'ok  ' if ok else 'MISS'} {name:28} {seconds:6.2f} s  {rss:7.1f} MB  "
              f"{runs[0][2]} name(s)")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
