"""Shell completion: the words typed so far → the candidates a shell should offer.

One engine for every shell and for kubectl: it speaks Cobra's `__complete` protocol (what
kubectl ≥ 1.26 asks of `kubectl_complete-svctrace`): one candidate a line (`value<TAB>help`
optionally), then `:<directive>`. The scripts `svctrace completion bash|zsh|fish` prints
call `svctrace __complete WORD…` and obey the directive.

Subcommands and options come from the CLI's own click tree (what typer built), so they are
never out of date. Values come from the line itself: `--snapshot FILE` gives Service,
namespace and node names from the file; otherwise live names are looked up with
`svctrace.cluster.live.list_names` using the `-n`, `--context` and `--kubeconfig` already
typed, bounded by LIVE_TIMEOUT and cached briefly (complete_cache.py). Any failure
completes nothing, silently: a TAB must never print an error or hang the shell.
"""

from __future__ import annotations

import enum
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from svctrace.cli.complete_cache import cache_read, cache_write
from svctrace.cli.complete_files import rules_file_names, snapshot_names

# Cobra's ShellCompDirective bits (spf13/cobra completions.go)
ERROR, NO_SPACE, NO_FILE_COMP, FILTER_FILE_EXT, FILTER_DIRS, KEEP_ORDER = 1, 2, 4, 8, 16, 32
DEFAULT = 0           # no candidates → the shell completes file names

LIVE_TIMEOUT = 1.0    # seconds, the whole look-up (import, kubeconfig, request, or file)
# SVCTRACE_COMPLETION_TIMEOUT=SECONDS changes it (a cluster behind a slow VPN), within limits
TIMEOUT_ENV, TIMEOUT_RANGE = "SVCTRACE_COMPLETION_TIMEOUT", (0.1, 10.0)
SERVICE_PREFIXES = ("svc/", "service/", "services/")

# Fixed choices, by the option's long name (the commands take them as plain strings).
CHOICES: dict[str, tuple[str, ...]] = {
    "--output": ("text", "wide", "json", "yaml"),
    "--color": ("auto", "always", "never"),
    "--fail-on": ("error", "warning", "info", "none"),
    "--entry": ("clusterIP", "nodePort", "loadBalancer", "externalIP"),
    "--from": ("pod", "node", "external"),
    "--proto": ("tcp", "udp", "sctp"),
}
FILE_OPTIONS = ("--rules", "--snapshot", "--kubeconfig", "--file")
NAME_OPTIONS = {"--namespace": "namespaces", "--context": "contexts", "--node": "nodes"}
# comma-separated names (doctor --nodes node1,node2), or one of the fixed words
LIST_OPTIONS = {"--nodes": ("nodes", ("all",))}
SERVICE_ARGUMENTS = ("service", "services")       # explain SERVICE, rules [SERVICE], snapshot
HELP_OPTIONS = ("-h", "--help")                   # main.py's help_option_names


@dataclass
class Completion:
    """What the shell gets: candidates (`value` or `value<TAB>help`) and a Cobra directive."""

    candidates: list[str] = field(default_factory=list)
    directive: int = NO_FILE_COMP

    def cobra(self) -> str:
        """The `__complete` answer: candidates one a line, then `:<directive>`."""
        return "".join(f"{c}\n" for c in self.candidates) + f":{self.directive}\n"


@dataclass
class Line:
    """What the words before the cursor say: the command reached, the option values typed,
    the positional words, and an option still waiting for its value."""

    command: Any                                   # a click Command (or Group)
    values: dict[str, str] = field(default_factory=dict)    # long option name → last value
    positionals: list[str] = field(default_factory=list)
    pending: Any = None                            # a click Option whose value comes next
    seen: set[str] = field(default_factory=set)   # names of the options already given
    options_ended: bool = False                    # after `--`


def complete(root: Any, words: list[str]) -> Completion:
    """Complete the last word of `words` (the words after the program name; the last one is
    the word under the cursor, possibly empty). Never raises."""
    try:
        *before, incomplete = words or [""]
        return _complete(parse_line(root, before), incomplete)
    except Exception:  # noqa: BLE001 - a TAB completes nothing rather than fail
        return Completion()


def _one_line(value: str) -> bool:
    """False for a name with a control character: a newline would forge candidates (or the
    directive) in the line-based protocol, a tab would cut it at `value<TAB>help`, and a
    shell can insert none of them safely."""
    return not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in value)


def _complete(line: Line, incomplete: str) -> Completion:
    if line.pending is not None:
        return option_value(line, line.pending, incomplete, "")
    if incomplete.startswith("--") and "=" in incomplete and not line.options_ended:
        name, _, value = incomplete.partition("=")
        option = find_option(line.command, name)
        if option is None or _is_flag(option):
            return Completion()
        return option_value(line, option, value, name + "=")
    if incomplete.startswith("-") and not line.options_ended:
        return Completion(option_names(line.command, incomplete, line.seen))
    if _is_group(line.command):       # a word that is no command means nothing follows
        return Completion([] if line.positionals else subcommand_names(line.command, incomplete))
    return argument_value(line, incomplete)


# --- reading the line --------------------------------------------------------------------

def parse_line(root: Any, words: list[str]) -> Line:
    """Walk the words as click would: subcommands, options (and their values), positionals."""
    line = Line(command=root)
    for word in words:
        _take(line, word)
    return line


def _take(line: Line, word: str) -> None:
    if line.pending is not None:
        line.values[_long_name(line.pending)] = word
        line.pending = None
    elif word == "--" and not line.options_ended:
        line.options_ended = True
    elif word.startswith("-") and len(word) > 1 and not line.options_ended:
        _take_option(line, word)
    elif _is_group(line.command) and word in line.command.commands:
        line.command = line.command.commands[word]
    else:
        line.positionals.append(word)


def _take_option(line: Line, word: str) -> None:
    name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
    option = find_option(line.command, name)
    if option is None:
        return
    line.seen.add(option.name)
    if _is_flag(option):
        return
    if eq:
        line.values[_long_name(option)] = value
    else:
        line.pending = option


def find_option(command: Any, name: str) -> Any:
    """The click Option of `command` spelled `name` (-n, --namespace), or None."""
    for param in command.params:
        if _is_option(param) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


# --- candidates --------------------------------------------------------------------------

def subcommand_names(group: Any, incomplete: str) -> list[str]:
    return [_described(name, _first_sentence(cmd.short_help or cmd.help or ""))
            for name, cmd in sorted(group.commands.items())
            if name.startswith(incomplete) and not cmd.hidden]


def option_names(command: Any, incomplete: str, seen: set[str] = frozenset()) -> list[str]:
    """Option names starting with `incomplete`, leaving out those already given once."""
    out = []
    for param in command.params:
        if not _is_option(param) or param.hidden or (param.name in seen and not param.multiple):
            continue
        help_text = _first_sentence(param.help or "")
        out += [_described(name, help_text) for name in (*param.opts, *param.secondary_opts)
                if name.startswith(incomplete)]
    out += [_described(name, "Show the help and exit") for name in HELP_OPTIONS
            if name.startswith(incomplete) and incomplete]
    return out


def option_value(line: Line, option: Any, incomplete: str, prefix: str) -> Completion:
    """Candidates for the value of `option`; `prefix` is `--opt=` when typed in one word."""
    name = _long_name(option)
    choices = CHOICES.get(name) or _click_choices(option)
    if choices:
        return _prefixed(prefix, [c for c in choices if c.startswith(incomplete)])
    if name in FILE_OPTIONS:
        return Completion([], DEFAULT)          # the shell completes file names
    if name in NAME_OPTIONS:
        return _prefixed(prefix, _matching(names_for(line, NAME_OPTIONS[name]), incomplete))
    if name in LIST_OPTIONS:
        return _prefixed(prefix, list_values(line, incomplete, *LIST_OPTIONS[name]))
    return Completion()


def list_values(line: Line, incomplete: str, kind: str, words: tuple[str, ...]) -> list[str]:
    """`node1,no` → `node1,node2`: names of `kind` not in the list yet (a fixed word only
    alone)."""
    done, comma, partial = incomplete.rpartition(",")
    taken = set(done.split(",")) if comma else set()
    names = [n for n in names_for(line, kind) if n not in taken]
    return [done + comma + n for n in _matching([*(() if comma else words), *names], partial)]


def argument_value(line: Line, incomplete: str) -> Completion:
    argument = _argument_at(line.command, len(line.positionals))
    if argument is None:
        return Completion()
    choices = _click_choices(argument)
    if choices:
        return Completion([c for c in choices if c.startswith(incomplete)])
    if argument.name in SERVICE_ARGUMENTS:
        return Completion(service_candidates(line, incomplete))
    return Completion()


def service_candidates(line: Line, incomplete: str) -> list[str]:
    """`svc/we` → `svc/web` (kubectl's spellings kept), `we` → `web`."""
    prefix, slash, partial = incomplete.rpartition("/")
    if slash and (prefix + "/").lower() not in SERVICE_PREFIXES:
        return []
    head = prefix + slash
    return [head + name for name in _matching(names_for(line, "services"), partial)]


def _prefixed(prefix: str, values: list[str]) -> Completion:
    return Completion([prefix + v for v in values])


def _matching(names: list[str], partial: str) -> list[str]:
    """The names (from the cluster or a file) starting with `partial`, sorted."""
    return sorted({n for n in names if n.startswith(partial) and _one_line(n)})


# --- where names come from ---------------------------------------------------------------

def names_for(line: Line, kind: str) -> list[str]:
    """Names of `kind` (services, namespaces, nodes, contexts) for this line: from the
    --snapshot file when one is typed, from --rules for `rules`, else from the cluster."""
    namespace = line.values.get("--namespace")
    snapshot = line.values.get("--snapshot")
    if snapshot and kind != "contexts":
        return file_names(lambda: snapshot_names(snapshot, kind, namespace))
    rules = line.values.get("--rules")
    if rules and kind == "services" and line.command.name == "rules":
        return file_names(lambda: rules_file_names(rules, namespace))
    return live_names(kind, namespace, line.values.get("--context"),
                      line.values.get("--kubeconfig"))


def file_names(read: Callable[[], list[str]]) -> list[str]:
    """Names read from a local file, within the same deadline as a live look-up: a file
    can be slow too (a network mount, a snapshot that is costly to parse)."""
    return run_with_deadline(read, deadline())[0]


def live_names(kind: str, namespace: str | None, context: str | None,
               kubeconfig: str | None) -> list[str]:
    """Names from the cluster, from the cache when fresh, else looked up within LIVE_TIMEOUT."""
    key = [kind, namespace, context, kubeconfig, os.environ.get("KUBECONFIG")]
    cached = cache_read(key)
    if cached is not None:
        return cached
    names, finished = run_with_deadline(
        lambda: _list_names(kind, namespace, context, kubeconfig), deadline())
    cache_write(key, names if finished else [])
    return names


def _list_names(kind: str, namespace: str | None, context: str | None,
                kubeconfig: str | None) -> list[str]:
    from svctrace.cluster.live import list_names
    return list_names(kind, namespace, context, kubeconfig, timeout=deadline())


def deadline() -> float:
    """Seconds a look-up may take: LIVE_TIMEOUT, or SVCTRACE_COMPLETION_TIMEOUT within
    TIMEOUT_RANGE (a value that is no number keeps the default)."""
    try:
        seconds = float(os.environ.get(TIMEOUT_ENV, LIVE_TIMEOUT))
    except ValueError:
        return LIVE_TIMEOUT
    low, high = TIMEOUT_RANGE
    return min(max(seconds, low), high) if seconds == seconds else LIVE_TIMEOUT


TIMED_OUT = threading.Event()     # set when a look-up was abandoned (the caller may os._exit)


def run_with_deadline(call: Callable[[], list[str]], seconds: float) -> tuple[list[str], bool]:
    """Run `call` in a daemon thread; ([], False) when it is not done in `seconds`."""
    result: list[list[str]] = []

    def target() -> None:
        try:
            result.append(list(call()))
        except BaseException:  # noqa: BLE001 - completion never fails loudly
            result.append([])

    worker = threading.Thread(target=target, name="svctrace-complete", daemon=True)
    worker.start()
    worker.join(seconds)
    if not result:
        TIMED_OUT.set()
        return [], False
    return result[0], True


# --- click helpers (typer's click, duck-typed so this module imports no click) -----------

def _is_group(command: Any) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def _is_flag(option: Any) -> bool:
    return bool(getattr(option, "is_flag", False) or getattr(option, "count", False))


def _long_name(option: Any) -> str:
    names = [n for n in option.opts if n.startswith("--")]
    return names[0] if names else option.opts[0]


def _click_choices(param: Any) -> tuple[str, ...]:
    """The fixed values of an Enum-typed parameter (typer 0.29 keeps the annotation in
    `type_descriptor`; plain click keeps a Choice in `type`)."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(str(member.value) for member in annotation)
    choices = getattr(getattr(param, "type", None), "choices", None)
    return tuple(str(c) for c in choices) if choices else ()


def _argument_at(command: Any, index: int) -> Any:
    """The click Argument the `index`-th positional word fills (nargs=-1 takes the rest)."""
    position = 0
    for param in command.params:
        if getattr(param, "param_type_name", "") != "argument":
            continue
        if param.nargs == -1 or index < position + param.nargs:
            return param
        position += param.nargs
    return None


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    head = re.split(r"\.\s+(?=[A-Z])", text, maxsplit=1)[0].rstrip(".")
    return head if len(head) <= 70 else head[:67] + "..."


def _described(value: str, help_text: str) -> str:
    return f"{value}\t{help_text}" if help_text else value
