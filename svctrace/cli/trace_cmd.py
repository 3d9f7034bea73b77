"""`svctrace trace`: trace any packet through a ruleset, Kubernetes-aware."""

from __future__ import annotations

import typer

from svctrace.cli import options, values

HELP = """Trace a packet through iptables or nftables rules the way the kernel would.

Shows every outcome with its exact probability (kube-proxy's statistic cascades and nft
`numgen` maps fork the trace), the DNAT destination, masquerade, the verdict and the rules
passed through. The form of the rules file is recognised from its content."""


def register(app: typer.Typer) -> None:
    app.command("trace", help=HELP)(trace)


def trace(
    dst: str = typer.Option(..., "--dst", help="Destination IP[:PORT] (IPv6: [addr]:port)."),
    rules: str = typer.Option(None, "--rules", help="Rules to trace through: iptables-save "
                              "output, `nft list ruleset` text, `nft -j list ruleset` JSON or "
                              "`nft -f` input ('-' for stdin)."),
    max_input_size: str = options.MaxInputSize,
    src: str = typer.Option(None, "--src", help="Source IP (default: an address in the pod "
                            "CIDR, i.e. a packet from a pod)."),
    dport: int = typer.Option(None, "--dport", parser=values.port,
                              help="Destination port (or give it in --dst)."),
    sport: int = typer.Option(40000, "--sport", parser=values.port, help="Source port."),
    proto: str = typer.Option("tcp", "--proto", "-p", parser=values.protocol,
                              help="Protocol: tcp, udp or sctp."),
    in_interface: str = typer.Option(None, "--in-interface", "-i",
                                     help="Interface the packet arrives on (for -i matches)."),
    local_ip: list[str] = options.LocalIP,
    pod_cidr: str = typer.Option(None, "--pod-cidr", help="Pod CIDR, used only to pick the "
                                 "default source (default: inferred from the rules)."),
    affinity_hit: list[str] = typer.Option([], "--affinity-hit", help="Trace an existing client: "
                                           "the recent list (e.g. KUBE-SEP-…), nft affinity set, "
                                           "or endpoint ip:port "
                                           "that already holds the source (repeatable)."),
    partial: bool = options.Partial,
    output: str = options.Output,
    color: str = options.Color,
    quiet: bool = options.Quiet,
) -> None:
    from svctrace.cli.env import Environment
    from svctrace.cli.trace_run import run_trace

    env = Environment(color=options.check_color(color), quiet=quiet)
    run_trace(env, dst=dst, rules=rules, src=src, dport=dport, sport=sport, proto=proto,
              in_interface=in_interface, local_ips=local_ip, pod_cidr=pod_cidr,
              affinity_hit=affinity_hit, output=options.check_output(output),
              max_bytes=options.check_max_input_size(max_input_size), partial=partial)
