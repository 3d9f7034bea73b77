"""`svctrace rules [SERVICE]`: the kube-proxy chains programmed for one or all Services.

Only typer and svctrace's own light modules at import time (TAB completion imports this);
the parser, the mapper, the renderer and rich are imported when the command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from svctrace.cli import options
from svctrace.inputs import DEFAULT_MAX_INPUT

if TYPE_CHECKING:
    from svctrace.cli.env import Environment
    from svctrace.model.kubeproxy import ServiceChains

HELP = """Show the kube-proxy chains programmed for one or all Services (iptables or nftables mode).

Maps the rules back to service ports without relying on comments (kube-proxy drops them above
1,000 endpoints). iptables mode: entry rules in KUBE-SERVICES / KUBE-NODEPORTS, the
SVC/SVL/EXT/FW chains, each endpoint's SEP chain with its probability and DNAT target, affinity,
masquerade, and the filter-table REJECT/DROP rules. nftables mode (recognised from the file):
the service-ips / service-nodeports / firewall-ips / no-endpoint-* map elements, the
service-/local-/external-/firewall- chains (found by kube-proxy's name hash), each endpoint with
its exact numgen share, affinity, masquerade and hairpin."""

_KINDS = ("svc", "service", "services")


def register(app: typer.Typer) -> None:
    app.command("rules", help=HELP)(rules)


def rules(
    service: str = typer.Argument(None, help="Service: svc/NAME, service/NAME or NAME "
                                  "(default: all).", show_default=False),
    rules_file: str = options.RulesFile,
    partial: bool = options.Partial,
    max_input_size: str = options.MaxInputSize,
    namespace: str = options.Namespace,
    output: str = options.Output,
    color: str = options.Color,
    quiet: bool = options.Quiet,
    digest: bool = typer.Option(False, "--digest", help="Print the rules' digest (JSON): for "
                                "every service port its entry points and the endpoints, with "
                                "shares, its chains send to (what 'doctor' compares)."),
    node: str = typer.Option(None, "--node", help="With --digest: the node the rules are "
                             "from (recorded in the digest)."),
) -> None:
    import gc

    from svctrace.cli.env import Environment

    # A short-lived process holding ~10 objects per rule: the cyclic GC only costs time here.
    gc.disable()
    env = Environment(color=options.check_color(color), quiet=quiet)
    fmt = options.check_output(output)
    name = parse_service_arg(service) if service is not None else None
    max_bytes = options.check_max_input_size(max_input_size)
    if digest or node is not None:
        write_digest(env, rules_file, name, node, digest, max_bytes)
        return
    run_rules(env, rules_file, name, namespace, fmt, max_bytes, partial)


def write_digest(env: Environment, rules_file: str | None, name: str | None,
                 node: str | None, digest: bool, max_bytes: int = DEFAULT_MAX_INPUT) -> None:
    """`--digest`: svctrace.diagnose.digest.node_digest of the rules, as JSON."""
    from svctrace.diagnose.digest import node_digest
    from svctrace.errors import UsageError
    from svctrace.rules.sources import load_ruleset

    if not digest:
        raise UsageError("--node NAME goes with --digest")
    if name is not None:
        raise UsageError("--digest covers every Service: give no SERVICE")
    env.write_json(node_digest(load_ruleset(rules_file, max_bytes), node))


def parse_service_arg(arg: str) -> str:
    """svc/web, service/web, services/web or web → web (kubectl's spellings)."""
    from svctrace.errors import UsageError

    kind, sep, name = arg.partition("/")
    if not sep:
        name = arg
    elif kind.lower() not in _KINDS:
        raise UsageError(f"{arg!r}: not a Service (expected svc/NAME, service/NAME or NAME)")
    if not name or "/" in name:
        raise UsageError(f"{arg!r}: not a Service name", "use svc/NAME with -n NAMESPACE")
    return name


def run_rules(env: Environment, rules_file: str | None, name: str | None,
              namespace: str | None, fmt: str, max_bytes: int = DEFAULT_MAX_INPUT,
              partial: bool = False) -> None:
    from svctrace.model.ruleset import Ruleset
    from svctrace.rules.detect import rules_format, rules_mode
    from svctrace.rules.kubeproxy import layout_notes, map_services
    from svctrace.rules.sources import load_ruleset

    ruleset = load_ruleset(rules_file, max_bytes, partial)
    mode, form = rules_mode(ruleset), rules_format(ruleset)
    if isinstance(ruleset, Ruleset):
        for warning in (*ruleset.warnings, *layout_notes(ruleset)):
            env.note(warning)
        if fmt == "json" and name is None and parallel_worth_it(ruleset):
            from svctrace.cli.rules_parallel import write_json_in_parallel
            if write_json_in_parallel(env, ruleset, namespace):
                return
        services = map_services(ruleset)
    else:
        services = nft_services(ruleset)
    if name is not None:
        services = select_services(services, name, namespace)
    elif namespace is not None:
        services = [s for s in services if s.namespace == namespace]
    if not services and name is None:
        env.note(f"no kube-proxy service chains found in {ruleset.source}"
                 + (f" for namespace {namespace!r}" if namespace else ""))
    write(env, services, fmt, ruleset.source, mode, form)


def nft_services(rules: object) -> list[ServiceChains]:
    """The service ports of an nft ruleset, and of the iptables rules beside it (a node with
    both modes' rules: each keeps its own `mode`)."""
    from svctrace.model.nftables import ModeSplit, NftRuleset
    from svctrace.rules import kubeproxy_nft
    from svctrace.rules.kubeproxy import map_services, sort_key

    if isinstance(rules, NftRuleset):
        return kubeproxy_nft.map_services(rules)
    assert isinstance(rules, ModeSplit)
    both = kubeproxy_nft.map_services(rules.nft) + map_services(rules.iptables)
    return sorted(both, key=lambda s: (sort_key(s)[:-1], s.family, s.mode, s.hash))


def parallel_worth_it(ruleset: object) -> bool:
    """Two processes pay off from about 20,000 nat chains (a few thousand Services) up."""
    import os

    from svctrace.model.ruleset import Ruleset

    assert isinstance(ruleset, Ruleset)
    nat = ruleset.tables.get("nat")
    return hasattr(os, "fork") and nat is not None and len(nat.chains) >= PARALLEL_CHAINS


PARALLEL_CHAINS = 20_000


def select_services(services: list[ServiceChains], name: str,
                    namespace: str | None) -> list[ServiceChains]:
    """The service ports of one Service. Without -n a name unique across namespaces is enough;
    otherwise the namespace is -n's, or "default"."""
    from svctrace.errors import NotFoundError, UsageError

    same_name = [s for s in services if s.name == name]
    if namespace is None:
        found_in = sorted({s.namespace for s in same_name if s.namespace is not None})
        if len(found_in) > 1 and "default" not in found_in:
            raise UsageError(f'Service "{name}" is in several namespaces: '
                             f'{", ".join(found_in)}', "pick one with -n NAMESPACE")
        namespace = found_in[0] if len(found_in) == 1 else "default"
    chosen = [s for s in same_name if s.namespace == namespace]
    if chosen:
        return chosen
    raise NotFoundError(f'Service "{namespace}/{name}" has no kube-proxy rules here',
                        _near_names(services, name, namespace))


def _near_names(services: list[ServiceChains], name: str, namespace: str) -> str:
    import difflib

    known = sorted({f"{s.namespace}/{s.name}" for s in services if s.name is not None})
    near = difflib.get_close_matches(f"{namespace}/{name}", known, n=3, cutoff=0.6)
    close = set(difflib.get_close_matches(name, [k.split("/", 1)[1] for k in known], n=5,
                                          cutoff=0.7))
    near += [k for k in known if k.split("/", 1)[1] in close and k not in near]
    if near:
        return "did you mean " + ", ".join(near) + "? (svctrace rules lists all)"
    return ("it may have no endpoints and no filter rule, be headless or ExternalName, or the "
            "rules are from another node; 'svctrace rules' lists every Service found")


def write(env: Environment, services: list[ServiceChains], fmt: str, source: str,
          mode: str, form: str) -> None:
    from svctrace.render import rules as render

    if fmt in ("json", "yaml"):
        data = render.services_data(services, source, mode, form)
        if fmt == "json":
            env.stdout.write(render.dumps_json(data))
        else:
            env.write_yaml(data)
        return
    console = env.console(piped_width=4096)    # a pipe or file: never crop rule text
    console.print(render.services_tree(services, wide=fmt == "wide",
                                       title=render.header(source, mode, form)))
