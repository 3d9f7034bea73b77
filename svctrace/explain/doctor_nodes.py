"""doctor's node side: read every node's rules, at most `parallel` at once, each bounded in
time; reduce each at once to a digest; compare it with what the API says; keep the drift.

Reading is I/O (the API's exec, or a file) and runs in threads. Parsing and digesting is
CPU: it runs in worker processes (forked once, before any reading thread starts, so they
inherit what each node should have instead of being sent it), one ruleset per worker at a
time, so memory is bounded by the number of workers, not by the number of nodes.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from svctrace.diagnose.doctor import NodeDrift, NodeResult
from svctrace.inputs import DEFAULT_MAX_INPUT

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from svctrace.cluster.live import Connection
    from svctrace.diagnose.expect import ExpectedPort
    from svctrace.model.cluster import EndpointSlice, Node, Service
    from svctrace.model.nftables import ModeSplit, NftRuleset
    from svctrace.model.ruleset import Ruleset

SvcKey = tuple[str, str]                      # (namespace, name)
Job = str | Callable[[], tuple[str, str]]     # a rules file, or how to read them (text, where)


def read_nodes(jobs: dict[str, Job], work: Callable[[str, Job], Any], parallel: int,
               timeout: float, done: Callable[[str, Any], None]) -> None:
    """Run `work(node, job)` for every node, at most `parallel` at once; a node that takes
    longer than `timeout` is given up (NODE-RULES-UNREADABLE) and its thread left to end on
    its own (its requests are bounded by the same timeout)."""
    from svctrace.diagnose.doctor import unreadable

    results: queue.Queue[tuple[str, Any]] = queue.Queue()
    pending = sorted(jobs)
    active: dict[str, float] = {}
    while pending or active:
        while pending and len(active) < max(parallel, 1):
            node = pending.pop(0)
            active[node] = time.monotonic() + timeout
            threading.Thread(target=lambda n=node: results.put((n, work(n, jobs[n]))),
                             daemon=True, name=f"svctrace-node-{node}").start()
        try:
            node, result = results.get(timeout=max(0.0, min(active.values()) - time.monotonic()))
        except queue.Empty:
            now = time.monotonic()
            for node in [n for n, deadline in active.items() if deadline <= now]:
                del active[node]
                done(node, unreadable(node, f"no answer within {timeout:g}s (--node-timeout)"))
            continue
        if active.pop(node, None) is not None:
            done(node, result)


# --- what each node should have -------------------------------------------------------------

class Expected:
    """What each node should have, per Service in scope: computed once for Services whose
    endpoints do not depend on the node (no local traffic policy, no topology hints), per
    node for the others."""

    def __init__(self, services: Sequence[Service],
                 slices: dict[SvcKey, list[EndpointSlice]], nodes: Sequence[Node],
                 namespaces: set[str] | None) -> None:
        from svctrace.diagnose.digest import api_names
        from svctrace.diagnose.expect import expected_ports, uses_local_endpoints
        self.slices, self.namespaces = slices, namespaces
        self.nodes = {n.name: n for n in nodes}
        self.shared: dict[SvcKey, list[ExpectedPort]] = {}
        self.per_node: list[Service] = []
        names: list[ExpectedPort] = []
        for svc in services:
            key = (svc.namespace, svc.name)
            mine = slices.get(key, [])
            ports = expected_ports(svc, mine, None, "")
            names += ports
            hinted = any(ep.hints_zones or ep.hints_nodes for s in mine for ep in s.endpoints)
            if uses_local_endpoints(svc) or hinted:
                self.per_node.append(svc)
            else:
                self.shared[key] = ports
        self.names = api_names(names)     # chain hash → service port name, for the digest

    def for_node(self, node: str) -> Iterator[tuple[SvcKey, list[ExpectedPort]]]:
        from svctrace.diagnose.expect import expected_ports
        yield from self.shared.items()
        obj = self.nodes.get(node)
        for svc in self.per_node:
            key = (svc.namespace, svc.name)
            yield key, expected_ports(svc, self.slices.get(key, []), obj, node)


# --- parse, digest, compare: in worker processes -------------------------------------------

_EXPECTED: Expected | None = None              # what forked workers inherit


def digest_node(node: str, rules: str | tuple[str, str],
                max_bytes: int = DEFAULT_MAX_INPUT) -> NodeDrift | NodeResult:
    """Parse one node's rules (a file name, or (text, where)), digest and compare them."""
    from svctrace.diagnose.digest import rules_digest
    from svctrace.diagnose.doctor import compare_node, unreadable
    from svctrace.errors import SvctraceError

    assert _EXPECTED is not None
    try:
        ruleset = _ruleset(rules, max_bytes)
        digest = rules_digest(ruleset, node, _EXPECTED.names)
        if digest is None:
            return unreadable(node, f"no kube-proxy rules in {ruleset.source}: kube-proxy "
                                    "there runs in IPVS mode, or not at all")
    except SvctraceError as err:
        return unreadable(node, err.message)
    del ruleset                  # only the digest is kept while comparing
    return compare_node(node, digest, _EXPECTED.for_node(node), _EXPECTED.namespaces)


def _ruleset(rules: str | tuple[str, str], max_bytes: int) -> Ruleset | NftRuleset | ModeSplit:
    """The rules of a file, or of (text, where) read through exec, in whatever form."""
    if isinstance(rules, str):
        from svctrace.rules.sources import load_ruleset
        return load_ruleset(rules, max_bytes)
    from svctrace.rules.detect import parse_rules
    return parse_rules(*rules)


def _worker_init() -> None:
    import gc
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the parent's to handle
    # The collector would rescan a ruleset (~10 objects per rule) many times while it is
    # built; instead it runs once per node, after the ruleset is dropped (a ruleset holds
    # reference cycles: without that, a worker would keep every node's rules). What the
    # worker inherited from the parent is frozen, so those collections never walk it.
    gc.freeze()
    gc.disable()


def _digest_in_worker(node: str, rules: str | tuple[str, str],
                      max_bytes: int = DEFAULT_MAX_INPUT) -> NodeDrift | NodeResult:
    import gc
    try:
        return digest_node(node, rules, max_bytes)
    finally:
        gc.collect()


class Digester:
    """Reads a node (in the calling thread) and digests it in a worker process; in this
    process when there is one worker or no fork."""

    def __init__(self, expected: Expected, nodes: int,
                 max_bytes: int = DEFAULT_MAX_INPUT) -> None:
        global _EXPECTED
        _EXPECTED = expected
        self.max_bytes = max_bytes          # --max-input-size, for --rules NODE=FILE
        self.pool: ProcessPoolExecutor | None = None
        workers = min(os.cpu_count() or 1, nodes)
        if workers > 1 and hasattr(os, "fork"):
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor
            self.pool = ProcessPoolExecutor(workers, multiprocessing.get_context("fork"),
                                            initializer=_worker_init)
            self.pool.submit(int).result()    # fork every worker now, before any thread

    def read(self, node: str, job: Job) -> NodeDrift | NodeResult:
        from svctrace.diagnose.doctor import unreadable
        from svctrace.errors import SvctraceError
        try:
            rules = job if isinstance(job, str) else job()
        except SvctraceError as err:
            return unreadable(node, err.message)
        if self.pool is None:
            return digest_node(node, rules, self.max_bytes)
        return self.pool.submit(_digest_in_worker, node, rules, self.max_bytes).result()

    def __enter__(self) -> Digester:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=exc[0] is None, cancel_futures=True)


# --- reading through the API ----------------------------------------------------------------

def exec_job(conn: Connection, node: str, pod: str | None,
             timeout: float) -> Callable[[], tuple[str, str]]:
    """How to read `node`'s rules: iptables-save in its kube-proxy pod, through the API's exec
    (with a client of its own: threads must not share one)."""
    def job() -> tuple[str, str]:
        from svctrace.cluster.node_exec import (
            find_kube_proxy_pod,
            own_connection,
            save_rules_in_pod,
        )
        mine = own_connection(conn, timeout)
        return save_rules_in_pod(mine, pod or find_kube_proxy_pod(mine, node), node)
    return job


def kube_proxy_pods(conn: Connection) -> dict[str, str]:
    """node → its running kube-proxy pod, from one (paginated) list of the labelled pods;
    nodes not in it are looked up one by one when read (by name, as explain --node does)."""
    from svctrace.cluster.listing import list_kept
    from svctrace.cluster.node_exec import (
        KUBE_PROXY_NAMESPACE,
        KUBE_PROXY_SELECTOR,
        choose_kube_proxy_pod,
    )

    def slim(raw: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {k: raw["metadata"].get(k) for k in ("name", "labels")},
                "spec": {"nodeName": (raw.get("spec") or {}).get("nodeName")},
                "status": {"phase": (raw.get("status") or {}).get("phase")}}

    pods = list_kept(conn, "pods", KUBE_PROXY_NAMESPACE, slim, label_selector=KUBE_PROXY_SELECTOR)
    by_node: dict[str, list[dict[str, Any]]] = {}
    for p in pods:
        by_node.setdefault(p["spec"]["nodeName"] or "", []).append(p)
    chosen = {node: choose_kube_proxy_pod(ps) for node, ps in by_node.items()}
    return {node: pod for node, pod in chosen.items() if pod}
