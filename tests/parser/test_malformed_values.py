"""Values iptables-restore refuses (issue 11 item 6), CRLF input (item 7), and what the real
iptables-restore accepts that a strict reader might not (issue 10 points 1–3).

Each malformed value is checked twice: by `Ruleset.check()` and by tracing a packet into the
rule with the real CLI (a located `FILE:LINE:` error, exit 5, never "internal error"). The
verdicts of iptables-restore itself for the same lines are judged in
tests/kernel/test_realworld_fidelity.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from svctrace.errors import RuleSyntaxError
from svctrace.model import values
from svctrace.rules.iptables_save import parse_iptables_save
from svctrace.rules.kubeproxy import map_services

REPO = Path(__file__).parents[2]


def svctrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "svctrace", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def dump(rule: str, eol: str = "\n") -> str:
    """A nat table whose PREROUTING sends every packet through chain X holding `rule`."""
    lines = ["*nat", ":PREROUTING ACCEPT [0:0]", ":X - [0:0]", "-A PREROUTING -j X",
             f"-A X {rule}", "COMMIT"]
    return eol.join(lines) + eol


# (id, rule, words the error must contain) — each is refused by iptables-restore except nan,
# which it stores as 0 (a rule that never matches): svctrace refuses that too.
MALFORMED = [
    ("mark-not-hex", "-m mark --mark 0xZZ -j RETURN", ["--mark 0xZZ", "not a number"]),
    ("prefix-33", "-d 10.0.0.1/33 -j RETURN", ["-d 10.0.0.1/33", 'invalid mask "33"']),
    ("host-not-address", "-s x.x.x.x/32 -j RETURN", ['"x.x.x.x"', "not an IP address"]),
    ("dnat-garbage", "-p tcp -j DNAT --to-destination garbage", ['bad IP address "garbage"']),
    ("dnat-empty-port", "-p tcp -j DNAT --to-destination 10.0.0.1:", ["not valid"]),
    ("dnat-empty-quoted", '-p tcp -j DNAT --to-destination ""', ["bad IP address"]),
    ("dport-word", "-p tcp -m tcp --dport abc -j RETURN", ['invalid port/service "abc"']),
    ("dport-too-big", "-p tcp -m tcp --dport 70000 -j RETURN", ['"70000"']),
    ("multiport-bad", "-p tcp -m multiport --dports 80,x -j RETURN", ['"x"']),
    ("probability-nan", "-m statistic --mode random --probability nan -j RETURN",
     ["--probability nan", "not a number"]),
    ("probability-2", "-m statistic --mode random --probability 2 -j RETURN",
     ["--probability 2", "out of range"]),
    ("probability-minus-1", "-m statistic --mode random --probability -1 -j RETURN",
     ["--probability -1", "out of range"]),
    ("set-xmark-zz", "-j MARK --set-xmark zz", ["--set-xmark zz", "not a number"]),
    ("src-range-words", "-m iprange --src-range x-y -j RETURN", ['bad value "x"']),
    ("dport-two-values", "-p tcp -m tcp --dport 80 81 -j RETURN", ["takes one value"]),
]


@pytest.mark.parametrize(("rule", "needles"), [pytest.param(r, n, id=i) for i, r, n in MALFORMED])
def test_check_locates_the_bad_value(rule: str, needles: list[str]) -> None:
    rs = parse_iptables_save(dump(rule), "bad.txt")
    with pytest.raises(RuleSyntaxError) as err:
        rs.check()
    assert err.value.message.startswith("bad.txt:5: "), err.value.message
    for needle in needles:
        assert needle in err.value.message


@pytest.mark.parametrize(("rule", "needles"), [pytest.param(r, n, id=i) for i, r, n in MALFORMED])
def test_trace_into_the_bad_rule_is_a_located_error(tmp_path: Path, rule: str,
                                                    needles: list[str]) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(dump(rule))
    done = svctrace("trace", "--rules", str(path), "--src", "10.1.1.1", "--dst", "10.0.0.1:80")
    assert done.returncode == 5, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("svctrace: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"svctrace: error: {path}:5: "), \
        done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    for needle in needles:
        assert needle in errors[0]


# Values iptables-restore accepts: they read and evaluate without an error.
WELL_FORMED = [
    ("dotted-mask", "-d 10.0.0.0/255.255.255.0 -j RETURN"),
    ("bare-host", "-d 10.0.0.1 -j RETURN"),
    ("service-name-port", "-p tcp -m tcp --dport http -j RETURN"),
    ("port-range-open", "-p tcp -m tcp --dport 1000: -j RETURN"),
    ("octal-mark", "-m mark --mark 010/0x0f -j RETURN"),
    ("dnat-port-only", "-p tcp -j DNAT --to-destination :8080"),
    ("dnat-v4-no-port", "-p tcp -j DNAT --to-destination 10.0.0.9"),
    ("probability-1", "-m statistic --mode random --probability 1 -j RETURN"),
]


@pytest.mark.parametrize("rule", [pytest.param(r, id=i) for i, r in WELL_FORMED])
def test_values_iptables_restore_accepts_are_read(rule: str) -> None:
    parse_iptables_save(dump(rule), "ok.txt").check()


def test_dnat_to_port_80_without_address_keeps_the_address(tmp_path: Path) -> None:
    path = tmp_path / "ok.txt"
    path.write_text(dump("-p tcp -j DNAT --to-destination :8080"))
    done = svctrace("trace", "--rules", str(path), "--src", "10.1.1.1", "--dst", "10.0.0.1:80",
                    "-o", "json")
    assert done.returncode == 0, done.stderr
    (outcome,) = json.loads(done.stdout)["outcomes"]
    assert outcome["destination"] == "10.0.0.1:8080"


# ---------------------------------------------------------------- CRLF (issue 11 item 7)

KP_DUMP = REPO / "tests" / "fixtures" / "rig-v1.36" / "node1.iptables-save.txt"


def test_crlf_dump_reads_like_the_lf_dump_and_says_so(tmp_path: Path) -> None:
    text = KP_DUMP.read_text()
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    lf_rules = svctrace("rules", "--rules", str(KP_DUMP), "-o", "json")
    crlf_rules = svctrace("rules", "--rules", str(crlf), "-o", "json")
    assert crlf_rules.returncode == 0, crlf_rules.stderr
    lf_doc, crlf_doc = json.loads(lf_rules.stdout), json.loads(crlf_rules.stdout)
    assert crlf_doc["services"] == lf_doc["services"]
    assert not any("\r" in c for s in crlf_doc["services"] for c in s["chains"].values() if c)
    notes = [line for line in crlf_rules.stderr.splitlines() if "CRLF" in line]
    assert len(notes) == 1 and "read them as LF" in notes[0]
    assert "CRLF" not in lf_rules.stderr


def test_crlf_chain_names_have_no_carriage_return() -> None:
    rs = parse_iptables_save(dump("-j RETURN", "\r\n"), "c.txt")
    assert set(rs.tables["nat"].chains) == {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING", "X"}
    assert [r.text for r in rs.tables["nat"].chains["X"].rules] == ["-A X -j RETURN"]
    assert any("CRLF" in w for w in rs.warnings)


# ---------------------------------------------------------------- issue 10 points 1–3

def test_builtin_policy_dash_keeps_accept() -> None:
    """kube-proxy's test dumps declare built-in chains with policy `-` (keep the current one)."""
    text = ("*filter\n:INPUT - [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT - [0:0]\n:FORWARD - [0:0]\n"
            "COMMIT\n")
    rs = parse_iptables_save(text, "dash.txt")
    chains = rs.tables["filter"].chains
    assert (chains["INPUT"].policy, chains["OUTPUT"].policy) == ("ACCEPT", "ACCEPT")
    assert chains["FORWARD"].policy == "DROP"        # `-` keeps what the chain already had


def _service_dump(dnat: str, vip: str = "10.96.0.10/32") -> str:
    return f"""*nat
:PREROUTING - [0:0]
:OUTPUT - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]
:KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]
-A PREROUTING -j KUBE-SERVICES
-A OUTPUT -j KUBE-SERVICES
-A KUBE-SERVICES -d {vip} -p tcp -m comment --comment "ns/web:http cluster IP" -m tcp \
--dport 80 -j KUBE-SVC-AAAAAAAAAAAAAAAA
-A KUBE-SVC-AAAAAAAAAAAAAAAA -j KUBE-SEP-BBBBBBBBBBBBBBBB
-A KUBE-SEP-BBBBBBBBBBBBBBBB -p tcp -m tcp -j DNAT --to-destination {dnat}
COMMIT
"""


@pytest.mark.parametrize(("dnat", "vip", "needle"), [
    pytest.param("garbage", "10.96.0.10/32", "DNAT target 'garbage'", id="dnat-garbage"),
    pytest.param(":0", "10.96.0.10/32", "DNAT target ':0'", id="dnat-port-0"),
    pytest.param("10.244.1.5:0", "10.96.0.10/32", "DNAT target '10.244.1.5:0'", id="dnat-ip-0"),
    pytest.param("10.244.1.5:8080", "x.x.x.x/32", "destination 'x.x.x.x/32'", id="vip-garbled"),
])
def test_rules_never_lists_a_bad_address(dnat: str, vip: str, needle: str) -> None:
    (svc,) = map_services(parse_iptables_save(_service_dump(dnat, vip), "d.txt"))
    assert all(e.address is None or e.address == "10.244.1.5:8080" for e in svc.endpoints)
    assert "x.x.x.x" not in svc.cluster_ips and "" not in svc.cluster_ips
    assert any(needle in w and w.startswith("d.txt:") for w in svc.warnings), svc.warnings


def test_rules_json_has_null_not_empty_address(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text(_service_dump(":0"))
    done = svctrace("rules", "--rules", str(path), "-o", "json")
    assert done.returncode == 0, done.stderr
    (svc,) = json.loads(done.stdout)["services"]
    assert [e["address"] for e in svc["endpoints"]] == [None]
    assert any("DNAT target ':0'" in w for w in svc["warnings"])


def test_unquoted_multiword_comment_is_read_with_a_warning(tmp_path: Path) -> None:
    text = _service_dump("10.244.1.5:8080").replace(
        '"ns/web:http cluster IP"', "ns/web:http cluster IP")
    rs = parse_iptables_save(text, "u.txt")
    rs.check()
    (svc,) = map_services(rs)
    assert (svc.namespace, svc.name, svc.port_name) == ("ns", "web", "http")
    (warning,) = [w for w in rs.warnings if "comment" in w]
    assert warning.startswith("u.txt:9: ") and "rejects this line" in warning
    path = tmp_path / "u.txt"
    path.write_text(text)
    done = svctrace("trace", "--rules", str(path), "--src", "10.244.0.5", "--dst", "10.96.0.10:80",
                    "-o", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("rejects this line") == 1
    assert json.loads(done.stdout)["outcomes"][0]["destination"] == "10.244.1.5:8080"


# ---------------------------------------------------------------- any text, one kind of error

_READERS = [values.parse_prefix, values.parse_port_range, values.parse_port_list,
            values.parse_mark, values.parse_probability, values.parse_ip_range,
            values.parse_nat_to]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_READERS), st.text(alphabet="0123456789abcdefxXZ:./-,[]nN ", max_size=24))
def test_value_readers_raise_only_value_errors(reader, text) -> None:
    """Whatever the text, a reader returns a value or raises ValueError (a located error in the
    parser) — never another exception that would end as "internal error"."""
    try:
        reader(text)
    except ValueError:
        pass
