"""Rules in the layouts older kube-proxy versions wrote, as iptables-save prints them back.

Written from kube-proxy's history (pkg/proxy/iptables/proxier.go and pkg/proxy/userspace, see
shared/docs/kube-proxy-semantics.md §1 and §4) and checked against real published dumps
(tests/corpus/README.md):

* `pre_122`: 1.10–1.21. The cluster-IP masquerade rule `! -s POD_CIDR -d VIP … -j KUBE-MARK-MASQ`
  sits in KUBE-SERVICES next to the jump (NodePorts: in KUBE-NODEPORTS), not in KUBE-SVC;
  eTP=Local uses a KUBE-XLB chain with "Balancing rule N" jumps and KUBE-MARK-DROP (0x8000, dropped
  by filter KUBE-FIREWALL) when the node has no local endpoint; KUBE-POSTROUTING masquerades on the
  mark without clearing it.
* `v1_1`: 1.1 (2015). No KUBE-MARK-MASQ: KUBE-SEP marks hairpin traffic with 0x4d415351 ("MASQ")
  and POSTROUTING masquerades it; ClientIP affinity is `-m recent --rcheck` in KUBE-SVC and
  `--set` in KUBE-SEP; unnamed ports are `ns/name:` (with the colon) in comments and hashes.
* `portals`: the userspace proxy (1.0–1.2 default): KUBE-PORTALS-CONTAINER REDIRECTs to
  kube-proxy's own port, KUBE-PORTALS-HOST DNATs to NODE_IP:port; NodePorts in
  KUBE-NODEPORT-CONTAINER / -HOST. kube-proxy picks the endpoint in userspace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kprules import h16

NAT_HEAD = [":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
            ":POSTROUTING ACCEPT [0:0]"]
FILTER_HEAD = [":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]


@dataclass
class OldService:
    namespace: str
    name: str
    port_name: str                 # "" for an unnamed port
    cluster_ip: str
    port: int
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    proto: str = "tcp"
    node_port: int | None = None
    local_endpoints: list[tuple[str, int]] | None = None   # eTP=Local: those on this node
    affinity_seconds: int | None = None
    external_ips: list[str] = field(default_factory=list)

    def spn(self, colon_when_unnamed: bool = False) -> str:
        base = f"{self.namespace}/{self.name}"
        if self.port_name or colon_when_unnamed:
            return f"{base}:{self.port_name}"
        return base


def _dump(filter_chains: list[str], filt: list[str], nat_chains: list[str],
          nat: list[str]) -> str:
    out = ["*filter", *FILTER_HEAD, *(f":{c} - [0:0]" for c in sorted(set(filter_chains))),
           *filt, "COMMIT", "*nat", *NAT_HEAD, *(f":{c} - [0:0]" for c in sorted(set(nat_chains))),
           *nat, "COMMIT"]
    return "\n".join(out) + "\n"


def _cascade(spn: str, proto: str, chain: str, endpoints: list[tuple[str, int]],
             comment: str | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """The 1/(n-i) statistic cascade of `chain` to one KUBE-SEP per endpoint."""
    rules, seps = [], []
    n = len(endpoints)
    for i, (ip, port) in enumerate(endpoints):
        sep = f"KUBE-SEP-{h16(spn + proto + f'{ip}:{port}')}"
        seps.append((sep, f"{ip}:{port}"))
        stat = (f"-m statistic --mode random --probability {1 / (n - i):.11f} "
                if i < n - 1 else "")
        rules.append(f'-A {chain} -m comment --comment "{comment or spn}" {stat}-j {sep}')
    return rules, seps


def pre_122(services: list[OldService], pod_cidr: str) -> str:
    """What kube-proxy 1.10–1.21 wrote (iptables-save form)."""
    nat_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ",
                  "KUBE-MARK-DROP"]
    filter_chains = ["KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL", "KUBE-FORWARD"]
    nat = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000",
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        "-m mark --mark 0x4000/0x4000 -j MASQUERADE",
    ]
    filt = [
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible "
        'service portals" -j KUBE-EXTERNAL-SERVICES',
        "-A INPUT -j KUBE-FIREWALL",
        '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD',
        '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
        "-j KUBE-SERVICES",
        '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
        "-j KUBE-SERVICES",
        "-A OUTPUT -j KUBE-FIREWALL",
        '-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" '
        "-m mark --mark 0x8000/0x8000 -j DROP",
        '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark '
        "0x4000/0x4000 -j ACCEPT",
    ]
    sep_rules: list[str] = []
    for s in services:
        spn, p = s.spn(), s.proto
        h = h16(spn + p)
        svc, xlb = f"KUBE-SVC-{h}", f"KUBE-XLB-{h}"
        vip = f"-d {s.cluster_ip}/32 -p {p}"
        if not s.endpoints:
            filt.append(f'-A KUBE-SERVICES {vip} -m comment --comment "{spn} has no endpoints" '
                        f"-m {p} --dport {s.port} -j REJECT --reject-with icmp-port-unreachable")
            continue
        nat_chains.append(svc)
        nat.append(f'-A KUBE-SERVICES ! -s {pod_cidr} {vip} -m comment --comment "{spn} cluster '
                   f'IP" -m {p} --dport {s.port} -j KUBE-MARK-MASQ')
        nat.append(f'-A KUBE-SERVICES {vip} -m comment --comment "{spn} cluster IP" -m {p} '
                   f"--dport {s.port} -j {svc}")
        for eip in s.external_ips:
            ext = f"-d {eip}/32 -p {p} -m comment --comment \"{spn} external IP\" -m {p} " \
                  f"--dport {s.port}"
            nat.append(f"-A KUBE-SERVICES {ext} -j KUBE-MARK-MASQ")
            nat.append(f"-A KUBE-SERVICES {ext} -m physdev ! --physdev-is-in -m addrtype "
                       f"! --src-type LOCAL -j {svc}")
            nat.append(f"-A KUBE-SERVICES {ext} -m addrtype --dst-type LOCAL -j {svc}")
        rules, seps = _cascade(spn, p, svc, s.endpoints)
        nat.extend(rules)
        for sep, ep in seps:
            nat_chains.append(sep)
            ip = ep.rsplit(":", 1)[0]
            sep_rules.append(f'-A {sep} -s {ip}/32 -m comment --comment "{spn}" '
                             "-j KUBE-MARK-MASQ")
            sep_rules.append(f'-A {sep} -p {p} -m comment --comment "{spn}" -m {p} '
                             f"-j DNAT --to-destination {ep}")
        if s.node_port is None:
            continue
        np = f'-p {p} -m comment --comment "{spn}" -m {p} --dport {s.node_port}'
        if s.local_endpoints is None:
            nat.append(f"-A KUBE-NODEPORTS {np} -j KUBE-MARK-MASQ")
            nat.append(f"-A KUBE-NODEPORTS {np} -j {svc}")
            continue
        nat_chains.append(xlb)
        nat.append(f"-A KUBE-NODEPORTS -s 127.0.0.0/8 {np} -j KUBE-MARK-MASQ")
        nat.append(f"-A KUBE-NODEPORTS {np} -j {xlb}")
        nat.append(f'-A {xlb} -s {pod_cidr} -m comment --comment "Redirect pods trying to reach '
                   f'external loadbalancer VIP to clusterIP" -j {svc}')
        nat.append(f'-A {xlb} -m comment --comment "masquerade LOCAL traffic for {spn} LB IP" '
                   "-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ")
        nat.append(f'-A {xlb} -m comment --comment "route LOCAL traffic for {spn} LB IP to '
                   f'service chain" -m addrtype --src-type LOCAL -j {svc}')
        if not s.local_endpoints:
            nat.append(f'-A {xlb} -m comment --comment "{spn} has no local endpoints" '
                       "-j KUBE-MARK-DROP")
            continue
        local_seps = [sep for sep, ep in seps
                      if tuple(ep.rsplit(":", 1)) in {(i, str(q)) for i, q in s.local_endpoints}]
        n = len(local_seps)
        for i, sep in enumerate(local_seps):
            stat = (f"-m statistic --mode random --probability {1 / (n - i):.11f} "
                    if i < n - 1 else "")
            nat.append(f'-A {xlb} -m comment --comment "Balancing rule {i} for {spn}" {stat}'
                       f"-j {sep}")
    nat.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this '
               'must be the last rule in this chain" -m addrtype --dst-type LOCAL '
               "-j KUBE-NODEPORTS")
    return _dump(filter_chains, filt, nat_chains, nat + sep_rules)


MASQ_MARK_1_1 = "0x4d415351"


def v1_1(services: list[OldService]) -> str:
    """What kube-proxy 1.1's iptables proxier wrote (its first release, 2015)."""
    nat_chains = ["KUBE-SERVICES", "KUBE-NODEPORTS"]
    nat = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" '
        f"-m mark --mark {MASQ_MARK_1_1} -j MASQUERADE",
    ]
    sep_rules: list[str] = []
    for s in services:
        spn, p = s.spn(colon_when_unnamed=True), s.proto
        svc = f"KUBE-SVC-{h16(spn + p)}"
        nat_chains.append(svc)
        nat.append(f'-A KUBE-SERVICES -d {s.cluster_ip}/32 -p {p} -m comment --comment "{spn} '
                   f'cluster IP" -m {p} --dport {s.port} -j {svc}')
        if s.node_port is not None:
            nat.append(f'-A KUBE-NODEPORTS -p {p} -m comment --comment "{spn}" -m {p} '
                       f"--dport {s.node_port} -j MARK --set-xmark {MASQ_MARK_1_1}/0xffffffff")
            nat.append(f'-A KUBE-NODEPORTS -p {p} -m comment --comment "{spn}" -m {p} '
                       f"--dport {s.node_port} -j {svc}")
        seps = [(f"KUBE-SEP-{h16(spn + p + f'{ip}:{port}')}", f"{ip}:{port}")
                for ip, port in s.endpoints]
        if s.affinity_seconds:
            for sep, _ in seps:
                nat.append(f'-A {svc} -m comment --comment "{spn}" -m recent --rcheck --seconds '
                           f"{s.affinity_seconds} --reap --name {sep} --mask 255.255.255.255 "
                           f"--rsource -j {sep}")
        rules, _ = _cascade(spn, p, svc, s.endpoints)
        nat.extend(rules)
        for sep, ep in seps:
            nat_chains.append(sep)
            ip = ep.rsplit(":", 1)[0]
            recent = (f"-m recent --set --name {sep} --mask 255.255.255.255 --rsource "
                      if s.affinity_seconds else "")
            sep_rules.append(f'-A {sep} -s {ip}/32 -m comment --comment "{spn}" -j MARK '
                             f"--set-xmark {MASQ_MARK_1_1}/0xffffffff")
            sep_rules.append(f'-A {sep} -p {p} -m comment --comment "{spn}" {recent}-m {p} '
                             f"-j DNAT --to-destination {ep}")
    nat.append('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this '
               'must be the last rule in this chain" -m addrtype --dst-type LOCAL '
               "-j KUBE-NODEPORTS")
    return _dump([], [], nat_chains, nat + sep_rules)


def portals(services: list[OldService], node_ip: str, proxy_ports: dict[str, int]) -> str:
    """The userspace proxy's portal rules. `proxy_ports`: spn → the port kube-proxy listens on."""
    chains = ["KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST", "KUBE-NODEPORT-CONTAINER",
              "KUBE-NODEPORT-HOST"]
    nat = [
        '-A PREROUTING -m comment --comment "handle ClusterIPs; NOTE: this must be before the '
        'NodePort rules" -j KUBE-PORTALS-CONTAINER',
        '-A PREROUTING -m addrtype --dst-type LOCAL -m comment --comment "handle service '
        'NodePorts; NOTE: this must be the last rule in the chain" -j KUBE-NODEPORT-CONTAINER',
        '-A OUTPUT -m comment --comment "handle ClusterIPs; NOTE: this must be before the '
        'NodePort rules" -j KUBE-PORTALS-HOST',
        '-A OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "handle service NodePorts; '
        'NOTE: this must be the last rule in the chain" -j KUBE-NODEPORT-HOST',
    ]
    for s in services:
        spn, p = s.spn(colon_when_unnamed=True), s.proto
        port = proxy_ports[spn]
        vip = f'-d {s.cluster_ip}/32 -p {p} -m comment --comment "{spn}" -m {p} --dport {s.port}'
        nat.append(f"-A KUBE-PORTALS-CONTAINER {vip} -j REDIRECT --to-ports {port}")
        nat.append(f"-A KUBE-PORTALS-HOST {vip} -j DNAT --to-destination {node_ip}:{port}")
        if s.node_port is not None:
            np = f'-p {p} -m comment --comment "{spn}" -m {p} --dport {s.node_port}'
            nat.append(f"-A KUBE-NODEPORT-CONTAINER {np} -j REDIRECT --to-ports {port}")
            nat.append(f"-A KUBE-NODEPORT-HOST {np} -j DNAT --to-destination {node_ip}:{port}")
    return _dump([], [], chains, nat)


# The example nodes the rules tests and the kernel tests share.
PRE_122_EXAMPLE = pre_122([
    OldService("old", "web", "http", "10.96.10.10", 80, [("10.244.1.11", 8080),
               ("10.244.2.12", 8080)], node_port=30080, external_ips=["192.0.2.50"]),
    OldService("old", "local", "http", "10.96.10.20", 80, [("10.244.1.21", 8080),
               ("10.244.2.22", 8080)], node_port=30081, local_endpoints=[("10.244.1.21", 8080)]),
    OldService("old", "nolocal", "", "10.96.10.30", 80, [("10.244.2.31", 8080)],
               node_port=30082, local_endpoints=[]),
    OldService("old", "empty", "http", "10.96.10.40", 80, []),
], "10.244.0.0/16")

V1_1_EXAMPLE = v1_1([
    OldService("old", "web", "", "10.0.0.50", 80, [("10.244.1.11", 8080), ("10.244.2.12", 8080)],
               node_port=30080),
    OldService("old", "sticky", "", "10.0.0.60", 80, [("10.244.1.31", 80), ("10.244.2.32", 80)],
               affinity_seconds=180),
])

PORTALS_EXAMPLE = portals([
    OldService("old", "kube-dns", "dns", "10.0.0.10", 53, proto="udp", node_port=30053),
    OldService("old", "kubernetes", "", "10.0.0.1", 443, node_port=30443),
], "10.10.0.10", {"old/kube-dns:dns": 60906, "old/kubernetes:": 60058})
