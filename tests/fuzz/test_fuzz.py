"""Fuzzing in the suite (issue 11, item 21): real dumps and a real snapshot from tests/fixtures,
mutated by hypothesis, go through `rules` and `trace` and through the snapshot converter
in-process. Whatever the input, the answer is a result or an svctrace error with exit status
0, 1, 2 or 5 — never an internal error (any other exception fails the test with its input).

Bounded time: a fixed number of examples per test, derandomized (the same inputs on every run,
so CI is reproducible); each example parses a dump of a few hundred lines.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svctrace.errors import SvctraceError

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DUMPS = {p.parent.name + "/" + p.name: p.read_text() for p in (
    FIXTURES / "rig-v1.36" / "node1.iptables-save.txt",
    FIXTURES / "rig-v1.36" / "node1.iptables-save-counters.txt",
    FIXTURES / "rig-v1.36-scenarios" / "node1.iptables-save.txt",
)}
SNAPSHOT = json.loads((FIXTURES / "rig-v1.36" / "api" / "all.json").read_text())
ALLOWED = {0, 1, 2, 5}
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Values a hostile or broken dump holds where a good one has a name, a number or an address.
TOKENS = ["0xZZ", "10.0.0.1/33", "abc", "nan", "inf", "2", "-1", "", "!", "-j", "-g", "-m",
          "KUBE-SERVICES", "KUBE-MARK-MASQ", "RETURN", "DNAT", "--to-destination", "statistic",
          "--probability", "65536", "80:70", "1:2:3", "::1", "[::1]:80", "10.96.0.10",
          '"', "'", "-p", "icmp", "--dport", "-A", "COMMIT", "*nat", ":X - [0:0]", "\t", "é",
          "\\", "--mark", "0xffffffff/0x1", "[0:0]", "-s", "0/0", "10.0.0.0/-1", "\r",
          "--set-xmark", "--src-range", "x-y", "--rcheck", "--name", "9" * 40, "-d",
          "--to-ports", "MASQUERADE", "REJECT", "--reject-with", "tcp-reset", "-i", "lo+"]
LINES = ["*filter", "*nat", "*mangle", "COMMIT", ":KUBE-NEW - [0:0]", ":INPUT DROP [0:0]",
         "-A KUBE-SERVICES -j KUBE-SERVICES", "-A PREROUTING -j KUBE-NEW", "-X KUBE-SERVICES",
         "-F KUBE-SERVICES", "-I KUBE-SERVICES 1 -j RETURN", "# comment", "",
         "-A KUBE-NEW -m statistic --mode random --probability 0.5 -j KUBE-NEW"]

_TOKEN = re.compile(r"\S+")

# an edit: (kind, where, which token, what)
Edit = tuple[str, int, int, str]
# mostly edits inside a rule, where values are read: whole-line damage stops at the parser
KINDS = ["token"] * 5 + ["char"] * 2 + ["delete", "duplicate", "swap", "insert", "truncate"]
edits = st.lists(st.tuples(
    st.sampled_from(KINDS),
    st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=50),
    st.one_of(st.sampled_from(TOKENS), st.sampled_from(LINES),
              st.text(min_size=1, max_size=3))), min_size=1, max_size=5)


def mutate(text: str, changes: list[Edit]) -> str:
    lines = text.split("\n")
    for kind, where, which, what in changes:
        i = where % len(lines)
        if kind == "delete" and len(lines) > 1:
            del lines[i]
        elif kind == "duplicate":
            lines.insert(i, lines[i])
        elif kind == "swap" and i + 1 < len(lines):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
        elif kind == "token":
            lines[i] = _replace_token(lines[i], which, what)
        elif kind == "insert":
            lines.insert(i, what)
        elif kind == "truncate":
            lines[i] = lines[i][: which]
            del lines[i + 1:]
        elif kind == "char" and lines[i]:
            j = which % len(lines[i])
            lines[i] = lines[i][:j] + what[:1] + lines[i][j + 1:]
    return "\n".join(lines)


def _replace_token(line: str, which: int, what: str) -> str:
    spans = [m.span() for m in _TOKEN.finditer(line)]
    if not spans:
        return what
    start, end = spans[which % len(spans)]
    return line[:start] + what + line[end:]


def exit_status(step: Callable[[], object]) -> int:
    """What the CLI's error boundary would exit with: 0, or the error's own status. Anything
    but an SvctraceError propagates: that is the internal error the fuzzer is after."""
    try:
        step()
    except SvctraceError as err:
        return int(err.exit_status)
    return 0


def run_rules(path: Path, fmt: str, service: str | None) -> None:
    from svctrace.cli.env import Environment
    from svctrace.cli.rules_cmd import run_rules as run

    env = Environment(stdout=io.StringIO(), stderr=io.StringIO(), color="never")
    run(env, str(path), service, None, fmt)


def _entry_points(text: str) -> list[tuple[str, int]]:
    """Every ClusterIP:port and NodePort the real dump programs: where packets go in."""
    found = re.findall(r"^-A KUBE-SERVICES -d ([0-9.]+)/32 .*--dport ([0-9]+)", text, re.M)
    found += [(NODE, p) for p in re.findall(r"^-A KUBE-NODEPORTS .*--dport ([0-9]+)", text,
                                             re.M)]
    return sorted({(ip, int(port)) for ip, port in found})


NODE = "10.10.0.10"
SOURCES = ["10.244.1.9", "203.0.113.9", NODE]      # a pod, an outside client, the node itself
ENTRIES = sorted({e for text in DUMPS.values() for e in _entry_points(text)})
PACKETS = [(src, dst, port) for src in SOURCES for dst, port in ENTRIES]


def run_trace(path: Path, packet: tuple[str, str, int], wide: bool) -> None:
    """`svctrace trace` in-process, but for scapy's summary line: parse, trace, render."""
    from rich.console import Console

    from svctrace.model.packet import make_packet
    from svctrace.model.trace import node_context
    from svctrace.render.trace import render_outcomes, trace_dict
    from svctrace.rules.kubeproxy import service_port_of
    from svctrace.rules.sources import load_ruleset
    from svctrace.trace.engine import trace_packet

    ruleset = load_ruleset(str(path))
    src, dst, port = packet
    trace = trace_packet(make_packet(src, dst, "tcp", 40000, port), ruleset,
                         node_context([NODE]))
    services = [service_port_of(o.path) for o in trace.outcomes]
    json.dumps(trace_dict(trace, ruleset.source, "fuzz", services))
    Console(file=io.StringIO(), width=120).print(render_outcomes(trace, wide, services))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(dump=st.sampled_from(sorted(DUMPS)), changes=edits,
       fmt=st.sampled_from(["text", "wide", "json", "yaml"]),
       service=st.sampled_from([None, "web", "kubernetes", "nosuch"]))
def test_rules_on_mutated_dumps(workdir: Path, dump: str, changes: list[Edit], fmt: str,
                                service: str | None) -> None:
    path = workdir / "rules.txt"
    path.write_text(mutate(DUMPS[dump], changes))
    status = exit_status(lambda: run_rules(path, fmt, service))
    assert status in ALLOWED | {3}    # 3: the named Service is not in these rules


@FUZZ
@given(dump=st.sampled_from(sorted(DUMPS)), changes=edits, packet=st.sampled_from(PACKETS),
       wide=st.booleans())
def test_trace_on_mutated_dumps(workdir: Path, dump: str, changes: list[Edit],
                                packet: tuple[str, str, int], wide: bool) -> None:
    path = workdir / "trace.txt"
    path.write_text(mutate(DUMPS[dump], changes))
    assert exit_status(lambda: run_trace(path, packet, wide)) in ALLOWED


# What a crafted or broken snapshot holds where a good one has the right type.
VALUES = [None, -1, 0, 5, 70000, "x", "80", "", [], {}, [4], ["80"], [None], {"a": 1}, True,
          1.5, "10.0.0.1/33", "::1", "Crash[/]Loop", [[[[]]]], {"address": 5}]


def _mutate_value(doc: Any, path: list[int], action: str, value: Any) -> Any:
    """Walk `path` (each step picks a key or an index modulo the size) and change what is
    there: replace it, delete it, or wrap it in a list."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return value if action == "replace" else [doc]
    keys = sorted(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = keys[path[0] % len(keys)]
    if len(path) == 1 and action == "delete":
        del doc[key]
        return doc
    doc[key] = _mutate_value(doc[key], path[1:], action, value)
    return doc


snapshot_edits = st.lists(st.tuples(
    st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8),
    st.sampled_from(["replace", "delete", "wrap"]), st.sampled_from(VALUES)),
    min_size=1, max_size=4)


def convert_snapshot(text: str) -> None:
    from svctrace.cluster.snapshot import parse_snapshot, view_from_snapshot

    state = parse_snapshot(text, "fuzz.json")
    for service in state.services:
        view_from_snapshot(state, service.name, service.namespace)


@FUZZ
@given(changes=snapshot_edits, as_yaml=st.booleans(),
       cut=st.one_of(st.none(), st.integers(min_value=0, max_value=60000)))
def test_snapshot_conversion_on_mutated_snapshots(changes: list[tuple[list[int], str, Any]],
                                                  as_yaml: bool, cut: int | None) -> None:
    doc = json.loads(json.dumps(SNAPSHOT))
    for path, action, value in changes:
        doc = _mutate_value(doc, path, action, json.loads(json.dumps(value)))
    if as_yaml:
        import yaml
        text = yaml.safe_dump(doc)
    else:
        text = json.dumps(doc)
    if cut is not None:
        text = text[:cut]
    assert exit_status(lambda: convert_snapshot(text)) in ALLOWED
