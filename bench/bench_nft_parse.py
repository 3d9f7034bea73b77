#!/usr/bin/env python3
"""How long the nft readers take on kube-proxy-shaped 1.36 dumps of 1,000 and 10,000 Services
× 5 endpoints (a NodePort on every 10th), written by bench/gen_nft_dump.py.

For each dump and form it prints the median and the best of --runs runs of:
  read        parse_nft_text: the structure (tables, chains, sets) — what every command pays
  +service-ips  … then the elements of `service-ips` (what a trace through a ClusterIP reads)
  everything  … then every rule and element (NftRuleset.check())

With --json (root, nft installed) the text dump is also loaded into a scratch network
namespace and listed with `nft -j list ruleset` (slow: about a minute to load and half a
minute to list 10,000 Services), and parse_nft_json is timed on that.

Wall time and CPU time are both shown: on a busy machine the CPU time is the steadier figure.
Target (issue 8): reading the 10k text dump (~4 MB) well under 0.5 s.

    python bench/bench_nft_parse.py [--runs 5] [--services 1000,10000] [--json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_nft_dump import generate  # noqa: E402

from svctrace.model.nftables import NftRuleset  # noqa: E402
from svctrace.rules.nft_json import parse_nft_json  # noqa: E402
from svctrace.rules.nft_text import parse_nft_text  # noqa: E402


def _timed(fn: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return walls, cpus


def nft_json(text: str) -> str:
    """`nft -j list ruleset` of `text` loaded into a scratch netns (deleted afterwards)."""
    name = f"svtbench{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=text, text=True,
                       check=True)
        return subprocess.run(["ip", "netns", "exec", name, "nft", "-j", "list", "ruleset"],
                              capture_output=True, text=True, check=True).stdout
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _steps(text: str, parse: Callable[[str, str], NftRuleset]) -> dict[str, Callable[[], object]]:
    def read() -> object:
        return parse(text, "bench")

    def service_ips() -> object:
        table = parse(text, "bench").tables[0]
        nft_set = table.set("service-ips")
        assert nft_set is not None
        return nft_set.elements

    def everything() -> object:
        rules = parse(text, "bench")
        rules.check()
        return rules

    return {"read": read, "+service-ips": service_ips, "everything": everything}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--services", default="1000,10000")
    ap.add_argument("--json", action="store_true", help="also nft -j output (root, nft)")
    args = ap.parse_args(argv)
    print(f"{'dump':<22} {'step':<13} {'wall median':>11} {'wall best':>10} "
          f"{'cpu median':>11} {'cpu best':>9}")
    for n in (int(x) for x in args.services.split(",")):
        dumps = [("text", generate(n, 5, 10, "text"), parse_nft_text),
                 ("-f", generate(n, 5, 10, "f"), parse_nft_text)]
        if args.json:
            dumps.append(("-j", nft_json(dumps[0][1]), parse_nft_json))
        for form, text, parse in dumps:
            name = f"{n} svc {form} {len(text) / 1e6:.1f} MB"
            for step, fn in _steps(text, parse).items():
                walls, cpus = _timed(fn, args.runs)
                print(f"{name:<22} {step:<13} {statistics.median(walls):>10.3f}s "
                      f"{min(walls):>9.3f}s {statistics.median(cpus):>10.3f}s "
                      f"{min(cpus):>8.3f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
