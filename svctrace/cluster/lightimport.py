"""Importing the kubernetes client light: only the modules svctrace uses.

The package __init__ files of kubernetes 36.0.3 import every API class and all 767 models
(about 200 ms, a third of explain's time budget), though raw JSON needs none of them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

LIGHT_PACKAGES = ("kubernetes", "kubernetes.client", "kubernetes.client.api",
                  "kubernetes.client.models", "kubernetes.config")

_light_import_running = False
_completers: dict[str, Any] = {}
LIGHT_MODULES = ("kubernetes.client.api_client", "kubernetes.client.configuration",
                 "kubernetes.client.exceptions", "kubernetes.client.api.core_v1_api",
                 "kubernetes.client.api.discovery_v1_api", "kubernetes.client.api.version_api",
                 "kubernetes.config.config_exception", "kubernetes.config.kube_config",
                 "kubernetes.config.incluster_config")


def import_client_light() -> None:
    """Import only the parts of the kubernetes client that svctrace uses.

    The package __init__ files of kubernetes 36.0.3 import every API class and all 767
    models (about 200 ms, a third of explain's time budget), though raw JSON needs none of
    them. The packages are registered as stubs that run their real __init__ as soon as
    anything else is asked of them (a missing attribute, or another kubernetes submodule),
    so `from kubernetes import client; client.V1Pod` or `import kubernetes.stream` still work
    afterwards in the same process. A no-op when kubernetes is already imported.
    """
    global _light_import_running
    if "kubernetes" in sys.modules:
        return
    _light_import_running = True
    try:
        for name in LIGHT_PACKAGES:
            _stub_package(name)
        from kubernetes.client.api_client import ApiClient
        from kubernetes.client.configuration import Configuration
        client = sys.modules["kubernetes.client"]
        # what kubernetes.config.kube_config takes from the package
        client.ApiClient = ApiClient  # type: ignore[attr-defined]
        client.Configuration = Configuration  # type: ignore[attr-defined]
        for name in LIGHT_MODULES:
            importlib.import_module(name)
    finally:
        _light_import_running = False
    sys.meta_path.insert(0, _CompleteFirst())


def _stub_package(name: str) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    done = False

    def complete() -> None:
        nonlocal done
        if not done:
            done = True
            spec.loader.exec_module(module)  # type: ignore[union-attr]  # the real __init__

    def missing(attr: str) -> Any:        # PEP 562: called only for missing attributes
        if _light_import_running and importlib.util.find_spec(f"{name}.{attr}") is not None:
            return importlib.import_module(f"{name}.{attr}")     # a submodule: just that
        if done or attr in ("__warningregistry__", "__wrapped__"):
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        complete()
        return getattr(module, attr)

    module.__getattr__ = missing  # type: ignore[method-assign]
    _completers[name] = complete
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)


class _CompleteFirst(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Before any other kubernetes submodule is imported, run the real `kubernetes/__init__`
    (as a normal import would have), then stand aside."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if _light_import_running or not fullname.startswith("kubernetes."):
            return None
        sys.meta_path.remove(self)
        _completers["kubernetes"]()
        if fullname in sys.modules:          # the package's __init__ imported it already
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: Any) -> Any:
        return sys.modules[spec.name]

    def exec_module(self, module: Any) -> None:
        pass
