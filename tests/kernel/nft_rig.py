"""The kernel judge for nftables rules: rig.py's two namespaces, loaded with `nft -f`.

Same topology and agents as rig.py (client 10.10.0.60 =veth= node 10.10.0.10, scapy probes,
conntrack read back), with three differences (netns-testing.md, adapted for nftables):

* the node's ruleset is replaced as a whole: `flush ruleset` and the dump in one `nft -f`
  transaction, so a dump in `nft list ruleset` text or in kube-proxy's `add …` form loads as is;
* the node also holds 10.10.0.20/24 and fd00:10:10::20/64 on eth0, node2's address in the
  real capture: `fib daddr type local` and `nodeport-ips` need the addresses on an interface;
* resetting a case also empties every dynamic set (kube-proxy's affinity sets), as rig.py
  flushes xt_recent.

The rigs are separate from the iptables rigs (an iptables-nft rig's tables are nft tables
too, and `flush ruleset` would wipe them) and are deleted with them at the end of the session.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import secrets
import shutil
import threading
from pathlib import Path

import pytest
from judge import TracerResult, _reduce
from rig import FIXTURES, KernelResult, Probe, Rig, RigError, _run

NODE2_IP, NODE2_IP6 = "10.10.0.20", "fd00:10:10::20"
NODE_IPS = ("10.10.0.10", "fd00:10:10::10", NODE2_IP, NODE2_IP6)
CAPTURE = {"nft-text": FIXTURES / "rig-v1.36-scenarios" / "node2.nft.txt",
           "nft-json": FIXTURES / "rig-v1.36-scenarios" / "node2.nft.json"}
DUMPS = FIXTURES / "nft"


def require_nft() -> None:
    """Skip (fail under CI=true, as conftest does) when `nft` is missing; rig.REQUIRED_TOOLS
    and conftest cover the rest of the kernel prerequisites."""
    if shutil.which("nft"):
        return
    why = "missing tool: nft (apt-get install nftables)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"kernel test cannot run in CI: {why}", pytrace=False)
    pytest.skip(f"kernel test cannot run here: {why}")


class NftRig(Rig):
    """A client netns and a node netns whose whole ruleset is an nftables dump."""

    def __init__(self, prefix: str) -> None:
        self.nft_loaded: str | None = None
        super().__init__("nft", prefix)
        for address in (f"{NODE2_IP}/24", f"{NODE2_IP6}/64"):
            _run(["ip", "-n", self.node_ns, "addr", "add", address, "dev", "eth0", "nodad"])

    def load(self, rules_text: str, family: int = 4) -> None:
        """Make `rules_text` (nft list ruleset or nft -f input) the node's whole ruleset."""
        if self.nft_loaded == rules_text:
            return
        self.nft_loaded = None
        _run(["ip", "netns", "exec", self.node_ns, "nft", "-f", "-"],
             input="flush ruleset\n" + rules_text)
        self.nft_loaded = rules_text

    def load_split(self, nft_text: str, iptables_text: str) -> None:
        """kube-proxy's nft tables plus iptables rules (iptables-nft, as a mode switch leaves
        them): both see every packet."""
        key = nft_text + "\0" + iptables_text
        if self.nft_loaded == key:
            return
        self.load(nft_text)
        self.nft_loaded = None
        _run(["ip", "netns", "exec", self.node_ns, "iptables-nft-restore"], input=iptables_text)
        self.nft_loaded = key

    def save(self, family: int = 4, json_form: bool = False) -> str:
        argv = ["nft", "-j", "list", "ruleset"] if json_form else ["nft", "list", "ruleset"]
        return _run(["ip", "netns", "exec", self.node_ns, *argv])

    def reset_state(self) -> None:
        """Forget every connection and every dynamic-set element: the next probe is new."""
        out = self.node.call("run", argv=["conntrack", "-F"])
        if out["rc"] != 0 and "0 flow entries" not in out["stderr"]:
            raise RigError(f"conntrack -F: {out['stderr']}")
        listing = json.loads(self.node.call("run", argv=["nft", "-j", "list", "sets"])["stdout"]
                             or '{"nftables": []}')
        for item in listing["nftables"]:
            s = item.get("set")
            if s and "timeout" in (s.get("flags") or []) or s and "dynamic" in (s.get("flags")
                                                                                 or []):
                got = self.node.call("run", argv=["nft", "flush", "set", s["family"],
                                                  s["table"], s["name"]])
                if got["rc"] != 0:
                    raise RigError(f"nft flush set {s['name']}: {got['stderr']}")


class NftRigPool:
    """One nft rig per session, created on first use, deleted at the end."""

    def __init__(self) -> None:
        self.prefix = f"svtn{os.getpid() % 100000}{secrets.token_hex(2)}"
        self.rig: NftRig | None = None
        self._lock = threading.Lock()
        atexit.register(self.close)

    def get(self) -> NftRig:
        with self._lock:
            if self.rig is None:
                self.rig = NftRig(self.prefix)
            return self.rig

    def close(self) -> None:
        with self._lock:
            if self.rig is not None:
                self.rig.close()
                self.rig = None


POOL = NftRigPool()


def nft_probe(rules_text: str, probe: Probe, n: int, *, fresh: bool = True) -> KernelResult:
    """Load `rules_text` (if not loaded) into the nft rig and send `n` probes."""
    rig = POOL.get()
    rig.load(rules_text)
    if fresh:
        rig.reset_state()
    return rig.probe(probe, n)


@functools.cache
def load_nft_capture(form: str):
    """node2's real rules, read by svctrace from the given form."""
    return parse_nft(CAPTURE[form].read_text(), str(CAPTURE[form]), form)


def parse_nft(text: str, source: str, form: str):
    """svctrace's model of nft rules; the form is told from the content and must be `form`."""
    from svctrace.rules.detect import parse_rules

    ruleset = parse_rules(text, source)
    assert ruleset.format == form, f"{source}: read as {ruleset.format}, expected {form}"
    return ruleset


def nft_outcomes(ruleset, probe: Probe, *, local_ips: tuple[str, ...] = NODE_IPS,
                 affinity_hit: frozenset[str] = frozenset(), iptables=None) -> TracerResult:
    """Trace `probe` through an NftRuleset with svctrace's Python API."""
    from svctrace.model.packet import make_packet
    from svctrace.model.trace import node_context
    from svctrace.trace.nft_engine import trace_nft

    packet = make_packet(probe.src, probe.dst, protocol=probe.proto, sport=40000,
                         dport=probe.dport)
    trace = trace_nft(packet, ruleset, node_context(list(local_ips), affinity_hit=affinity_hit),
                      iptables)
    items = [(o.destination, o.verdict, o.masquerade, o.probability,
              [a.describe() for a in o.assumptions]) for o in trace.outcomes]
    return _reduce(items, trace)


def dump_path(name: str) -> Path:
    return DUMPS / name
