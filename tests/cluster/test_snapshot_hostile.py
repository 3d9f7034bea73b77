"""Crafted snapshots (issue 11, items 3, 8 and 10): wrong types, missing fields, values out of
range, deep nesting, YAML alias bombs and twin Services. Each is one located line with exit 2
(the object and the field named), never an internal error, a RecursionError or a hang."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clusterkit import PUB, error_lines, find, fixture_items, kube_list, run_cli

from svctrace.cluster.snapshot import parse_snapshot, view_from_snapshot
from svctrace.errors import SnapshotError, UsageError

SLICE, POD = "edge-mt27l", "edge-66c8f7d9b5-7mbrk"


def _edge() -> list[dict[str, Any]]:
    return [i for i in fixture_items() if i["kind"] == "Node"
            or i["metadata"]["name"].startswith("edge")]


def _set(kind: str, name: str, path: str, value: Any) -> Callable[[list[dict]], None]:
    """A mutation: set the dotted `path` (list indexes as numbers) of one object."""
    def mutate(items: list[dict]) -> None:
        obj: Any = find(items, kind, name)
        *parents, last = path.split(".")
        for part in parents:
            obj = obj[int(part)] if isinstance(obj, list) else obj.setdefault(part, {})
        if isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value
    return mutate


def _drop(kind: str, name: str, path: str) -> Callable[[list[dict]], None]:
    def mutate(items: list[dict]) -> None:
        obj: Any = find(items, kind, name)
        *parents, last = path.split(".")
        for part in parents:
            obj = obj[int(part)] if isinstance(obj, list) else obj[part]
        del obj[last]
    return mutate


CRAFTED = [
    # (id, mutation, the object and field the error names)
    ("slice-ports-strings", _set("EndpointSlice", SLICE, "ports", ["80"]),
     f"EndpointSlice {PUB}/{SLICE}: ports[0]: expected an object"),
    ("node-address-missing", _drop("Node", "node1", "status.addresses.0.address"),
     "Node node1: status.addresses[0].address is missing"),
    ("node-address-not-ip", _set("Node", "node1", "status.addresses.0.address", "10.0.0.300"),
     "Node node1: status.addresses[0].address: not an IP address"),
    ("lb-ingress-string", _set("Service", "edge", "status.loadBalancer.ingress", ["1.2.3.4"]),
     f"Service {PUB}/edge: status.loadBalancer.ingress[0]: expected an object"),
    ("ip-families-number", _set("Service", "edge", "spec.ipFamilies", [4]),
     f"Service {PUB}/edge: spec.ipFamilies[0]: expected a string, got 4"),
    ("ip-families-unknown", _set("Service", "edge", "spec.ipFamilies", ["IPv5"]),
     "spec.ipFamilies[0]: expected IPv4 or IPv6"),
    ("node-name-number", _set("Pod", POD, "spec.nodeName", 5),
     f"Pod {PUB}/{POD}: spec.nodeName: expected a string, got 5"),
    ("port-negative", _set("Service", "edge", "spec.ports.0.port", -1),
     "spec.ports[0].port: must be between 1 and 65535, got -1"),
    ("port-too-big", _set("Service", "edge", "spec.ports.0.targetPort", 70000),
     "spec.ports[0].targetPort: must be between 1 and 65535, got 70000"),
    ("port-missing", _drop("Service", "edge", "spec.ports.0.port"),
     "spec.ports[0].port is missing"),
    ("port-float", _set("Service", "edge", "spec.ports.0.port", 80.5),
     "spec.ports[0].port: expected an integer, got 80.5"),
    ("port-non-ascii-digits", _set("Service", "edge", "spec.ports.0.port", "８０"),
     "spec.ports[0].port: expected an integer"),
    ("node-port-string", _set("Service", "edge", "spec.ports.0.nodePort", "x"),
     "spec.ports[0].nodePort: expected an integer"),
    ("cluster-ip-garbage", _set("Service", "edge", "spec.clusterIPs", ["garbage"]),
     "spec.clusterIPs[0]: not an IP address"),
    ("source-range-garbage", _set("Service", "edge", "spec.loadBalancerSourceRanges", ["x/99"]),
     "spec.loadBalancerSourceRanges[0]: not a CIDR"),
    ("selector-nested", _set("Service", "edge", "spec.selector", {"app": {"x": 1}}),
     "spec.selector.app: expected a string"),
    ("ports-not-a-list", _set("Service", "edge", "spec.ports", {"port": 80}),
     "spec.ports: expected a list, got an object"),
    ("spec-a-string", _set("Service", "edge", "spec", "x"), "spec: expected an object"),
    ("name-a-list", _set("Service", "edge", "metadata.name", ["edge"]),
     "Service: metadata.name: expected a string, got a list"),
    ("namespace-number", _set("Service", "edge", "metadata.namespace", 7),
     "metadata.namespace: expected a string, got 7"),
    ("affinity-timeout-zero", _set("Service", "edge", "spec.sessionAffinityConfig",
                                   {"clientIP": {"timeoutSeconds": 0}}),
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be between 1 and 86400"),
    ("endpoint-ready-string", _set("EndpointSlice", SLICE, "endpoints.0.conditions.ready", "yes"),
     "endpoints[0].conditions.ready: expected true or false, got 'yes'"),
    ("endpoint-address-garbage", _set("EndpointSlice", SLICE, "endpoints.0.addresses", ["x"]),
     "endpoints[0].addresses[0]: not an IP address"),
    ("endpoint-a-string", _set("EndpointSlice", SLICE, "endpoints", ["10.0.0.1"]),
     "endpoints[0]: expected an object"),
    ("endpoint-target-ref-string", _set("EndpointSlice", SLICE, "endpoints.0.targetRef", "pod"),
     "endpoints[0].targetRef: expected an object"),
    ("hint-zone-string", _set("EndpointSlice", SLICE, "endpoints.0.hints",
                              {"forZones": ["zone-a"]}), "hints.forZones[0]: expected an object"),
    ("address-type-number", _set("EndpointSlice", SLICE, "addressType", 4),
     "addressType: expected a string, got 4"),
    ("pod-ip-garbage", _set("Pod", POD, "status.podIPs", [{"ip": "nope"}]),
     "status.podIPs[0].ip: not an IP address"),
    ("container-port-missing", _set("Pod", POD, "spec.containers.0.ports", [{"name": "http"}]),
     "spec.containers[0].ports[0].containerPort is missing"),
    ("restart-count-negative", _set("Pod", POD, "status.containerStatuses.0.restartCount", -3),
     "containerStatuses[0].restartCount: must be at least 0, got -3"),
    ("waiting-state-string", _set("Pod", POD, "status.containerStatuses.0.state",
                                  {"waiting": "CrashLoopBackOff"}),
     "containerStatuses[0].state.waiting: expected an object"),
    ("owner-refs-object", _set("Pod", POD, "metadata.ownerReferences", {"kind": "ReplicaSet"}),
     "metadata.ownerReferences: expected a list"),
    ("conditions-strings", _set("Pod", POD, "status.conditions", ["Ready"]),
     "status.conditions[0]: expected an object"),
    ("labels-list", _set("Pod", POD, "metadata.labels", ["app=edge"]),
     "metadata.labels: expected a map of strings"),
    ("pod-cidr-garbage", _set("Node", "node1", "spec.podCIDRs", ["10.244.0.0/33"]),
     "Node node1: spec.podCIDRs[0]: not a CIDR"),
]


@pytest.mark.parametrize("mutate,words", [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_crafted_values_are_located(mutate: Callable[[list[dict]], None], words: str) -> None:
    items = _edge()
    mutate(items)
    with pytest.raises(SnapshotError) as err:
        parse_snapshot(json.dumps(kube_list(items)), "crafted.json")
    assert err.value.message.startswith("crafted.json: item ") and words in err.value.message, \
        err.value.message
    assert err.value.exit_status == 2 and len(err.value.message) < 200


@pytest.mark.parametrize("case", ["slice-ports-strings", "node-address-missing",
                                  "lb-ingress-string", "ip-families-number",
                                  "node-name-number", "port-negative"])
def test_crafted_values_through_the_cli(case: str, tmp_path: Path) -> None:
    """The six values the review found, end to end: exit 2 and one line, no internal error."""
    mutate, words = next(c[1:] for c in CRAFTED if c[0] == case)
    items = _edge()
    mutate(items)
    path = tmp_path / "crafted.json"
    path.write_text(json.dumps(kube_list(items)))
    proc = run_cli("explain", "edge", "--snapshot", str(path))
    line, _ = error_lines(proc.stderr)
    assert proc.returncode == 2 and words in line and "internal error" not in line, proc.stderr


def _alias_bomb(levels: int) -> str:
    """A billion-laughs document: level n is nine aliases of level n-1, all inside `items`."""
    lines = ["kind: List", "items:", "- kind: Service", "  metadata: {name: bomb}",
             "  spec:", "    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n in range(1, levels):
        lines.append(f"    l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


BOUNDS = [
    # (id, text, words in the error)
    ("json-brackets", "[" * 100_000, "nested too deeply"),
    ("json-objects", '{"a":' * 100_000, "nested too deeply"),
    ("yaml-brackets", "items: " + "[" * 100_000, "nested more than 200 levels"),
    ("yaml-block-nesting", "".join(f"{' ' * i}k:\n" for i in range(400)),
     "nested more than 200 levels"),
    ("alias-bomb-9", _alias_bomb(9), "(an alias bomb?)"),
    ("alias-bomb-5", _alias_bomb(5), "(an alias bomb?)"),
    ("alias-cycle", "kind: List\nitems: &a [*a]\n", "alias *a refers to a node that contains it"),
]


@pytest.mark.parametrize("text,words", [c[1:] for c in BOUNDS], ids=[c[0] for c in BOUNDS])
def test_nesting_and_aliases_are_bounded(text: str, words: str) -> None:
    began = time.monotonic()
    with pytest.raises(SnapshotError) as err:
        parse_snapshot(text, "bomb.yaml")
    assert words in err.value.message and len(err.value.message) < 200, err.value.message
    assert err.value.message.startswith("bomb.yaml")
    assert time.monotonic() - began < 2.0


def test_a_few_aliases_are_fine() -> None:
    """Aliases themselves are YAML: a snapshot using some stays readable."""
    text = ("kind: List\nitems:\n- kind: Service\n  metadata: {name: a, labels: &l {app: a}}\n"
            "  spec: {ports: [{port: 80}], selector: *l}\n")
    assert parse_snapshot(text, "s.yaml").services[0].selector == {"app": "a"}


def test_many_aliases_that_do_not_explode_are_fine() -> None:
    """PyYAML itself writes anchors for objects a script shares: 300 Services with one spec
    (aliases are most of the document, as go-yaml, hence kubectl, allows below 400,000
    nodes)."""
    import yaml
    spec = {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "a"}}
    services = [{"kind": "Service", "metadata": {"name": f"s{i}"}, "spec": spec}
                for i in range(300)]
    text = yaml.safe_dump(kube_list(services))
    assert "*id001" in text
    assert len(parse_snapshot(text, "shared.yaml").services) == 300


def test_alias_bomb_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(9))
    began = time.monotonic()
    proc = run_cli("explain", "bomb", "--snapshot", str(path))
    line, _ = error_lines(proc.stderr)
    assert proc.returncode == 2 and "alias bomb" in line and len(line) < 200
    assert time.monotonic() - began < 10


def test_deep_json_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000)
    proc = run_cli("explain", "web", "--snapshot", str(path))
    line, _ = error_lines(proc.stderr)
    assert proc.returncode == 2 and "nested too deeply" in line


def test_nested_lists_are_opened_without_recursion() -> None:
    """Lists inside Lists (kubectl writes them for several kinds) are opened however deep."""
    depth = 400
    text = '{"kind": "List", "items": [' * depth + json.dumps(kube_list(_edge())) + "]}" * depth
    state = parse_snapshot(text, "nested.json")
    assert [s.name for s in state.services] == ["edge"]


def test_twin_services_in_one_namespace() -> None:
    items = fixture_items()
    twin = json.loads(json.dumps(find(items, "Service", "edge")))
    state = parse_snapshot(json.dumps(kube_list(items + [twin])), "twins.json")
    for namespace in (None, PUB):
        with pytest.raises(UsageError) as err:
            view_from_snapshot(state, "edge", namespace)
        assert err.value.message == (f"the snapshot has 2 Services named 'edge' in namespace "
                                     f"'{PUB}'")
        assert "several namespaces" not in err.value.message


def test_twin_services_through_the_cli(tmp_path: Path) -> None:
    items = fixture_items()
    twin = json.loads(json.dumps(find(items, "Service", "edge")))
    path = tmp_path / "twins.json"
    path.write_text(json.dumps(kube_list(items + [twin])))
    proc = run_cli("explain", "edge", "-n", PUB, "--snapshot", str(path))
    line, _ = error_lines(proc.stderr)
    assert proc.returncode == 2 and "2 Services named 'edge' in namespace" in line
