"""Helpers of the bounds tests: run svctrace as a user would, measuring its peak memory.

The peak RSS of the command comes from os.wait4: the kernel's own accounting of that one
process (ru_maxrss), not sampling. Processes the tests start are ended by their own pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
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


# The measuring parent: a fresh small process forks the command and reports its rusage. Not
# os.wait4 on a child of pytest itself: a process forked from a large one keeps the parent's
# RSS as its own ru_maxrss across exec (Linux saves the old mm's high-water mark).
_MEASURE = """\
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_measured(args: list[str], stdin: int | IO[bytes] | None = subprocess.DEVNULL,
                 timeout: float = 120, argv: list[str] | None = None) -> Run:
    """Run `svctrace ARGS` (or `argv`) to its end: exit status, stderr, peak RSS in MiB."""
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "wb") as out:
        err_path, rss_path = Path(tmp) / "stderr", Path(tmp) / "maxrss"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-c", _MEASURE, str(rss_path),
                                     *(argv or [*SVCTRACE, *args])], stdin=stdin, stdout=out,
                                    stderr=err, env=ENV, cwd=REPO, start_new_session=True)
        try:
            status = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)      # the group this call created
            proc.wait()
            raise AssertionError(f"svctrace {args} ran over {timeout} s") from None
        text = err_path.read_bytes().decode(errors="replace")
        peak_kib = int(rss_path.read_text())
    return Run(status, text, peak_kib / 1024)


def end_started(proc: subprocess.Popen[bytes]) -> None:
    """End a helper process this test started (by its pid) and reap it."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
