"""The node's own pod subnet and the default pod source (issue 10 point 8), on real dumps from
tests/corpus (provenance in tests/corpus/README.md) and on the shapes each CNI writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from svctrace.rules.iptables_save import parse_iptables_save
from svctrace.rules.nodefacts import pod_source

REPO = Path(__file__).parents[2]
CORPUS = REPO / "tests" / "corpus"
FLANNEL = CORPUS / "03-kubeadm-2026-flannel-nft.txt"


def nat(*rules: str) -> str:
    chains = sorted({r.split()[1] for r in rules} - {"POSTROUTING"})
    return ("*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n"
            + "".join(f":{c} - [0:0]\n" for c in chains) + "\n".join(rules) + "\nCOMMIT\n")


DETECTOR = ("-A KUBE-SVC-AAAAAAAAAAAAAAAA ! -s 10.244.0.0/16 -d 10.96.0.1/32 -p tcp -m tcp "
            "--dport 443 -j KUBE-MARK-MASQ")


@pytest.mark.parametrize(("text", "network", "address", "why"), [
    pytest.param(FLANNEL.read_text(), "10.244.0.0/24", "10.244.0.253", "flannel",
                 id="flannel-real-dump"),
    pytest.param(nat(DETECTOR, "-A POSTROUTING -j FLANNEL-POSTRTG",
                     "-A FLANNEL-POSTRTG -s 10.244.3.0/24 -d 10.244.0.0/16 -j RETURN"),
                 "10.244.3.0/24", "10.244.3.253", "flannel", id="flannel-other-node"),
    pytest.param(nat(DETECTOR, "-A POSTROUTING -s 10.244.5.0/24 ! -o cni0 -j MASQUERADE"),
                 "10.244.5.0/24", "10.244.5.253", "cni0", id="cni0-bridge-masquerade"),
    pytest.param(nat(DETECTOR, "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"),
                 "10.244.0.0/16", "10.244.255.253", "cluster pod CIDR",
                 id="docker-bridge-outside-the-cluster-cidr-ignored"),
    pytest.param(nat(DETECTOR), "10.244.0.0/16", "10.244.255.253", "cluster pod CIDR",
                 id="detector-only"),
])
def test_pod_source_is_inside_the_node_subnet(text, network, address, why) -> None:
    found = pod_source(parse_iptables_save(text, "n.txt"), 4)
    assert found is not None
    assert (found.network, found.address) == (network, address)
    assert why in found.why


def test_trace_from_the_node_subnet_is_not_masqueraded_by_flannel() -> None:
    """The real flannel dump: a pod of this node reaching another node's pod is not
    masqueraded; svctrace's default source must be such a pod, and it says why it chose it."""
    done = subprocess.run([sys.executable, "-m", "svctrace", "trace", "--rules", str(FLANNEL),
                           "--dst", "10.244.1.7:8080", "-o", "json"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["packet"]["source"] == "10.244.0.253"
    assert [o["masquerade"] for o in doc["outcomes"]] == [False]
    assert "this node's pod subnet" in done.stderr and "flannel" in done.stderr


# ------------------------------------------------ node addresses (point 9)

def trace_stderr(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "svctrace", "trace", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_node_addresses_other_agents_give_away_are_said() -> None:
    """The real libvirt/flannel dump names the node through a host port DNAT and an SNAT."""
    err = trace_stderr("--rules", str(CORPUS / "06-kubeadm-1.23-flannel-docker-libvirt.txt"),
                       "--src", "203.0.113.4", "--dst", "198.51.100.7:53", "--proto", "udp")
    (note,) = [line for line in err.splitlines() if "rules suggest" in line]
    assert "10.210.52.212 (host port DNAT" in note and "172.25.11.254 (SNAT --to-source" in note


def test_filter_input_accept_to_a_host_address_is_a_hint() -> None:
    text = ("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -d 192.168.0.2/32 -p udp -m udp --dport 53 "
            "-j ACCEPT\nCOMMIT\n")
    from svctrace.rules.kubeproxy import infer_local_hints
    (hint,) = infer_local_hints(parse_iptables_save(text, "i"))
    assert (hint.address, hint.reason) == ("192.168.0.2", "filter INPUT accepts traffic to it")


def test_nodeport_without_a_local_address_is_not_plainly_delivered() -> None:
    demo = REPO / "tests" / "fixtures" / "rig-v1.36" / "node1.iptables-save.txt"
    err = trace_stderr("--rules", str(demo), "--src", "203.0.113.4", "--dst", "10.10.0.10:30080")
    assert "is the NodePort of svctrace-demo/web-np:http" in err
    assert "--local-ip 10.10.0.10" in err
    err = trace_stderr("--rules", str(demo), "--src", "203.0.113.4", "--dst", "10.10.0.10:30080",
                       "--local-ip", "10.10.0.10")
    assert "NodePort" not in err


def test_apiserver_on_a_known_local_address_takes_the_local_path() -> None:
    """The real flannel dump of a single control-plane node: with the apiserver's address given
    as local, a pod's packet to the kubernetes Service is delivered to this node (INPUT)."""
    done = subprocess.run([sys.executable, "-m", "svctrace", "trace", "--rules", str(FLANNEL),
                           "--src", "10.244.0.7", "--dst", "10.96.0.1:443", "--local-ip",
                           "172.31.7.91", "-o", "json"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (outcome,) = json.loads(done.stdout)["outcomes"]
    assert outcome["destination"] == "172.31.7.91:6443"
    assert outcome["hooks"] == ["PREROUTING", "INPUT"] and not outcome["masquerade"]
