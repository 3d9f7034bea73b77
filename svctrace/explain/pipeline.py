"""explain's pipeline: the ServiceView (snapshot or live), the cluster half, the node half."""

from __future__ import annotations

from typing import TYPE_CHECKING

from svctrace.explain.report import ExplainOptions, ExplainReport

if TYPE_CHECKING:
    from svctrace.model.cluster import ServiceView


def load_view(opts: ExplainOptions) -> ServiceView:
    """The ServiceView from --snapshot FILE, else from the live cluster."""
    if opts.snapshot:
        from svctrace.cluster.snapshot import read_snapshot, view_from_snapshot
        state = read_snapshot(opts.snapshot, opts.max_input)
        return view_from_snapshot(state, opts.service, opts.namespace)
    from svctrace.cluster.live import load_live_view
    return load_live_view(opts.service, opts.namespace, opts.context, opts.kubeconfig,
                          opts.request_timeout, opts.deadline)


def explain_service(view: ServiceView, opts: ExplainOptions) -> ExplainReport:
    """Explain one Service: the cluster half, then the node half (see explain.node_side)."""
    from svctrace.diagnose.cluster import explain_cluster
    from svctrace.explain.node_side import explain_node_side

    cluster = explain_cluster(view)
    report = ExplainReport(cluster=cluster, findings=list(cluster.findings),
                           notes=list(view.notes))
    explain_node_side(report, view, opts)
    return report
