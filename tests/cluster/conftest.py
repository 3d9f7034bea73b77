"""Shared fixtures: the stand-in API server over HTTPS and kubeconfigs in tmp_path."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import clusterkit  # noqa: E402
from apiserver import FakeApiServer  # noqa: E402
from clusterkit import PUB, fixture_items  # noqa: E402

# shared with the other folders that use the stand-in API server
_no_proxy = clusterkit._no_proxy
cert_dir = clusterkit.cert_dir


@pytest.fixture
def items() -> list[dict[str, Any]]:
    return fixture_items()


@pytest.fixture
def api(items: list[dict], cert_dir: Path) -> Any:
    """A running API server serving the fixture objects (modify `items` before first use)."""
    with FakeApiServer(items, cert_dir) as server:
        yield server


@pytest.fixture
def kubeconfig(api: FakeApiServer, tmp_path: Path) -> Path:
    """A kubeconfig for `api` whose context defaults to namespace svctrace-pub."""
    return api.kubeconfig(tmp_path / "kubeconfig", namespace=PUB)
