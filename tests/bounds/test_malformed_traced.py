"""A malformed value in a rule the packet reaches (issue 11, items 6 and 20): tracing INTO that
rule — not only Ruleset.check() — gives one `FILE:LINE: …` line and exit status 5, in-process
and through the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from boundkit import run_measured

from svctrace.errors import RulesError
from svctrace.model.packet import make_packet
from svctrace.model.trace import node_context
from svctrace.rules.iptables_save import parse_iptables_save
from svctrace.trace.engine import trace_packet

HEAD = ["*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
        ":POSTROUTING ACCEPT [0:0]", ":KUBE-SVC-X - [0:0]",
        "-A PREROUTING -d 10.96.5.5/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-X"]
LINE = len(HEAD) + 1          # the malformed rule's line

MALFORMED = [
    pytest.param("-m mark --mark 0xZZ -j RETURN", id="mark-not-hex"),
    pytest.param("-d 10.0.0.1/33 -j RETURN", id="prefix-too-long"),
    pytest.param("-p tcp -j DNAT --to-destination garbage", id="dnat-garbage"),
    pytest.param("-p tcp -m tcp --dport abc -j RETURN", id="port-not-a-number"),
    pytest.param("-m statistic --mode random --probability nan -j RETURN", id="probability-nan"),
    pytest.param("-m statistic --mode random --probability inf -j RETURN", id="probability-inf"),
    pytest.param("-m statistic --mode random --probability 2 -j RETURN", id="probability-2"),
    pytest.param("-m statistic --mode random --probability -1 -j RETURN",
                 id="probability-negative"),
    pytest.param("-j MARK --set-xmark zz", id="set-xmark-not-hex"),
    pytest.param("-m iprange --src-range x-y -j RETURN", id="src-range-not-addresses"),
]


def dump(rule: str) -> str:
    return "\n".join([*HEAD, f"-A KUBE-SVC-X {rule}", "-A KUBE-SVC-X -j RETURN", "COMMIT", ""])


@pytest.mark.parametrize("rule", MALFORMED)
def test_tracing_into_a_malformed_rule_is_located(rule: str) -> None:
    ruleset = parse_iptables_save(dump(rule), "bad.txt")
    packet = make_packet("203.0.113.9", "10.96.5.5", "tcp", 40000, 80)
    with pytest.raises(RulesError) as err:
        trace_packet(packet, ruleset, node_context([]))
    assert err.value.message.startswith(f"bad.txt:{LINE}: ")
    assert err.value.exit_status == 5


@pytest.mark.parametrize("rule", MALFORMED)
def test_the_command_line_gives_one_located_line(tmp_path: Path, rule: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(dump(rule))
    run = run_measured(["trace", "--rules", str(path), "--dst", "10.96.5.5:80",
                        "--src", "203.0.113.9"])
    assert run.status == 5, run.stderr
    assert run.one_error().startswith(f"svctrace: error: {path}:{LINE}: ")
