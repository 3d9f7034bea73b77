"""`svctrace rules` end to end, as a user runs it (a real subprocess, real fixtures)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

FIX = Path(__file__).parent.parent / "fixtures"
PUB = FIX / "rig-v1.36-scenarios" / "node1.iptables-save.txt"
DEMO = FIX / "rig-v1.36" / "node1.iptables-save.txt"
REPO = Path(__file__).parents[2]


def svctrace(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "svctrace", *args], cwd=REPO, input=stdin,
                          capture_output=True, timeout=60)
    return subprocess.CompletedProcess(done.args, done.returncode,
                                       done.stdout.decode(), done.stderr.decode())


def test_json_all_services_schema_sorted_and_stable() -> None:
    first = svctrace("rules", "--rules", str(PUB), "-o", "json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["schema"] == "svctrace/v1"
    names = [(s["namespace"], s["name"], s["port"]) for s in data["services"]]
    assert names == sorted(names) and len(names) == 18
    web = next(s for s in data["services"] if s["name"] == "web")
    assert {"namespace", "name", "port", "protocol", "clusterIPs", "externalIPs",
            "loadBalancerIPs", "nodePort", "chains", "endpoints", "affinitySeconds",
            "masquerade", "filter"} <= set(web)
    assert set(web["endpoints"][0]) >= {"address", "probability", "chain", "local"}
    assert json.dumps(data, sort_keys=True, indent=2) == json.dumps(
        json.loads(first.stdout), indent=2)            # keys already sorted
    assert first.stdout == svctrace("rules", "--rules", str(PUB), "-o", "json").stdout
    assert "\x1b[" not in first.stdout


@pytest.mark.parametrize("arg", ["svc/web", "service/web", "services/web", "web"])
@pytest.mark.parametrize("ns", [[], ["-n", "svctrace-demo"]], ids=["no-ns", "ns"])
def test_service_spellings(arg: str, ns: list[str]) -> None:
    done = svctrace("rules", arg, *ns, "--rules", str(DEMO), "-o", "json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)["services"]
    assert [(s["namespace"], s["name"], s["portName"]) for s in found] == \
        [("svctrace-demo", "web", "http")]
    assert [e["address"] for e in found[0]["endpoints"]] == [
        "10.244.1.11:8080", "10.244.1.12:8080", "10.244.2.13:8080", "10.244.2.14:8080"]


def test_multi_port_service_gives_every_port() -> None:
    done = svctrace("rules", "svc/search", "-n", "svctrace-pub", "--rules", str(PUB), "-o",
                    "json")
    ports = [(s["port"], s["portName"]) for s in json.loads(done.stdout)["services"]]
    assert ports == [(80, "http"), (9000, "grpc")]


def test_namespace_filter_without_service() -> None:
    done = svctrace("rules", "-n", "svctrace-demo", "--rules", str(PUB), "-o", "yaml")
    assert done.returncode == 0, done.stderr
    data = yaml.safe_load(done.stdout)
    assert {s["namespace"] for s in data["services"]} == {"svctrace-demo"}
    assert len(data["services"]) == 5


@pytest.mark.parametrize("fmt,expected", [
    ("text", ["svctrace-pub/storefront:https", "KUBE-FW-EMC3MBKHLFIHFFZR",
              "33.3% KUBE-SEP-TU6TBC2ZU67TRWWB → DNAT 10.244.1.41:8443", "198.18.0.0/15",
              "filter KUBE-PROXY-FIREWALL DROP"]),
    ("wide", ["nat #", "-A KUBE-FW-EMC3MBKHLFIHFFZR -s 198.18.0.0/15 -m comment",
              "-A KUBE-SEP-TU6TBC2ZU67TRWWB -p tcp -m comment"]),
])
def test_text_and_wide(fmt: str, expected: list[str]) -> None:
    done = svctrace("rules", "storefront", "--rules", str(PUB), "-o", fmt)
    assert done.returncode == 0, done.stderr
    for text in expected:
        assert text in done.stdout
    assert "\x1b[" not in done.stdout                 # not a TTY: no colour


def test_stdin() -> None:
    done = svctrace("rules", "db", "--rules", "-", "-o", "json", stdin=DEMO.read_bytes())
    assert done.returncode == 0, done.stderr
    s = json.loads(done.stdout)["services"][0]
    assert (s["affinitySeconds"], s["source"] if "source" in s else None) == (10800, None)


def test_unknown_service_suggests_near_names() -> None:
    done = svctrace("rules", "svc/storefrnt", "--rules", str(PUB))
    assert done.returncode == 3
    assert done.stderr.startswith("svctrace: error: ")
    assert "svctrace-pub/storefront" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize("args,status,message", [
    (["--rules", "/nonexistent/rules.txt"], 5, "/nonexistent/rules.txt"),
    (["--rules", str(FIX)], 5, str(FIX)),
    ([], 2, "--rules"),
    (["pod/web", "--rules", str(DEMO)], 2, "pod/web"),
    (["--rules", str(DEMO), "-o", "xml"], 2, "xml"),
], ids=["missing", "directory", "no-source", "not-a-service", "bad-output"])
def test_bad_input(args: list[str], status: int, message: str) -> None:
    done = svctrace("rules", *args)
    assert done.returncode == status, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary\xff\xfe", b"\xff\xfe\xfa not utf-8\n",
                                  b"*nat\n-A NOPE -j ACCEPT\n"], ids=["nul", "latin", "garbage"])
def test_unreadable_rules_exit_5(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "rules.txt"
    path.write_bytes(data)
    done = svctrace("rules", "--rules", str(path))
    assert done.returncode == 5, done.stderr
    assert done.stderr.startswith("svctrace: error: ") and str(path) in done.stderr
    assert "Traceback" not in done.stderr


def test_service_data_keys_are_written_sorted() -> None:
    """dumps_json relies on service_data's key order instead of sorting (speed)."""
    from svctrace.render.rules import service_data
    from svctrace.rules.iptables_save import parse_iptables_save
    from svctrace.rules.kubeproxy import map_services

    def check(value: object) -> None:
        if isinstance(value, dict):
            assert list(value) == sorted(value)
            for v in value.values():
                check(v)
        elif isinstance(value, list):
            for v in value:
                check(v)

    path = Path(__file__).parent.parent / "fixtures/rig-v1.36-scenarios/node1.iptables-save.txt"
    services = map_services(parse_iptables_save(path.read_text(), "t"))
    assert services
    for s in services:
        check(service_data(s))


_RUN_WITH_THRESHOLD = """
import sys
import svctrace.cli.rules_cmd as rules_cmd
rules_cmd.PARALLEL_CHAINS = int(sys.argv[1])
sys.argv = ["svctrace", "rules", *sys.argv[2:]]
from svctrace.cli.main import run
run()
"""


@pytest.mark.parametrize("dump,extra", [
    ("rig-v1.36-large/node1.iptables-save.txt", []),
    ("rig-v1.36-scenarios/node1.iptables-save.txt", []),
    ("rig-v1.36-scenarios/node1.iptables-save.txt", ["-n", "svctrace-pub"]),
])
def test_two_process_json_equals_one_process(dump: str, extra: list[str]) -> None:
    path = str(Path(__file__).parent.parent / "fixtures" / dump)

    def run_with(threshold: int) -> bytes:
        proc = subprocess.run([sys.executable, "-c", _RUN_WITH_THRESHOLD, str(threshold),
                               "--rules", path, "-o", "json", *extra], capture_output=True,
                              timeout=120, check=True)
        return proc.stdout

    parallel, single = run_with(0), run_with(10**9)
    assert parallel == single
    assert json.loads(parallel)["services"]


def test_parts_partition_the_services() -> None:
    from svctrace.rules.iptables_save import parse_iptables_save
    from svctrace.rules.kubeproxy import map_services

    path = Path(__file__).parent.parent / "fixtures/rig-v1.36-large/node1.iptables-save.txt"
    rs = parse_iptables_save(path.read_text(), "t")
    whole = [s.hash for s in map_services(rs)]
    halves = [[s.hash for s in map_services(rs, part=(k, 2))] for k in (0, 1)]
    assert halves[0] and halves[1] and not set(halves[0]) & set(halves[1])
    assert sorted(halves[0] + halves[1]) == sorted(whole)
