"""Generate man/svctrace.1 from the CLI's own definition (the click tree typer builds).

    python -m svctrace.cli.manpage > man/svctrace.1

Every command, argument and option, with its help, default and environment variable, comes
from the command modules; exit statuses come from svctrace.errors.ExitStatus. Only the prose
that the CLI does not declare (environment, files, examples) is written here. The output is
deterministic (no date), so tests/ui can regenerate it and compare with the committed file.
"""

from __future__ import annotations

import sys
from typing import Any

from svctrace import __version__

SUMMARY = "show how a Kubernetes Service is really implemented"

CONVENTIONS = [
    "Names follow kubectl: svc/web, service/web, services/web and a bare web all name a "
    "Service; -n/--namespace, --context, --kubeconfig and -o json|yaml|wide mean what they "
    "mean to kubectl, and KUBECONFIG is honoured.",
    "Results go to standard output, diagnostics (notes, errors) to standard error. Errors are "
    "one line, \"svctrace: error: ...\", sometimes followed by a \"hint:\" line; never a "
    "traceback unless --debug is given.",
    "-o json prints one JSON object with \"schema\": \"svctrace/v1\", sorted keys and no "
    "colour codes. Colour is used only on a terminal, and never when NO_COLOR is set, TERM is "
    "dumb or --color never is given.",
    "svctrace never changes a node: it reads rules and never writes them. What touches the "
    "cluster's nodes or the network (--node, --probe) is opt-in. Reading the local node's "
    "rules needs root; everything else does not.",
    "Installed as kubectl-svctrace too, svctrace is a kubectl plugin: kubectl svctrace "
    "explain web. kubectl 1.26 and later complete its arguments through "
    "kubectl_complete-svctrace.",
]

EXIT_STATUS = {
    "OK": "Success; no finding reached --fail-on.",
    "FINDINGS": "A finding at or above the --fail-on severity (default error).",
    "USAGE": "Usage error: an unknown option, a malformed argument or snapshot.",
    "NOT_FOUND": "The Service (or another named object) was not found.",
    "CLUSTER": "The cluster cannot be reached, or it denied access.",
    "RULES": "The node's rules cannot be read or parsed.",
    "INTERRUPTED": "Interrupted (Ctrl-C).",
}

ENVIRONMENT = [
    ("KUBECONFIG", "Colon-separated kubeconfig files, as for kubectl (--kubeconfig wins)."),
    ("NO_COLOR", "When set to any value, no colour is used (https://no-color.org)."),
    ("TERM", "When dumb, no colour is used."),
    ("SVCTRACE_DEBUG", "When set, errors are shown with a traceback, as with --debug."),
    ("SVCTRACE_NO_LOCAL_RULES", "When set, explain does not read the local node's rules even "
     "when run as root; use --rules or --node instead."),
    ("http_proxy, https_proxy, no_proxy", "Proxies for the connection to the API server, as "
     "honoured by the Kubernetes Python client."),
    ("XDG_CACHE_HOME", "Where shell completion caches live names for ten seconds "
     "(default ~/.cache). The cache is used only when its directory belongs to the user and "
     "no one else can write to it."),
    ("SVCTRACE_COMPLETION_TIMEOUT", "Seconds a TAB may spend looking names up (in the "
     "cluster or in a --snapshot or --rules file): default 1, at most 10."),
]

FILES = [
    ("~/.kube/config", "The default kubeconfig, when KUBECONFIG is not set."),
    ("/var/run/secrets/kubernetes.io/serviceaccount/",
     "The service account used in a pod when there is no kubeconfig."),
    ("$XDG_CACHE_HOME/svctrace/", "The shell completion cache of live names."),
]

EXAMPLES = [
    ("Explain a Service in the current namespace of the current context:",
     "svctrace explain svc/web"),
    ("The same, from a snapshot and an iptables-save file, as JSON:",
     "svctrace explain web -n shop --snapshot cluster.json --rules node1.rules -o json"),
    ("Fail a CI job on warnings too:", "svctrace explain svc/web --fail-on warning -q"),
    ("Read the rules of a node through its kube-proxy pod, and probe each backend:",
     "svctrace explain svc/web --node worker-1 --probe"),
    ("Show the kube-proxy chains of every Service in a saved ruleset:",
     "iptables-save | svctrace rules --rules -"),
    ("Trace a packet to a ClusterIP through a saved ruleset:",
     "svctrace trace --rules node1.rules --dst 10.96.0.10:53 --proto udp"),
    ("Capture a namespace for later, or for a colleague:",
     "svctrace snapshot -n shop -f shop.json"),
    ("Check every Service of the cluster, and every node's rules against the API:",
     "svctrace doctor -A --nodes all --parallel 16"),
    ("The same offline, from a snapshot and saved rules, as JUnit XML for CI:",
     "svctrace doctor --snapshot cluster.json --rules node1=node1.txt -o junit > doctor.xml"),
    ("Enable completion in bash:", "source <(svctrace completion bash)"),
    ("As a kubectl plugin:", "kubectl svctrace explain web -n shop"),
]

SEE_ALSO = "kubectl(1), iptables(8), iptables-save(8), nft(8)"


# --- roff ---------------------------------------------------------------------------------

def escape(text: str) -> str:
    """Text → roff: backslashes, hyphens (so options copy and paste), non-ASCII as \\[uXXXX],
    and a leading dot or quote that roff would take for a request."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    out = "".join(c if ord(c) < 128 else f"\\[u{ord(c):04X}]" for c in out)
    return "\\&" + out if out[:1] in (".", "'") else out


def paragraphs(text: str) -> list[str]:
    """Help text → paragraphs (blank-line separated), each reflowed on one line."""
    blocks = [" ".join(b.split()) for b in (text or "").split("\n\n")]
    return [b for b in blocks if b and b != "\b"]


def bold(text: str) -> str:
    return f"\\fB{escape(text)}\\fR"


def italic(text: str) -> str:
    return f"\\fI{escape(text)}\\fR"


# --- the CLI's definition -----------------------------------------------------------------

def cli_root() -> Any:
    """The click tree typer builds for `svctrace`, every command registered."""
    import typer.main

    from svctrace.cli import commands, main
    commands.register(main.app)
    return typer.main.get_command(main.app)


# Value names a reader understands better than the parameter's own name.
METAVARS = {"--snapshot": "FILE", "--rules": "FILE", "--kubeconfig": "FILE", "--file": "FILE",
            "--output": "FORMAT", "--fail-on": "SEVERITY", "--color": "WHEN",
            "--request-timeout": "DURATION", "--local-ip": "ADDRESS", "--dst": "IP[:PORT]",
            "--src": "IP", "--dport": "PORT", "--sport": "PORT", "--pod-cidr": "CIDR",
            "--in-interface": "INTERFACE", "--affinity-hit": "CHAIN|IP:PORT", "--node": "NODE",
            "--proto": "PROTOCOL", "--from": "WHERE"}


def metavar(param: Any) -> str:
    if getattr(param, "metavar", None):          # what the option itself declares wins
        return str(param.metavar)
    for name in param.opts:
        if name in METAVARS:
            return METAVARS[name]
    return param.name.strip("_").upper()


def option_lines(param: Any) -> list[str]:
    """One .TP entry for an option: names, value, help, default, environment variable."""
    names = ", ".join(bold(n) for n in (*param.opts, *param.secondary_opts))
    is_flag = getattr(param, "is_flag", False) or getattr(param, "count", False)
    head = names if is_flag else f"{names} {italic(metavar(param))}"
    body = paragraphs(param.help or "")
    notes = []
    if param.required:
        notes.append("Required.")
    if not is_flag and param.default not in (None, [], ()) and param.show_default is not False:
        notes.append(f"Default: {param.default}.")
    if param.envvar:
        notes.append(f"Environment: {param.envvar}.")
    if param.multiple:
        notes.append("May be given more than once.")
    lines = [".TP", head]
    text = " ".join([*body, *notes])
    lines.append(escape(text) if text else "")
    return [line for line in lines if line != ""]


def argument_usage(param: Any) -> str:
    name = italic(metavar(param)) + ("\\ ..." if param.nargs == -1 else "")
    return name if param.required else f"[{name}]"


def command_synopsis(name: str, command: Any) -> list[str]:
    args = [argument_usage(p) for p in command.params if p.param_type_name == "argument"]
    return [".B svctrace " + escape(name), " ".join(["[\\fIOPTIONS\\fR]", *args])]


def options_of(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "option" and not p.hidden]


def arguments_of(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "argument"]


def help_option() -> list[str]:
    return [".TP", f"{bold('-h')}, {bold('--help')}", "Show the help and exit."]


# --- the sections -------------------------------------------------------------------------

def render(root: Any) -> str:
    """The whole man page, in roff."""
    commands = [(n, c) for n, c in root.commands.items() if not c.hidden]
    lines = [
        '.\\" Generated by "python -m svctrace.cli.manpage" from the CLI definition.',
        '.\\" Do not edit: change the command modules and regenerate.',
        f'.TH SVCTRACE 1 "" "svctrace {escape(__version__)}" "User Commands"', ".nh",
        *header(commands), *description(root), *global_options(root),
        *commands_section(commands), *exit_status(), *listing("ENVIRONMENT", ENVIRONMENT),
        *listing("FILES", FILES), *examples(), ".SH SEE ALSO", escape(SEE_ALSO),
    ]
    return "\n".join(lines) + "\n"


def header(commands: list[tuple[str, Any]]) -> list[str]:
    lines = [".SH NAME", f"svctrace, kubectl\\-svctrace \\- {escape(SUMMARY)}", ".SH SYNOPSIS"]
    lines += [".B svctrace", "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] "
              "[\\fIARGUMENTS\\fR]"]
    for name, command in commands:
        lines += [".br", *command_synopsis(name, command)]
    return lines


def description(root: Any) -> list[str]:
    lines = [".SH DESCRIPTION"]
    texts = [p for p in paragraphs(root.help or "") if "man svctrace" not in p]
    for text in [*texts, *CONVENTIONS]:
        lines += [escape(text), ".PP"]
    return lines[:-1]


def global_options(root: Any) -> list[str]:
    lines = [".SH GLOBAL OPTIONS", "Given before the command."]
    for param in options_of(root):
        lines += option_lines(param)
    return lines + help_option()


def commands_section(commands: list[tuple[str, Any]]) -> list[str]:
    lines = [".SH COMMANDS"]
    for name, command in commands:
        lines += [f".SS {escape('svctrace ' + name)}", *command_synopsis(name, command)]
        for text in paragraphs(command.help or ""):
            lines += [".PP", escape(text)]
        for param in arguments_of(command):
            lines += [".TP", italic(metavar(param)), escape(" ".join(paragraphs(param.help)))]
        for param in options_of(command):
            lines += option_lines(param)
        lines += help_option()
    return lines


def exit_status() -> list[str]:
    from svctrace.errors import ExitStatus
    lines = [".SH EXIT STATUS"]
    for status in ExitStatus:
        lines += [".TP", bold(str(int(status))), escape(EXIT_STATUS[status.name])]
    return lines


def listing(section: str, entries: list[tuple[str, str]]) -> list[str]:
    lines = [f".SH {section}"]
    for name, text in entries:
        lines += [".TP", bold(name), escape(text)]
    return lines


def examples() -> list[str]:
    lines = [".SH EXAMPLES"]
    for text, command in EXAMPLES:
        lines += [".PP", escape(text), ".PP", ".RS 4", ".EX", escape(command), ".EE", ".RE"]
    return lines


def main() -> None:
    sys.stdout.write(render(cli_root()))


if __name__ == "__main__":
    main()
