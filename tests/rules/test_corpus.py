"""`svctrace rules` and `svctrace trace` over every real dump in tests/corpus (provenance in
tests/corpus/README.md): no traceback, every Service of the dump found, every exit status a
documented one — and, for the pastes svctrace cannot read as a ruleset, the located refusal
that says what they are."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
CORPUS = REPO / "tests" / "corpus"
DUMPS = sorted(CORPUS.glob("*.txt"))
DOCUMENTED = {0, 1, 2, 3, 4, 5}

# file stem → (exit status of `rules`, words its error or note must contain)
REFUSED = {
    "05-aks-1.29-ip-masq-agent-truncated": (5, "no COMMIT"),
    "07-grep-xlb-etp-local-2020": (5, "grep output"),
    "08-ipvs-calico-fragments": (5, "grep output"),
    "09-calico-raw-mangle-nat-elided": (5, "cannot parse line: '---'"),
    "12-forum-libvirt-ipsec-nat-markup": (5, "cannot parse line: '[COLOR"),
    "15-grep-tke-1.10-lb-kube-fw-mark-drop": (5, "grep output"),
    "16-grep-kind-xlb-no-local-endpoints-2019": (5, "grep output"),
    "18-grep-cni-portmap-hostport-cilium": (5, "grep output"),
    "21-ipvs-nat-elided-paste": (5, "grep output"),
}
# file stem → a note `rules` must print about the node as a whole
NOTES = {
    "04-rke-ipvs-cilium-nft-garbled-dnat": "IPVS mode",
    "10-kube-proxy-test-restore-input-etp-local": "restore input",
    "11-docker-host-iptables-t-nat-S": "`iptables -t nat -S` output",
    "13-kube-1.1-userspace-flannel-iptables-S": "`iptables -t nat -S` output",
    "14-kube-proxy-test-cleanup-policy-dash-unquoted-comment": "rejects this line",
    "20-ipvs-calico-flushed-leftover-chains": "IPVS mode",
}
_ENTRY_COMMENT = re.compile(r'--comment "?([^" ]+/[^" ]+) (?:cluster IP|external IP)"')


def svctrace(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "svctrace", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode in DOCUMENTED, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("svctrace: error:")]
    assert len(errors) == (1 if done.returncode else 0), done.stderr


def spn_of(service: dict) -> str:
    port = service["portName"]
    return f"{service['namespace']}/{service['name']}" + (f":{port}" if port else "")


def test_the_corpus_is_there() -> None:
    assert len(DUMPS) >= 20
    listed = (CORPUS / "README.md").read_text()
    assert all(p.name in listed for p in DUMPS), "every dump needs its provenance in README.md"


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.stem)
def test_rules_finds_every_service(path: Path) -> None:
    done = svctrace("rules", "--rules", str(path), "-o", "json")
    assert_clean(done)
    if path.stem in REFUSED:
        status, needle = REFUSED[path.stem]
        assert done.returncode == status and needle in done.stderr, done.stderr
        return
    assert done.returncode == 0, done.stderr
    if path.stem in NOTES:
        assert NOTES[path.stem] in done.stderr
    found = {spn_of(s).rstrip(":") for s in json.loads(done.stdout)["services"]}
    named = {spn.rstrip(":") for spn in _ENTRY_COMMENT.findall(path.read_text())}
    assert named <= found, sorted(named - found)
    services = json.loads(done.stdout)["services"]
    assert all(e["address"] != "" for s in services for e in s["endpoints"])


@pytest.mark.parametrize("path", [p for p in DUMPS if p.stem not in REFUSED], ids=lambda p: p.stem)
def test_trace_every_cluster_ip(path: Path) -> None:
    services = json.loads(svctrace("rules", "--rules", str(path), "-o", "json").stdout)["services"]
    targets = sorted({(ip, s["port"], s["protocol"]) for s in services for ip in s["clusterIPs"]
                      if s["port"]})[:4]
    for ip, port, proto in targets or [("10.96.0.1", 443, "tcp")]:
        done = svctrace("trace", "--rules", str(path), "--src", "203.0.113.7", "--dst",
                        f"{ip}:{port}", "--proto", proto or "tcp", "-o", "json")
        assert_clean(done)
        assert done.returncode in (0, 5), done.stderr
        if done.returncode == 0:
            outcomes = json.loads(done.stdout)["outcomes"]
            assert abs(sum(o["probability"] for o in outcomes) - 1) < 1e-6
        else:       # only a rule iptables-restore itself refuses stops a trace
            assert re.search(r"svctrace: error: \S+:\d+: ", done.stderr), done.stderr
