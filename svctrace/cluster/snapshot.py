"""Snapshots: API objects read from a file instead of a cluster.

Accepted: the output of `kubectl get … -o json|yaml` (a List, or a single object), multi-
document YAML, a JSON array of objects, and what `svctrace snapshot` writes (a List with a
top-level `svctrace` key recording the cluster version, capture time and namespace).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from svctrace.cluster import service_not_found
from svctrace.cluster.convert import (
    ConversionError,
    assemble_view,
    endpointslice_from_dict,
    node_from_dict,
    pod_from_dict,
    service_from_dict,
)
from svctrace.errors import SnapshotError, UsageError
from svctrace.inputs import DEFAULT_MAX_INPUT, SNAPSHOT_INPUT, decode_input, read_input
from svctrace.model.cluster import ClusterState, Service, ServiceView

SNAPSHOT_KEY = "svctrace"           # the key `svctrace snapshot` adds to the List
SNAPSHOT_FORMAT = 1

CONVERTERS = {"Service": service_from_dict, "EndpointSlice": endpointslice_from_dict,
              "Pod": pod_from_dict, "Node": node_from_dict}


def read_snapshot(path: str, max_bytes: int = DEFAULT_MAX_INPUT) -> ClusterState:
    """Read a snapshot file ('-' for stdin) into a ClusterState; SnapshotError if malformed or
    larger than `max_bytes` (--max-input-size)."""
    data, source = read_input(path, max_bytes, SNAPSHOT_INPUT)
    return parse_snapshot(decode_input(data, source, SNAPSHOT_INPUT), path)


def parse_snapshot(text: str, source: str) -> ClusterState:
    """Parse snapshot text; `source` names it in errors."""
    documents = _documents(text, source)
    items, meta = _items(documents, source)
    by_kind: dict[str, list[Any]] = {kind: [] for kind in CONVERTERS}
    for index, item in enumerate(items):
        kind = item.get("kind")
        if isinstance(kind, str) and kind in CONVERTERS:
            by_kind[kind].append(_convert(kind, item, source, index))
    if not by_kind["Service"]:
        raise SnapshotError(f"{source}: no Service objects in the snapshot",
                            "capture one with 'svctrace snapshot -n NS -f FILE' or "
                            "'kubectl get services,endpointslices,pods,nodes -n NS -o json'")
    return ClusterState(services=tuple(by_kind["Service"]), slices=tuple(by_kind["EndpointSlice"]),
                        pods=tuple(by_kind["Pod"]), nodes=tuple(by_kind["Node"]),
                        cluster_version=meta.get("clusterVersion"),
                        captured_at=meta.get("capturedAt"), namespace=meta.get("namespace"),
                        source=f"snapshot {source}")


def _documents(text: str, source: str) -> list[Any]:
    if text.lstrip()[:1] in ("{", "["):
        try:
            return [json.loads(text)]
        except json.JSONDecodeError as err:
            raise SnapshotError(f"{source}:{err.lineno}: invalid JSON: {err.msg}") from None
        except RecursionError:
            raise SnapshotError(f"{source}: invalid JSON: nested too deeply") from None
    import yaml

    from svctrace.cluster.yamlsafe import YamlRefused, load_yaml_documents
    try:
        docs = [d for d in load_yaml_documents(text) if d is not None]
    except YamlRefused as err:
        raise SnapshotError(err.located(source), "a snapshot written by kubectl or svctrace "
                            "has neither") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise SnapshotError(f"{where}: invalid YAML: {problem}") from None
    if not docs:
        raise SnapshotError(f"{source}: the snapshot is empty")
    return docs


def _items(documents: list[Any], source: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    items: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    for doc in documents:
        if isinstance(doc, list):
            items.extend(_flatten(doc, None, source))
        elif isinstance(doc, dict) and isinstance(doc.get("items"), list):
            kind = doc.get("kind")
            item_kind = kind[:-4] if isinstance(kind, str) and kind.endswith("List") \
                and kind != "List" else None
            items.extend(_flatten(doc["items"], item_kind, source))
            if isinstance(doc.get(SNAPSHOT_KEY), dict):
                meta = _meta(doc[SNAPSHOT_KEY], source)
        elif isinstance(doc, dict) and doc.get("kind"):
            items.append(doc)
        else:
            raise SnapshotError(f"{source}: not a Kubernetes object or List "
                                f"(no 'kind' and no 'items')")
    return items, meta


def _meta(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """The `svctrace` key of a snapshot: its strings, checked."""
    for key in ("clusterVersion", "capturedAt", "namespace"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise SnapshotError(f"{source}: {SNAPSHOT_KEY}.{key}: expected a string, got "
                                f"{type(raw[key]).__name__}")
    return raw


def _flatten(raw: list[Any], item_kind: str | None, source: str) -> list[dict[str, Any]]:
    """The objects of `items`, nested Lists opened (iteratively: nesting is not bounded)."""
    out = []
    pending: list[tuple[str, Any, str | None]] = [
        (f"items[{i}]", item, item_kind) for i, item in reversed(list(enumerate(raw)))]
    while pending:
        where, item, kind = pending.pop()
        if not isinstance(item, dict):
            raise SnapshotError(f"{source}: {where} is not an object")
        if kind and not item.get("kind"):
            item = {**item, "kind": kind}       # typed lists (ServiceList) omit item kinds
        inner = item.get("items")
        if item.get("kind") == "List" or isinstance(inner, list):
            if not isinstance(inner, list | None):
                raise SnapshotError(f"{source}: {where}.items: expected a list")
            pending.extend((f"{where}.items[{i}]", sub, None)
                           for i, sub in reversed(list(enumerate(inner or []))))
        else:
            out.append(item)
    return out


def _convert(kind: str, item: dict[str, Any], source: str, index: int) -> Any:
    try:
        return CONVERTERS[kind](item)
    except ConversionError as err:
        raise SnapshotError(f"{source}: item {index}: {err}") from None


def view_from_snapshot(state: ClusterState, name: str, namespace: str | None) -> ServiceView:
    """The ServiceView of one Service in a snapshot. Without a namespace, the Service's name
    must be unique in the snapshot."""
    matches = state.find_services(name, namespace)
    if not matches:
        raise _not_found(state, name, namespace)
    twice = _duplicated_namespace(matches)
    if twice:
        raise UsageError(f"the snapshot has {twice[1]} Services named {name!r} in namespace "
                         f"{twice[0]!r}", "a namespace holds one Service of a name: the "
                         "snapshot was assembled from more than one capture, or edited")
    if len(matches) > 1:
        spaces = ", ".join(sorted(s.namespace for s in matches))
        raise UsageError(f"service {name!r} is in several namespaces of the snapshot ({spaces})",
                         "choose one with -n NAMESPACE")
    service = matches[0]
    return assemble_view(service, state.slices, state.pods, state.nodes,
                         source=state.source, observed_at=state.captured_at)


def _duplicated_namespace(services: list[Service]) -> tuple[str, int] | None:
    """(namespace, count) of the first namespace holding more than one of `services`."""
    counts = Counter(s.namespace for s in services)
    return next(((ns, n) for ns, n in sorted(counts.items()) if n > 1), None)


def _not_found(state: ClusterState, name: str, namespace: str | None) -> Exception:
    namespace = namespace or state.namespace or _only_namespace(state) or "default"
    here = [s.name for s in state.services if s.namespace == namespace]
    elsewhere = [s.namespace for s in state.find_services(name)]
    err = service_not_found(name, namespace, here, elsewhere)
    err.message += f" (in {state.source})"
    return err


def _only_namespace(state: ClusterState) -> str | None:
    spaces = {s.namespace for s in state.services}
    return spaces.pop() if len(spaces) == 1 else None


def snapshot_document(items: list[dict[str, Any]], meta: dict[str, Any]) -> dict[str, Any]:
    """What `svctrace snapshot` writes: a kubectl-style List plus the `svctrace` key."""
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": items, SNAPSHOT_KEY: {"format": SNAPSHOT_FORMAT, **meta}}
