"""A two-namespace netfilter rig: the real kernel as the judge of svctrace's tracer.

Topology (recipe from shared/docs/netns-testing.md §2), one pair of namespaces per backend:

    <prefix>c (client 10.10.0.60, fd00:10:10::60) eth0 =veth= eth0 <prefix>n (node 10.10.0.10, ::10)

* The node holds the rules (``iptables-legacy-restore`` or ``iptables-nft-restore``; never both in
  one netns), has ``ip_forward=1``, ``rp_filter=0``, ``route_localnet=1`` (as kube-proxy sets it),
  ``icmp_ratelimit=0``, no redirects, and its default route back via the client.
* The client has ``ip_forward=0``: DNATed probes forwarded back to it die silently, so each probe
  leaves exactly one ``[UNREPLIED]`` conntrack entry in the node netns, whose reply tuple tells
  the chosen backend and whether the source was masqueraded.
* Client probes are raw Ethernet frames to the node's MAC, so any source can be spoofed.
  Locally generated probes are sent from the node netns through an ``IPPROTO_RAW`` socket.

Each netns runs one persistent agent (``sender.py``); everything — sending, reading conntrack,
flushing ``xt_recent`` — goes through those agents. Rigs are created lazily, reused across cases
(rules are only reloaded when the text changes) and deleted at the end of the session, or at
interpreter exit, even after failures. Only namespaces this process created are ever deleted.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

NODE_IP, CLIENT_IP = "10.10.0.10", "10.10.0.60"
NODE_IP6, CLIENT_IP6 = "fd00:10:10::10", "fd00:10:10::60"
NODE_MAC, CLIENT_MAC = "02:00:0a:0a:00:0a", "02:00:0a:0a:00:3c"
LOCAL_SOURCES = {NODE_IP, NODE_IP6, "127.0.0.1", "::1"}
NODE_LOCAL_IPS = [NODE_IP, NODE_IP6]

BACKENDS = ("legacy", "nft")
SENDER = Path(__file__).with_name("sender.py")
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
DEMO_DUMP = FIXTURES / "rig-v1.36" / "node1.iptables-save.txt"
SCENARIOS_DUMP = FIXTURES / "rig-v1.36-scenarios" / "node1.iptables-save.txt"
KERNEL_CASES = FIXTURES / "rig-v1.36-scenarios" / "kernel-cases.json"
REQUIRED_TOOLS = ("ip", "iptables-legacy-restore", "iptables-nft-restore",
                  "ip6tables-legacy-restore", "ip6tables-nft-restore", "conntrack", "nfacct")

# Every nfacct object kube-proxy dumps reference; more are picked up from the text being loaded.
NFACCT_NAMES = ("ct_state_invalid_dropped_pkts", "localhost_nps_accepted_pkts")
_NFACCT_RE = re.compile(r"--nfacct-name\s+(\S+)")

VERDICTS = ("NO-NAT", "REJECT", "DROP")


class RigError(RuntimeError):
    pass


def prerequisites_missing() -> str | None:
    """Why the kernel tests cannot run here, or None. Checked once per session (conftest)."""
    if sys.platform != "linux":
        return f"kernel tests need Linux, this is {sys.platform}"
    if os.geteuid() != 0:
        return "kernel tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN for network namespaces)"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        return "missing tools: " + ", ".join(missing) + \
            " (apt-get install iproute2 iptables conntrack nfacct)"
    try:
        import scapy  # noqa: F401
    except ImportError:
        return "scapy is not installed"
    name = f"svtk-probe-{os.getpid()}-{secrets.token_hex(3)}"
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if p.returncode != 0:
        return f"cannot create a network namespace: {p.stderr.strip()}"
    try:
        p = subprocess.run(["ip", "netns", "exec", name, "cat", "/proc/net/nf_conntrack"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            return "no /proc/net/nf_conntrack in a netns (CONFIG_NF_CONNTRACK_PROCFS?)"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _run(argv: list[str], input: str | None = None) -> str:
    p = subprocess.run(argv, input=input, capture_output=True, text=True)
    if p.returncode != 0:
        raise RigError(f"{' '.join(argv)} failed (rc={p.returncode}): {p.stderr.strip()}")
    return p.stdout


class Agent:
    """One persistent sender.py process inside a netns."""

    def __init__(self, netns: str, mode: str) -> None:
        self.netns = netns
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-u", str(SENDER), "--mode", mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._lock = threading.Lock()
        first = self.proc.stdout.readline()
        if not first:
            raise RigError(f"agent in {netns} did not start: {self.proc.stderr.read()}")

    def call(self, op: str, **kw) -> dict:
        with self._lock:
            self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RigError(f"agent in {self.netns} died: {self.proc.stderr.read()}")
        reply = json.loads(line)
        if "error" in reply:
            raise RigError(f"agent in {self.netns}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


@dataclass(frozen=True)
class Probe:
    """One kind of packet to send: a fresh source port is used for every copy sent."""

    src: str
    dst: str
    dport: int
    proto: str = "tcp"
    local: bool | None = None      # None: local iff src is one of the node's addresses

    @property
    def is_local(self) -> bool:
        return self.src in LOCAL_SOURCES if self.local is None else self.local

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.dst).version

    def __str__(self) -> str:
        where = "local" if self.is_local else "external"
        return f"{self.proto} {self.src} -> {_ep(self.dst, self.dport)} ({where})"


def _ep(ip: str, port: int | str) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


@dataclass
class ProbeResult:
    sport: int
    outcome: str                   # "ip:port" | NO-NAT | REJECT | DROP
    masquerade: bool
    sendto_error: str | None = None


@dataclass
class KernelResult:
    probe: Probe
    results: list[ProbeResult] = field(default_factory=list)

    @property
    def outcomes(self) -> set[str]:
        return {r.outcome for r in self.results}

    @property
    def counts(self) -> Counter:
        return Counter(r.outcome for r in self.results)

    @property
    def masquerade(self) -> dict[str, bool | str]:
        """Per outcome: True/False, or "mixed" if probes to the same outcome disagreed."""
        seen: dict[str, set[bool]] = {}
        for r in self.results:
            seen.setdefault(r.outcome, set()).add(r.masquerade)
        return {k: (next(iter(v)) if len(v) == 1 else "mixed") for k, v in seen.items()}

    @property
    def sequence(self) -> list[str]:
        return [r.outcome for r in self.results]

    @property
    def sendto_errors(self) -> Counter:
        return Counter(r.sendto_error for r in self.results if r.sendto_error)


_CT_KV = re.compile(r"(\w+)=(\S+)")


def parse_conntrack(text: str) -> dict[tuple, tuple[dict, dict]]:
    """/proc/net/nf_conntrack → {(proto, orig src, orig sport, orig dport): (orig, reply)}."""
    entries = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5:
            continue
        proto = parts[2]
        orig: dict[str, str] = {}
        reply: dict[str, str] = {}
        for k, v in _CT_KV.findall(line):
            if k in ("src", "dst", "sport", "dport"):
                (reply if k in orig else orig)[k] = v
        if "sport" not in orig or "sport" not in reply:
            continue
        for d in (orig, reply):
            d["src"] = str(ipaddress.ip_address(d["src"]))
            d["dst"] = str(ipaddress.ip_address(d["dst"]))
        entries[(proto, orig["src"], int(orig["sport"]), int(orig["dport"]))] = (orig, reply)
    return entries


class Rig:
    """A client netns and a node netns holding rules for one iptables backend."""

    def __init__(self, backend: str, prefix: str) -> None:
        if backend not in BACKENDS:
            raise ValueError(backend)
        self.backend = backend
        self.client_ns = f"{prefix}c"
        self.node_ns = f"{prefix}n"
        self.created: list[str] = []
        self.loaded: dict[int, str | None] = {4: None, 6: None}
        self.client: Agent | None = None
        self.node: Agent | None = None
        self._sport = 20000 + secrets.randbelow(5000)
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    # -- life cycle ----------------------------------------------------------------------
    def _setup(self) -> None:
        c, n = self.client_ns, self.node_ns
        for ns in (c, n):
            _run(["ip", "netns", "add", ns])
            self.created.append(ns)
        _run(["ip", "-n", c, "link", "add", "eth0", "address", CLIENT_MAC, "type", "veth",
              "peer", "name", "eth0", "address", NODE_MAC, "netns", n])
        sysctls = {
            c: ["net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0",
                "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"],
            n: ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
                "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.default.send_redirects=0",
                "net.ipv4.conf.all.route_localnet=1", "net.ipv4.icmp_ratelimit=0",
                # REJECT must always answer: lift the per-netns global ICMP budget too
                "net.ipv4.icmp_msgs_per_sec=1000000", "net.ipv4.icmp_msgs_burst=1000000",
                "net.ipv6.icmp.ratelimit=0", "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0"],
        }
        for ns, values in sysctls.items():
            _run(["ip", "netns", "exec", ns, "sysctl", "-qw", *values])
        for ns, me, peer, me6, peer6 in ((c, CLIENT_IP, NODE_IP, CLIENT_IP6, NODE_IP6),
                                         (n, NODE_IP, CLIENT_IP, NODE_IP6, CLIENT_IP6)):
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{me}/24", "dev", "eth0"])
            _run(["ip", "-n", ns, "addr", "add", f"{me6}/64", "dev", "eth0", "nodad"])
            _run(["ip", "-n", ns, "link", "set", "eth0", "up"])
            _run(["ip", "-n", ns, "route", "add", "default", "via", peer])
            _run(["ip", "-n", ns, "-6", "route", "add", "default", "via", peer6])
        # the per-interface sysctls exist only now
        _run(["ip", "netns", "exec", n, "sysctl", "-qw", "net.ipv4.conf.eth0.rp_filter=0",
              "net.ipv4.conf.eth0.send_redirects=0", "net.ipv4.conf.eth0.route_localnet=1"])
        # static neighbours: no ARP/ND round trips on the forwarding path
        _run(["ip", "-n", n, "neigh", "replace", CLIENT_IP, "lladdr", CLIENT_MAC, "dev", "eth0"])
        _run(["ip", "-n", n, "neigh", "replace", CLIENT_IP6, "lladdr", CLIENT_MAC, "dev", "eth0"])
        for name in NFACCT_NAMES:
            self._nfacct(name)
        self.client = Agent(c, "client")
        self.node = Agent(n, "node")

    def close(self) -> None:
        for agent in (self.client, self.node):
            if agent is not None:
                agent.close()
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created.clear()

    # -- rules -----------------------------------------------------------------------------
    def _nfacct(self, name: str) -> None:
        p = subprocess.run(["ip", "netns", "exec", self.node_ns, "nfacct", "add", name],
                           capture_output=True, text=True)
        if p.returncode != 0 and "exist" not in p.stderr.lower():
            raise RigError(f"nfacct add {name}: {p.stderr.strip()}")

    def restore_cmd(self, family: int) -> str:
        return f"{'ip6' if family == 6 else 'ip'}tables-{self.backend}-restore"

    def load(self, rules_text: str, family: int = 4) -> None:
        """Make `rules_text` the node's whole ruleset for `family` (no-op if already loaded)."""
        if self.loaded[family] == rules_text:
            return
        for name in set(_NFACCT_RE.findall(rules_text)) - set(NFACCT_NAMES):
            self._nfacct(name)
        cmd = self.restore_cmd(family)
        # an empty declaration of every table flushes it and deletes its user chains first
        reset = "".join(
            f"*{t}\n" + "".join(f":{c} ACCEPT [0:0]\n" for c in chains) + "COMMIT\n"
            for t, chains in _TABLES.items())
        self.loaded[family] = None
        _run(["ip", "netns", "exec", self.node_ns, cmd], input=reset)
        _run(["ip", "netns", "exec", self.node_ns, cmd], input=rules_text)
        self.loaded[family] = rules_text

    def save(self, family: int = 4) -> str:
        tool = f"{'ip6' if family == 6 else 'ip'}tables-{self.backend}-save"
        return _run(["ip", "netns", "exec", self.node_ns, tool])

    def reset_state(self) -> None:
        """Forget every connection and every affinity entry: the next probe is a new client."""
        out = self.node.call("run", argv=["conntrack", "-F"])
        if out["rc"] != 0 and "0 flow entries" not in out["stderr"]:
            raise RigError(f"conntrack -F: {out['stderr']}")
        self.node.call("flush_recent")

    # -- probing ---------------------------------------------------------------------------
    def _next_sports(self, n: int) -> list[int]:
        ports = []
        for _ in range(n):
            self._sport += 1
            if self._sport > 60999:
                self._sport = 20001
            ports.append(self._sport)
        return ports

    def probe(self, probe: Probe, n: int, *, settle: float = 0.3) -> KernelResult:
        """Send `n` copies of `probe` (fresh source ports) and classify each one."""
        sender = self.node if probe.is_local else self.client
        for agent in (self.client, self.node):
            agent.call("reset")
        sports = self._next_sports(n)
        specs = [{"src": probe.src, "dst": probe.dst, "proto": probe.proto, "sport": s,
                  "dport": probe.dport} for s in sports]
        errors = sender.call("send", mac=NODE_MAC, probes=specs)["errors"]
        src = str(ipaddress.ip_address(probe.src))
        deadline = time.monotonic() + settle
        while True:
            entries = parse_conntrack(self.node.call("conntrack")["text"])
            seen_icmp, seen_rst = set(), set()
            for agent in (self.client, self.node):
                seen = agent.call("seen")
                seen_icmp |= {tuple(x) for x in seen["icmp"]}
                seen_rst |= {tuple(x) for x in seen["rst"]}
            pending = [s for s in sports
                       if (probe.proto, src, s, probe.dport) not in entries
                       and (probe.proto, src, s, probe.dport) not in seen_icmp
                       and (probe.proto, src, s, probe.dport) not in seen_rst]
            if not pending:
                break
            if time.monotonic() > deadline:
                # some probes already resolved: the rest are late (a loaded machine), not lost
                if len(pending) == len(sports) or time.monotonic() > deadline + 1.5:
                    break
            time.sleep(0.02)
        result = KernelResult(probe)
        for s in sports:
            key = (probe.proto, src, s, probe.dport)
            err = errors.get(str(s))
            if key in entries:
                orig, reply = entries[key]
                dnat = (reply["src"], reply["sport"]) != (orig["dst"], orig["dport"])
                outcome = _ep(reply["src"], reply["sport"]) if dnat else "NO-NAT"
                masq = (reply["dst"], reply["dport"]) != (orig["src"], orig["sport"])
                result.results.append(ProbeResult(s, outcome, masq, err))
            elif key in seen_icmp:
                result.results.append(ProbeResult(s, "REJECT", False, err))
            elif key in seen_rst:      # delivered untouched to the node's own stack
                result.results.append(ProbeResult(s, "NO-NAT", False, err))
            else:
                result.results.append(ProbeResult(s, "DROP", False, err))
        return result


_TABLES = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


class RigPool:
    """At most one rig per backend per session, created on first use."""

    def __init__(self) -> None:
        self.prefix = f"svtk{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.rigs: dict[str, Rig] = {}
        self._lock = threading.Lock()
        atexit.register(self.close)

    def get(self, backend: str) -> Rig:
        with self._lock:
            if backend not in self.rigs:
                self.rigs[backend] = Rig(backend, f"{self.prefix}{backend[0]}")
            return self.rigs[backend]

    def close(self) -> None:
        with self._lock:
            for rig in self.rigs.values():
                rig.close()
            self.rigs.clear()


POOL = RigPool()


def kernel_probe(rules_text: str, backend: str, probe: Probe, n: int, *,
                 fresh: bool = True) -> KernelResult:
    """Load `rules_text` (if not loaded) into the `backend` rig and send `n` probes.

    `fresh=True` first flushes conntrack and every xt_recent list, so the probes come from a new
    client; `fresh=False` keeps affinity state from earlier probes.
    """
    rig = POOL.get(backend)
    rig.load(rules_text, probe.family)
    if fresh:
        rig.reset_state()
    return rig.probe(probe, n)


def kernel_outcomes(rules_text: str, backend: str, probe: Probe, n: int = 40
                    ) -> tuple[set[str], dict[str, bool | str]]:
    """(set of backends "ip:port" / NO-NAT / REJECT / DROP, masquerade per outcome)."""
    res = kernel_probe(rules_text, backend, probe, n)
    return res.outcomes, res.masquerade


def probes_for(endpoints: int, miss: float = 1e-6) -> int:
    """Probes needed so each of `endpoints` equally likely picks shows up, all but surely."""
    if endpoints <= 1:
        return 8
    n = 1
    while endpoints * (1 - 1 / endpoints) ** n > miss:
        n += 1
    return n


def sets_text(items: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(items)) + "}"
