"""Options shared by several commands, declared once (kubectl's names and meanings)."""

from __future__ import annotations

import typer

from svctrace.inputs import DEFAULT_MAX_INPUT, format_size

OUTPUT_HELP = "Output format: text (default), wide, json or yaml."

Namespace = typer.Option(None, "-n", "--namespace", help="Namespace (default: the context's, or "
                         "'default').", show_default=False)
Context = typer.Option(None, "--context", help="kubeconfig context to use.")
Kubeconfig = typer.Option(None, "--kubeconfig", envvar="KUBECONFIG",
                          help="Path to the kubeconfig file(s) (KUBECONFIG is honoured).")
Output = typer.Option("text", "-o", "--output", help=OUTPUT_HELP)
Color = typer.Option("auto", "--color", help="Colour: auto (on a TTY, unless NO_COLOR), always "
                     "or never.")
Quiet = typer.Option(False, "-q", "--quiet", help="Print only results; no notes on stderr.")
RulesFile = typer.Option(None, "--rules", help="iptables-save output to read ('-' for stdin).")
Partial = typer.Option(False, "--partial", help="Read a truncated dump (a table without COMMIT) "
                       "as far as it goes, with a warning, instead of refusing it.")
Snapshot = typer.Option(None, "--snapshot", help="Read API objects from a file (kubectl get -o "
                        "json/yaml List, multi-document YAML, or 'svctrace snapshot' output).")
MaxInputSize = typer.Option(format_size(DEFAULT_MAX_INPUT), "--max-input-size", metavar="SIZE",
                            help="Stop reading --rules or --snapshot input beyond this size "
                            "(k, M, G: binary units; e.g. 64M, 2G).")
LocalIP = typer.Option([], "--local-ip", help="An address that is local on the node (repeatable). "
                       "127.0.0.0/8 and ::1 are always local.")

OUTPUT_FORMATS = ("text", "wide", "json", "yaml")


def check_output(value: str) -> str:
    if value not in OUTPUT_FORMATS:
        from svctrace.errors import UsageError
        raise UsageError(f"unknown output format {value!r} (expected text, wide, json or yaml)")
    return value


def check_color(value: str) -> str:
    if value not in ("auto", "always", "never"):
        from svctrace.errors import UsageError
        raise UsageError(f"unknown --color value {value!r} (expected auto, always or never)")
    return value


def check_max_input_size(value: str) -> int:
    """--max-input-size in bytes."""
    from svctrace.inputs import parse_size
    return parse_size(value)


def check_one_stdin(*sources: tuple[str, str | None]) -> None:
    """stdin holds one input: refuse two sources that both say '-'. Each source is (how the
    command line spells it, e.g. "--rules node1=-", its path)."""
    dashes = [spelled for spelled, path in sources if path == "-"]
    if len(dashes) > 1:
        from svctrace.errors import UsageError
        raise UsageError(f"{' and '.join(dashes)}: both read stdin, which holds one input",
                         "save one of them to a file and give its path")
