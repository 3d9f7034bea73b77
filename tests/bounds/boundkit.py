"""Helpers of the bounds tests: run svctrace as a user would, measuring its peak memory.

The peak RSS of the child comes from os.wait4: the kernel's own accounting of that one process
(ru_maxrss), not sampling. Processes the tests start are ended by their own pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parent.parent.parent
FIXTURES = REPO / "tests" / "fixtures"
DEMO = FIXTURES / "rig-v1.36"
DEMO_RULES = DEMO / "node1.iptables-save.txt"
DEMO_SNAPSHOT = DEMO / "api" / "all.json"
ENV = {**os.environ, "SVCTRACE_NO_LOCAL_RULES": "1", "NO_COLOR": "1"}
SVCTRACE = [sys.executable, "-m", "svctrace"]
MEMORY_BOUND_MB = 200          # issue 11: peak RSS before the error, endless inputs


@dataclass
class Run:
    status: int
    stderr: str
    peak_rss_mb: float

    def one_error(self) -> str:
        """The single `svctrace: error:` line; fails on a traceback or on several lines."""
        assert "Traceback" not in self.stderr and "internal error" not in self.stderr, self.stderr
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("svctrace: error: ")]
        assert len(lines) == 1, self.stderr
        return lines[0]


def run_measured(args: list[str], stdin: int | IO[bytes] | None = subprocess.DEVNULL,
                 timeout: float = 120, argv: list[str] | None = None) -> Run:
    """Run `svctrace ARGS` (or `argv`) to its end: exit status, stderr, peak RSS in MiB."""
    with tempfile.TemporaryFile() as err, open(os.devnull, "wb") as out:
        proc = subprocess.Popen(argv or [*SVCTRACE, *args], stdin=stdin, stdout=out,
                                stderr=err, env=ENV, cwd=REPO)
        timer = threading.Timer(timeout, os.kill, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    assert proc.returncode != -signal.SIGKILL, f"svctrace {args} ran over {timeout} s"
    return Run(proc.returncode, text, usage.ru_maxrss / 1024)


def end_started(proc: subprocess.Popen[bytes]) -> None:
    """End a helper process this test started (by its pid) and reap it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
