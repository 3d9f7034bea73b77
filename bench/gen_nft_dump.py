#!/usr/bin/env python3
"""Generate a kube-proxy-shaped nftables dump (1.36 layout) for N Services.

The same Services as bench/gen_kubeproxy_dump.py (its iptables twin, given the same
--services, --endpoints and --nodeport-every): Service i is `bench-{i%20}/svc-{i}` port
`http` TCP 80 on ClusterIP 10.96.x.y with endpoints 10.244.x.y:8080, every 100th Service has
no endpoints, and every Nth one with endpoints is a NodePort (30000, 30001, …). The layout is
kube-proxy 1.36's (kube-proxy-semantics.md §2.1-§2.5): one `service-` chain per Service that
DNATs through `numgen random mod N map`, `external-` chains for NodePorts, the
`hairpin-connections` set for this node's endpoints (every 10th endpoint lives here), and
chain names by the §2.4 hash recipe.

    python bench/gen_nft_dump.py --services 10000 -o /tmp/nft10k.txt            # nft list text
    python bench/gen_nft_dump.py --services 10000 --form f -o /tmp/nft10k.nft   # nft -f input

Both forms load with `nft -f` (tests/kernel/test_nft_forms.py loads the 1,000-Service ones).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import sys
from dataclasses import dataclass

POD_CIDR, SERVICE_CIDR, NODE_IP = "10.244.0.0/16", "10.96.0.0/16", "10.10.0.10"
MARK = "0x00004000"


def ip4(base: tuple[int, int], index: int) -> str:
    return f"{base[0]}.{base[1]}.{index // 250}.{index % 250 + 1}"


def chain_base(path: str) -> str:
    """§2.4: the first 8 base32 characters of sha256(path), a dash, the path."""
    return base64.b32encode(hashlib.sha256(path.encode()).digest()[:5]).decode() + "-" + path


@dataclass
class Service:
    spn: str                   # ns/name:port
    path: str                  # ns/name/tcp/port
    cluster_ip: str
    endpoints: list[str]       # "IP:port", sorted as kube-proxy sorts them
    nodeport: int | None


def services(n: int, n_endpoints: int, nodeport_every: int) -> list[Service]:
    out, next_port = [], 30000
    for i in range(n):
        ns, name = f"bench-{i % 20:02d}", f"svc-{i:05d}"
        endpoints = [] if i % 100 == 99 else sorted(
            f"{ip4((10, 244), i * n_endpoints + j)}:8080" for j in range(n_endpoints))
        nodeport = None
        if i % nodeport_every == 0 and endpoints:
            nodeport, next_port = next_port, next_port + 1
        out.append(Service(f"{ns}/{name}:http", f"{ns}/{name}/tcp/http", ip4((10, 96), i),
                           endpoints, nodeport))
    return out


def local_endpoints(svcs: list[Service]) -> list[str]:
    """This node's endpoints: every 10th endpoint address."""
    return [ep for s in svcs for ep in s.endpoints
            if int(ep.split(".")[3].split(":")[0]) % 10 == 1]


class Table:
    """kube-proxy's `table ip kube-proxy`: sets/maps with elements, chains with rules."""

    def __init__(self) -> None:
        self.sets: dict[str, tuple[str, str | None, list[str]]] = {}    # type, comment, elems
        self.chains: dict[str, list[str]] = {}
        self.base: dict[str, str] = {}                                   # chain → type line

    def set(self, name: str, type_: str, comment: str | None) -> None:
        self.sets[name] = (type_, comment, [])

    def element(self, name: str, text: str) -> None:
        self.sets[name][2].append(text)

    def rule(self, chain: str, text: str) -> None:
        self.chains.setdefault(chain, []).append(text)


def fixed(t: Table) -> None:
    key3, key2 = "ipv4_addr . inet_proto . inet_service", "inet_proto . inet_service"
    t.set("hairpin-connections", "ipv4_addr . ipv4_addr . inet_proto . inet_service",
          "service hairpin connections")
    t.set("cluster-ips", "ipv4_addr", "Active ClusterIPs")
    t.set("nodeport-ips", "ipv4_addr", "IPs that accept NodePort traffic")
    t.set("no-endpoint-services", f"{key3} : verdict",
          "vmap to drop or reject packets to services with no endpoints")
    t.set("no-endpoint-nodeports", f"{key2} : verdict",
          "vmap to drop or reject packets to service nodeports with no endpoints")
    t.set("firewall-ips", f"{key3} : verdict",
          "destinations that are subject to LoadBalancerSourceRanges")
    t.set("service-ips", f"{key3} : verdict", "ClusterIP, ExternalIP and LoadBalancer IP traffic")
    t.set("service-nodeports", f"{key2} : verdict", "NodePort traffic")
    t.element("nodeport-ips", NODE_IP)
    vmap = "meta l4proto . th dport vmap"
    t.rule("nodeport-endpoints-check", f"ip daddr @nodeport-ips {vmap} @no-endpoint-nodeports")
    t.rule("service-endpoints-check", f"ip daddr . {vmap} @no-endpoint-services")
    t.rule("firewall-check", f"ip daddr . {vmap} @firewall-ips")
    t.rule("services", f"ip daddr @cluster-ips ip saddr != {POD_CIDR} meta mark set meta mark | "
           f'{MARK} comment "masquerade clusterIP traffic from outside cluster"')
    t.rule("services", f"ip daddr . {vmap} @service-ips")
    t.rule("services", f"ip daddr @nodeport-ips {vmap} @service-nodeports")
    t.rule("masquerading", f"meta mark & {MARK} != 0x00000000 meta mark set meta mark ^ {MARK} "
           "masquerade fully-random")
    t.rule("masquerading", "ct status dnat ip saddr . ip daddr . meta l4proto . th dport "
           "@hairpin-connections masquerade fully-random")
    t.rule("cluster-ips-check", 'ip daddr @cluster-ips reject comment "Reject traffic to '
           'invalid ports of ClusterIPs"')
    t.rule("cluster-ips-check", f'ip daddr {SERVICE_CIDR} drop comment "Drop traffic to '
           'unallocated ClusterIPs"')
    t.rule("reject-chain", "reject")


BASE_CHAINS = {   # name → (type, hook, priority as nft lists it, as kube-proxy writes it, jumps)
    "filter-prerouting-pre-dnat": ("filter", "prerouting", "dstnat - 10", "-110",
                                   ["firewall-check"]),
    "filter-output-pre-dnat": ("filter", "output", "-110", "-110", ["firewall-check"]),
    "filter-input": ("filter", "input", "filter", "0",
                     ["nodeport-endpoints-check", "service-endpoints-check"]),
    "filter-forward": ("filter", "forward", "filter", "0",
                       ["service-endpoints-check", "cluster-ips-check"]),
    "filter-output": ("filter", "output", "filter", "0",
                      ["service-endpoints-check", "cluster-ips-check"]),
    "nat-prerouting": ("nat", "prerouting", "dstnat", "-100", ["services"]),
    "nat-output": ("nat", "output", "-100", "-100", ["services"]),
    "nat-postrouting": ("nat", "postrouting", "srcnat", "100", ["masquerading"]),
}


def service(t: Table, s: Service) -> None:
    t.element("cluster-ips", s.cluster_ip)
    base = chain_base(s.path)
    if not s.endpoints:
        t.element("no-endpoint-services",
                  f'{s.cluster_ip} . tcp . 80 comment "{s.spn}" : goto reject-chain')
        return
    svc = f"service-{base}"
    t.element("service-ips", f"{s.cluster_ip} . tcp . 80 : goto {svc}")
    targets = ", ".join(f"{k} : {ep.replace(':', ' . ')}" for k, ep in enumerate(s.endpoints))
    t.rule(svc, f"meta l4proto tcp dnat ip to numgen random mod {len(s.endpoints)} map "
           f"{{ {targets} }}")
    if s.nodeport is not None:
        ext = f"external-{base}"
        t.element("service-nodeports", f"tcp . {s.nodeport} : goto {ext}")
        t.rule(ext, f'meta mark set meta mark | {MARK} comment "masquerade"')
        t.rule(ext, f"goto {svc}")


def build(svcs: list[Service]) -> Table:
    t = Table()
    fixed(t)
    for s in svcs:
        service(t, s)
    for ep in local_endpoints(svcs):
        ip, port = ep.split(":")
        t.element("hairpin-connections", f"{ip} . {ip} . tcp . {port}")
    for name, (_, _, _, _, jumps) in BASE_CHAINS.items():
        guard = "" if name.startswith("nat-") else "ct state new "
        for target in jumps:
            t.rule(name, f"{guard}jump {target}")
    return t


def listing(t: Table) -> str:
    """As `nft list ruleset` prints it."""
    out = ["table ip kube-proxy {", '\tcomment "rules for kube-proxy"']
    for name, (type_, comment, elems) in t.sets.items():
        kind = "map" if ":" in type_ else "set"
        out += [f"\t{kind} {name} {{", f"\t\ttype {type_}"]
        if comment:
            out.append(f'\t\tcomment "{comment}"')
        if elems:
            out.append("\t\telements = { " + ",\n\t\t\t     ".join(elems) + " }")
        out += ["\t}", ""]
    for name, rules in t.chains.items():
        out.append(f"\tchain {name} {{")
        if name in BASE_CHAINS:
            type_, hook, listed, _, _ = BASE_CHAINS[name]
            out.append(f"\t\ttype {type_} hook {hook} priority {listed}; policy accept;")
        if name == "reject-chain":
            out.append('\t\tcomment "helper for @no-endpoint-services / @no-endpoint-nodeports"')
        out += [f"\t\t{r}" for r in rules] + ["\t}", ""]
    out[-1] = "}"
    return "\n".join(out) + "\n"


def transaction(t: Table) -> str:
    """As kube-proxy sends it to `nft -f` (its input spelling, §2.7)."""
    out = ['add table ip kube-proxy { comment "rules for kube-proxy" ; }']
    for name in t.chains:
        spec = ""
        if name in BASE_CHAINS:
            type_, hook, _, written, _ = BASE_CHAINS[name]
            spec = f" {{ type {type_} hook {hook} priority {written} ; }}"
        elif name == "reject-chain":
            spec = ' { comment "helper for @no-endpoint-services / @no-endpoint-nodeports" ; }'
        out.append(f"add chain ip kube-proxy {name}{spec}")
    for name, (type_, comment, _) in t.sets.items():
        kind = "map" if ":" in type_ else "set"
        extra = f' comment "{comment}" ;' if comment else ""
        out.append(f"add {kind} ip kube-proxy {name} {{ type {type_} ;{extra} }}")
    for name, rules in t.chains.items():
        out += [f"add rule ip kube-proxy {name} {_input_spelling(r)}" for r in rules]
    for name, (_, _, elems) in t.sets.items():
        out += [f"add element ip kube-proxy {name} {{ {e} }}" for e in elems]
    return "\n".join(out) + "\n"


def _input_spelling(rule: str) -> str:
    return (rule.replace(f"meta mark set meta mark | {MARK}", "mark set mark or 0x4000")
            .replace(f"meta mark set meta mark ^ {MARK}", "mark set mark xor 0x4000")
            .replace(f"meta mark & {MARK} != 0x00000000", "mark and 0x4000 != 0")
            .replace("dnat ip to", "dnat ip addr . port to"))


def generate(n_services: int, n_endpoints: int, nodeport_every: int, form: str) -> str:
    table = build(services(n_services, n_endpoints, nodeport_every))
    return listing(table) if form == "text" else transaction(table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=5)
    ap.add_argument("--nodeport-every", type=int, default=10)
    ap.add_argument("--form", choices=("text", "f"), default="text",
                    help="text: `nft list ruleset` output; f: `nft -f` input")
    ap.add_argument("-o", "--output", default="-", help="file to write ('-' = stdout)")
    args = ap.parse_args(argv)
    if not 1 <= args.services <= 60000 or not 1 <= args.endpoints <= 100 or \
            args.nodeport_every < 1:
        ap.error("--services must be 1..60000, --endpoints 1..100, --nodeport-every >= 1")
    text = generate(args.services, args.endpoints, args.nodeport_every, args.form)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
