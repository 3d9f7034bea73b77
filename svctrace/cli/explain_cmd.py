"""`svctrace explain SERVICE`: the whole story of one Service.

Argument parsing and printing only: the pipeline (the cluster half, then the node half: rules,
drift, traces, probes) is svctrace.explain, which returns an ExplainReport of plain data.

Only typer and svctrace modules are imported at module level; rich and kubernetes are
imported inside the functions that need them (shell completion runs this on every TAB).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import typer

from svctrace.cli import options
from svctrace.errors import UsageError
from svctrace.explain.report import ExplainOptions, ExplainReport, exit_status, report_dict

if TYPE_CHECKING:
    from svctrace.cli.env import Environment

HELP = """Explain how a Service is implemented, hop by hop, and what is wrong with it.

SERVICE is svc/NAME, service/NAME, services/NAME or NAME. Objects come from the live cluster
(kubeconfig, --context, -n, like kubectl) or from --snapshot FILE. Exit status: 0 ok, 1 a
finding reached --fail-on, 3 Service not found, 4 cluster unreachable or access denied."""

SERVICE_PREFIXES = ("svc/", "service/", "services/", "svc.", "service.", "services.")
FAIL_ON = ("error", "warning", "info", "none")

def register(app: typer.Typer) -> None:
    app.command("explain", help=HELP)(explain)


def explain(
    service: str = typer.Argument(..., help="The Service: svc/NAME, service/NAME or NAME."),
    namespace: str = options.Namespace,
    context: str = options.Context,
    kubeconfig: str = options.Kubeconfig,
    snapshot: str = options.Snapshot,
    output: str = options.Output,
    fail_on: str = typer.Option("error", "--fail-on", help="Exit 1 when a finding reaches this "
                                "severity: error, warning, info or none."),
    color: str = options.Color,
    quiet: bool = options.Quiet,
    request_timeout: str = typer.Option("5s", "--request-timeout", help="How long to wait for "
                                        "each API request (e.g. 5s, 500ms, 2)."),
    rules: str = options.RulesFile,
    max_input_size: str = options.MaxInputSize,
    node: str = typer.Option(None, "--node", help="Read the rules of this node through the "
                             "kube-proxy pod on it (API exec): iptables-save, and "
                             "`nft -j list ruleset` for a node in nftables mode."),
    debug_pod: str = typer.Option(None, "--debug-pod", metavar="IMAGE", help="When the node "
                                  "has no kube-proxy pod, create a short-lived privileged pod "
                                  "on that node from IMAGE (it must contain iptables-save, and "
                                  "nft for nftables mode, e.g. the cluster's kube-proxy image), "
                                  "read the rules in it the same way, and delete it; needs "
                                  "create/delete on pods and create on pods/exec in "
                                  "kube-system."),
    local_ip: list[str] = options.LocalIP,
    probe: bool = typer.Option(False, "--probe", help="Also probe each backend for real "
                               "(TCP connect / UDP)."),
    raw: bool = typer.Option(False, "--raw", help="Show the rules as iptables-save or nft "
                             "printed them."),
    entry: str = typer.Option(None, "--entry", help="Entry point to trace: clusterIP, "
                              "nodePort, loadBalancer or externalIP."),
    src: str = typer.Option(None, "--src", help="Source address of the traced packet."),
    from_: str = typer.Option(None, "--from", help="Where the traced packet starts: pod, node "
                              "or external."),
) -> None:
    from svctrace.cli.env import Environment
    from svctrace.explain.pipeline import explain_service, load_view

    opts = ExplainOptions(
        service=parse_service_ref(service), namespace=namespace, context=context,
        kubeconfig=kubeconfig, snapshot=snapshot, output=options.check_output(output),
        fail_on=check_fail_on(fail_on), request_timeout=parse_duration(request_timeout),
        rules=rules, node=check_node(node), debug_pod=debug_pod, local_ips=list(local_ip),
        probe=probe, raw=raw, entry=entry, src=src, from_=from_,
        max_input=options.check_max_input_size(max_input_size))
    options.check_one_stdin(("--snapshot -", snapshot), ("--rules -", rules))
    env = Environment(color=options.check_color(color), quiet=quiet)
    if not opts.snapshot:
        from svctrace.cluster.live import overall_deadline
        opts.deadline = overall_deadline(opts.request_timeout)
    opts.progress = env.note            # e.g. nft listing a big node's rules takes a while
    view = load_view(opts)
    raise typer.Exit(emit(explain_service(view, opts), opts, env))


# --- parsing -----------------------------------------------------------------------------

def parse_service_ref(text: str) -> str:
    """`svc/web`, `service/web`, `services/web` or `web` → `web`, like kubectl."""
    name = text
    for prefix in SERVICE_PREFIXES:
        if text.lower().startswith(prefix):
            name = text[len(prefix):]
            break
    else:
        if "/" in text:
            raise UsageError(f"{text!r} is not a Service", "name it svc/NAME or just NAME")
    if not name or "/" in name:
        raise UsageError(f"invalid Service name {text!r}", "name it svc/NAME or just NAME")
    return name


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", re.ASCII)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
LONGEST_TIMEOUT = 86400.0


def parse_duration(text: str, option: str = "--request-timeout") -> float:
    """kubectl-style timeout: `5s`, `500ms`, `1m`, `1h` or plain seconds; finite, positive
    and at most a day (`inf`, `nan`, `1e309` and `1_0` are refused)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise UsageError(f"invalid {option} {text!r} (e.g. 5s, 500ms)")
    seconds = float(match[1]) * _UNITS[match[2]]
    if not 0 < seconds <= LONGEST_TIMEOUT:
        raise UsageError(f"{option} must be more than 0 and at most 24h, got {text!r}")
    return seconds


def check_node(value: str | None) -> str | None:
    """--node NAME: a node name as Kubernetes allows it (never empty, no '..' or ',')."""
    if value is None:
        return None
    from svctrace.cluster.names import check_name
    try:
        return check_name("node", value)
    except UsageError as err:
        raise UsageError(f"--node: {err.message}") from None


def check_fail_on(value: str) -> str:
    if value.lower() not in FAIL_ON:
        raise UsageError(f"unknown --fail-on value {value!r} (expected error, warning, info "
                         "or none)")
    return value.lower()


# --- printing ----------------------------------------------------------------------------

def emit(report: ExplainReport, opts: ExplainOptions, env: Environment) -> int:
    """Write the report (stdout) and its notes (stderr); return the exit status."""
    for note in dict.fromkeys(report.notes):      # each note once
        env.note(note)
    if opts.output == "json":
        env.write_json(report_dict(report))
    elif opts.output == "yaml":
        env.write_yaml(report_dict(report))
    else:
        _print_text(report, opts, env)
    return exit_status(report.findings, opts.fail_on)


def _print_text(report: ExplainReport, opts: ExplainOptions, env: Environment) -> None:
    from datetime import UTC, datetime

    from svctrace.render.cluster import cluster_renderables, findings_renderable
    observed = report.cluster.view.observed_at
    now = (datetime.fromisoformat(observed.replace("Z", "+00:00")) if observed
           else datetime.now(UTC))
    console = env.console()
    parts = cluster_renderables(report.cluster, wide=opts.output == "wide", now=now)
    if report.data.get("verdict"):
        from svctrace.render.literal import text
        console.print(text(f"verdict: {report.data['verdict']}", style="bold"))
        console.print()
    for part in [*parts, *node_sections(report, opts), findings_renderable(report.findings)]:
        console.print(part)
        console.print()


def node_sections(report: ExplainReport, opts: ExplainOptions) -> list[Any]:
    """The node half's renderables (rules, traces) and the probe results, when there are any."""
    from rich.text import Text

    from svctrace.render.node import node_renderables
    parts: list[Any] = []
    if report.node is not None:
        parts += node_renderables(report.node, report.cluster, raw=opts.raw,
                                  wide=opts.output == "wide", packets=report.packets)
    if "probes" in report.data:
        from svctrace.render.literal import printable
        lines = [printable(f"{p['address']}/{p['protocol']}: {p['result']}")
                 for p in report.data["probes"]]
        parts.append(Text("Probes (sent from this machine)\n" + "\n".join(lines)))
    return parts
