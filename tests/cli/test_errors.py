"""Bad input gets one `svctrace: error: …` line and a documented exit status, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

FIX = Path(__file__).parent.parent / "fixtures"
DEMO = FIX / "rig-v1.36"
ENV = {**os.environ, "SVCTRACE_NO_LOCAL_RULES": "1", "NO_COLOR": "1"}


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "svctrace", *args], capture_output=True,
                          env=ENV, input=stdin, timeout=120)


@pytest.mark.parametrize("args,status,needle", [
    pytest.param(["explain", "--bogus"], 2, "No such option: --bogus", id="unknown-option"),
    pytest.param(["nope"], 2, "No such command", id="unknown-command"),
    pytest.param(["trace", "--dst", "x"], 2, "not an IP address", id="bad-destination"),
    pytest.param(["trace", "--rules", "/nonexistent", "--dst", "10.0.0.1:80"], 5,
                 "/nonexistent: no such file", id="missing-rules-file"),
    pytest.param(["trace", "--rules", str(FIX), "--dst", "10.0.0.1:80"], 5, "is a directory",
                 id="rules-is-a-directory"),
    pytest.param(["trace", "--rules", "-", "--dst", "10.0.0.1:80", "--src", "10.1.1.1"], 5,
                 "<stdin>:1: binary data", id="binary-stdin"),
    pytest.param(["trace", "--rules", str(DEMO / "node1.iptables-save.txt"), "--dst",
                  "10.0.0.1:80", "--src", "fd00::1"], 2, "different IP families",
                 id="family-mix"),
    pytest.param(["trace", "--rules", str(DEMO / "node1.iptables-save.txt"), "--dst",
                  "10.0.0.1:80", "-o", "xml"], 2, "unknown output format", id="bad-output"),
    pytest.param(["explain", "svc/nosuch", "--snapshot", str(DEMO / "api/all.json")], 3,
                 "nosuch", id="unknown-service"),
    pytest.param(["explain", "svc/web", "-n", "svctrace-demo", "--snapshot",
                  str(DEMO / "api/all.json"), "--rules", "/nonexistent"], 5, "no such file",
                 id="explain-missing-rules"),
    pytest.param(["explain", "svc/web", "-n", "svctrace-demo", "--snapshot",
                  str(DEMO / "api/all.json"), "--entry", "bogus"], 2, "--entry 'bogus'",
                 id="explain-bad-entry"),
])
def test_one_line_error(args: list[str], status: int, needle: str) -> None:
    stdin = b"\x00\x01garbage" if "-" in args else None
    proc = run(*args, stdin=stdin)
    err = proc.stderr.decode()
    assert proc.returncode == status, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("svctrace: error: ")]
    assert len(lines) == 1 and needle in lines[0], err


def test_truncated_dump_is_located(tmp_path: Path) -> None:
    text = (DEMO / "node1.iptables-save.txt").read_text()
    cut = text[: text.rindex("COMMIT")]
    (tmp_path / "cut.txt").write_text(cut)
    proc = run("trace", "--rules", str(tmp_path / "cut.txt"), "--dst", "10.96.219.159:80")
    assert proc.returncode == 5
    assert 'table "nat" has no COMMIT' in proc.stderr.decode()


def test_huge_file_gives_a_result_not_a_hang(tmp_path: Path) -> None:
    """A 200 MB dump (kube-proxy shaped, repeated chains) parses and traces, or errs cleanly."""
    base = (DEMO / "node1.iptables-save.txt").read_text()
    nat = base.index("*nat")
    filler = "".join(f":KUBE-SEP-FILL{i:08d} - [0:0]\n-A KUBE-SEP-FILL{i:08d} -p tcp -m comment "
                     f'--comment "filler rule number {i} to make the dump large" -m tcp -j '
                     f"DNAT --to-destination 10.250.{i // 250 % 250}.{i % 250 + 1}:8080\n"
                     for i in range(1_400_000))
    head = base.index("\n", nat + 5) + 1
    (tmp_path / "big.txt").write_text(base[:head] + filler + base[head:])
    assert (tmp_path / "big.txt").stat().st_size > 200_000_000
    proc = run("trace", "--rules", str(tmp_path / "big.txt"), "--dst", "10.96.219.159:80",
               "--src", "10.244.9.9", "-o", "json")
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    assert b"10.244.1.11:8080" in proc.stdout


def test_ctrl_c_is_exit_130_with_one_line() -> None:
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "svctrace", "trace", "--rules", "-", "--dst",
                             "10.0.0.1:80"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV)
    time.sleep(1.5)                       # it waits for rules on stdin that never come
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert err.decode().strip() == "svctrace: interrupted"
