"""Shared fixtures: the stand-in API server over HTTPS and kubeconfigs in tmp_path."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from apiserver import FakeApiServer, make_certificate  # noqa: E402
from clusterkit import PUB, fixture_items  # noqa: E402


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "KUBECONFIG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    make_certificate(directory)
    return directory


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
