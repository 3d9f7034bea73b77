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

import gc
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from svctrace.diagnose.doctor import DoctorReport, NodeDrift, NodeResult
from svctrace.inputs import DEFAULT_MAX_INPUT

if TYPE_CHECKING:
    from svctrace.cluster.listing import ClusterListing
    from svctrace.cluster.live import Connection
    from svctrace.diagnose.digest import PortDrift
    from svctrace.model.cluster import ClusterState, EndpointSlice, Pod, Service
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
    max_input: int = DEFAULT_MAX_INPUT      # --max-input-size, bytes


def run_doctor(opts: DoctorOptions, progress: Progress | None = None) -> DoctorReport:
    """Check every Service in scope, then every node asked for; see the module docstring."""
    progress = progress or (lambda what, done, total: None)
    report = DoctorReport(scope="", source="")
    run = _Run(opts, report, progress)
    try:
        with _collector_paused():
            run.services()
        run.nodes()
    except KeyboardInterrupt:
        report.interrupted = True
        run.stop()
    return report


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the objects are listed and checked: they hold no
    reference cycles (freed at once when dropped), but the collector would rescan the whole
    growing heap — 100,000 pods — again and again (about 40% of the time of converting them)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


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
            state = read_snapshot(opts.snapshot, opts.max_input)
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

        pods = _PodIndex(state.pods)
        nodes = tuple(sorted(state.nodes, key=lambda n: n.name)) if nodes_known else None
        total = len(self.services_in_scope)
        extra = {"observed_at": state.captured_at} if state.captured_at else {}
        for i, svc in enumerate(self.services_in_scope):
            view = assemble_view(svc, self.slices.get((svc.namespace, svc.name), ()),
                                 pods.candidates(svc), nodes, source=state.source, **extra)
            self.report.rows.append(service_result(explain_cluster(view)))
            if i % 100 == 0 or i == total - 1:
                self.progress("services checked", i + 1, total)

    # --- the nodes -----------------------------------------------------------------------

    def nodes(self) -> None:
        jobs = self._node_jobs()
        if not jobs:
            return
        from svctrace.explain.doctor_nodes import Digester, Expected, read_nodes
        self.phase = "reading the nodes' rules"
        self.pending_nodes = sorted(jobs)
        expected = Expected(self.services_in_scope, self.slices,
                            self.state.nodes if self.state else (), self.namespaces)
        with Digester(expected, min(self.opts.parallel, len(jobs)),
                      self.opts.max_input) as digester:
            read_nodes(jobs, digester.read, self.opts.parallel, self.opts.node_timeout,
                       self._node_done)
        self._apply_node_findings()

    def _node_jobs(self) -> dict[str, Any]:
        """node → how to read its rules (a file name, or a function that execs)."""
        opts = self.opts
        jobs: dict[str, Any] = {node: path for node, path in opts.rules}
        self.report.rules_files = dict(opts.rules)
        wanted = self._live_nodes()
        known = [n.name for n in (self.state.nodes if self.state else ())]
        if wanted and self.conn is not None:
            from svctrace.explain.doctor_nodes import exec_job, kube_proxy_pods
            pods = kube_proxy_pods(self.conn)
            for node in wanted:
                jobs[node] = exec_job(self.conn, node, pods.get(node), opts.node_timeout)
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
        from svctrace.diagnose.paths import mark_drift, service_path
        compared = sum(1 for n in self.report.nodes if n.read)
        services = {(s.namespace, s.name): s for s in self.services_in_scope}
        for row in self.report.rows:
            key = (row.namespace, row.name)
            drift = self.drift.get(key, {})
            found = node_drift_findings(row.namespace, row.name, drift, compared)
            row.drift_nodes = sorted(drift)
            with_node_findings(row, found, compared)
            if drift:
                row.path = row.path or service_path(services[key], self.slices.get(key, []))
                mark_drift(row.path, drift)
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


# --- helpers -------------------------------------------------------------------------------

def _slices_by_service(slices: tuple[EndpointSlice, ...]) -> dict[SvcKey, list[EndpointSlice]]:
    out: dict[SvcKey, list[EndpointSlice]] = {}
    for s in slices:
        if s.service_name:
            out.setdefault((s.namespace, s.service_name), []).append(s)
    return out


class _PodIndex:
    """Pods by namespace and by label, so that each Service's view is cut out of the pods
    its selector can match instead of every pod of its namespace."""

    def __init__(self, pods: tuple[Pod, ...]) -> None:
        self.by_namespace: dict[str, list[Pod]] = {}
        self.by_label: dict[tuple[str, str, str], list[int]] = {}
        for p in sorted(pods, key=lambda p: (p.namespace, p.name)):
            mine = self.by_namespace.setdefault(p.namespace, [])
            for item in p.labels.items():
                self.by_label.setdefault((p.namespace, *item), []).append(len(mine))
            mine.append(p)

    def candidates(self, svc: Service) -> list[Pod]:
        """The pods `svc` selects; every pod of its namespace when it selects none (explain
        looks for near misses among them), none without a selector."""
        everyone = self.by_namespace.get(svc.namespace, [])
        if not svc.selector:
            return []
        postings = [set(self.by_label.get((svc.namespace, *item), ()))
                    for item in svc.selector.items()]
        chosen = set.intersection(*postings)
        return [everyone[i] for i in sorted(chosen)] if chosen else everyone


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
                           (reason,), f"kubectl auth can-i list pods -n {shlex.quote(ns)}"))
    return out
