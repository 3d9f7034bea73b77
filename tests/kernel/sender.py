"""Probe agent for the kernel tests: one long-lived process per network namespace.

Started with ``ip netns exec NS python sender.py --mode client|node --iface eth0``. It reads one
JSON request per line on stdin and answers one JSON line on stdout. It never leaves the netns it
was started in, so every packet it sends stays inside namespaces the test rig created.

* ``client`` mode sends each probe as a raw Ethernet frame (scapy builds it) on ``--iface`` with
  the node's MAC as destination, so spoofed sources need no routing in the client.
* ``node`` mode sends locally generated probes through an ``IPPROTO_RAW`` socket, so they take
  the node's nat OUTPUT / filter OUTPUT / nat POSTROUTING path (scapy's ``send()`` would not).
  A DROP or REJECT in OUTPUT shows up as ``sendto()`` failing with EPERM.

A sniffer thread (AF_PACKET, all interfaces of the netns) records ICMP/ICMPv6 port-unreachables
and TCP RSTs that refer to a probe, so REJECT can be told from DROP.

Requests:
  {"op": "send", "mac": "..", "probes": [{"src","dst","proto","sport","dport"}]}
      -> {"errors": {"<sport>": "EPERM", ...}}
  {"op": "seen"} -> {"icmp": [[proto, src, sport, dport], ...], "rst": [...]}
  {"op": "reset"} -> forget what the sniffer saw
  {"op": "conntrack"} -> {"text": contents of /proc/net/nf_conntrack of this netns}
  {"op": "flush_recent"} -> empties every /proc/net/xt_recent list of this netns
  {"op": "run", "argv": [...], "input": "..."} -> {"rc", "stdout", "stderr"}
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import socket
import struct
import subprocess
import sys
import threading

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.sctp import SCTP, SCTPChunkInit

ETH_P_ALL = 0x0003
IPPROTO = {"tcp": 6, "udp": 17, "sctp": 132}
PROTO_NAME = {6: "tcp", 17: "udp", 132: "sctp"}
DNS_QUERY = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")


class Sniffer(threading.Thread):
    """Remembers ICMP port-unreachables (by the probe tuple they quote) and TCP RSTs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        # left unbound: it sees every interface of this netns (eth0 and lo)
        self.lock = threading.Lock()
        self.icmp: set[tuple[str, str, int, int]] = set()
        self.rst: set[tuple[str, str, int, int]] = set()

    def run(self) -> None:
        while True:
            data, addr = self.sock.recvfrom(65535)
            try:
                self.inspect(data, addr)
            except (IndexError, struct.error, ValueError):
                pass

    def inspect(self, frame: bytes, addr) -> None:
        # addr = (ifname, proto, pkttype, hatype, hwaddr); lo and veth both carry Ethernet headers
        ethertype = struct.unpack("!H", frame[12:14])[0]
        ip = frame[14:]
        if ethertype == 0x0800:
            ihl = (ip[0] & 0x0F) * 4
            proto, l4 = ip[9], ip[ihl:]
            if proto == 1 and l4[0] == 3 and l4[1] == 3:          # ICMP port unreachable
                self._record_inner(l4[8:], 4, self.icmp)
            elif proto == 6 and l4[13] & 0x04:                     # TCP RST: quotes nothing,
                src = str(ipaddress.ip_address(ip[16:20]))         # so record it reversed
                sport, dport = struct.unpack("!HH", l4[:4])
                self._add(self.rst, ("tcp", src, dport, sport))
        elif ethertype == 0x86DD:
            nxt, l4 = ip[6], ip[40:]
            if nxt == 58 and l4[0] == 1 and l4[1] == 4:            # ICMPv6 port unreachable
                self._record_inner(l4[8:], 6, self.icmp)
            elif nxt == 6 and l4[13] & 0x04:
                src = str(ipaddress.ip_address(ip[24:40]))
                sport, dport = struct.unpack("!HH", l4[:4])
                self._add(self.rst, ("tcp", src, dport, sport))

    def _record_inner(self, inner: bytes, family: int, into: set) -> None:
        if family == 4:
            ihl = (inner[0] & 0x0F) * 4
            proto, src, l4 = inner[9], ipaddress.ip_address(inner[12:16]), inner[ihl:]
        else:
            proto, src, l4 = inner[6], ipaddress.ip_address(inner[8:24]), inner[40:]
        if proto in PROTO_NAME:
            sport, dport = struct.unpack("!HH", l4[:4])
            self._add(into, (PROTO_NAME[proto], str(src), sport, dport))

    def _add(self, into: set, key: tuple) -> None:
        with self.lock:
            into.add(key)

    def snapshot(self) -> dict:
        with self.lock:
            return {"icmp": sorted(self.icmp), "rst": sorted(self.rst)}

    def reset(self) -> None:
        with self.lock:
            self.icmp.clear()
            self.rst.clear()


def build(probe: dict):
    src, dst = probe["src"], probe["dst"]
    l3 = IPv6(src=src, dst=dst) if ":" in dst else IP(src=src, dst=dst)
    if probe["proto"] == "tcp":
        l4 = TCP(sport=probe["sport"], dport=probe["dport"], flags="S", seq=probe["sport"] * 7919)
    elif probe["proto"] == "sctp":      # an INIT chunk opens an SCTP association
        l4 = SCTP(sport=probe["sport"], dport=probe["dport"], tag=0) / SCTPChunkInit(
            init_tag=probe["sport"], a_rwnd=65535, n_out_streams=1, n_in_streams=1, init_tsn=1)
    else:
        l4 = UDP(sport=probe["sport"], dport=probe["dport"]) / DNS_QUERY
    return l3 / l4


class Agent:
    def __init__(self, mode: str, iface: str) -> None:
        self.mode = mode
        self.sniffer = Sniffer()
        self.sniffer.start()
        if mode == "client":
            self.l2 = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            self.l2.bind((iface, 0))
            self.mac = self.l2.getsockname()[4].hex(":")
        else:
            self.raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            self.raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def send(self, req: dict) -> dict:
        errors: dict[str, str] = {}
        for probe in req["probes"]:
            pkt = build(probe)
            try:
                if self.mode == "client":
                    self.l2.send(bytes(Ether(src=self.mac, dst=req["mac"]) / pkt))
                elif ":" in probe["dst"]:
                    self.raw6.sendto(bytes(pkt), (probe["dst"], 0))
                else:
                    self.raw4.sendto(bytes(pkt), (probe["dst"], 0))
            except OSError as exc:
                errors[str(probe["sport"])] = errno.errorcode.get(exc.errno or 0, str(exc))
        return {"errors": errors}

    def handle(self, req: dict) -> dict:
        op = req["op"]
        if op == "send":
            return self.send(req)
        if op == "seen":
            return self.sniffer.snapshot()
        if op == "reset":
            self.sniffer.reset()
            return {}
        if op == "conntrack":
            with open("/proc/net/nf_conntrack") as f:
                return {"text": f.read()}
        if op == "flush_recent":
            base = "/proc/net/xt_recent"
            names = os.listdir(base) if os.path.isdir(base) else []
            for name in names:
                with open(os.path.join(base, name), "w") as f:
                    f.write("/\n")
            return {"lists": names}
        if op == "run":
            p = subprocess.run(req["argv"], input=req.get("input"), capture_output=True, text=True)
            return {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}
        if op == "ping":
            return {"mac": getattr(self, "mac", None)}
        raise ValueError(f"unknown op {op!r}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("client", "node"), required=True)
    ap.add_argument("--iface", default="eth0")
    args = ap.parse_args()
    agent = Agent(args.mode, args.iface)
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = agent.handle(json.loads(line))
        except Exception as exc:  # report, keep serving
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
