"""What people paste instead of a whole iptables-save dump (issue 10 points 10 and 11): each is
recognised and answered — read where it is complete, refused with what it is and how to get a
whole dump where it is not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from svctrace.errors import RuleSyntaxError
from svctrace.rules.iptables_save import parse_iptables_save
from svctrace.rules.kubeproxy import map_services

REPO = Path(__file__).parents[2]
DEMO = REPO / "tests" / "fixtures" / "rig-v1.36" / "node1.iptables-save.txt"


def svctrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "svctrace", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def table_as_dash_s(table: str, verbose: bool = False) -> str:
    """What `iptables -t TABLE -S [-v]` prints for one table of the demo dump."""
    text = DEMO.read_text()
    block = text.split(f"*{table}\n", 1)[1].split("\nCOMMIT", 1)[0].splitlines()
    out = []
    for line in block:
        if line.startswith(":"):
            name, policy = line[1:].split()[:2]
            out.append(f"-P {name} {policy}" if policy != "-" else f"-N {name}")
        elif line.startswith("-A "):
            out.append(line)
    out.sort(key=lambda x: {"-P": 0, "-N": 1}.get(x[:2], 2))      # -S: policies, chains, rules
    if verbose:
        out = [f"{line} -c 0 0" for line in out]
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("verbose", [False, True], ids=["S", "S-v"])
def test_dash_s_output_of_nat_is_read_as_the_nat_table(verbose: bool) -> None:
    listing = table_as_dash_s("nat", verbose)
    rs = parse_iptables_save(listing, "s.txt")
    rs.check()
    assert list(rs.tables) == ["nat"]
    assert any("`iptables -t nat -S` output" in w for w in rs.warnings)
    full = {(s.name, s.port_name, s.endpoints) for s in map_services(
        parse_iptables_save(DEMO.read_text(), "d"))}
    got = {(s.name, s.port_name, s.endpoints) for s in map_services(rs)}
    assert got and got <= full
    assert not any(" -c " in m.condition for s in map_services(rs) for m in s.masquerade)


def test_dash_s_of_filter_is_the_filter_table() -> None:
    rs = parse_iptables_save(table_as_dash_s("filter"), "f.txt")
    assert list(rs.tables) == ["filter"]


def test_dash_s_trace_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_text(table_as_dash_s("nat", verbose=True))
    done = svctrace("trace", "--rules", str(path), "--dst", "10.96.219.159:80", "-o", "json")
    assert done.returncode == 0, done.stderr
    dests = {o["destination"] for o in json.loads(done.stdout)["outcomes"]}
    assert len(dests) == 4 and all(d.startswith("10.244.") for d in dests)
    assert done.stderr.count("-S` output") == 1 and "sudo iptables-save" in done.stderr


# (id, text, line blamed, words of the answer)
REFUSED = [
    ("grep-output", "-A KUBE-SVC-X -j KUBE-SEP-Y\n-A KUBE-SEP-Y -p tcp -j DNAT --to-destination "
     "10.0.0.1:80\n", 1, "grep output"),
    ("grep-with-declaration", ":KUBE-XLB-X - [0:0]\n-A KUBE-NODEPORTS -p tcp -j KUBE-XLB-X\n", 1,
     "grep output"),
    ("grep-n-output", "12:-A KUBE-SVC-X -j KUBE-SEP-Y\n13:-A KUBE-SEP-Y -j RETURN\n", 1,
     "grep output"),
    ("iptables-L", "Chain PREROUTING (policy ACCEPT)\ntarget     prot opt source destination\n",
     1, "`iptables -L` listing"),
    ("iptables-nvL", "\nChain INPUT (policy ACCEPT 0 packets, 0 bytes)\n pkts bytes target\n", 2,
     "`iptables -L` listing"),
    ("backslash-continuation", "*nat\n:X - [0:0]\n-A X -d 10.0.0.1/32 \\\n   -j RETURN\nCOMMIT\n",
     3, 'ends in "\\"'),
]


@pytest.mark.parametrize(("text", "line", "needle"),
                         [pytest.param(t, n, w, id=i) for i, t, n, w in REFUSED])
def test_partial_pastes_say_what_they_are(text: str, line: int, needle: str) -> None:
    with pytest.raises(RuleSyntaxError) as err:
        parse_iptables_save(text, "p.txt")
    assert err.value.line == line and needle in err.value.message
    assert err.value.hint is not None and "iptables-save > rules.txt" in err.value.hint


def test_truncated_dump_is_refused_with_a_hint_and_read_with_partial(tmp_path: Path) -> None:
    lines = DEMO.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if "kubernetes service nodeports" in line)
    path = tmp_path / "cut.txt"
    path.write_text("".join(lines[:cut + 1]))        # cut right after KUBE-SERVICES
    refused = svctrace("rules", "--rules", str(path))
    assert refused.returncode == 5 and "no COMMIT" in refused.stderr
    assert "--partial" in refused.stderr
    done = svctrace("trace", "--rules", str(path), "--partial", "--src", "10.244.1.99", "--dst",
                    "10.96.219.159:80", "-o", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("read as far as it goes (--partial)") == 1
    (outcome,) = json.loads(done.stdout)["outcomes"]
    assert outcome["servicePort"] == "svctrace-demo/web:http"     # where the packet would go
    rules = svctrace("rules", "--rules", str(path), "--partial", "-o", "json")
    assert rules.returncode == 0 and "web" in {s["name"] for s in
                                               json.loads(rules.stdout)["services"]}
