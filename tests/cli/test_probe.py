"""--probe sends real packets; the tests aim them only at listeners on loopback (and, in
test_probe_kernel.py, inside network namespaces of their own)."""

import socket
import threading
from collections.abc import Iterator

import pytest

from svctrace.explain.probe import probe, probe_report


@pytest.fixture
def ports() -> Iterator[dict[str, int]]:
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()

    def answer() -> None:
        try:
            _, peer = udp.recvfrom(100)
            udp.sendto(b"ok", peer)
        except OSError:
            pass

    threading.Thread(target=answer, daemon=True).start()
    yield {"tcp": tcp.getsockname()[1], "udp": udp.getsockname()[1], "closed": closed_port}
    tcp.close()
    udp.close()


@pytest.mark.parametrize("proto,which,expected", [
    ("tcp", "tcp", "open"), ("tcp", "closed", "refused"),
    ("udp", "udp", "open"), ("udp", "closed", "refused"),
])
def test_socket_probe(ports: dict[str, int], proto: str, which: str, expected: str) -> None:
    """As any user and as root alike: a kernel socket (see test_probe_kernel.py for why)."""
    assert probe("127.0.0.1", ports[which], proto, 1.0) == expected


def test_probe_report_probes_each_backend_once(ports: dict[str, int]) -> None:
    from svctrace.cli.explain_cmd import ExplainReport
    from svctrace.diagnose.node import EntryTrace, NodeExplanation
    from svctrace.model.packet import make_packet
    from svctrace.model.trace import node_context
    from svctrace.rules.iptables_save import parse_iptables_save
    from svctrace.trace.engine import trace_packet

    rules = parse_iptables_save(
        "*nat\n:OUTPUT ACCEPT [0:0]\n"
        "-A OUTPUT -d 10.96.0.9/32 -p tcp -m statistic --mode random --probability 0.5 "
        f"-j DNAT --to-destination 127.0.0.1:{ports['tcp']}\n"
        f"-A OUTPUT -d 10.96.0.9/32 -p tcp -j DNAT --to-destination 127.0.0.1:{ports['closed']}"
        "\nCOMMIT\n", "t")
    trace = trace_packet(make_packet("127.0.0.1", "10.96.0.9", "tcp", 40000, 80), rules,
                         node_context([]))
    entry = EntryTrace("clusterIP", "ns/svc", "node", "127.0.0.1", "10.96.0.9:80", trace)
    report = ExplainReport(cluster=None, findings=[])  # type: ignore[arg-type]
    probe_report(report, NodeExplanation((), (), (entry, entry), ()))
    assert report.data["probes"] == [
        {"address": f"127.0.0.1:{p}", "protocol": "tcp", "result": r}
        for p, r in sorted([(ports["tcp"], "open"), (ports["closed"], "refused")])]


def test_on_a_node_the_cluster_ip_is_probed_too() -> None:
    from svctrace.diagnose.node import EntryTrace, NodeExplanation
    from svctrace.explain.probe import probe_targets
    from svctrace.model.packet import make_packet
    from svctrace.model.trace import node_context
    from svctrace.rules.iptables_save import parse_iptables_save
    from svctrace.trace.engine import trace_packet

    rules = parse_iptables_save("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 10.96.0.9/32 "
                                "-p udp -j DNAT --to-destination 10.244.1.5:53\nCOMMIT\n", "t")
    trace = trace_packet(make_packet("10.244.9.9", "10.96.0.9", "udp", 40000, 53), rules,
                         node_context([]))
    node = NodeExplanation((), (), (EntryTrace("clusterIP", "ns/dns", "pod", "10.244.9.9",
                                               "10.96.0.9:53", trace),), ())
    assert probe_targets(node, on_node=False) == [("10.244.1.5", 53, "udp")]
    assert probe_targets(node, on_node=True) == [("10.244.1.5", 53, "udp"),
                                                 ("10.96.0.9", 53, "udp")]
