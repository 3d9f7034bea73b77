"""`--probe` on a node goes through the node's NAT, as a real client's connection does: the
kernel in a network namespace is the judge.

Two namespaces joined by a veth pair: a "node" (10.77.0.1) whose nat OUTPUT holds
kube-proxy-style DNAT rules for two ClusterIPs, and a "backend" (10.77.0.2) that listens on
the DNAT targets only. A probe of a ClusterIP can succeed only if the kernel DNATed it; the
node's conntrack table and the backend's own view of the connection say so. (The scapy probe
this replaced left for the ClusterIP itself, un-DNATed, and got no answer.) Both iptables
backends, legacy and nft, are used. Needs root; under CI=true a test that cannot run fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "ui"))

from ui_helpers import cannot_run  # noqa: E402

NODE_IP, BACKEND_IP = "10.77.0.1", "10.77.0.2"
RULES = f"""*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination {BACKEND_IP}:8080
-A OUTPUT -d 10.96.0.10/32 -p udp -m udp --dport 53 -j DNAT --to-destination {BACKEND_IP}:5353
-A OUTPUT -d 10.96.0.11/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination {BACKEND_IP}:9
COMMIT
"""
# the backend: a TCP listener and a UDP echo on the DNAT targets; says what it accepted
BACKEND = f"""
import socket, sys, threading
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("{BACKEND_IP}", 8080)); tcp.listen(8)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("{BACKEND_IP}", 5353))
def echo():
    while True:
        data, peer = udp.recvfrom(100)
        udp.sendto(data, peer)
        print("udp", peer[0], flush=True)
threading.Thread(target=echo, daemon=True).start()
print("ready", flush=True)
while True:
    conn, peer = tcp.accept()
    print("tcp", peer[0], conn.getsockname()[0], conn.getsockname()[1], flush=True)
    conn.close()
"""
PROBES = [("10.96.0.10", 80, "tcp"), ("10.96.0.10", 53, "udp"), ("10.96.0.11", 80, "tcp")]
PROBE = f"""
import json
from svctrace.explain.probe import probe
print(json.dumps([probe(a, p, proto, 2.0) for a, p, proto in {PROBES!r}]))
"""


def sh(*args: str, check: bool = True, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=check,
                          **kwargs)  # type: ignore[call-overload]


def missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    tools = ("ip", "conntrack", "iptables-legacy-restore", "iptables-nft-restore")
    absent = [t for t in tools if shutil.which(t) is None]
    return f"missing {', '.join(absent)} (.ci/run installs them)" if absent else None


@pytest.fixture
def namespaces() -> Iterator[tuple[str, str]]:
    """A node and a backend namespace, joined by a veth pair; deleted afterwards."""
    why = missing()
    if why:
        cannot_run(why)
    prefix = f"svp{os.getpid()}{time.monotonic_ns() % 100000}"
    node, backend = f"{prefix}n", f"{prefix}b"
    made: list[str] = []
    try:
        for ns in (node, backend):
            if sh("ip", "netns", "add", ns, check=False).returncode != 0:
                cannot_run(f"cannot create network namespace {ns}")
            made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", node, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
           "netns", backend)
        for ns, dev, ip in ((node, "veth0", NODE_IP), (backend, "veth1", BACKEND_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # on a node the service CIDR is routed somewhere (a default route); nat OUTPUT runs
        # after that first routing decision and re-routes the DNATed packet
        sh("ip", "-n", node, "route", "add", "10.96.0.0/12", "dev", "veth0")
        yield node, backend
    finally:
        for ns in made:
            sh("ip", "netns", "del", ns, check=False)


@pytest.fixture
def backend_server(namespaces: tuple[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(["ip", "netns", "exec", namespaces[1], sys.executable, "-c",
                             BACKEND], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.parametrize("backend", ["legacy", "nft"])
def test_probe_of_a_cluster_ip_is_dnated_by_the_node(
        backend: str, namespaces: tuple[str, str],
        backend_server: subprocess.Popen[str]) -> None:
    node, _ = namespaces
    sh("ip", "netns", "exec", node, f"iptables-{backend}-restore", input=RULES)
    probe = sh("ip", "netns", "exec", node, sys.executable, "-c", PROBE,
               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert json.loads(probe.stdout) == ["open", "open", "refused"], probe.stderr

    # the backend saw the node's connection on the DNAT target (it listens nowhere else)
    backend_server.kill()
    seen, _ = backend_server.communicate(timeout=10)
    assert f"tcp {NODE_IP} {BACKEND_IP} 8080" in seen.splitlines()
    assert f"udp {NODE_IP}" in seen.splitlines()

    # and the node's conntrack holds each answered probe with its original destination, the
    # ClusterIP, and the reply coming from the backend: the kernel DNATed the probe itself.
    # (The refused one is gone from the table with its RST; only the backend can have sent
    # that RST: nothing in either namespace has the address 10.96.0.11.)
    table = sh("ip", "netns", "exec", node, "conntrack", "-L").stdout
    for cluster_ip, port, proto, target in (("10.96.0.10", 80, "tcp", 8080),
                                            ("10.96.0.10", 53, "udp", 5353)):
        entry = re.compile(rf"^{proto}\b.*\bsrc={NODE_IP} dst={cluster_ip} sport=\d+ "
                           rf"dport={port}\b.*\bsrc={BACKEND_IP} dst={NODE_IP} "
                           rf"sport={target}\b", re.MULTILINE)
        assert entry.search(table), table
