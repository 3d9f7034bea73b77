"""What explain takes (ExplainOptions) and what it returns (ExplainReport): plain data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from svctrace.inputs import DEFAULT_MAX_INPUT

if TYPE_CHECKING:
    from svctrace.diagnose.cluster import ClusterExplanation
    from svctrace.diagnose.node import NodeExplanation
    from svctrace.model.findings import Finding


@dataclass
class ExplainOptions:
    """Everything the command line says, in one place (node-side options included)."""

    service: str
    namespace: str | None = None
    context: str | None = None
    kubeconfig: str | None = None
    snapshot: str | None = None
    output: str = "text"
    fail_on: str = "error"
    request_timeout: float = 5.0
    deadline: float | None = None         # time.monotonic() by which cluster work must end
    rules: str | None = None
    node: str | None = None
    debug_pod: str | None = None          # --debug-pod IMAGE
    local_ips: list[str] = field(default_factory=list)
    probe: bool = False
    raw: bool = False
    entry: str | None = None
    src: str | None = None
    from_: str | None = None
    progress: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    # ^ told when reading the node's rules is slow (nft on a big node); the CLI prints it
    max_input: int = DEFAULT_MAX_INPUT    # --max-input-size, bytes


@dataclass
class ExplainReport:
    """The result of explain: the cluster half, plus what the node side adds."""

    cluster: ClusterExplanation
    findings: list[Finding]
    node: NodeExplanation | None = None                   # the node half, when rules were read
    packets: list[str] = field(default_factory=list)      # scapy summary of each node trace
    data: dict[str, Any] = field(default_factory=dict)    # extra top-level JSON keys
    notes: list[str] = field(default_factory=list)        # diagnostics for stderr


def report_dict(report: ExplainReport) -> dict[str, Any]:
    """The `-o json|yaml` document: the cluster half's dict plus the node side's keys."""
    from svctrace.render.cluster import explanation_dict
    data = explanation_dict(report.cluster, report.findings)
    data.update(report.data)
    return data


def exit_status(findings: list[Finding], fail_on: str) -> int:
    """1 when a finding reaches --fail-on, else 0."""
    if fail_on == "none":
        return 0
    from svctrace.model.findings import Severity
    threshold = Severity.parse(fail_on)
    return 1 if any(f.severity >= threshold for f in findings) else 0
