"""`doctor`'s pipeline: every Service of a namespace (or the cluster), and every node's rules.

Options in (DoctorOptions), a report of plain data out (DoctorReport); nothing printed.

1. The objects: paginated lists from the live cluster (svctrace.cluster.listing), or a
   snapshot file. Per Service the checks are explain's own (`explain_cluster`); each Service's
   view is cut out of the lists, explained, reduced to its row and dropped.
2. The nodes (--nodes, or --rules NODE=FILE): at most --parallel at once, each bounded by
   --node-timeout. A node's rules are read (iptables-save in its kube-proxy pod through the
   API's exec, or the file), reduced at once to a digest (svctrace.diagnose.digest), compared
   with what the API says that node should have, and only the disagreements kept.

Ctrl-C stops cleanly: the report holds what was gathered and names what was not checked.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from svctrace.diagnose.doctor import DoctorReport, NodeDrift, NodeResult

if TYPE_CHECKING:
    from svctrace.cluster.listing import ClusterListing
    from svctrace.cluster.live import Connection
    from svctrace.diagnose.digest import PortDrift
    from svctrace.diagnose.expect import ExpectedPort
    from svctrace.model.cluster import ClusterState, EndpointSlice, Node, Pod, Service
    from svctrace.model.findings import Finding

Progress = Callable[[str, int, int | None], None]     # (what, done, total or None)
SvcKey = tuple[str, str]                                # (namespace, name)


@dataclass
class DoctorOptions:
    """Everything doctor's command line says (plain data)."""

    namespace: str | None = None
    all_namespaces: bool = False
    context: str | None = None
    kubeconfig: str | None = None
    snapshot: str | None = None
    request_timeout: float = 5.0
    nodes: tuple[str, ...] = ()             # --nodes n1,n2 (read through the API's exec)
    all_nodes: bool = False                 # --nodes all
    rules: tuple[tuple[str, str], ...] = ()   # --rules NODE=FILE
    parallel: int = 8
    node_timeout: float = 30.0
    page_size: int = 500                    # --chunk-size: items per LIST request


def run_doctor(opts: DoctorOptions, progress: Progress | None = None) -> DoctorReport:
    """Check every Service in scope, then every node asked for; see the module docstring."""
    progress = progress or (lambda what, done, total: None)
    report = DoctorReport(scope="", source="")
    run = _Run(opts, report, progress)
    try:
        run.services()
        run.nodes()
    except KeyboardInterrupt:
        report.interrupted = True
        run.stop()
    return report


class _Run:
    """One doctor run; its state is what Ctrl-C leaves behind."""

    def __init__(self, opts: DoctorOptions, report: DoctorReport, progress: Progress) -> None:
        self.opts, self.report, self.progress = opts, report, progress
        self.conn: Connection | None = None
        self.state: ClusterState | None = None
        self.slices: dict[SvcKey, list[EndpointSlice]] = {}
        self.services_in_scope: list[Service] = []
        self.namespaces: set[str] | None = None
        self.drift: dict[SvcKey, dict[str, list[PortDrift]]] = {}
        self.phase = "listing the API objects"
        self.pending_nodes: list[str] = []

    # --- the Services ------------------------------------------------------------------

    def services(self) -> None:
        listing = self._listing()
        state = listing.state
        self.report.notes += listing.notes
        self.report.findings += _forbidden_findings(listing.pods_forbidden, state)
        self.services_in_scope = [s for s in state.services
                                  if s.namespace not in listing.pods_forbidden]
        self.slices = _slices_by_service(state.slices)
        self.phase = "checking the Services"
        self._check_services(state, listing.nodes_known)
        # the pods served the cluster checks; the node checks need only slices and nodes
        self.state = type(state)(services=state.services, nodes=state.nodes,
                                 namespace=state.namespace, source=state.source)

    def _listing(self) -> ClusterListing:
        opts = self.opts
        if opts.snapshot:
            from svctrace.cluster.listing import ClusterListing
            from svctrace.cluster.snapshot import read_snapshot
            state = read_snapshot(opts.snapshot)
            ns = opts.namespace if not opts.all_namespaces else None
            # a file holds the namespaces it was taken from: rules of others are not judged
            self.namespaces = {ns} if ns else {s.namespace for s in state.services}
            self.report.scope = f"namespace {ns}" if ns else "the whole snapshot"
            self.report.source = state.source
            self.report.explain_args = ("--snapshot", opts.snapshot)
            if ns:
                state = _only_namespace(state, ns)
            return ClusterListing(state)
        from svctrace.cluster.listing import list_cluster
        from svctrace.cluster.live import connect
        self.conn = connect(opts.kubeconfig, opts.context, opts.request_timeout)
        ns = None if opts.all_namespaces else (opts.namespace or self.conn.namespace)
        self.namespaces = {ns} if ns else None
        self.report.scope = f"namespace {ns}" if ns else "all namespaces"
        self.report.source = "live" + (f" (context {self.conn.context})"
                                       if self.conn.context else "")
        self.report.explain_args = ("--context", opts.context) if opts.context else ()
        return list_cluster(self.conn, ns, lambda what, n: self.progress(f"{what} listed", n,
                                                                         None), opts.page_size)

    def _check_services(self, state: ClusterState, nodes_known: bool) -> None:
        from svctrace.cluster.convert import assemble_view
        from svctrace.diagnose.cluster import explain_cluster
        from svctrace.diagnose.doctor import service_result

        pods = _pods_by_namespace(state.pods)
        nodes = state.nodes if nodes_known else None
        total = len(self.services_in_scope)
        extra = {"observed_at": state.captured_at} if state.captured_at else {}
        for i, svc in enumerate(self.services_in_scope):
            view = assemble_view(svc, self.slices.get((svc.namespace, svc.name), ()),
                                 pods.get(svc.namespace, ()), nodes,
                                 source=state.source, **extra)
            self.report.rows.append(service_result(explain_cluster(view)))
            if i % 100 == 0 or i == total - 1:
                self.progress("services checked", i + 1, total)

    # --- the nodes -----------------------------------------------------------------------

    def nodes(self) -> None:
        jobs = self._node_jobs()
        if not jobs:
            return
        self.phase = "reading the nodes' rules"
        self.pending_nodes = sorted(jobs)
        expected = _Expected(self)
        read_nodes(jobs, lambda node: self._read(node, jobs[node], expected),
                   self.opts.parallel, self.opts.node_timeout, self._node_done)
        self._apply_node_findings()

    def _node_jobs(self) -> dict[str, Callable[[], str | tuple[str, str]]]:
        """node → how to read its rules (a file name, or a function that execs)."""
        opts = self.opts
        jobs: dict[str, Any] = {node: path for node, path in opts.rules}
        self.report.rules_files = dict(opts.rules)
        wanted = self._live_nodes()
        known = [n.name for n in (self.state.nodes if self.state else ())]
        if wanted and self.conn is not None:
            pods = _kube_proxy_pods(self.conn, self.opts.node_timeout)
            for node in wanted:
                jobs[node] = _exec_job(self.conn, node, pods.get(node), opts.node_timeout)
        self.report.nodes_skipped = sorted(set(known) - set(jobs))
        return jobs

    def _live_nodes(self) -> list[str]:
        opts = self.opts
        if not (opts.nodes or opts.all_nodes):
            return []
        from svctrace.errors import ClusterError, NotFoundError, UsageError
        if self.conn is None:
            raise UsageError("--nodes reads the nodes' rules through the live cluster, but the "
                             "objects come from a snapshot",
                             "give each node's saved rules with --rules NODE=FILE")
        known = sorted(n.name for n in (self.state.nodes if self.state else ()))
        if opts.all_nodes:
            if not known:
                raise ClusterError("--nodes all: no nodes to read (nodes are not readable, or "
                                   "there are none)", "name them: --nodes node1,node2")
            return [n for n in known if n not in dict(opts.rules)]
        unknown = [n for n in opts.nodes if known and n not in known]
        if unknown:
            from svctrace.cluster import near_names
            near = near_names(unknown[0], known)
            raise NotFoundError(f'node "{unknown[0]}" not found',
                                f"did you mean {', '.join(near)}?" if near else None)
        return [n for n in dict.fromkeys(opts.nodes) if n not in dict(opts.rules)]

    def _read(self, node: str, job: Any, expected: _Expected) -> NodeDrift | NodeResult:
        """Read, digest and compare one node's rules (in a worker thread)."""
        from svctrace.diagnose.digest import node_digest
        from svctrace.diagnose.doctor import compare_node, unreadable
        from svctrace.errors import SvctraceError
        try:
            ruleset = _ruleset(job)
            if ruleset.chain("nat", "KUBE-SERVICES") is None:
                return unreadable(node, f"no kube-proxy chains in {ruleset.source}: kube-proxy "
                                        "there runs in nftables or IPVS mode, or not at all")
            digest = node_digest(ruleset, node, expected.names())
        except SvctraceError as err:
            return unreadable(node, err.message)
        del ruleset            # only the digest is kept while comparing
        return compare_node(node, digest, expected.for_node(node), self.namespaces)

    def _node_done(self, node: str, result: NodeDrift | NodeResult) -> None:
        if isinstance(result, NodeDrift):
            for key, drift in result.by_service.items():
                self.drift.setdefault(key, {})[node] = drift
            result = result.result
        self.report.nodes.append(result)
        if node in self.pending_nodes:
            self.pending_nodes.remove(node)
        done = len(self.report.nodes)
        self.progress("nodes read", done, done + len(self.pending_nodes))

    def _apply_node_findings(self) -> None:
        from svctrace.diagnose.doctor import node_drift_findings, with_node_findings
        compared = sum(1 for n in self.report.nodes if n.read)
        for row in self.report.rows:
            drift = self.drift.get((row.namespace, row.name), {})
            found = node_drift_findings(row.namespace, row.name, drift, compared)
            row.drift_nodes = sorted(drift)
            with_node_findings(row, found, compared)
        self.report.nodes.sort(key=lambda n: n.name)

    # --- Ctrl-C ---------------------------------------------------------------------------

    def stop(self) -> None:
        """After Ctrl-C: keep what was gathered, name what was not checked."""
        report = self.report
        if self.phase == "listing the API objects":
            report.not_checked.append("every Service (interrupted while listing the API "
                                      "objects)")
            return
        if self.phase == "checking the Services":
            left = len(self.services_in_scope) - len(report.rows)
            report.not_checked.append(f"{left} Service(s) (interrupted while checking them)")
            if self._live_nodes_asked():
                report.not_checked.append("the nodes' rules (not read yet)")
            return
        if self.pending_nodes:
            report.not_checked.append(f"{len(self.pending_nodes)} node(s) whose rules were "
                                      f"not read: {', '.join(self.pending_nodes[:10])}"
                                      + (" …" if len(self.pending_nodes) > 10 else ""))
            report.nodes_skipped = sorted(set(report.nodes_skipped) | set(self.pending_nodes))
        self._apply_node_findings()

    def _live_nodes_asked(self) -> bool:
        return bool(self.opts.nodes or self.opts.all_nodes or self.opts.rules)


# --- reading nodes in parallel, each bounded in time --------------------------------------

def read_nodes(jobs: dict[str, Any], work: Callable[[str], Any], parallel: int, timeout: float,
               done: Callable[[str, Any], None]) -> None:
    """Run `work(node)` for every node, at most `parallel` at once; a node that takes longer
    than `timeout` is given up (NODE-RULES-UNREADABLE) and its thread left to end on its own
    (its requests are bounded by the same timeout)."""
    from svctrace.diagnose.doctor import unreadable

    results: queue.Queue[tuple[str, Any]] = queue.Queue()
    pending = sorted(jobs)
    active: dict[str, float] = {}
    while pending or active:
        while pending and len(active) < max(parallel, 1):
            node = pending.pop(0)
            active[node] = time.monotonic() + timeout
            threading.Thread(target=lambda n=node: results.put((n, work(n))), daemon=True,
                             name=f"svctrace-node-{node}").start()
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


def _ruleset(job: Any) -> Any:
    if isinstance(job, str):
        from svctrace.rules.sources import load_ruleset
        return load_ruleset(job)
    from svctrace.rules.iptables_save import parse_iptables_save
    text, where = job()
    return parse_iptables_save(text, where)


def _exec_job(conn: Connection, node: str, pod: str | None,
              timeout: float) -> Callable[[], tuple[str, str]]:
    def job() -> tuple[str, str]:
        from svctrace.cluster.node_exec import (
            find_kube_proxy_pod,
            own_connection,
            save_rules_in_pod,
        )
        mine = own_connection(conn, timeout)
        return save_rules_in_pod(mine, pod or find_kube_proxy_pod(mine, node), node)
    return job


def _kube_proxy_pods(conn: Connection, timeout: float) -> dict[str, str]:
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


class _Expected:
    """What each node should have, per Service in scope: computed once for Services whose
    endpoints do not depend on the node (no local policy, no topology hints), per node for
    the others."""

    def __init__(self, run: _Run) -> None:
        from svctrace.diagnose.expect import expected_ports, uses_local_endpoints
        self.run = run
        self.nodes = {n.name: n for n in (run.state.nodes if run.state else ())}
        self.shared: dict[SvcKey, list[ExpectedPort]] = {}
        self.per_node: list[Service] = []
        for svc in run.services_in_scope:
            key = (svc.namespace, svc.name)
            slices = run.slices.get(key, [])
            hinted = any(ep.hints_zones or ep.hints_nodes for s in slices for ep in s.endpoints)
            if uses_local_endpoints(svc) or hinted:
                self.per_node.append(svc)
            else:
                self.shared[key] = expected_ports(svc, slices, None, "")
        self._names: dict[str, str] | None = None
        self._lock = threading.Lock()

    def names(self) -> dict[str, str]:
        """chain hash → service port name of every service port in scope (for the digest)."""
        from svctrace.diagnose.digest import api_names
        from svctrace.diagnose.expect import expected_ports
        with self._lock:
            if self._names is None:
                ports = [p for ps in self.shared.values() for p in ps]
                ports += [p for s in self.per_node for p in expected_ports(
                    s, self.run.slices.get((s.namespace, s.name), []), None, "")]
                self._names = api_names(ports)
            return self._names

    def for_node(self, node: str) -> Iterator[tuple[SvcKey, list[ExpectedPort]]]:
        from svctrace.diagnose.expect import expected_ports
        yield from self.shared.items()
        obj: Node | None = self.nodes.get(node)
        for svc in self.per_node:
            key = (svc.namespace, svc.name)
            yield key, expected_ports(svc, self.run.slices.get(key, []), obj, node)


# --- helpers -------------------------------------------------------------------------------

def _slices_by_service(slices: tuple[EndpointSlice, ...]) -> dict[SvcKey, list[EndpointSlice]]:
    out: dict[SvcKey, list[EndpointSlice]] = {}
    for s in slices:
        if s.service_name:
            out.setdefault((s.namespace, s.service_name), []).append(s)
    return out


def _pods_by_namespace(pods: tuple[Pod, ...]) -> dict[str, list[Pod]]:
    out: dict[str, list[Pod]] = {}
    for p in sorted(pods, key=lambda p: (p.namespace, p.name)):
        out.setdefault(p.namespace, []).append(p)
    return out


def _only_namespace(state: ClusterState, namespace: str) -> ClusterState:
    from dataclasses import replace
    return replace(state, services=tuple(s for s in state.services if s.namespace == namespace),
                   slices=tuple(s for s in state.slices if s.namespace == namespace),
                   pods=tuple(p for p in state.pods if p.namespace == namespace))


def _forbidden_findings(forbidden: dict[str, str], state: ClusterState) -> list[Finding]:
    from svctrace.model.findings import Finding, Severity
    out = []
    for ns, reason in sorted(forbidden.items()):
        count = sum(1 for s in state.services if s.namespace == ns)
        out.append(Finding("DOCTOR-NAMESPACE-UNREADABLE", Severity.WARNING,
                           f"namespace {ns}: {count} Service(s) not checked: {reason}",
                           (reason,), f"kubectl auth can-i list pods -n {ns}"))
    return out
