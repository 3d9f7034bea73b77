"""Output conventions: JSON is never coloured; results on stdout, diagnostics on stderr."""

from __future__ import annotations

import json
import re
import sys

import pytest
from ui_helpers import RULES, SNAPSHOT, run

ANSI = re.compile(r"\x1b\[")
S, R = str(SNAPSHOT), str(RULES)


@pytest.mark.parametrize("args", [
    ["explain", "web", "--snapshot", S],
    ["explain", "noendpoints", "--snapshot", S, "--rules", R],
    ["rules", "--rules", R],
    ["trace", "--rules", R, "--dst", "10.96.219.159:80"],
], ids=["explain", "explain-rules", "rules", "trace"])
@pytest.mark.parametrize("color_env", [{}, {"TERM": "xterm-256color", "FORCE_COLOR": "1"}],
                         ids=["plain", "color-terminal"])
def test_json_never_coloured(args: list[str], color_env: dict[str, str],
                             user_env: dict[str, str]) -> None:
    env = {**user_env, **color_env, "SVCTRACE_NO_LOCAL_RULES": "1"}
    proc = run([sys.executable, "-m", "svctrace", *args, "-o", "json", "--color", "always"],
               env=env)
    assert proc.returncode in (0, 1), proc.stderr
    assert not ANSI.search(proc.stdout)
    assert json.loads(proc.stdout)["schema"] == "svctrace/v1"


def test_colour_always_does_colour_text(user_env: dict[str, str]) -> None:
    """The control for the test above: --color always is honoured for text output."""
    proc = run([sys.executable, "-m", "svctrace", "explain", "web", "--snapshot", S,
                "--color", "always"], env={**user_env, "SVCTRACE_NO_LOCAL_RULES": "1"})
    assert ANSI.search(proc.stdout)


def test_results_on_stdout_diagnostics_on_stderr(user_env: dict[str, str]) -> None:
    env = {**user_env, "SVCTRACE_NO_LOCAL_RULES": "1"}
    ok = run([sys.executable, "-m", "svctrace", "explain", "web", "--snapshot", S, "-o", "json"],
             env=env)
    json.loads(ok.stdout)                                  # stdout is nothing but the result
    assert "svctrace:" not in ok.stdout
    quiet = run([sys.executable, "-m", "svctrace", "explain", "web", "--snapshot", S, "-o",
                 "json", "-q"], env=env)
    assert quiet.stderr == "" and quiet.stdout == ok.stdout
    missing = run([sys.executable, "-m", "svctrace", "explain", "nosuch", "--snapshot", S],
                  env=env)
    assert missing.returncode == 3 and missing.stdout == ""
    assert missing.stderr.startswith("svctrace: error: ")
    usage = run([sys.executable, "-m", "svctrace", "explain", "--nosuch"], env=env)
    assert usage.returncode == 2 and usage.stdout == "" and "svctrace: error:" in usage.stderr
    assert "Traceback" not in missing.stderr + usage.stderr


def test_no_color_and_dumb_terminal(user_env: dict[str, str]) -> None:
    for extra in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        proc = run([sys.executable, "-m", "svctrace", "explain", "web", "--snapshot", S],
                   env={**user_env, **extra, "SVCTRACE_NO_LOCAL_RULES": "1"})
        assert not ANSI.search(proc.stdout), extra
