"""pod_from_dict's one-pass reader of the usual Pod gives what the checked reader gives: the
same Pod for every Pod of the real captures and for each unusual variant below, or the same
error (the unusual ones are handed to the checked reader)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from svctrace.cluster import convert
from svctrace.cluster.fields import ConversionError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _real_pods() -> list[dict[str, Any]]:
    pods = []
    for name in ("rig-v1.36/api/all.json", "rig-v1.36-scenarios/api/all.json"):
        items = json.loads((FIXTURES / name).read_text())["items"]
        pods += [i for i in items if i.get("kind") == "Pod"]
    return pods


REAL = _real_pods()
BASE = next(p for p in REAL if p["spec"].get("containers") and
            p["status"].get("containerStatuses"))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(pod: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = pod
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(pod: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = pod
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node.pop(last, None)
    return change


VARIANTS = {
    "no-namespace": _drop("metadata.namespace"),
    "empty-namespace": _set("metadata.namespace", ""),
    "number-label": _set("metadata.labels", {"app": "web", "tier": 3}),
    "labels-not-map": _set("metadata.labels", ["app"]),
    "no-name": _drop("metadata.name"),
    "name-number": _set("metadata.name", 7),
    "pod-not-object": lambda pod: pod.clear(),
    "spec-null": _set("spec", None),
    "status-list": _set("status", []),
    "controller-owner": _set("metadata.ownerReferences",
                             [{"kind": "ReplicaSet", "name": "rs", "controller": False},
                              {"kind": "StatefulSet", "name": "db", "controller": True}]),
    "controller-not-bool": _set("metadata.ownerReferences",
                                [{"kind": "ReplicaSet", "name": "rs", "controller": "yes"}]),
    "owner-not-object": _set("metadata.ownerReferences", ["rs"]),
    "pod-ip-only": _drop("status.podIPs"),
    "pod-ips-empty-entry": _set("status.podIPs", [{}, {"ip": "10.1.2.3"}]),
    "bad-pod-ip": _set("status.podIPs", [{"ip": "10.1.2.300"}]),
    "leading-zero-ip": _set("status.podIPs", [{"ip": "10.01.2.3"}]),
    "ipv6": _set("status.podIPs", [{"ip": "fd00::5"}]),
    "ready-false": _set("status.conditions", [{"type": "Ready", "status": "False"}]),
    "ready-not-string": _set("status.conditions", [{"type": "Ready", "status": True}]),
    "no-conditions": _drop("status.conditions"),
    "port-as-string": _set("spec.containers.0.ports", [{"containerPort": "8080"}]),
    "port-out-of-range": _set("spec.containers.0.ports", [{"containerPort": 70000}]),
    "port-missing": _set("spec.containers.0.ports", [{"name": "http"}]),
    "port-bool": _set("spec.containers.0.ports", [{"containerPort": True}]),
    "udp-port": _set("spec.containers.0.ports", [{"containerPort": 53, "protocol": "UDP",
                                                  "name": "dns"}]),
    "containers-not-list": _set("spec.containers", {"name": "x"}),
    "waiting": _set("status.containerStatuses.0.state",
                    {"waiting": {"reason": "CrashLoopBackOff"}}),
    "state-null": _set("status.containerStatuses.0.state", {"terminated": None}),
    "no-state": _drop("status.containerStatuses.0.state"),
    "restarts-string": _set("status.containerStatuses.0.restartCount", "3"),
    "restarts-negative": _set("status.containerStatuses.0.restartCount", -1),
    "ready-string": _set("status.containerStatuses.0.ready", "true"),
    "last-oom": _set("status.containerStatuses.0.lastState",
                     {"terminated": {"reason": "OOMKilled", "exitCode": 137}}),
    "exit-code-string": _set("status.containerStatuses.0.lastState",
                             {"terminated": {"exitCode": "1"}}),
    "deleting": _set("metadata.deletionTimestamp", "2026-11-30T10:00:00Z"),
    "phase-empty": _set("status.phase", ""),
    "phase-number": _set("status.phase", 1),
}


def _read(reader: Callable[[Any], Any], pod: Any) -> Any:
    try:
        return reader(pod)
    except ConversionError as err:
        return f"error: {err}"


@pytest.mark.parametrize("pod", REAL, ids=[f"{p['metadata'].get('namespace')}/"
                                           f"{p['metadata']['name']}" for p in REAL])
def test_real_pods_read_alike(pod: dict[str, Any]) -> None:
    assert convert._usual_pod(pod) == convert._checked_pod(pod)


@pytest.mark.parametrize("change", VARIANTS.values(), ids=VARIANTS.keys())
def test_unusual_pods_read_alike(change: Callable[[dict[str, Any]], None]) -> None:
    pod = copy.deepcopy(BASE)
    change(pod)
    assert _read(convert.pod_from_dict, pod) == _read(convert._checked_pod, pod)


def test_the_variants_reach_both_readers() -> None:
    """Some variants are read by the one-pass reader, others only by the checked one."""
    usual = unusual = 0
    for change in VARIANTS.values():
        pod = copy.deepcopy(BASE)
        change(pod)
        try:
            convert._usual_pod(pod)
            usual += 1
        except Exception:  # noqa: BLE001 - any refusal hands the pod on
            unusual += 1
    assert usual >= 10 and unusual >= 10
