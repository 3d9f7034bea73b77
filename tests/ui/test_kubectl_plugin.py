"""The kubectl plugin: `kubectl svctrace …` runs kubectl-svctrace, and kubectl ≥ 1.26
completes it by running `kubectl_complete-svctrace ARGS… WORD` (Cobra's __complete answer)."""

from __future__ import annotations

import sys

import pytest
from ui_helpers import SNAPSHOT, run, script

S = str(SNAPSHOT)


@pytest.mark.parametrize("args, expected", [
    (["explain", "--snapshot", S, "svc/w"], "svc/web\nsvc/web-np\n:4\n"),
    (["explain", "--snapshot", S, "-n", ""], "svctrace-demo\n:4\n"),
    (["explain", "--rules", ""], ":0\n"),                   # files: kubectl's shell does them
    (["explain", "svc/"], ":4\n"),                          # no cluster: nothing, quietly
], ids=["services", "namespaces", "files", "no-cluster"])
def test_kubectl_complete_script(args: list[str], expected: str,
                                 user_env: dict[str, str]) -> None:
    proc = run([script("kubectl_complete-svctrace"), *args], env=user_env)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, expected, "")


def test_kubectl_complete_commands(user_env: dict[str, str]) -> None:
    proc = run([sys.executable, "-m", "svctrace.cli.kubectl_complete", ""], env=user_env)
    lines = proc.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines[:-1]] == [
        "completion", "doctor", "explain", "rules", "snapshot", "trace"]
    assert lines[-1] == ":4"


def test_kubectl_plugin_runs_svctrace(user_env: dict[str, str]) -> None:
    proc = run([script("kubectl-svctrace"), "explain", "web", "--snapshot", S, "-o", "json",
                "-q"], env=user_env)
    assert proc.returncode in (0, 1), proc.stderr
    assert '"schema": "svctrace/v1"' in proc.stdout


def test_svctrace_speaks_the_same_protocol(user_env: dict[str, str]) -> None:
    words = ["explain", "--snapshot", S, "svc/w"]
    direct = run([script("svctrace"), "__complete", "--", *words], env=user_env)
    plugin = run([script("kubectl_complete-svctrace"), *words], env=user_env)
    assert direct.stdout == plugin.stdout and direct.stderr == ""
