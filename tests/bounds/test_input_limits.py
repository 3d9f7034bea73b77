"""Every input is bounded (issue 11, items 1 and 9): endless files, devices, FIFOs and pipes stop
at --max-input-size (or at their first NUL byte) with one clear line, in bounded memory; stdin
that is closed, or asked for twice, is a clear error."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest
from boundkit import (
    DEMO_RULES,
    DEMO_SNAPSHOT,
    FIXTURES,
    MEMORY_BOUND_MB,
    SVCTRACE,
    Run,
    end_started,
    run_measured,
)

from svctrace.errors import UsageError
from svctrace.inputs import DEFAULT_MAX_INPUT, RULES_INPUT, format_size, parse_size, read_input

TRACE = ["trace", "--dst", "10.96.0.10:53", "--src", "10.244.1.9"]
EXPLAIN = ["explain", "svc/web", "-n", "svctrace-demo"]
LARGE_RULES = FIXTURES / "rig-v1.36-large" / "node1.iptables-save.txt"
LIMIT = "64M"      # endless text inputs: the memory bound must hold well below 200 MB

# (id, command reading the input at "@", exit status expected, a real input of that kind
# larger than the command's other input)
READERS = [
    ("rules", ["rules", "--rules", "@"], 5, LARGE_RULES),
    ("trace", [*TRACE, "--rules", "@"], 5, LARGE_RULES),
    ("explain-rules", [*EXPLAIN, "--snapshot", str(DEMO_SNAPSHOT), "--rules", "@"], 5,
     LARGE_RULES),
    ("explain-snapshot", [*EXPLAIN, "--snapshot", "@"], 2, DEMO_SNAPSHOT),
    ("doctor-snapshot", ["doctor", "--snapshot", "@"], 2, DEMO_SNAPSHOT),
]


def _args(template: list[str], path: str, *extra: str) -> list[str]:
    return [path if a == "@" else a for a in template] + list(extra)


def _params() -> list:
    return [pytest.param(args, status, id=name) for name, args, status, _ in READERS]


def assert_bounded(run: Run, status: int, needle: str) -> None:
    line = run.one_error()
    assert run.status == status, run.stderr
    assert needle in line, line
    assert run.peak_rss_mb <= MEMORY_BOUND_MB, f"peak RSS {run.peak_rss_mb:.0f} MB"


@pytest.mark.parametrize("args,status", _params())
def test_dev_zero_stops_at_the_first_nul_byte(args: list[str], status: int) -> None:
    # the default limit (512M): the NUL byte, seen while reading, ends it long before that
    run = run_measured(_args(args, "/dev/zero"))
    assert_bounded(run, status, "/dev/zero:1: binary data (NUL byte)")


def _endless(line: bytes) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["yes", line.decode()], stdout=subprocess.PIPE)


# what never ends on stdin: valid-looking text for each kind of input
ENDLESS_TEXT = {5: b"# x", 2: b"x: y"}


@pytest.mark.parametrize("args,status", _params())
def test_endless_stdin_stops_at_the_limit(args: list[str], status: int) -> None:
    writer = _endless(ENDLESS_TEXT[status])
    try:
        run = run_measured(_args(args, "-", "--max-input-size", LIMIT), stdin=writer.stdout)
    finally:
        end_started(writer)
    assert_bounded(run, status, f"<stdin>: larger than {LIMIT} (--max-input-size)")


def _feed_fifo(path: Path, line: bytes, stop: threading.Event) -> None:
    """Write `line` into the FIFO until its reader goes away (or the test gives up)."""
    block = line * (65536 // len(line))
    while not stop.is_set():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:                      # no reader yet
            stop.wait(0.01)
            continue
        os.set_blocking(fd, True)
        try:
            while not stop.is_set():
                os.write(fd, block)
        except BrokenPipeError:
            return
        finally:
            os.close(fd)


@pytest.mark.parametrize("args,status", _params())
def test_endless_fifo_stops_at_the_limit(tmp_path: Path, args: list[str], status: int) -> None:
    fifo = tmp_path / "endless"
    os.mkfifo(fifo)
    stop = threading.Event()
    line = b"-A KUBE-SERVICES -j RETURN\n" if status == 5 else b"- kind: Pod\n"
    feeder = threading.Thread(target=_feed_fifo, args=(fifo, line, stop), daemon=True)
    feeder.start()
    try:
        run = run_measured(_args(args, str(fifo), "--max-input-size", LIMIT))
    finally:
        stop.set()
        feeder.join(10)
    assert_bounded(run, status, f"{fifo}: larger than {LIMIT} (--max-input-size)")


@pytest.mark.parametrize("args,status,path",
                         [pytest.param(*r[1:], id=r[0]) for r in READERS])
def test_a_file_one_byte_over_the_limit_is_refused(args: list[str], status: int,
                                                   path: Path) -> None:
    size = path.stat().st_size
    over = run_measured(_args(args, str(path), "--max-input-size", str(size - 1)))
    assert over.status == status and "larger than" in over.one_error(), over.stderr
    exact = run_measured(_args(args, str(path), "--max-input-size", str(size)))
    assert "larger than" not in exact.stderr and exact.status in (0, 1), exact.stderr


@pytest.mark.parametrize("args,status", _params())
def test_stdin_closed_is_a_clear_error(args: list[str], status: int) -> None:
    # `<&-`, as a shell user writes it: fd 0 is closed, not empty
    argv = ["bash", "-c", 'exec "$@" <&-', "bash", *SVCTRACE, *_args(args, "-")]
    run = run_measured([], argv=argv)
    option = "--snapshot" if status == 2 else "--rules"
    assert_bounded(run, status, f"{option} -: stdin is closed")


@pytest.mark.parametrize("args,twice", [
    pytest.param([*EXPLAIN, "--snapshot", "-", "--rules", "-"], "--snapshot - and --rules -",
                 id="explain"),
    pytest.param(["doctor", "--snapshot", "-", "--rules", "node1=-"],
                 "--snapshot - and --rules node1=-", id="doctor-snapshot-and-rules"),
    pytest.param(["doctor", "--snapshot", str(DEMO_SNAPSHOT), "--rules", "node1=-", "--rules",
                  "node2=-"], "--rules node1=- and --rules node2=-", id="doctor-two-nodes"),
])
def test_two_inputs_from_stdin_are_refused(args: list[str], twice: str) -> None:
    with DEMO_RULES.open("rb") as stdin:
        run = run_measured(args, stdin=stdin)
    assert run.status == 2
    assert f"{twice}: both read stdin" in run.one_error()


@pytest.mark.parametrize("text,size", [
    pytest.param("512M", 512 * 2**20, id="mega"),
    pytest.param("2G", 2 * 2**30, id="giga"),
    pytest.param("100k", 100 * 2**10, id="kilo"),
    pytest.param("64MiB", 64 * 2**20, id="mebibytes"),
    pytest.param("1000", 1000, id="bytes"),
    pytest.param(" 8m ", 8 * 2**20, id="spaces-lower-case"),
])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert parse_size(format_size(size)) == size


@pytest.mark.parametrize("text", [
    pytest.param("0", id="zero"), pytest.param("-1", id="negative"),
    pytest.param("1_0", id="underscore"), pytest.param("\u0661\u0660", id="arabic-digits"),
    pytest.param("1.5G", id="fraction"), pytest.param("", id="empty"),
    pytest.param("10X", id="unknown-unit"), pytest.param("inf", id="infinity"),
])
def test_bad_sizes_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="--max-input-size"):
        parse_size(text)


def test_bad_size_on_the_command_line() -> None:
    run = run_measured(["rules", "--rules", str(DEMO_RULES), "--max-input-size", "lots"])
    assert run.status == 2 and "--max-input-size 'lots'" in run.one_error()


def test_the_default_limit_reads_a_real_dump_whole() -> None:
    data, source = read_input(str(DEMO_RULES), DEFAULT_MAX_INPUT, RULES_INPUT)
    assert bytes(data) == DEMO_RULES.read_bytes() and source == str(DEMO_RULES)


def test_stdin_read_twice_gives_the_same_snapshot() -> None:
    # --node names a Node the Service does not need: explain looks it up in the snapshot again
    with DEMO_SNAPSHOT.open("rb") as stdin:
        run = run_measured([*EXPLAIN, "--snapshot", "-", "--rules", str(DEMO_RULES),
                            "--node", "node9"], stdin=stdin)
    assert run.status == 2
    assert "--node node9: no such Node in the snapshot" in run.one_error()
