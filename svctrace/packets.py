"""scapy at the edge: build the synthetic packet a user sees, and convert it to the engine's own.

scapy is imported here only (about 0.25 s for scapy.layers.inet), never by the core.
"""

from __future__ import annotations

from typing import Any

from svctrace.model.packet import Packet, make_packet


def build(src: str, dst: str, protocol: str = "tcp", sport: int = 40000, dport: int = 80) -> Any:
    """The first packet of a new connection: a TCP SYN, a UDP datagram or an SCTP INIT."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6

    checked = make_packet(src, dst, protocol, sport, dport)      # validates before scapy sees it
    l3 = IPv6(src=src, dst=dst) if checked.family == 6 else IP(src=src, dst=dst)
    if protocol == "tcp":
        l4 = TCP(sport=sport, dport=dport, flags="S")
    elif protocol == "udp":
        l4 = UDP(sport=sport, dport=dport)
    else:
        from scapy.layers.sctp import SCTP, SCTPChunkInit
        l4 = SCTP(sport=sport, dport=dport) / SCTPChunkInit()
    return l3 / l4


def to_model(pkt: Any, in_interface: str | None = None) -> Packet:
    """scapy packet → the engine's frozen Packet."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6

    l3 = pkt[IP] if IP in pkt else pkt[IPv6]
    for layer, name in ((TCP, "tcp"), (UDP, "udp")):
        if layer in pkt:
            l4 = pkt[layer]
            return make_packet(l3.src, l3.dst, name, int(l4.sport), int(l4.dport), in_interface)
    from scapy.layers.sctp import SCTP
    l4 = pkt[SCTP]
    return make_packet(l3.src, l3.dst, "sctp", int(l4.sport), int(l4.dport), in_interface)


def summary(pkt: Any) -> str:
    """scapy's one-line summary, e.g. 'IP / TCP 10.244.0.250:40000 > 10.96.0.10:http S'."""
    return str(pkt.summary())


class ScapyWorker:
    """Builds scapy packets in a child process, so that scapy's import (0.3-0.4 s: it reads the
    routing table and protocol databases) runs on the other core while this process parses
    rules. Start it early; ask for packets when their addresses are known.

    The child builds each packet with `build`, converts it back with `to_model` and answers
    with the summary and the model's fields, which the caller checks against its own Packet.
    """

    def __init__(self) -> None:
        import os

        self._pid = 0
        self._send = self._recv = -1
        if not hasattr(os, "fork"):
            return
        to_child_r, to_child_w = os.pipe()
        to_parent_r, to_parent_w = os.pipe()
        pid = os.fork()
        if pid == 0:                                   # the child: never returns
            os.close(to_child_w)
            os.close(to_parent_r)
            _serve(to_child_r, to_parent_w)
        os.close(to_child_r)
        os.close(to_parent_w)
        self._pid, self._send, self._recv = pid, to_child_w, to_parent_r

    def build(self, specs: list[tuple[str, str, str, int, int]]) -> list[dict[str, Any]]:
        """[(src, dst, protocol, sport, dport)] → [{"summary": …, "packet": {…}} or
        {"error": …}], in order."""
        import json
        import os

        if not self._pid:
            return [_build_one(spec) for spec in specs]
        os.write(self._send, (json.dumps(specs) + "\n").encode())
        os.close(self._send)
        chunks = []
        while chunk := os.read(self._recv, 65536):
            chunks.append(chunk)
        os.close(self._recv)
        os.waitpid(self._pid, 0)
        self._pid = 0
        try:
            return list(json.loads(b"".join(chunks)))
        except ValueError:
            return [_build_one(spec) for spec in specs]    # the child died: build here

    def close(self) -> None:
        """Stop the child without asking for anything."""
        import os

        if self._pid:
            import signal

            os.close(self._send)
            os.close(self._recv)
            os.kill(self._pid, signal.SIGKILL)     # it may still be importing: don't wait
            os.waitpid(self._pid, 0)
            self._pid = 0


def _build_one(spec: tuple[str, str, str, int, int] | list[Any]) -> dict[str, Any]:
    src, dst, protocol, sport, dport = spec
    try:
        pkt = build(src, dst, protocol, sport, dport)
        model = to_model(pkt)
    except Exception as err:  # noqa: BLE001 - reported to the parent, never raised in a child
        return {"error": f"{type(err).__name__}: {err}"}
    return {"summary": summary(pkt),
            "packet": {"src": str(model.src), "dst": str(model.dst), "protocol": model.protocol,
                       "sport": model.sport, "dport": model.dport}}


def _serve(read_fd: int, write_fd: int) -> None:
    import json
    import os

    code = 0
    try:
        from scapy.layers import inet, inet6  # noqa: F401 - the slow part, done while waiting
        data = b""
        while chunk := os.read(read_fd, 65536):
            data += chunk
        if data.strip():
            answers = [_build_one(spec) for spec in json.loads(data)]
            os.write(write_fd, json.dumps(answers).encode())
    except BaseException:  # noqa: BLE001 - the parent falls back to building itself
        code = 1
    finally:
        os._exit(code)
