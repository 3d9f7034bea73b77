"""`svctrace doctor`: every Service of a namespace or the cluster, and every node's rules.

Argument parsing and printing only: the pipeline is svctrace.explain.doctor, which returns a
DoctorReport of plain data. Only typer and svctrace's light modules at import time (TAB
completion imports this); rich and kubernetes are imported when the command runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from svctrace.cli import options
from svctrace.errors import UsageError

if TYPE_CHECKING:
    from svctrace.cli.env import Environment
    from svctrace.diagnose.doctor import DoctorReport
    from svctrace.explain.doctor import DoctorOptions

HELP = """Check every Service of a namespace (-n) or of the whole cluster (-A) the way
'explain' checks one, and with --nodes every node's kube-proxy rules against the API.

Prints a summary, then one row per Service with a finding (worst first), each with the
'svctrace explain' command that tells its whole story. Node rules are read through each node's
kube-proxy pod (API exec), or offline from --rules NODE=FILE with --snapshot FILE. Exit status:
0 ok, 1 a finding reached --fail-on, 3 node not found, 4 cluster unreachable or access denied,
130 interrupted (what was gathered is printed)."""

DOCTOR_OUTPUTS = ("text", "wide", "json", "yaml", "junit", "html")


def register(app: typer.Typer) -> None:
    app.command("doctor", help=HELP)(doctor)


def doctor(
    namespace: str = options.Namespace,
    all_namespaces: bool = typer.Option(False, "-A", "--all-namespaces",
                                        help="Check every namespace."),
    context: str = options.Context,
    kubeconfig: str = options.Kubeconfig,
    snapshot: str = options.Snapshot,
    output: str = typer.Option("text", "-o", "--output", help="Output format: text (default), "
                               "wide, json, yaml, junit (JUnit XML for CI) or html (one "
                               "self-contained page)."),
    fail_on: str = typer.Option("error", "--fail-on", help="Exit 1 when a finding reaches this "
                                "severity: error, warning, info or none."),
    show_all: bool = typer.Option(False, "--all", help="List healthy Services too."),
    nodes: str = typer.Option(None, "--nodes", metavar="all|NODE,…", help="Also read these "
                              "nodes' rules (or all) through their kube-proxy pods (API exec) "
                              "and compare them with the API."),
    rules: list[str] = typer.Option([], "--rules", metavar="NODE=FILE", help="A node's saved "
                                    "rules (iptables-save output); repeatable."),
    max_input_size: str = options.MaxInputSize,
    parallel: int = typer.Option(8, "--parallel", help="Read at most this many nodes at once."),
    node_timeout: str = typer.Option("30s", "--node-timeout", help="Give up on a node's rules "
                                     "after this long (e.g. 20s)."),
    request_timeout: str = typer.Option("5s", "--request-timeout", help="How long to wait for "
                                        "each API request (e.g. 5s, 500ms, 2)."),
    chunk_size: int = typer.Option(500, "--chunk-size", help="Items per LIST request (kubectl's "
                                   "--chunk-size); the lists are read page by page."),
    color: str = options.Color,
    quiet: bool = options.Quiet,
) -> None:
    from svctrace.cli.env import Environment
    from svctrace.cli.explain_cmd import check_fail_on, parse_duration
    from svctrace.explain.doctor import DoctorOptions

    fmt = check_doctor_output(output)
    fail = check_fail_on(fail_on)
    if all_namespaces and namespace:
        raise UsageError("-A and -n exclude each other", "give one of them")
    if parallel < 1:
        raise UsageError(f"--parallel must be at least 1, got {parallel}")
    if chunk_size < 1:
        raise UsageError(f"--chunk-size must be at least 1, got {chunk_size}")
    all_nodes, node_names = parse_nodes(nodes)
    opts = DoctorOptions(
        namespace=namespace, all_namespaces=all_namespaces, context=context,
        kubeconfig=kubeconfig, snapshot=snapshot,
        request_timeout=parse_duration(request_timeout),
        nodes=node_names, all_nodes=all_nodes, rules=parse_rules(rules), parallel=parallel,
        node_timeout=parse_duration(node_timeout, "--node-timeout"), page_size=chunk_size,
        max_input=options.check_max_input_size(max_input_size))
    options.check_one_stdin(("--snapshot -", snapshot),
                            *((f"--rules {node}=-", path) for node, path in opts.rules))
    env = Environment(color=options.check_color(color), quiet=quiet)
    raise typer.Exit(run(opts, env, fmt, fail, show_all))


def check_doctor_output(value: str) -> str:
    if value not in DOCTOR_OUTPUTS:
        raise UsageError(f"unknown output format {value!r} (expected "
                         f"{', '.join(DOCTOR_OUTPUTS)})")
    return value


def parse_nodes(value: str | None) -> tuple[bool, tuple[str, ...]]:
    """--nodes all → (True, ()); --nodes n1,n2 → (False, (n1, n2))."""
    if value is None:
        return False, ()
    names = tuple(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
    if not names:
        raise UsageError("--nodes needs 'all' or node names (node1,node2)")
    if "all" in names:
        if len(names) > 1:
            raise UsageError("--nodes all cannot be combined with node names")
        return True, ()
    return False, names


def parse_rules(values: list[str]) -> tuple[tuple[str, str], ...]:
    """--rules NODE=FILE (repeatable) → ((node, file), …); a node at most once."""
    out: dict[str, str] = {}
    for value in values:
        node, sep, path = value.partition("=")
        if not sep or not node.strip() or not path:
            raise UsageError(f"--rules {value!r}: expected NODE=FILE",
                             "e.g. --rules node1=node1.txt (iptables-save output of node1)")
        if node.strip() in out:
            raise UsageError(f"--rules: node {node.strip()!r} given twice")
        out[node.strip()] = path
    return tuple(out.items())


def run(opts: DoctorOptions, env: Environment, fmt: str, fail_on: str, show_all: bool) -> int:
    """Run doctor (with progress on a terminal), print the report, return the exit status."""
    from svctrace.errors import ExitStatus
    from svctrace.explain.doctor import run_doctor
    from svctrace.explain.report import exit_status

    with progress_display(env) as progress:
        report = run_doctor(opts, progress)
    emit(report, env, fmt, show_all, fail_on)
    if report.interrupted:
        return int(ExitStatus.INTERRUPTED)
    return exit_status(report.all_findings(), fail_on)


def emit(report: DoctorReport, env: Environment, fmt: str, show_all: bool,
         fail_on: str) -> None:
    from svctrace.render.doctor import doctor_dict, doctor_renderables
    for note in report.notes:
        env.note(note)
    if report.interrupted:
        env.note("interrupted: printing what was gathered so far")
    if fmt == "junit":
        from svctrace.render.doctor_junit import doctor_junit
        env.stdout.write(doctor_junit(report, fail_on))
    elif fmt == "html":
        from svctrace.render.doctor_html import doctor_html
        env.stdout.write(doctor_html(report, show_all))
    elif fmt == "json":
        env.write_json(doctor_dict(report, show_all))
    elif fmt == "yaml":
        env.write_yaml(doctor_dict(report, show_all))
    else:
        console = env.console()
        for part in doctor_renderables(report, show_all, wide=fmt == "wide"):
            console.print(part)
            console.print()


class progress_display:  # noqa: N801 - used as a context manager, like contextlib's
    """Rich progress on stderr while doctor runs, only when stderr is a terminal (and not -q):
    objects listed, Services checked, nodes read, with an ETA where the total is known."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.live: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> Any:
        if self.env.quiet or not self.env.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        self.live = Progress(TextColumn("{task.description}"), BarColumn(),
                             TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn(),
                             console=Console(file=self.env.stderr), transient=True)
        self.live.start()
        return self.update

    def update(self, what: str, done: int, total: int | None) -> None:
        if what not in self.tasks:
            self.tasks[what] = self.live.add_task(what, total=total)
        self.live.update(self.tasks[what], completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()
