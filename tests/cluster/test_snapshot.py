"""Snapshots: every accepted format gives the same view; malformed files fail with the file
name and a reason (SnapshotError, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from clusterkit import DEMO, PUB, SCENARIOS, find, fixture_items, kube_list

from svctrace.cluster.snapshot import (
    parse_snapshot,
    read_snapshot,
    snapshot_document,
    view_from_snapshot,
)
from svctrace.errors import NotFoundError, SnapshotError, UsageError


def _edge_objects() -> list[dict]:
    items = fixture_items()
    return [i for i in items if i["kind"] == "Node"
            or i["metadata"].get("labels", {}).get("app") == "edge"
            or i["metadata"]["name"] == "edge"]


def _as_json_list(objs: list[dict]) -> str:
    return json.dumps(kube_list(objs))


def _as_yaml_list(objs: list[dict]) -> str:
    return yaml.safe_dump(kube_list(objs))


def _as_multidoc_yaml(objs: list[dict]) -> str:
    return yaml.safe_dump_all(objs)


def _as_json_array(objs: list[dict]) -> str:
    return json.dumps(objs)


def _as_typed_lists(objs: list[dict]) -> str:
    docs = []
    for kind in ("Service", "EndpointSlice", "Pod", "Node"):
        items = [{k: v for k, v in o.items() if k != "kind"} for o in objs if o["kind"] == kind]
        docs.append({"apiVersion": "v1", "kind": f"{kind}List", "items": items})
    return yaml.safe_dump_all(docs)


def _as_svctrace_snapshot(objs: list[dict]) -> str:
    return json.dumps(snapshot_document(objs, {"clusterVersion": "v1.36.2",
                                               "capturedAt": "2026-11-28T16:08:52Z",
                                               "namespace": PUB}))


FORMATS = [_as_json_list, _as_yaml_list, _as_multidoc_yaml, _as_json_array, _as_typed_lists,
           _as_svctrace_snapshot]


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.__name__[4:] for f in FORMATS])
def test_every_format_gives_the_same_view(fmt) -> None:
    reference = view_from_snapshot(parse_snapshot(_as_json_list(_edge_objects()), "ref"),
                                   "edge", None)
    view = view_from_snapshot(parse_snapshot(fmt(_edge_objects()), "f"), "edge", None)
    assert (view.service, view.slices, view.pods, view.nodes) == \
        (reference.service, reference.slices, reference.pods, reference.nodes)
    assert len(view.pods) == 3 and len(view.nodes) == 2


def test_single_object_snapshot() -> None:
    svc = find(fixture_items(), "Service", "mail")
    view = view_from_snapshot(parse_snapshot(json.dumps(svc), "mail.json"), "mail", PUB)
    assert view.service.external_name == "smtp.mail.example.net"


def test_svctrace_snapshot_records_version_and_time() -> None:
    state = parse_snapshot(_as_svctrace_snapshot(_edge_objects()), "s.json")
    assert (state.cluster_version, state.captured_at) == ("v1.36.2", "2026-11-28T16:08:52Z")
    assert view_from_snapshot(state, "edge", None).observed_at == "2026-11-28T16:08:52Z"


def test_real_fixture_files_read_as_is() -> None:
    assert len(read_snapshot(str(SCENARIOS)).services) == 13
    assert len(read_snapshot(str(DEMO)).pods) == 6


BAD = [
    ("invalid-json", '{"kind": "List", "items": [', "invalid JSON"),
    ("invalid-yaml", "kind: List\nitems: [\n  - a: b\n   c", "invalid YAML"),
    ("empty", "", "empty"),
    ("not-an-object", "42\n", "not a Kubernetes object"),
    ("no-services", json.dumps(kube_list([])), "no Service objects"),
    ("bad-port", json.dumps(kube_list([{"kind": "Service", "metadata": {"name": "x"},
                                         "spec": {"ports": [{"port": "http"}]}}])),
     "expected an integer"),
    ("item-not-object", json.dumps(kube_list(["oops"])), "not an object"),
]


@pytest.mark.parametrize("text,reason", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_malformed_snapshot(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "snap.json"
    path.write_text(text)
    with pytest.raises(SnapshotError) as err:
        read_snapshot(str(path))
    assert str(path) in err.value.message and reason in err.value.message
    assert err.value.exit_status == 2


def test_missing_file() -> None:
    with pytest.raises(SnapshotError, match="cannot read snapshot"):
        read_snapshot("/nonexistent/snap.json")


def test_not_found_suggests_near_names_and_other_namespaces() -> None:
    state = parse_snapshot(_as_json_list(fixture_items()), "both.json")
    with pytest.raises(NotFoundError) as err:
        view_from_snapshot(state, "biling", PUB)
    assert "billing" in err.value.hint
    with pytest.raises(NotFoundError) as err:
        view_from_snapshot(state, "web", PUB)
    assert "svctrace-demo" in err.value.hint


def test_ambiguous_name_needs_a_namespace() -> None:
    items = fixture_items()
    twin = json.loads(json.dumps(find(items, "Service", "web")))
    twin["metadata"]["namespace"] = "other"
    state = parse_snapshot(_as_json_list(items + [twin]), "s.json")
    with pytest.raises(UsageError):
        view_from_snapshot(state, "web", None)
    assert view_from_snapshot(state, "web", "other").service.namespace == "other"
