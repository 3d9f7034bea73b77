"""Declarative tables of the nft language: data types of expressions, symbolic constants and
named chain priorities, as nft 1.0.6 defines and prints them (src/datatype.c, src/proto.c,
src/meta.c, src/ct.c, src/rule.c in the nftables sources; checked by listing rules back)."""

from __future__ import annotations

# payload protocol → field → data type
PAYLOAD_TYPES: dict[str, dict[str, str]] = {
    "ip": {"saddr": "ipv4_addr", "daddr": "ipv4_addr", "protocol": "inet_proto",
           "dscp": "dscp", "ttl": "integer", "length": "integer", "id": "integer",
           "version": "integer", "hdrlength": "integer", "ecn": "ecn",
           "frag-off": "integer", "checksum": "integer"},
    "ip6": {"saddr": "ipv6_addr", "daddr": "ipv6_addr", "nexthdr": "inet_proto",
            "hoplimit": "integer", "flowlabel": "integer", "dscp": "dscp",
            "length": "integer", "version": "integer", "ecn": "ecn"},
    "th": {"sport": "inet_service", "dport": "inet_service"},
    "tcp": {"sport": "inet_service", "dport": "inet_service", "flags": "tcp_flag",
            "sequence": "integer", "ackseq": "integer", "window": "integer",
            "checksum": "integer", "urgptr": "integer", "doff": "integer"},
    "udp": {"sport": "inet_service", "dport": "inet_service", "length": "integer",
            "checksum": "integer"},
    "udplite": {"sport": "inet_service", "dport": "inet_service"},
    "sctp": {"sport": "inet_service", "dport": "inet_service", "vtag": "integer"},
    "dccp": {"sport": "inet_service", "dport": "inet_service", "type": "dccp_pkttype"},
    "icmp": {"type": "icmp_type", "code": "icmp_code", "id": "integer",
             "sequence": "integer", "mtu": "integer", "gateway": "ipv4_addr"},
    "icmpv6": {"type": "icmpv6_type", "code": "icmpv6_code", "id": "integer",
               "sequence": "integer", "mtu": "integer"},
    "ether": {"saddr": "ether_addr", "daddr": "ether_addr", "type": "ether_type"},
    "vlan": {"id": "integer", "pcp": "integer", "cfi": "integer", "type": "ether_type"},
    "arp": {"htype": "integer", "ptype": "ether_type", "hlen": "integer", "plen": "integer",
            "operation": "arp_op", "saddr ip": "ipv4_addr", "daddr ip": "ipv4_addr"},
    "ah": {"nexthdr": "inet_proto", "spi": "integer", "sequence": "integer"},
    "esp": {"spi": "integer", "sequence": "integer"},
    "comp": {"nexthdr": "inet_proto", "flags": "integer", "cpi": "integer"},
    "igmp": {"type": "igmp_type", "mrt": "integer", "group": "ipv4_addr"},
    "gre": {"protocol": "ether_type", "version": "integer", "flags": "integer"},
}

META_TYPES: dict[str, str] = {
    "mark": "mark", "l4proto": "inet_proto", "nfproto": "nf_proto", "protocol": "ether_type",
    "iif": "iface_index", "oif": "iface_index", "iifname": "ifname", "oifname": "ifname",
    "iiftype": "iface_type", "oiftype": "iface_type", "iifgroup": "devgroup",
    "oifgroup": "devgroup", "pkttype": "pkt_type", "skuid": "uid", "skgid": "gid",
    "length": "integer", "priority": "classid", "nftrace": "integer", "rtclassid": "realm",
    "cpu": "integer", "cgroup": "integer", "random": "integer", "secpath": "boolean",
    "ibrname": "ifname", "obrname": "ifname", "ibriport": "ifname", "obriport": "ifname",
    "iifkind": "ifname", "oifkind": "ifname", "time": "time", "day": "day", "hour": "hour",
}
# meta keys the grammar accepts without `meta`
UNQUALIFIED_META_INPUT = frozenset({"mark", "iif", "iifname", "iiftype", "oif", "oifname",
                                    "oiftype", "skuid", "skgid", "nftrace", "rtclassid",
                                    "pkttype", "cpu", "iifgroup", "oifgroup", "cgroup",
                                    "ibrname", "obrname", "ibriport", "obriport"})

CT_TYPES: dict[str, str] = {
    "state": "ct_state", "status": "ct_status", "mark": "mark", "direction": "ct_dir",
    "expiration": "time", "helper": "string", "l3proto": "nf_proto", "protocol": "inet_proto",
    "saddr": "ipv4_addr", "daddr": "ipv4_addr", "proto-src": "inet_service",
    "proto-dst": "inet_service", "zone": "integer", "count": "integer", "id": "integer",
    "label": "ct_label", "event": "ct_event", "secmark": "integer", "bytes": "integer",
    "packets": "integer", "avgpkt": "integer",
}
CT_DIRECTIONS = frozenset({"original", "reply"})

FIB_RESULTS = {"type": "fib_addrtype", "oif": "boolean", "oifname": "ifname"}
FIB_FLAGS = frozenset({"saddr", "daddr", "mark", "iif", "oif"})

# bit flags: value → name, in nft's printing order (by bit)
BITMASKS: dict[str, dict[int, str]] = {
    "ct_state": {1: "invalid", 2: "established", 4: "related", 8: "new", 64: "untracked"},
    "ct_status": {1: "expected", 2: "seen-reply", 4: "assured", 8: "confirmed", 16: "snat",
                  32: "dnat", 512: "dying"},
    "tcp_flag": {1: "fin", 2: "syn", 4: "rst", 8: "psh", 16: "ack", 32: "urg", 64: "ecn",
                 128: "cwr"},
}

INET_PROTOS: dict[int, str] = {
    0: "ip", 1: "icmp", 2: "igmp", 4: "ipencap", 6: "tcp", 17: "udp", 33: "dccp", 41: "ipv6",
    47: "gre", 50: "esp", 51: "ah", 58: "ipv6-icmp", 89: "ospf", 103: "pim", 132: "sctp",
    136: "udplite",
}
PROTO_ALIASES = {"icmpv6": "ipv6-icmp"}

# symbolic values of other types, number → name, for `nft -n` output
SYMBOLS: dict[str, dict[int, str]] = {
    "nf_proto": {2: "ipv4", 10: "ipv6"},
    "ether_type": {0x0800: "ip", 0x0806: "arp", 0x86dd: "ip6", 0x8100: "8021q",
                   0x88a8: "8021ad", 0x8035: "rarp"},
    "pkt_type": {0: "host", 1: "broadcast", 2: "multicast", 3: "other"},
    "fib_addrtype": {0: "unspec", 1: "unicast", 2: "local", 3: "broadcast", 4: "anycast",
                     5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit"},
    "ct_dir": {0: "original", 1: "reply"},
    "dscp": {0: "cs0", 8: "cs1", 16: "cs2", 24: "cs3", 32: "cs4", 40: "cs5", 48: "cs6",
             56: "cs7", 10: "af11", 12: "af12", 14: "af13", 18: "af21", 20: "af22", 22: "af23",
             26: "af31", 28: "af32", 30: "af33", 34: "af41", 36: "af42", 38: "af43",
             46: "ef", 44: "va", 1: "le"},
    "icmp_type": {0: "echo-reply", 3: "destination-unreachable", 4: "source-quench",
                  5: "redirect", 8: "echo-request", 9: "router-advertisement",
                  10: "router-solicitation", 11: "time-exceeded", 12: "parameter-problem",
                  13: "timestamp-request", 14: "timestamp-reply", 15: "info-request",
                  16: "info-reply", 17: "address-mask-request", 18: "address-mask-reply"},
    "icmpv6_type": {1: "destination-unreachable", 2: "packet-too-big", 3: "time-exceeded",
                    4: "parameter-problem", 128: "echo-request", 129: "echo-reply",
                    130: "mld-listener-query", 131: "mld-listener-report",
                    132: "mld-listener-done", 133: "nd-router-solicit",
                    134: "nd-router-advert", 135: "nd-neighbor-solicit",
                    136: "nd-neighbor-advert", 137: "nd-redirect", 138: "router-renumbering",
                    141: "ind-neighbor-solicit", 142: "ind-neighbor-advert",
                    143: "mld2-listener-report"},
}

# reject codes by reject type, for `nft -n` (`reject with icmpx 3`)
REJECT_CODES: dict[str, dict[int, str]] = {
    "icmp": {0: "net-unreachable", 1: "host-unreachable", 2: "prot-unreachable",
             3: "port-unreachable", 9: "net-prohibited", 10: "host-prohibited",
             13: "admin-prohibited"},
    "icmpv6": {0: "no-route", 1: "admin-prohibited", 3: "addr-unreachable",
               4: "port-unreachable", 5: "policy-fail", 6: "reject-route"},
    "icmpx": {0: "no-route", 1: "port-unreachable", 2: "host-unreachable",
              3: "admin-prohibited"},
}

# well-known service names (nft accepts /etc/services names; prints numbers by default)
SERVICES: dict[str, int] = {
    "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53, "dns": 53, "bootps": 67,
    "bootpc": 68, "http": 80, "pop3": 110, "ntp": 123, "imap": 143, "snmp": 161,
    "bgp": 179, "ldap": 389, "https": 443, "submission": 587, "imaps": 993, "pop3s": 995,
    "mysql": 3306, "postgresql": 5432, "http-alt": 8080,
}

# named priorities: (family group, name) → number; nft src/rule.c std_prios / bridge_std_prios
STD_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50,
                  "srcnat": 100}
BRIDGE_PRIORITIES = {"dstnat": -300, "filter": -200, "out": 100, "srcnat": 300}

# typeof EXPR → type name, for `typeof` set declarations
TYPEOF_TYPES: dict[str, str] = {
    **{f"{proto} {field}": dtype for proto, fields in PAYLOAD_TYPES.items()
       for field, dtype in fields.items()},
    **{f"meta {key}": dtype for key, dtype in META_TYPES.items()},
    **{key: META_TYPES[key] for key in UNQUALIFIED_META_INPUT if key in META_TYPES},
    **{f"ct {key}": dtype for key, dtype in CT_TYPES.items()},
    "fib daddr type": "fib_addrtype", "fib saddr type": "fib_addrtype",
    "numgen random": "integer", "numgen inc": "integer",
}

VERDICT_WORDS = frozenset({"accept", "drop", "continue", "return"})
