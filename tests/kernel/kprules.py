"""Write kube-proxy-shaped iptables-restore input for synthetic kernel cases.

Follows shared/docs/kube-proxy-semantics.md §1 (iptables mode): hook jumps, KUBE-SERVICES /
KUBE-NODEPORTS dispatch, KUBE-MARK-MASQ / KUBE-POSTROUTING, the `! -s podCIDR` ClusterIP
masquerade rule, the 1/(n-i) statistic cascade, hairpin rules in KUBE-SEP chains, ClientIP
affinity with `recent`, NodePort EXT chains and the filter REJECT for Services without endpoints.
Chain names use kube-proxy's hash recipe. Works for IPv4 and IPv6 (`[v6]:port` DNAT targets,
`! -d ::1/128` on the NodePort dispatch, icmp6 REJECT).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field


def h16(s: str) -> str:
    return base64.b32encode(hashlib.sha256(s.encode()).digest()).decode()[:16]


@dataclass
class Service:
    namespace: str
    name: str
    port_name: str
    cluster_ip: str
    port: int
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    proto: str = "tcp"
    node_port: int | None = None
    affinity_seconds: int | None = None

    @property
    def spn(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name}"


def _ep(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def kube_proxy_rules(services: list[Service], pod_cidr: str, family: int = 4) -> str:
    v6 = family == 6
    nat_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"]
    nat: list[str] = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
    ]
    filt: list[str] = [
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment "
        '"kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
        "-j KUBE-SERVICES",
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment "
        '"kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
        "-j KUBE-SERVICES",
    ]
    reject = "icmp6-port-unreachable" if v6 else "icmp-port-unreachable"
    host = "128" if v6 else "32"
    mask = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" if v6 else "255.255.255.255"
    for s in services:
        pm = f"-m {s.proto} -p {s.proto}"
        svc = f"KUBE-SVC-{h16(s.spn + s.proto)}"
        ext = f"KUBE-EXT-{h16(s.spn + s.proto)}"
        if not s.endpoints:
            filt.append(f'-A KUBE-SERVICES -m comment --comment "{s.spn} has no endpoints" {pm} '
                        f"-d {s.cluster_ip} --dport {s.port} -j REJECT --reject-with {reject}")
            if s.node_port:
                filt.append(f'-A KUBE-EXTERNAL-SERVICES -m comment --comment "{s.spn} has no '
                            f'endpoints" -m addrtype --dst-type LOCAL {pm} --dport {s.node_port} '
                            f"-j REJECT --reject-with {reject}")
            continue
        nat_chains.append(svc)
        nat.append(f'-A KUBE-SERVICES -m comment --comment "{s.spn} cluster IP" {pm} '
                   f"-d {s.cluster_ip} --dport {s.port} -j {svc}")
        nat.append(f'-A {svc} -m comment --comment "{s.spn} cluster IP" {pm} -d {s.cluster_ip} '
                   f"--dport {s.port} ! -s {pod_cidr} -j KUBE-MARK-MASQ")
        if s.node_port:
            nat_chains.append(ext)
            nat.append(f"-A KUBE-NODEPORTS -m comment --comment {s.spn} {pm} "
                       f"--dport {s.node_port} -j {ext}")
            nat.append(f'-A {ext} -m comment --comment "masquerade traffic for {s.spn} external '
                       f'destinations" -j KUBE-MARK-MASQ')
            nat.append(f"-A {ext} -j {svc}")
        seps = []
        for ip, port in s.endpoints:
            ep = _ep(ip, port)
            sep = f"KUBE-SEP-{h16(s.spn + s.proto + ep)}"
            seps.append((sep, ep))
            nat_chains.append(sep)
            nat.append(f"-A {sep} -m comment --comment {s.spn} -s {ip}/{host} -j KUBE-MARK-MASQ")
            recent = f"-m recent --name {sep} --set " if s.affinity_seconds else ""
            nat.append(f"-A {sep} -m comment --comment {s.spn} {recent}{pm} "
                       f"-j DNAT --to-destination {ep}")
        if s.affinity_seconds:
            for sep, ep in seps:
                nat.append(f'-A {svc} -m comment --comment "{s.spn} -> {ep}" '
                           f"-m recent --name {sep} --rcheck --seconds {s.affinity_seconds} "
                           f"--reap --mask {mask} -j {sep}")
        n = len(seps)
        for i, (sep, ep) in enumerate(seps):
            stat = (f"-m statistic --mode random --probability {1 / (n - i):0.10f} "
                    if i < n - 1 else "")
            nat.append(f'-A {svc} -m comment --comment "{s.spn} -> {ep}" {stat}-j {sep}')
    dispatch = "! -d ::1/128 " if v6 else ""
    nat.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this '
               f'must be the last rule in this chain" {dispatch}-m addrtype --dst-type LOCAL '
               "-j KUBE-NODEPORTS")
    out = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
           ":KUBE-SERVICES - [0:0]", ":KUBE-EXTERNAL-SERVICES - [0:0]", *filt, "COMMIT",
           "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
           ":POSTROUTING ACCEPT [0:0]", *(f":{c} - [0:0]" for c in nat_chains), *nat, "COMMIT"]
    return "\n".join(out) + "\n"
