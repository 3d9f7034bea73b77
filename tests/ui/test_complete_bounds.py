"""A TAB never hangs and never eats memory, whatever file is on the line: /dev/zero, a FIFO
nobody writes to, a YAML alias bomb, a snapshot too big to parse within a TAB.

Each case runs `svctrace __complete` as the shell scripts do, in a child whose time and peak
memory are measured (and whose address space is capped, so a regression fails the test
instead of taking the machine down)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ui_helpers import SNAPSHOT, user_environment

from svctrace.cli.complete_files import SNAPSHOT_SCAN_LIMIT, read_small_file

MAX_RSS_MB = 200
# The cases run with an 8 s deadline, so that what they show is the file checks (type, size)
# at work, not the deadline; 5 s is start-up on a heavily loaded CI machine, far below it
# (the unbounded reads took 19-60 s). The YAML bomb runs with the default deadline.
DEADLINE = "8"
MAX_SECONDS = 5.0

# runs the TAB in a child capped at 2 GB of address space; prints the child's peak RSS (kB)
MEASURE = """
import resource, subprocess, sys
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True, preexec_fn=cap,
                      timeout=60)
sys.stderr.write(proc.stderr)
print(proc.stdout, end="")
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def tab(words: list[str], env: dict[str, str]) -> tuple[list[str], float, float]:
    """The candidates a TAB offers, the seconds it took and its peak RSS in MB."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "svctrace",
                           "__complete", "--", *words], capture_output=True, text=True,
                          env=env, timeout=120)
    elapsed = time.monotonic() - started
    *answer, rss_kb = proc.stdout.splitlines()
    assert proc.stderr == "" and answer[-1].startswith(":"), proc.stderr
    return answer[:-1], elapsed, int(rss_kb) / 1024


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**user_environment(tmp_path), "SVCTRACE_COMPLETION_TIMEOUT": DEADLINE}


def yaml_bomb(levels: int = 9, fanout: int = 9) -> str:
    """The billion laughs inside a List's items: nested Lists of aliases to one Service, a
    few hundred bytes that flatten to 9**9 Services."""
    lines = ["- &a0 {kind: Service, metadata: {name: web, namespace: ns}, "
             "spec: {ports: [{port: 80}]}}"]
    for i in range(1, levels + 1):
        lines.append(f"- &a{i} {{kind: List, items: [" + ", ".join([f"*a{i - 1}"] * fanout)
                     + "]}")
    return "\n".join(["apiVersion: v1", "kind: List", "items:", *lines, ""])


def big_snapshot(path: Path) -> Path:
    """A valid snapshot (the rig's, with many more Services) just above the scan limit."""
    doc = json.loads(SNAPSHOT.read_text())
    template = json.dumps(next(i for i in doc["items"] if i["kind"] == "Service"))
    count = SNAPSHOT_SCAN_LIMIT // len(template) + 10
    for n in range(count):
        item = json.loads(template)
        item["metadata"]["name"] = f"bulk-{n}"
        doc["items"].append(item)
    path.write_text(json.dumps(doc))
    assert path.stat().st_size > SNAPSHOT_SCAN_LIMIT
    return path


def test_dev_zero(env: dict[str, str]) -> None:
    names, seconds, rss = tab(["explain", "--snapshot", "/dev/zero", "svc/"], env)
    assert names == [] and seconds < MAX_SECONDS and rss < MAX_RSS_MB


def test_dev_zero_as_rules(env: dict[str, str]) -> None:
    names, seconds, rss = tab(["rules", "--rules", "/dev/zero", "svc/"], env)
    assert names == [] and seconds < MAX_SECONDS and rss < MAX_RSS_MB


def test_fifo_nobody_writes(env: dict[str, str], tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for words in (["explain", "--snapshot", str(fifo), ""], ["rules", "--rules", str(fifo), ""]):
        names, seconds, rss = tab(words, env)
        assert names == [] and seconds < MAX_SECONDS and rss < MAX_RSS_MB, words


def test_yaml_bomb(env: dict[str, str], tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(yaml_bomb())
    env.pop("SVCTRACE_COMPLETION_TIMEOUT")
    names, seconds, rss = tab(["explain", "--snapshot", str(bomb), "-n", ""], env)
    assert names == [] and seconds < MAX_SECONDS and rss < MAX_RSS_MB


def test_big_snapshot_gives_no_names_fast(env: dict[str, str], tmp_path: Path) -> None:
    """A valid snapshot: with 8 s to parse it, only the size check leaves the names out."""
    big = big_snapshot(tmp_path / "big.json")
    started = time.monotonic()
    assert read_small_file(str(big), SNAPSHOT_SCAN_LIMIT) is None
    assert time.monotonic() - started < 0.1                 # decided from its size alone
    names, seconds, rss = tab(["explain", "--snapshot", str(big), "svc/w"], env)
    assert names == [] and seconds < MAX_SECONDS and rss < MAX_RSS_MB


def test_a_small_snapshot_still_completes(env: dict[str, str]) -> None:
    """The control for the cases above: the same measurement on the rig's snapshot."""
    names, seconds, rss = tab(["explain", "--snapshot", str(SNAPSHOT), "svc/w"], env)
    assert names == ["svc/web", "svc/web-np"]
    assert seconds < MAX_SECONDS and rss < MAX_RSS_MB
