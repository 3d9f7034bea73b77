#!/usr/bin/env python3
"""Generate a kube-proxy-shaped `iptables-save` dump (iptables mode) for N Services.

The text is what iptables-save prints after kube-proxy's restore (kube-proxy-semantics.md §1.3,
§1.4, §1.7): header/footer lines, raw/mangle/filter/nat tables with KUBE-PROXY-CANARY, built-in
chains first then user chains alphabetically, rules grouped by chain, `-d/-p` moved to the front,
comments quoted unless they are only [A-Za-z0-9_-], probabilities as the kernel prints them
(%.11f of the 31-bit threshold), real chain-name hashes, hairpin + DNAT in every KUBE-SEP chain.
Above 1,000 endpoints in total kube-proxy's large-cluster mode is used (no per-endpoint comments).

    python bench/gen_kubeproxy_dump.py --services 10000 --endpoints 5 -o /tmp/dump10k.txt

Every 50th Service (--nodeport-every N: every Nth) is a NodePort (KUBE-EXT chain), every 100th
has no endpoints (filter REJECT).
The output loads with `iptables-legacy-restore --test` and `iptables-nft-restore --test`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import sys

STAMP = "Sat Nov 28 16:18:17 2026"
POD_CIDR = "10.244.0.0/16"
_PLAIN = re.compile(r"^[A-Za-z0-9_-]+$")


def h16(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def q(comment: str) -> str:
    """iptables-save quotes a comment unless it is only [A-Za-z0-9_-]."""
    return comment if _PLAIN.match(comment) else f'"{comment}"'


def printed_probability(n_left: int) -> str:
    """1/n as the kernel stores it (lround(p * 2^31)) and iptables-save prints it (%.11f)."""
    return f"{round(2**31 / n_left) / 2**31:.11f}"


def ip4(base: tuple[int, int], index: int) -> str:
    return f"{base[0]}.{base[1]}.{index // 250}.{index % 250 + 1}"


class Dump:
    def __init__(self) -> None:
        self.chains: dict[str, list[str]] = {}

    def rule(self, chain: str, text: str) -> None:
        self.chains.setdefault(chain, []).append(f"-A {chain} {text}")

    def declare(self, chain: str) -> None:
        self.chains.setdefault(chain, [])


def service(nat: Dump, flt: Dump, i: int, n_ep: int, large: bool, nodeport: int | None) -> None:
    ns, name = f"bench-{i % 20:02d}", f"svc-{i:05d}"
    spn = f"{ns}/{name}:http"
    h = h16(spn + "tcp")
    cip = ip4((10, 96), i)
    if n_ep == 0:
        flt.rule("KUBE-SERVICES", f"-d {cip}/32 -p tcp -m comment --comment "
                 f"{q(spn + ' has no endpoints')} -m tcp --dport 80 -j REJECT --reject-with "
                 "icmp-port-unreachable")
        return
    svc = f"KUBE-SVC-{h}"
    nat.rule("KUBE-SERVICES", f"-d {cip}/32 -p tcp -m comment --comment {q(spn + ' cluster IP')} "
             f"-m tcp --dport 80 -j {svc}")
    nat.rule(svc, f"! -s {POD_CIDR} -d {cip}/32 -p tcp -m comment --comment "
             f"{q(spn + ' cluster IP')} -m tcp --dport 80 -j KUBE-MARK-MASQ")
    if nodeport is not None:
        ext = f"KUBE-EXT-{h}"
        nat.rule("KUBE-NODEPORTS", f"-p tcp -m comment --comment {q(spn)} -m tcp --dport "
                 f"{nodeport} -j {ext}")
        masq = q(f"masquerade traffic for {spn} external destinations")
        nat.rule(ext, f"-m comment --comment {masq} "
                 "-j KUBE-MARK-MASQ")
        nat.rule(ext, f"-j {svc}")
    endpoints = sorted(f"{ip4((10, 244), i * n_ep + j)}:8080" for j in range(n_ep))
    for k, ep in enumerate(endpoints):
        sep = f"KUBE-SEP-{h16(spn + 'tcp' + ep)}"
        comment = "" if large else f"-m comment --comment {q(f'{spn} -> {ep}')} "
        stat = "" if k == n_ep - 1 else \
            f"-m statistic --mode random --probability {printed_probability(n_ep - k)} "
        nat.rule(svc, f"{comment}{stat}-j {sep}")
        sep_comment = "" if large else f" -m comment --comment {q(spn)}"
        nat.rule(sep, f"-s {ep.rsplit(':', 1)[0]}/32{sep_comment} -j KUBE-MARK-MASQ")
        nat.rule(sep, f"-p tcp{sep_comment} -m tcp -j DNAT --to-destination {ep}")


def fixed_filter(flt: Dump) -> None:
    for chain in ("KUBE-EXTERNAL-SERVICES", "KUBE-FIREWALL", "KUBE-FORWARD", "KUBE-NODEPORTS",
                  "KUBE-PROXY-CANARY", "KUBE-PROXY-FIREWALL", "KUBE-SERVICES"):
        flt.declare(chain)
    new = "-m conntrack --ctstate NEW -m comment --comment"
    flt.rule("INPUT", "-j KUBE-FIREWALL")
    flt.rule("INPUT", f'{new} "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL')
    flt.rule("INPUT", '-m comment --comment "kubernetes health check service ports" '
             "-j KUBE-NODEPORTS")
    flt.rule("INPUT", f'{new} "kubernetes externally-visible service portals" '
             "-j KUBE-EXTERNAL-SERVICES")
    flt.rule("FORWARD", f'{new} "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL')
    flt.rule("FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD')
    flt.rule("FORWARD", f'{new} "kubernetes service portals" -j KUBE-SERVICES')
    flt.rule("FORWARD", f'{new} "kubernetes externally-visible service portals" '
             "-j KUBE-EXTERNAL-SERVICES")
    flt.rule("OUTPUT", "-j KUBE-FIREWALL")
    flt.rule("OUTPUT", f'{new} "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL')
    flt.rule("OUTPUT", f'{new} "kubernetes service portals" -j KUBE-SERVICES')
    flt.rule("KUBE-FIREWALL", '! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block '
             'incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT '
             "-j DROP")
    flt.rule("KUBE-FORWARD", "-m conntrack --ctstate INVALID -j DROP")
    flt.rule("KUBE-FORWARD", '-m comment --comment "kubernetes forwarding rules" -m mark --mark '
             "0x4000/0x4000 -j ACCEPT")
    flt.rule("KUBE-FORWARD", '-m comment --comment "kubernetes forwarding conntrack rule" '
             "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")


def fixed_nat(nat: Dump) -> None:
    for chain in ("KUBE-MARK-MASQ", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-PROXY-CANARY",
                  "KUBE-SERVICES"):
        nat.declare(chain)
    portals = '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'
    nat.rule("PREROUTING", portals)
    nat.rule("OUTPUT", portals)
    nat.rule("POSTROUTING", '-m comment --comment "kubernetes postrouting rules" '
             "-j KUBE-POSTROUTING")
    nat.rule("KUBE-MARK-MASQ", "-j MARK --set-xmark 0x4000/0x4000")
    nat.rule("KUBE-POSTROUTING", "-m mark ! --mark 0x4000/0x4000 -j RETURN")
    nat.rule("KUBE-POSTROUTING", "-j MARK --set-xmark 0x4000/0x0")
    nat.rule("KUBE-POSTROUTING", '-m comment --comment "kubernetes service traffic requiring '
             'SNAT" -j MASQUERADE --random-fully')


BUILTINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}


def emit(name: str, dump: Dump, out: list[str]) -> None:
    out.append(f"# Generated by iptables-save v1.8.9 (legacy) on {STAMP}")
    out.append(f"*{name}")
    builtins = BUILTINS[name]
    user = sorted(c for c in dump.chains if c not in builtins)
    out.extend(f":{c} ACCEPT [0:0]" for c in builtins)
    out.extend(f":{c} - [0:0]" for c in user)
    for chain in (*builtins, *user):
        out.extend(dump.chains.get(chain, ()))
    out.append("COMMIT")
    out.append(f"# Completed on {STAMP}")


def generate(n_services: int, n_endpoints: int, nodeport_every: int = 50) -> str:
    tables = {name: Dump() for name in BUILTINS}
    tables["mangle"].declare("KUBE-PROXY-CANARY")
    nat, flt = tables["nat"], tables["filter"]
    fixed_filter(flt)
    fixed_nat(nat)
    no_ep = {i for i in range(n_services) if i % 100 == 99}
    large = (n_services - len(no_ep)) * n_endpoints > 1000
    nodeport_index = 0
    for i in range(n_services):
        nodeport = None
        if i % nodeport_every == 0 and i not in no_ep:
            nodeport, nodeport_index = 30000 + nodeport_index, nodeport_index + 1
        service(nat, flt, i, 0 if i in no_ep else n_endpoints, large, nodeport)
    nat.rule("KUBE-SERVICES", '-m comment --comment "kubernetes service nodeports; NOTE: this '
             'must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS')
    out: list[str] = []
    for name in ("raw", "mangle", "filter", "nat"):
        emit(name, tables[name], out)
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=5)
    ap.add_argument("--nodeport-every", type=int, default=50,
                    help="every Nth Service is a NodePort (gen_nft_dump.py's twin: 10)")
    ap.add_argument("-o", "--output", default="-", help="file to write ('-' = stdout)")
    args = ap.parse_args(argv)
    if args.services < 1 or args.services > 60000 or not 1 <= args.endpoints <= 100:
        ap.error("--services must be 1..60000 and --endpoints 1..100")
    text = generate(args.services, args.endpoints, max(1, args.nodeport_every))
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
