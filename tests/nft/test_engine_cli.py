"""`svctrace trace` on nftables rules: every form, the mode and format in the output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIX = Path(__file__).parent.parent / "fixtures"
SCEN = FIX / "rig-v1.36-scenarios"
REPO = Path(__file__).resolve().parents[2]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "svctrace", "trace", *args], input=stdin,
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={**os.environ, "NO_COLOR": "1"})


def trace_json(*args: str) -> dict:
    proc = run(*args, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def summary(doc: dict) -> list[tuple]:
    return sorted((o["destination"], o["verdict"], o["masquerade"], o["probability"],
                   o["servicePort"]) for o in doc["outcomes"])


@pytest.mark.parametrize("rules,mode,form", [
    (SCEN / "node2.nft.txt", "nftables", "nft-text"),
    (SCEN / "node2.nft.json", "nftables", "nft-json"),
    (FIX / "nft/eval-v1.36.nft", "nftables", "nft-f"),
    (SCEN / "node1.iptables-save.txt", "iptables", "iptables-save"),
], ids=["nft-text", "nft-json", "nft-f", "iptables-save"])
def test_json_names_mode_and_format(rules: Path, mode: str, form: str) -> None:
    doc = trace_json("--rules", str(rules), "--dst", "10.96.1.10:80", "--src", "10.244.2.250")
    assert (doc["schema"], doc["mode"], doc["format"]) == ("svctrace/v1", mode, form)
    assert sum(o["probability"] for o in doc["outcomes"]) == pytest.approx(1.0)


@pytest.mark.parametrize("dst,src,local,expected", [
    ("10.96.206.3:443", "10.10.0.60", [], {("10.244.1.41:8443", True), ("10.244.1.42:8443", True),
                                          ("10.244.2.41:8443", True)}),
    ("192.0.2.77:443", "198.20.0.1", [], {(None, False)}),
    ("10.10.0.20:30880", "10.10.0.60", ["--local-ip", "10.10.0.20"], {(None, False)}),
    ("10.96.242.133:5353", "10.244.2.250", ["--proto", "tcp"], {(None, False)}),
], ids=["lb-clusterip", "lb-ip-outside-range", "etp-local-no-local-endpoint", "wrong-protocol"])
def test_text_and_json_captures_trace_alike(dst, src, local, expected) -> None:
    docs = [trace_json("--rules", str(SCEN / f"node2.nft.{ext}"), "--dst", dst, "--src", src,
                       *local) for ext in ("txt", "json")]
    assert summary(docs[0]) == summary(docs[1])
    assert {(o["destination"], o["masquerade"]) for o in docs[0]["outcomes"]} == expected
    for o in docs[0]["outcomes"]:
        assert o["path"] and all(" " in s["table"] for s in o["path"])  # "ip kube-proxy"
        assert not o["assumptions"]


def test_service_port_comes_from_chain_names() -> None:
    doc = trace_json("--rules", str(SCEN / "node2.nft.json"), "--dst", "10.96.90.38:80",
                     "--src", "10.244.2.250")
    assert {o["servicePort"] for o in doc["outcomes"]} == {"svctrace-pub/inventory:http"}
    assert len(doc["outcomes"]) == 5
    assert {o["probability"] for o in doc["outcomes"]} == {0.2}


def test_text_output_has_a_header_naming_mode_and_form() -> None:
    proc = run("--rules", "-", "--dst", "10.96.48.164:443", "--src", "10.244.2.250",
               stdin=(SCEN / "node2.nft.txt").read_text())
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first == "rules: <stdin> (nftables mode, nft-text)"
    assert "DNAT → 10.244.2.56:8443" in proc.stdout
    assert "service port svctrace-pub/ledger:https" in proc.stdout


def test_default_source_is_in_the_nft_pod_cidr() -> None:
    proc = run("--rules", str(SCEN / "node2.nft.json"), "--dst", "10.96.48.164:443", "-o",
               "json")
    assert proc.returncode == 0, proc.stderr
    assert "10.244." in proc.stderr
    assert json.loads(proc.stdout)["packet"]["source"].startswith("10.244.")


def test_affinity_hit_names_an_endpoint_or_a_set() -> None:
    base = ("--rules", str(SCEN / "node2.nft.txt"), "--dst", "10.96.213.109:80", "--src",
            "172.16.5.11")
    fresh = trace_json(*base)
    assert len(fresh["outcomes"]) == 4
    for hit in ("10.244.2.60:3000",
                "affinity-BJSI7HHY-svctrace-pub/sessions/tcp/http__10.244.2.60/3000"):
        doc = trace_json(*base, "--affinity-hit", hit)
        assert [o["destination"] for o in doc["outcomes"]] == ["10.244.2.60:3000"]
        assert doc["outcomes"][0]["probability"] == 1.0


def test_a_jump_loop_is_a_rules_error(tmp_path: Path) -> None:
    (tmp_path / "loop.nft").write_text(
        "add table ip t\nadd chain ip t fwd { type filter hook forward priority 0 ; }\n"
        "add chain ip t a\nadd chain ip t b\nadd rule ip t fwd jump a\n"
        "add rule ip t a jump b\nadd rule ip t b jump a\n")
    proc = run("--rules", str(tmp_path / "loop.nft"), "--dst", "10.96.0.1:80", "--src",
               "10.244.2.9")
    assert proc.returncode == 5
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "svctrace: error: jump loop in table ip t: fwd → a → b → a"
    assert "Traceback" not in proc.stderr


def test_a_file_with_both_modes_traces_them_together(tmp_path: Path) -> None:
    leftover = ("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n"
                "-A PREROUTING -j KUBE-SERVICES\n"
                "-A KUBE-SERVICES -d 10.96.200.1/32 -p tcp -m tcp --dport 80 -j DNAT "
                "--to-destination 10.244.9.9:8080\nCOMMIT\n")
    (tmp_path / "split.txt").write_text(leftover + (FIX / "nft/eval-v1.36.nft").read_text())
    for dst, want in (("10.96.200.1:80", {"10.244.9.9:8080"}),
                      ("10.96.1.10:80", {"10.244.1.11:8080", "10.244.2.12:8080",
                                         "10.244.2.13:8080"})):
        doc = trace_json("--rules", str(tmp_path / "split.txt"), "--dst", dst, "--src",
                         "10.244.2.250")
        assert (doc["mode"], doc["format"]) == ("split", "iptables-save+nft-f")
        assert {o["destination"] for o in doc["outcomes"]} == want
