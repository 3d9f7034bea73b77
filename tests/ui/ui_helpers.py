"""Helpers for driving svctrace the way users do: its installed scripts, and real shells.

(A module of its own, not conftest: every test directory has a conftest.py.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "tests/fixtures/rig-v1.36/api/all.json"
RULES = ROOT / "tests/fixtures/rig-v1.36/node1.iptables-save.txt"
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def cannot_run(why: str) -> NoReturn:
    """Skip a test that cannot run on this machine, with the reason; under CI=true fail
    instead: .ci/run installs everything these tests need, so a missing part is a bug."""
    if in_ci():
        pytest.fail(f"cannot run in CI: {why}", pytrace=False)
    pytest.skip(why)


def script(name: str) -> str:
    """An installed console script of this Python (not a pyenv shim: those cost 50 ms)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        cannot_run(f"{name} is not installed (pip install -e .)")
    return found


def user_environment(tmp_path: Path) -> dict[str, str]:
    """An environment like a user's shell, with no kubeconfig (live look-ups find nothing,
    quickly) and its own completion cache; the svctrace scripts first on PATH, running the
    code of this checkout (an editable install may point at another one)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "NO_COLOR", "PYTHONPATH")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(tmp_path / "cache"), LC_ALL="C.UTF-8",
               PATH=os.pathsep.join([str(Path(script("svctrace")).parent), env["PATH"]]),
               PYTHONPATH=str(ROOT))      # the scripts run this checkout's code
    return env


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 30,
        **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=ROOT, **kwargs)  # type: ignore[call-overload]


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        cannot_run(f"{binary} is not installed (.ci/run installs it)")
    return path
