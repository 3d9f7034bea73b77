"""Deep rules (issue 11, item 5): any jump depth the kernel loads is traced, with -j/-g/RETURN
semantics judged by the kernel at 2,000 levels; loops are located errors with a short message;
statistic forks nested one inside another are cut off at once, in little memory."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from boundkit import MEMORY_BOUND_MB, REPO, run_measured

from svctrace.errors import RulesError
from svctrace.model.packet import make_packet
from svctrace.model.trace import Trace, node_context
from svctrace.rules.iptables_save import parse_iptables_save
from svctrace.trace import engine
from svctrace.trace.engine import MAX_NESTED, trace_packet

sys.path.insert(0, str(REPO / "tests" / "kernel"))
import judge  # noqa: E402
import rig  # noqa: E402

NAT_HEAD = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
            ":POSTROUTING ACCEPT [0:0]"]
VIP, CLIENT = "10.96.77.7", "203.0.113.9"


def backend_of(level: int) -> str:
    """A distinct DNAT destination per chain level: which frame resumed is visible."""
    return f"10.244.{level // 250}.{level % 250 + 1}:8080"


def deep_chain(depth: int, goto: Callable[[int], bool], bottom: str = "-j RETURN") -> str:
    """PREROUTING → C0 → … → C{depth-1}. Level i enters i+1 by -g when goto(i), else -j; after
    the call each level DNATs to its own backend; the deepest level runs `bottom`."""
    lines = [*NAT_HEAD, *(f":C{i} - [0:0]" for i in range(depth)),
             f"-A PREROUTING -d {VIP}/32 -p tcp -j C0"]
    for i in range(depth - 1):
        lines.append(f"-A C{i} {'-g' if goto(i) else '-j'} C{i + 1}")
        lines.append(f"-A C{i} -p tcp -j DNAT --to-destination {backend_of(i)}")
    lines += [f"-A C{depth - 1} {bottom}", "COMMIT", ""]
    return "\n".join(lines)


def trace_text(text: str, dst: str = VIP, src: str = CLIENT) -> Trace:
    ruleset = parse_iptables_save(text, "deep.txt")
    return trace_packet(make_packet(src, dst, "tcp", 40000, 80), ruleset, node_context([]))


# (id, depth, which levels go by -g, the bottom rule, the outcome the kernel gives)
DEEP = [
    ("jumps-2000-return-to-the-deepest-caller", 2000, lambda i: False, "-j RETURN",
     backend_of(1998)),
    ("goto-at-the-bottom-returns-past-the-goer", 2001, lambda i: i % 2 == 1, "-j RETURN",
     backend_of(1998)),
    ("gotos-below-the-first-jump-return-to-the-top", 2000, lambda i: i >= 1, "-j RETURN",
     backend_of(0)),
    ("gotos-all-the-way-the-policy-decides", 2000, lambda i: True, "-j RETURN", "NO-NAT"),
    ("dnat-at-the-bottom-of-2000", 2000, lambda i: False,
     f"-p tcp -j DNAT --to-destination {backend_of(9999)}", backend_of(9999)),
    ("fall-off-the-end-of-5000", 5000, lambda i: False, "-j MARK --set-xmark 0x1/0x1",
     backend_of(4998)),
]


def _deep_params() -> list:
    return [pytest.param(*row[1:], id=row[0]) for row in DEEP]


@pytest.mark.parametrize("depth,goto,bottom,expected", _deep_params())
def test_deep_chains_are_traced(depth: int, goto: Callable[[int], bool], bottom: str,
                                expected: str) -> None:
    (outcome,) = trace_text(deep_chain(depth, goto, bottom)).outcomes
    assert (outcome.destination or "NO-NAT") == expected
    # every level that was entered appears on the path, in order
    chains = [s.chain for s in outcome.path if s.rule == 1]
    assert chains[:3] == ["PREROUTING", "C0", "C1"]


def test_depth_is_not_bounded_by_python_recursion() -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        (outcome,) = trace_text(deep_chain(3000, lambda i: False)).outcomes
    finally:
        sys.setrecursionlimit(limit)
    assert outcome.destination == backend_of(2998)


@pytest.fixture(scope="module")
def legacy_rig() -> None:
    """The kernel rig of tests/kernel; in CI a rig that cannot run is a failure."""
    why = rig.prerequisites_missing()
    if why is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"kernel test cannot run in CI: {why}", pytrace=False)
        pytest.skip(f"kernel test cannot run here: {why}")


@pytest.mark.kernel
@pytest.mark.parametrize("depth,goto,bottom,expected", _deep_params())
def test_the_kernel_agrees_at_depth(legacy_rig: None, depth: int, goto: Callable[[int], bool],
                                   bottom: str, expected: str) -> None:
    # iptables-legacy loads chains thousands deep (nf_tables refuses beyond 16 levels)
    text = deep_chain(depth, goto, bottom)
    probe = rig.Probe(CLIENT, VIP, 80)
    kernel = rig.kernel_probe(text, "legacy", probe, 4)
    assert kernel.outcomes == {expected}, judge.describe(kernel)
    judge.assert_tracer_matches_kernel(kernel, judge.svctrace_outcomes(text, probe))


@pytest.mark.parametrize("loop_at,depth", [
    pytest.param(0, 3, id="three-chains"),
    pytest.param(1990, 2000, id="ten-chains-2000-deep"),
    pytest.param(0, 2000, id="2000-chains-long"),
])
def test_deep_loops_are_located_and_short(loop_at: int, depth: int) -> None:
    text = deep_chain(depth, lambda i: False, f"-j C{loop_at}")
    with pytest.raises(RulesError) as err:
        trace_text(text)
    line = text.split("\n").index(f"-A C{depth - 1} -j C{loop_at}") + 1
    assert err.value.message.startswith(f"deep.txt:{line}: jump loop in table nat: ")
    assert err.value.message.endswith(f"C{loop_at}")
    assert len(err.value.message) < 200


@pytest.mark.kernel
@pytest.mark.parametrize("loop_at,depth", [pytest.param(0, 3, id="three-chains"),
                                           pytest.param(1990, 2000, id="ten-chains-2000-deep")])
def test_the_kernel_refuses_the_loops_we_refuse(legacy_rig: None, loop_at: int,
                                                depth: int) -> None:
    text = deep_chain(depth, lambda i: False, f"-j C{loop_at}")
    commit = text.split("\n").index("COMMIT") + 1      # legacy refuses the table at COMMIT
    with pytest.raises(rig.RigError, match=f"line {commit} failed"):
        rig.POOL.get("legacy").load(text)
    with pytest.raises(RulesError, match="jump loop"):
        trace_text(text)


def nested_forks(levels: int, both: bool = True) -> str:
    """F0 … F{levels}: each level forks 50/50 and the taken half goes one level deeper; so
    does the other half when `both` (2^levels ways through), else it is dropped."""
    lines = [*NAT_HEAD, *(f":F{i} - [0:0]" for i in range(levels + 1)),
             "-A PREROUTING -j F0"]
    for i in range(levels):
        lines.append(f"-A F{i} -m statistic --mode random --probability 0.5 -j F{i + 1}")
        lines.append(f"-A F{i} -j {f'F{i + 1}' if both else 'DROP'}")
    lines += [f"-A F{levels} -p tcp -j DNAT --to-destination 10.244.0.1:8080", "COMMIT", ""]
    return "\n".join(lines)


def test_nested_forks_are_cut_off_at_once() -> None:
    text = nested_forks(40)
    with pytest.raises(RulesError) as err:
        trace_text(text)
    # stopped at the first fork that would nest one level too deep, not after 2^17 branches
    line = text.split("\n").index(f"-A F{MAX_NESTED} -m statistic --mode random --probability "
                                  f"0.5 -j F{MAX_NESTED + 1}") + 1
    assert err.value.message.startswith(f"deep.txt:{line}: statistic matches nested more than "
                                        f"{MAX_NESTED} deep")


@pytest.mark.parametrize("levels", [1, 8])
def test_nested_forks_within_the_limit_are_traced_exactly(levels: int) -> None:
    outcomes = trace_text(nested_forks(levels)).outcomes
    assert len(outcomes) == 2 ** levels
    assert {o.destination for o in outcomes} == {"10.244.0.1:8080"}
    assert sum(o.probability for o in outcomes) == pytest.approx(1.0, abs=1e-9)


def test_nesting_exactly_at_the_limit_is_traced() -> None:
    outcomes = trace_text(nested_forks(MAX_NESTED, both=False)).outcomes
    assert sorted(o.verdict for o in outcomes) == ["ACCEPT"] + ["DROP"] * MAX_NESTED
    (taken,) = [o for o in outcomes if o.destination]
    assert taken.probability == pytest.approx(0.5 ** MAX_NESTED, abs=1e-9)   # shown to 1e-9
    with pytest.raises(RulesError, match="nested more than"):
        trace_text(nested_forks(MAX_NESTED + 1, both=False))


def test_nested_forks_cost_little_memory(tmp_path: Path) -> None:
    path = tmp_path / "forks.txt"
    path.write_text(nested_forks(40))
    run = run_measured(["trace", "--rules", str(path), "--dst", f"{VIP}:80", "--src", CLIENT])
    assert run.status == 5 and "nested more than" in run.one_error()
    assert run.peak_rss_mb <= MEMORY_BOUND_MB


def cascade(endpoints: int) -> str:
    """kube-proxy's statistic cascade: endpoint i taken with probability 1/(n-i)."""
    lines = [*NAT_HEAD, ":KUBE-SVC-X - [0:0]", *(f":SEP{i} - [0:0]" for i in range(endpoints)),
             f"-A PREROUTING -d {VIP}/32 -p tcp -j KUBE-SVC-X"]
    for i in range(endpoints - 1):
        lines.append(f"-A KUBE-SVC-X -m statistic --mode random --probability "
                     f"{1 / (endpoints - i):.11f} -j SEP{i}")
    lines.append(f"-A KUBE-SVC-X -j SEP{endpoints - 1}")
    lines += [f"-A SEP{i} -p tcp -j DNAT --to-destination {backend_of(i)}"
              for i in range(endpoints)]
    return "\n".join([*lines, "COMMIT", ""])


def test_a_long_cascade_keeps_exact_shares() -> None:
    # each branch passes up to 2,999 statistic rules: its probability stays a small fraction
    outcomes = trace_text(cascade(3000)).outcomes
    assert len(outcomes) == 3000
    assert all(o.probability == pytest.approx(1 / 3000, abs=1e-9) for o in outcomes)
    # each outcome is shown rounded to 1e-9
    assert sum(o.probability for o in outcomes) == pytest.approx(1.0, abs=3000 * 5e-10)


def test_too_many_branches_in_all_is_a_located_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "MAX_BRANCHES", 50)
    text = cascade(100)
    with pytest.raises(RulesError) as err:
        trace_text(text)
    assert "more than 50 random branches" in err.value.message
    assert err.value.message.startswith("deep.txt:")
