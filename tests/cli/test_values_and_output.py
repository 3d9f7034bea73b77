"""Values Python would accept but iptables would not (ports `1_0`, `٨٠`), values iptables
accepts in any case (`--proto TCP`), and standard output that fails (`>/dev/full`) or goes
away (`| head -1`): one error line, and an exit status that is the command's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).parent.parent / "fixtures" / "rig-v1.36"
SNAPSHOT, RULES = str(DEMO / "api/all.json"), str(DEMO / "node1.iptables-save.txt")
ENV = {**os.environ, "SVCTRACE_NO_LOCAL_RULES": "1", "NO_COLOR": "1",
       "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
TRACE = ["trace", "--rules", RULES, "--src", "10.244.9.9"]
FULL_DISK = "svctrace: error: cannot write to standard output: No space left on device\n"


def run(*args: str, stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "svctrace", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env=ENV, timeout=120)


@pytest.mark.parametrize("args, needle", [
    (["--dst", "10.96.219.159:1_0"], "'1_0' is not a port number"),
    (["--dst", "10.96.219.159:\u0668\u0660"], "is not a port number"),       # Arabic-Indic 80
    (["--dst", "10.96.219.159:\uff18\uff10"], "is not a port number"),       # fullwidth 80
    (["--dst", "10.96.219.159", "--dport", "8_0"], "'8_0' is not a port number"),
    (["--dst", "10.96.219.159", "--dport", "\u0668\u0660"], "is not a port number"),
    (["--dst", "10.96.219.159:80", "--sport", "4_0000"], "'4_0000' is not a port number"),
    (["--dst", "10.96.219.159:80", "--dport", "+80"], "'+80' is not a port number"),
    (["--dst", "10.96.219.159:80", "--dport", " 80"], "' 80' is not a port number"),
    (["--dst", "10.96.219.159:65536"], "'65536' is not a port number"),
    (["--dst", "10.96.219.159:80", "--proto", "icmp"], "unknown protocol 'icmp'"),
], ids=["dst-underscore", "dst-arabic-digits", "dst-fullwidth-digits", "dport-underscore",
        "dport-arabic-digits", "sport-underscore", "plus-sign", "blank", "too-large",
        "unknown-protocol"])
def test_refused_values(args: list[str], needle: str) -> None:
    proc = run(*TRACE, *args)
    assert proc.returncode == 2 and proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("svctrace: error: ")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


@pytest.mark.parametrize("spelling", ["TCP", "Tcp", "UDP", "sCtP"])
def test_protocol_in_any_case(spelling: str) -> None:
    proc = run(*TRACE, "--dst", "10.96.219.159:80", "--proto", spelling, "-o", "json")
    lower = run(*TRACE, "--dst", "10.96.219.159:80", "--proto", spelling.lower(), "-o", "json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == lower.stdout
    assert json.loads(proc.stdout)["packet"]["protocol"] == spelling.lower()


COMMANDS = {
    "explain-text": ["explain", "web", "-n", "svctrace-demo", "--snapshot", SNAPSHOT,
                     "--rules", RULES, "-q"],
    "explain-json": ["explain", "web", "-n", "svctrace-demo", "--snapshot", SNAPSHOT, "-o",
                     "json", "-q"],
    "rules-text": ["rules", "--rules", RULES],
    "rules-json": ["rules", "--rules", RULES, "-o", "json"],
    "trace": [*TRACE, "--dst", "10.96.219.159:80"],
    "completion": ["completion", "bash"],
    "help": ["--help"],
    "command-help": ["explain", "--help"],
    "version": ["--version"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_full_disk_is_one_line(name: str) -> None:
    with open("/dev/full", "w") as full:
        proc = run(*COMMANDS[name], stdout=full)
    assert proc.returncode == 2
    assert proc.stderr == FULL_DISK


EXPLAIN = ["explain", "-n", "svctrace-demo", "--snapshot", SNAPSHOT, "--rules", RULES, "-q"]


@pytest.mark.parametrize("service, output", [
    ("web", "text"), ("noendpoints", "text"), ("web", "json"), ("noendpoints", "json"),
    ("noendpoints", "wide"),
], ids=["ok-text", "findings-text", "ok-json", "findings-json", "findings-wide"])
def test_a_closed_pipe_keeps_the_exit_status(service: str, output: str) -> None:
    """The reader is gone before the first byte (`| head -c0`, or head -1 that already
    exited): the status is the one the whole output gets, and nothing is said."""
    args = [*EXPLAIN, service, "-o", output]
    expected = run(*args).returncode
    assert expected == (0 if service == "web" else 1)         # the control
    proc = subprocess.Popen([sys.executable, "-m", "svctrace", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()                                       # the reader goes away
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == expected
    assert stderr == ""
