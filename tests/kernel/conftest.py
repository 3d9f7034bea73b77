"""Kernel tests: the real netfilter in network namespaces judges svctrace's tracer.

Every test in this folder is marked ``kernel``. When the machine cannot run them (not root, no
network namespaces, a tool missing) they are skipped with the reason — except in CI
(``CI=true``), where that is a failure: CI runs as root and must exercise the kernel.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import rig as rigmod  # noqa: E402

HERE = Path(__file__).parent


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@functools.cache
def _missing() -> str | None:
    return rigmod.prerequisites_missing()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.kernel)


def pytest_runtest_setup(item):
    if item.get_closest_marker("kernel") is None:
        return
    why = _missing()
    if why is None:
        return
    if in_ci():
        pytest.fail(f"kernel test cannot run in CI: {why}", pytrace=False)
    pytest.skip(f"kernel test cannot run here: {why}")


@pytest.fixture(scope="session", autouse=True)
def _rig_pool():
    """All rigs live for the session and are deleted at its end, whatever happened.

    Normal ends, failures and Ctrl-C run this finalizer (and an atexit hook backs it up);
    SIGTERM (a CI timeout) would skip both, so it deletes the namespaces before dying.
    """
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        rigmod.POOL.close()
        os._exit(128 + signum)

    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, on_term)
    try:
        yield rigmod.POOL
    finally:
        rigmod.POOL.close()
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def demo_rules() -> str:
    return rigmod.DEMO_DUMP.read_text()


@pytest.fixture(scope="session")
def scenario_rules() -> str:
    return rigmod.SCENARIOS_DUMP.read_text()
