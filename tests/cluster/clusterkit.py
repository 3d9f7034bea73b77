"""Helpers of the cluster tests: the real-cluster fixture objects and a runner for the real CLI
in a subprocess. (A module of its own, not conftest: tests/kernel has a conftest too, and
`from conftest import …` would find whichever was imported first.)"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402
from apiserver import load_items, make_certificate  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SCENARIOS = FIXTURES / "rig-v1.36-scenarios" / "api" / "all.json"
DEMO = FIXTURES / "rig-v1.36" / "api" / "all.json"
PUB, DEMO_NS = "svctrace-pub", "svctrace-demo"


def fixture_items() -> list[dict[str, Any]]:
    """Both namespaces' objects (deep copies: tests may modify them). Nodes appear once."""
    items = load_items(SCENARIOS) + [i for i in load_items(DEMO) if i["kind"] != "Node"]
    return copy.deepcopy(items)


def find(items: list[dict], kind: str, name: str, namespace: str | None = None) -> dict:
    return next(i for i in items if i["kind"] == kind and i["metadata"]["name"] == name
                and (namespace is None or i["metadata"].get("namespace") == namespace))


def kube_list(items: list[dict]) -> dict:
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": items}


def run_cli(*args: str, kubeconfig: Path | None = None, home: Path | None = None,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m svctrace ARGS` as a user would; no traceback is ever acceptable."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "SVCTRACE_DEBUG")}
    # the cluster half must not depend on this machine's iptables (tests may run as root)
    env.update(no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost",
               SVCTRACE_NO_LOCAL_RULES="1")
    if kubeconfig:
        env["KUBECONFIG"] = str(kubeconfig)
    if home:
        env["HOME"] = str(home)
    proc = subprocess.run([sys.executable, "-m", "svctrace", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, input=stdin, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def kube_system_pod(name: str, node: str, phase: str = "Running", **labels: str) -> dict[str, Any]:
    """A minimal kube-system Pod as the API serves it (for --node tests)."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "kube-system", "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": phase}}


def error_lines(stderr: str) -> tuple[str, list[str]]:
    """(the one `svctrace: error:` line, the hint lines); nothing else may be printed."""
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("svctrace: error:")]
    assert len(errors) == 1, stderr
    assert all(line.startswith(("svctrace: error:", "hint:")) for line in lines), stderr
    return errors[0], [line for line in lines if line.startswith("hint:")]


# --- fixtures shared by the test folders that use the stand-in API server --------------------

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
