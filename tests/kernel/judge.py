"""svctrace's side of the comparison: trace a probe and reduce it to what the kernel can show."""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rig import NODE_LOCAL_IPS, KernelResult, Probe, sets_text

REPO = Path(__file__).resolve().parents[2]


@dataclass
class TracerResult:
    outcomes: set[str]
    masquerade: dict[str, bool | str]
    shares: dict[str, float]
    assumptions: list[str]
    raw: object = None


def outcome_key(destination: str | None, verdict: str) -> str:
    if verdict in ("DROP", "REJECT"):
        return verdict
    return destination if destination else "NO-NAT"


def _reduce(items: list[tuple[str | None, str, bool, float, list[str]]], raw) -> TracerResult:
    outcomes: set[str] = set()
    masq: dict[str, set[bool]] = {}
    shares: dict[str, float] = {}
    assumptions: list[str] = []
    for destination, verdict, masquerade, probability, assumed in items:
        key = outcome_key(destination, verdict)
        outcomes.add(key)
        masq.setdefault(key, set()).add(bool(masquerade))
        shares[key] = shares.get(key, 0.0) + probability
        assumptions.extend(assumed)
    return TracerResult(outcomes, {k: (next(iter(v)) if len(v) == 1 else "mixed")
                                   for k, v in masq.items()}, shares, assumptions, raw)


@functools.cache
def _ruleset(rules_text: str, source: str):
    from svctrace.rules.iptables_save import parse_iptables_save
    return parse_iptables_save(rules_text, source)


def svctrace_outcomes(rules_text: str, probe: Probe, *, sport: int = 40000,
                      local_ips: tuple[str, ...] = tuple(NODE_LOCAL_IPS),
                      affinity_hit: frozenset[str] = frozenset(),
                      source: str = "kernel-test") -> TracerResult:
    """Trace `probe` with svctrace's Python API."""
    from svctrace.model.packet import make_packet
    from svctrace.model.trace import node_context
    from svctrace.trace.engine import trace_packet

    ruleset = _ruleset(rules_text, source)
    packet = make_packet(probe.src, probe.dst, protocol=probe.proto, sport=sport,
                         dport=probe.dport)
    if affinity_hit:
        node = node_context(list(local_ips), affinity_hit=affinity_hit)
    else:
        node = node_context(list(local_ips))
    trace = trace_packet(packet, ruleset, node)
    items = [(o.destination, o.verdict, o.masquerade, o.probability,
              [a.describe() if hasattr(a, "describe") else str(a) for a in o.assumptions])
             for o in trace.outcomes]
    return _reduce(items, trace)


def svctrace_cli_outcomes(rules_text: str, probe: Probe, *,
                          local_ips: tuple[str, ...] = ("10.10.0.10",)) -> TracerResult:
    """Trace `probe` through `python -m svctrace trace ... -o json`."""
    with tempfile.NamedTemporaryFile("w", suffix=".iptables-save.txt") as f:
        f.write(rules_text)
        f.flush()
        dst = f"[{probe.dst}]:{probe.dport}" if ":" in probe.dst else f"{probe.dst}:{probe.dport}"
        argv = [sys.executable, "-m", "svctrace", "trace", "--rules", f.name,
                "--src", probe.src, "--dst", dst, "--proto", probe.proto, "-o", "json"]
        for ip in local_ips:
            argv += ["--local-ip", ip]
        p = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert p.returncode == 0, f"{' '.join(argv)} exited {p.returncode}: {p.stderr}"
    doc = json.loads(p.stdout)
    assert doc["schema"] == "svctrace/v1"
    items = [(o["destination"], o["verdict"], o["masquerade"], o["probability"],
              [str(a) for a in o["assumptions"]]) for o in doc["outcomes"]]
    return _reduce(items, doc)


def describe(kernel: KernelResult, tracer: TracerResult | None = None) -> str:
    lines = [f"packet: {kernel.probe}",
             f"kernel  : {sets_text(kernel.outcomes)} counts={dict(kernel.counts)} "
             f"masquerade={kernel.masquerade}"]
    if kernel.sendto_errors:
        lines.append(f"          sendto errors: {dict(kernel.sendto_errors)}")
    if tracer is not None:
        lines.append(f"svctrace: {sets_text(tracer.outcomes)} shares="
                     f"{ {k: round(v, 4) for k, v in tracer.shares.items()} } "
                     f"masquerade={tracer.masquerade}")
    return "\n".join(lines)


def assert_tracer_matches_kernel(kernel: KernelResult, tracer: TracerResult) -> None:
    """Same set of outcomes, masquerade agreeing per outcome, probabilities summing to 1."""
    msg = describe(kernel, tracer)
    assert tracer.outcomes == kernel.outcomes, "outcome sets differ\n" + msg
    for key, masq in kernel.masquerade.items():
        if key in ("DROP", "REJECT"):
            continue          # nothing left the node: the kernel cannot show masquerade
        assert tracer.masquerade[key] == masq, f"masquerade differs for {key}\n" + msg
    assert abs(sum(tracer.shares.values()) - 1.0) < 1e-6, "probabilities do not sum to 1\n" + msg
    assert not tracer.assumptions, "svctrace made assumptions on these rules\n" + msg + \
        "\n" + "\n".join(tracer.assumptions)
    n = len(kernel.results)
    for key, share in tracer.shares.items():
        assert binomially_plausible(kernel.counts[key], n, share), \
            f"kernel picked {key} {kernel.counts[key]}/{n} times, svctrace says p={share}\n" + msg


def binomially_plausible(k: int, n: int, p: float) -> bool:
    """k of n picks lie within 5 standard deviations of the share p (robust, not tight)."""
    return abs(k - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1


def expected_masq(outcomes: set[str], masquerade: bool | set[str]) -> dict[str, bool]:
    """`masquerade` is a bool for all outcomes, or the set of outcomes that are masqueraded."""
    if isinstance(masquerade, bool):
        return {k: masquerade and k not in ("DROP", "REJECT") for k in outcomes}
    return {k: k in masquerade for k in outcomes}


def assert_kernel_as_expected(kernel: KernelResult, outcomes: set[str],
                              masquerade: bool | set[str]) -> None:
    """The rig's sanity check: the kernel did what the case table says."""
    msg = f"expected: {sets_text(outcomes)} masquerade={masquerade}\n" + describe(kernel)
    assert kernel.outcomes == outcomes, msg
    assert kernel.masquerade == expected_masq(outcomes, masquerade), msg
