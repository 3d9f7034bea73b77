"""Under CI=true a test that cannot run fails instead of skipping (tests/conftest.py), and
the helpers of tests/ui do the same; elsewhere a skip stays a skip, with its reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ui_helpers import ROOT

SAMPLE = '''
import pytest
from ui_helpers import cannot_run, need

def test_skips():
    pytest.skip("no widget here")

def test_helper():
    cannot_run("no gadget here")

def test_missing_binary():
    need("svctrace-no-such-binary")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False

def test_runs():
    pass
'''


def run_sample(tmp_path: Path, ci: str | None) -> str:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests"), str(ROOT / "tests/ui"), str(ROOT)])
    if ci is not None:
        env["CI"] = ci
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "conftest",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
                           str(tmp_path / "test_sample.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    return proc.stdout


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_in_ci_every_skip_fails(tmp_path: Path, ci: str) -> None:
    out = run_sample(tmp_path, ci)
    assert "3 failed, 1 passed, 1 xfailed" in out, out
    assert "no widget here" in out and "no gadget here" in out


@pytest.mark.parametrize("ci", [None, "false", ""], ids=["unset", "false", "empty"])
def test_elsewhere_a_skip_is_a_skip(tmp_path: Path, ci: str | None) -> None:
    out = run_sample(tmp_path, ci)
    assert "1 passed, 3 skipped, 1 xfailed" in out, out
