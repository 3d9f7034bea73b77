"""Regenerate the examples: API objects and the node rules kube-proxy 1.36 writes for them.

    python examples/generate.py

`web/`: the classic example — a Deployment `web` with 2 nginx replicas labelled app=web, and a
Service `web` on port 80 — as a snapshot (what `kubectl get … -o json` prints) plus node1's
`iptables-save`, consistent with each other. The rules follow kube-proxy 1.36's iptables mode
exactly as captured in tests/fixtures/rig-v1.36 (same fixed chains, same hash chain names, same
iptables-save normalisation).

`broken/`: the same app after two mistakes: the Service's selector was edited to `app: wep` (a
typo: it now selects nothing), and node1's kube-proxy has not synced since, so its rules still
DNAT to a pod that was replaced (a stale endpoint).

Each folder also holds `node2.nft.txt`: `nft list ruleset` of node2 (10.10.0.20) with
kube-proxy in nftables mode there (kube-proxy 1.36's layout as captured in
tests/fixtures/rig-v1.36/node2.nft.txt; chain names by its §2.4 hash recipe; node2's own
endpoints in `hairpin-connections`; elements one per line). tests/kernel/test_nft_examples.py
loads it with `nft -f` and checks that nft lists back the same ruleset.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from svctrace.rules.kubeproxy import chain_hash  # noqa: E402
from svctrace.rules.kubeproxy_nft import chain_name  # noqa: E402

HERE = Path(__file__).resolve().parent
STAMP = "2026-11-28T12:00:00Z"
NODES = (("node1", "10.10.0.10", "10.244.1.0/24"), ("node2", "10.10.0.20", "10.244.2.0/24"))
PODS = (("web-7d4b9c8f6d-2xkqp", "node1", "10.244.1.23"),
        ("web-7d4b9c8f6d-m8v4z", "node2", "10.244.2.17"))
CLUSTER_IP = "10.96.112.40"


def meta(name: str, namespace: str | None = "default", **extra: object) -> dict:
    m: dict = {"name": name, "creationTimestamp": STAMP, "uid": f"uid-{name}",
               "resourceVersion": "1000"}
    if namespace:
        m["namespace"] = namespace
    m.update(extra)
    return m


def service(selector: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta("web"),
            "spec": {"clusterIP": CLUSTER_IP, "clusterIPs": [CLUSTER_IP],
                     "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
                     "ipFamilyPolicy": "SingleStack", "selector": selector,
                     "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                     "sessionAffinity": "None", "type": "ClusterIP"},
            "status": {"loadBalancer": {}}}


def deployment() -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx",
                                                           "image": "nginx:1.27",
                                                           "ports": [{"containerPort": 80}]}]}}},
            "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}}


def pod(name: str, node: str, ip: str, host: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": meta(name, labels={"app": "web", "pod-template-hash": "7d4b9c8f6d"},
                             ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                               "name": "web-7d4b9c8f6d", "controller": True,
                                               "uid": "uid-rs"}]),
            "spec": {"nodeName": node, "containers": [
                {"name": "nginx", "image": "nginx:1.27",
                 "ports": [{"containerPort": 80, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": host,
                       "startTime": STAMP,
                       "conditions": [{"type": t, "status": "True",
                                       "lastTransitionTime": STAMP}
                                      for t in ("Initialized", "Ready", "ContainersReady",
                                                "PodScheduled")],
                       "containerStatuses": [{"name": "nginx", "ready": True,
                                              "restartCount": 0, "started": True,
                                              "image": "nginx:1.27", "imageID": "",
                                              "state": {"running": {"startedAt": STAMP}},
                                              "lastState": {}}]}}


def endpointslice(pods: tuple[tuple[str, str, str], ...]) -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": meta("web-x7k2p", labels={
                "kubernetes.io/service-name": "web",
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}),
            "endpoints": [{"addresses": [ip], "nodeName": node,
                           "conditions": {"ready": True, "serving": True, "terminating": False},
                           "targetRef": {"kind": "Pod", "name": name, "namespace": "default",
                                         "uid": f"uid-{name}"}}
                          for name, node, ip in pods],
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}] if pods else None}


def node(name: str, ip: str, cidr: str) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": meta(name, None, labels={"kubernetes.io/hostname": name}),
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
            "status": {"addresses": [{"type": "InternalIP", "address": ip},
                                     {"type": "Hostname", "address": name}],
                       "conditions": [{"type": "Ready", "status": "True",
                                       "lastTransitionTime": STAMP}]}}


def snapshot(selector: dict, pods: tuple[tuple[str, str, str], ...]) -> dict:
    hosts = {n: ip for n, ip, _ in NODES}
    items = [service(selector), deployment(), endpointslice(pods)]
    items += [pod(n, nd, ip, hosts[nd]) for n, nd, ip in PODS]
    items += [node(*n) for n in NODES]
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": items}


HEAD = """# Generated by iptables-save v1.8.9 (nf_tables) on Sat Nov 28 12:00:00 2026
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:KUBE-PROXY-CANARY - [0:0]
COMMIT
# Completed on Sat Nov 28 12:00:00 2026
# Generated by iptables-save v1.8.9 (nf_tables) on Sat Nov 28 12:00:00 2026
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-CANARY - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-SERVICES - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS
-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A OUTPUT -j KUBE-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name  ct_state_invalid_dropped_pkts -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
# Completed on Sat Nov 28 12:00:00 2026
"""

KUBERNETES_SVC = (("default/kubernetes:https", "10.96.0.1", 443, ("10.10.0.1:6443",)),)


def nat(services: tuple[tuple[str, str, int, tuple[str, ...]], ...]) -> str:
    """The nat table kube-proxy writes for ClusterIP services, as iptables-save prints it."""
    decls = {"KUBE-MARK-MASQ", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-PROXY-CANARY",
             "KUBE-SERVICES"}
    rules: dict[str, list[str]] = {}
    entries = []
    for spn, cip, port, eps in services:
        svc = "KUBE-SVC-" + chain_hash(spn, "tcp")
        decls.add(svc)
        entries.append(f'-A KUBE-SERVICES -d {cip}/32 -p tcp -m comment --comment "{spn} '
                       f'cluster IP" -m tcp --dport {port} -j {svc}')
        chain = [f'-A {svc} ! -s 10.244.0.0/16 -d {cip}/32 -p tcp -m comment --comment "{spn} '
                 f'cluster IP" -m tcp --dport {port} -j KUBE-MARK-MASQ']
        ordered = sorted(eps)
        for i, ep in enumerate(ordered):
            sep = "KUBE-SEP-" + chain_hash(spn, "tcp", ep)
            decls.add(sep)
            left = len(ordered) - i
            stat = "" if left == 1 else \
                f" -m statistic --mode random --probability {_kernel(1 / left)}"
            chain.append(f'-A {svc} -m comment --comment "{spn} -> {ep}"{stat} -j {sep}')
            ip = ep.rsplit(":", 1)[0]
            rules[sep] = [f'-A {sep} -s {ip}/32 -m comment --comment "{spn}" -j KUBE-MARK-MASQ',
                          f'-A {sep} -p tcp -m comment --comment "{spn}" -m tcp -j DNAT '
                          f"--to-destination {ep}"]
        rules[svc] = chain
    rules["KUBE-SERVICES"] = entries + [
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must '
        'be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS']
    lines = ["# Generated by iptables-save v1.8.9 (nf_tables) on Sat Nov 28 12:00:00 2026",
             "*nat", ":PREROUTING ACCEPT [0:0]", ":INPUT ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]",
             ":POSTROUTING ACCEPT [0:0]"]
    lines += [f":{c} - [0:0]" for c in sorted(decls)]
    lines += ['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
              '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
              '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j '
              "KUBE-POSTROUTING",
              "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
              "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
              "-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0",
              '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring '
              'SNAT" -j MASQUERADE --random-fully']
    for name in sorted(rules):
        lines += rules[name]
    lines += ["COMMIT", "# Completed on Sat Nov 28 12:00:00 2026"]
    return "\n".join(lines) + "\n"


def _kernel(p: float) -> str:
    """The probability as iptables-save prints it: %.11f of the kernel's 31-bit threshold."""
    return f"{round(p * 2**31) / 2**31:.11f}"


MARK = "0x00004000"
NFT_FILTER_CHAINS = """
	chain filter-prerouting-pre-dnat {
		type filter hook prerouting priority dstnat - 10; policy accept;
		ct state new jump firewall-check
	}

	chain filter-output-pre-dnat {
		type filter hook output priority -110; policy accept;
		ct state new jump firewall-check
	}

	chain filter-input {
		type filter hook input priority filter; policy accept;
		ct state new jump nodeport-endpoints-check
		ct state new jump service-endpoints-check
	}

	chain filter-forward {
		type filter hook forward priority filter; policy accept;
		ct state new jump service-endpoints-check
		ct state new jump cluster-ips-check
	}

	chain filter-output {
		type filter hook output priority filter; policy accept;
		ct state new jump service-endpoints-check
		ct state new jump cluster-ips-check
	}

	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}

	chain nat-output {
		type nat hook output priority -100; policy accept;
		jump services
	}

	chain nat-postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		jump masquerading
	}
}
"""


def _elements(items: list[str]) -> list[str]:
    """`elements = { a,` … `z }`, one element per line, indented as nft indents them."""
    if not items:
        return []
    lines = [f"\t\t\t     {item}," for item in items]
    lines[0] = "\t\telements = { " + lines[0].lstrip()
    lines[-1] = lines[-1][:-1] + " }"
    return lines


def _set(kind: str, name: str, typ: str, comment: str, items: list[str]) -> list[str]:
    return [f"\t{kind} {name} {{", f"\t\ttype {typ}", f'\t\tcomment "{comment}"',
            *_elements(items), "\t}", ""]


def nft_listing(services: tuple[tuple[str, str, int, tuple[str, ...]], ...], node: str) -> str:
    """`nft list ruleset` of kube-proxy 1.36 in nftables mode on `node` for ClusterIP services
    (spn, cluster IP, port, endpoints) — the layout of tests/fixtures/rig-v1.36/node2.nft.txt."""
    node_ip = dict((n, ip) for n, ip, _ in NODES)[node]
    local = tuple(ip for _, nd, ip in PODS if nd == node) + ("10.244.2.9",)
    hairpin, service_ips, chains = [], [], []
    for spn, cip, port, eps in services:
        svc = chain_name("svc", spn, "tcp")
        service_ips.append(f"{cip} . tcp . {port} : goto {svc}")
        ordered = sorted(eps)
        picks = ", ".join(f"{i} : {ep.replace(':', ' . ')}" for i, ep in enumerate(ordered))
        chains += [f"\tchain {svc} {{", f"\t\tmeta l4proto tcp dnat ip to numgen random mod "
                   f"{len(ordered)} map {{ {picks} }}", "\t}", ""]
        hairpin += [f"{ip} . {ip} . tcp . {p}" for ip, p in (ep.split(":") for ep in ordered)
                    if ip in local]
    lines = ['table ip kube-proxy {', '\tcomment "rules for kube-proxy"']
    lines += _set("set", "hairpin-connections",
                  "ipv4_addr . ipv4_addr . inet_proto . inet_service",
                  "service hairpin connections", hairpin)
    lines += _set("set", "cluster-ips", "ipv4_addr", "Active ClusterIPs",
                  [cip for _, cip, _, _ in services])
    lines += _set("set", "nodeport-ips", "ipv4_addr", "IPs that accept NodePort traffic",
                  [node_ip])
    lines += _set("map", "no-endpoint-services", "ipv4_addr . inet_proto . inet_service : "
                  "verdict", "vmap to drop or reject packets to services with no endpoints", [])
    lines += _set("map", "no-endpoint-nodeports", "inet_proto . inet_service : verdict",
                  "vmap to drop or reject packets to service nodeports with no endpoints", [])
    lines += _set("map", "firewall-ips", "ipv4_addr . inet_proto . inet_service : verdict",
                  "destinations that are subject to LoadBalancerSourceRanges", [])
    lines += _set("map", "service-ips", "ipv4_addr . inet_proto . inet_service : verdict",
                  "ClusterIP, ExternalIP and LoadBalancer IP traffic", service_ips)
    lines += _set("map", "service-nodeports", "inet_proto . inet_service : verdict",
                  "NodePort traffic", [])
    lines += [
        "\tchain nodeport-endpoints-check {",
        "\t\tip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports",
        "\t}", "", "\tchain service-endpoints-check {",
        "\t\tip daddr . meta l4proto . th dport vmap @no-endpoint-services", "\t}", "",
        "\tchain firewall-check {", "\t\tip daddr . meta l4proto . th dport vmap @firewall-ips",
        "\t}", "", "\tchain services {",
        f"\t\tip daddr @cluster-ips ip saddr != 10.244.0.0/16 meta mark set meta mark | {MARK} "
        'comment "masquerade clusterIP traffic from outside cluster"',
        "\t\tip daddr . meta l4proto . th dport vmap @service-ips",
        "\t\tip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports", "\t}", "",
        "\tchain masquerading {",
        f"\t\tmeta mark & {MARK} != 0x00000000 meta mark set meta mark ^ {MARK} masquerade "
        "fully-random",
        "\t\tct status dnat ip saddr . ip daddr . meta l4proto . th dport @hairpin-connections "
        "masquerade fully-random", "\t}", "", "\tchain cluster-ips-check {",
        '\t\tip daddr @cluster-ips reject comment "Reject traffic to invalid ports of '
        'ClusterIPs"',
        '\t\tip daddr 10.96.0.0/16 drop comment "Drop traffic to unallocated ClusterIPs"', "\t}",
        "", "\tchain reject-chain {",
        '\t\tcomment "helper for @no-endpoint-services / @no-endpoint-nodeports"', "\t\treject",
        "\t}", "", *chains]
    return "\n".join(lines) + "\n" + NFT_FILTER_CHAINS.lstrip("\n")


def write(folder: str, snap: dict, rules: str, nft: str) -> None:
    out = HERE / folder
    out.mkdir(exist_ok=True)
    (out / "cluster.json").write_text(json.dumps(snap, indent=2, sort_keys=True) + "\n")
    (out / "node1.iptables-save.txt").write_text(rules)
    (out / "node2.nft.txt").write_text(nft)


def main() -> None:
    eps = tuple(f"{ip}:80" for _, _, ip in PODS)
    web = (("default/web", CLUSTER_IP, 80, eps), *KUBERNETES_SVC)
    write("web", snapshot({"app": "web"}, PODS), HEAD + nat(web), nft_listing(web, "node2"))
    stale = ("10.244.1.23:80", "10.244.2.9:80")      # 10.244.2.9: the pod before a rollout
    broken = (("default/web", CLUSTER_IP, 80, stale), *KUBERNETES_SVC)
    write("broken", snapshot({"app": "wep"}, ()), HEAD + nat(broken),
          nft_listing(broken, "node2"))


if __name__ == "__main__":
    main()
