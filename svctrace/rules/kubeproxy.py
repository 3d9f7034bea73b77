"""kube-proxy's iptables mode read backwards: chain-name hashes, and rules → service ports.

kube-proxy names its chains `KUBE-{SVC,SVL,EXT,FW}-<h16(spn + proto)>` and
`KUBE-SEP-<h16(spn + proto + endpoint)>` (kube-proxy-semantics.md §1.2). `map_services` walks the
structure kube-proxy builds (nat KUBE-SERVICES / KUBE-NODEPORTS entries → FW → EXT → SVC/SVL → SEP
→ DNAT, filter verdicts) and never depends on per-endpoint comments, which kube-proxy drops above
1,000 endpoints (§1.4.10). Comments only supply names, and only when their hash matches the chain.

Speed: a node can have 200,000+ rules. Rule text is what iptables-save printed, so the few fields
needed here are read from the text directly where that is exact (no backslash escapes; quoted
strings are single tokens); anything else goes through the full parser (`rule.matches`).
"""

from __future__ import annotations

import base64
import gc
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace

from svctrace.errors import RulesError
from svctrace.model.kubeproxy import (
    EndpointChain,
    EntryRule,
    FilterRule,
    LocalHint,
    MasqueradeRule,
    ServiceChains,
)
from svctrace.model.ruleset import Chain, ChainMap, Rule, Ruleset, Table
from svctrace.model.trace import Step
from svctrace.rules.iptables_save import parse_rule_text
from svctrace.rules.ruletext import (  # noqa: F401 - _parsed_fields: tests compare both readers
    Fields,
    _condition,
    _condition_of,
    _fields,
    _ip,
    _option_in,
    _parsed_fields,
    _port,
    _raw_jump,
    _target,
    _unquoted_head,
    spn_from_comment,
    valid_endpoint,
    valid_prefix,
)

__all__ = [
    "ServiceChains", "EndpointChain", "EntryRule", "FilterRule", "MasqueradeRule", "LocalHint",
    "chain_hash", "service_chain", "local_chain", "external_chain", "firewall_chain",
    "endpoint_chain", "identify", "split_spn", "map_services", "infer_pod_cidr",
    "infer_local_hints", "kernel_probability", "layout_notes", "ipvs_mode", "nodeport_owner",
]

PROTOCOLS = ("tcp", "udp", "sctp")
# KUBE-XLB- (eTP=Local before 1.24) was the external chain of its day: it plays the EXT role
_PREFIXES = {"KUBE-SVC-": "svc", "KUBE-SVL-": "svl", "KUBE-EXT-": "ext", "KUBE-FW-": "fw",
             "KUBE-XLB-": "ext"}
_ROLE_PREFIXES = tuple(_PREFIXES)
_MASQ = "KUBE-MARK-MASQ"
_JUMP_MASQ = " -j KUBE-MARK-MASQ"
# kube-proxy 1.1 marked for masquerade itself, with "MASQ" in ASCII (no KUBE-MARK-MASQ chain)
_MARK_MASQ_1_1 = " -j MARK --set-xmark 0x4d415351/0xffffffff"
_DNAT = " -j DNAT --to-destination "
_KERNEL_P: dict[str, float] = {}      # printed probability → kernel value (few distinct ones)


# --- chain names (§1.2) ------------------------------------------------------------------------

def chain_hash(spn: str, proto: str, endpoint: str = "") -> str:
    """h16: the first 16 base32 characters of sha256(spn + proto + endpoint), no separators."""
    digest = hashlib.sha256(f"{spn}{proto.lower()}{endpoint}".encode()).digest()
    return base64.b32encode(digest[:10]).decode("ascii")   # 10 bytes = exactly 16 characters


def service_chain(spn: str, proto: str) -> str:
    """KUBE-SVC-…: the cluster-policy chain (all usable endpoints)."""
    return "KUBE-SVC-" + chain_hash(spn, proto)


def local_chain(spn: str, proto: str) -> str:
    """KUBE-SVL-…: the local-policy chain (endpoints on this node only)."""
    return "KUBE-SVL-" + chain_hash(spn, proto)


def external_chain(spn: str, proto: str) -> str:
    """KUBE-EXT-…: traffic to NodePorts, externalIPs and LoadBalancer IPs."""
    return "KUBE-EXT-" + chain_hash(spn, proto)


def firewall_chain(spn: str, proto: str) -> str:
    """KUBE-FW-…: loadBalancerSourceRanges filtering of LoadBalancer IPs."""
    return "KUBE-FW-" + chain_hash(spn, proto)


def endpoint_chain(spn: str, proto: str, endpoint: str) -> str:
    """KUBE-SEP-…: one endpoint ("IP:port" or "[IPv6]:port", the target port) of a service port."""
    return "KUBE-SEP-" + chain_hash(spn, proto, endpoint)


def identify(service_port_names: Iterable[str | tuple[str, str]]) -> dict[str, str]:
    """Map chain hashes to service port names, for naming chains that carry no comment.

    Give `"ns/name:port"` (all three protocols are tried) or `("ns/name:port", "udp")` pairs,
    e.g. computed from API objects. The result is what `map_services(..., names=)` accepts.
    """
    out: dict[str, str] = {}
    for item in service_port_names:
        spn, protos = (item, PROTOCOLS) if isinstance(item, str) else (item[0], (item[1],))
        for proto in protos:
            out[chain_hash(spn, proto)] = spn
    return out


def split_spn(spn: str) -> tuple[str, str, str]:
    """`ns/name:port` → (ns, name, port); `ns/name` → (ns, name, "")."""
    namespace, _, rest = spn.partition("/")
    name, _, port = rest.partition(":")
    return namespace, name, port


def kernel_probability(printed: str | float) -> float:
    """The probability xt_statistic really uses: a 31-bit threshold, round(p * 2^31) / 2^31.

    iptables(8) stores lround(p * 0x80000000) and iptables-save prints it back with %.11f, so the
    printed 0.33333333349 is exactly 715827883 / 2^31. Raises ValueError on a non-number.
    """
    p = float(printed)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability {printed!r} is not between 0 and 1")
    return round(p * 2**31) / 2**31


# --- mapping rules → service ports -------------------------------------------------------------

class _Builder:
    """Mutable accumulator for one chain hash; frozen into a ServiceChains at the end."""

    def __init__(self, h: str) -> None:
        self.hash = h
        self.protocol: str | None = None
        self.port: int | None = None
        self.names: list[str] = []           # candidate service port names, best first
        self.entries: list[EntryRule] = []
        self.node_port: int | None = None
        self.health_check: int | None = None
        self.chains: dict[str, str | None] = dict.fromkeys(("svc", "svl", "ext", "fw"))
        self.endpoints: list[EndpointChain] = []
        self.affinity: int | None = None
        self.source_ranges: list[str] = []
        self.masquerade: list[MasqueradeRule] = []
        self.filter: list[FilterRule] = []
        self.entries_filter_cluster_ips: list[str] = []
        self.chain_objects: list[Chain] = []  # FW, EXT, SVC, SVL, then SEP chains
        self.warnings: list[str] = []

    def note_comment(self, fields: Fields) -> None:
        comment = fields.get("comment")
        if comment is not None:
            spn, _ = spn_from_comment(comment[0])
            if spn is not None:
                self.names.append(spn)

    def name(self, names: Mapping[str, str] | None) -> str | None:
        """The first candidate whose hash is this chain's; else the caller's name; else any."""
        protos = (self.protocol,) if self.protocol else PROTOCOLS
        for spn in dict.fromkeys(self.names):
            for proto in protos:
                if chain_hash(spn, proto) == self.hash:
                    self.protocol = proto
                    return spn
        if names and self.hash in names:
            return names[self.hash]
        if self.names:
            self.warnings.append(f"comment name {self.names[0]!r} does not hash to *-{self.hash}")
            return self.names[0]
        return None

    def freeze(self, names: Mapping[str, str] | None, family: int = 4) -> ServiceChains:
        spn = self.name(names)
        if not self.entries and not self.filter:
            chains = [c for c in self.chains.values() if c is not None]
            if chains:
                self.warnings.append(
                    f"no rule in nat KUBE-SERVICES or KUBE-NODEPORTS jumps to {chains[0]}: no "
                    "packet reaches these chains (stale, or a half-written node)")
        ns, name, port_name = split_spn(spn) if spn is not None else (None, None, None)
        kinds: dict[str, list[str]] = {"clusterIP": [], "externalIP": [], "loadBalancerIP": []}
        for entry in self.entries:
            if entry.address is not None and entry.kind in kinds:
                kinds[entry.kind].append(entry.address)
        kinds["clusterIP"].extend(self.entries_filter_cluster_ips)
        for f in self.filter:
            if f.reason == "firewall" and f.address is not None:
                kinds["loadBalancerIP"].append(f.address)
        return ServiceChains(
            hash=self.hash, protocol=self.protocol or "", namespace=ns, name=name,
            port_name=port_name, port=self.port,
            cluster_ips=_unique(kinds["clusterIP"]), external_ips=_unique(kinds["externalIP"]),
            load_balancer_ips=_unique(kinds["loadBalancerIP"]), node_port=self.node_port,
            health_check_node_port=self.health_check, chains=self.chains,
            endpoints=tuple(self.endpoints), affinity_seconds=self.affinity,
            source_ranges=tuple(self.source_ranges), masquerade=tuple(self.masquerade),
            filter=tuple(self.filter), entries=tuple(self.entries),
            warnings=tuple(self.warnings), family=family,
            chain_list=_chain_order(self.chain_objects))


def _chain_order(chains: list[Chain]) -> tuple[Chain, ...]:
    """Each chain once (an endpoint can be reached from both SVC and SVL), in the order found."""
    return tuple({id(chain): chain for chain in chains}.values())


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _role(chain: str | None) -> tuple[str, str] | None:
    if chain is None:
        return None
    for prefix, role in _PREFIXES.items():
        if chain.startswith(prefix):
            return role, chain[len(prefix):]
    return None


_KIND_BY_ROLE = {"svc": "clusterIP", "svl": "clusterIP", "fw": "loadBalancerIP",
                 "ext": "externalIP"}


class _Mapper:
    def __init__(self, ruleset: Ruleset, part: tuple[int, int] | None = None,
                 lean: bool = False) -> None:
        self.ruleset = ruleset
        self.lean = lean        # skip the cluster-IP masquerade rules (a third of the time)
        nat = ruleset.tables.get("nat")
        self.nat: Mapping[str, Chain] = nat.chains if nat is not None else {}
        self.by_hash: dict[str, _Builder] = {}
        self.vips: dict[tuple[str, str, int | None], str] = {}
        self.node_ports: dict[tuple[str, int | None], str] = {}
        self.entry_masq: list[tuple[Chain, int]] = []
        self.part = part

    def builder(self, h: str) -> _Builder:
        b = self.by_hash.get(h)
        if b is None:
            b = self.by_hash[h] = _Builder(h)
        return b

    def run(self) -> None:
        self.read_entries("KUBE-SERVICES", nodeports=False)
        self.read_entries("KUBE-NODEPORTS", nodeports=True)
        self.read_entry_masquerade()
        for chain_name in _PORTAL_CHAINS:
            self.read_portals(chain_name)
        for name in self.nat:                  # chains no entry rule reaches still count
            found = _role(name) if name.startswith(_ROLE_PREFIXES) else None
            if found is not None:
                self.builder(found[1]).chains[found[0]] = name
        for b in self.by_hash.values():
            if in_part(b.hash, self.part):
                self.read_chains(b)
        self.read_filter()

    def read_entries(self, chain_name: str, nodeports: bool) -> None:
        chain = self.nat.get(chain_name)
        if chain is None:
            return
        for index, rule in enumerate(chain.rules):
            if _marks_masquerade(rule.text):
                self.entry_masq.append((chain, index))   # before 1.22: next to the jump
                continue
            fields = _fields(rule)
            found = _role(fields.get("j", ("", False))[0])
            if found is None:
                continue
            role, h = found
            b = self.builder(h)
            b.chains[role] = fields["j"][0]
            b.note_comment(fields)
            proto = fields.get("p", ("", False))[0]
            b.protocol = b.protocol or proto or None
            port = _port(fields)
            address = _checked_destination(b, rule, fields)
            if nodeports:
                b.node_port = port
                self.node_ports[(proto, port)] = h
                kind, inferred = "nodePort", False
            else:
                kind, inferred = self.entry_kind(fields, role)
                b.port = b.port if b.port is not None else port
                if address is not None:
                    self.vips[(address, proto, port)] = h
            b.entries.append(EntryRule(kind, address, port, fields["j"][0], rule, inferred))

    def read_entry_masquerade(self) -> None:
        """Before 1.22 the masquerade rules sat in KUBE-SERVICES / KUBE-NODEPORTS, each right
        before the jump it belongs to (`! -s POD_CIDR -d VIP … -j KUBE-MARK-MASQ`): give each
        to its service port, by its comment's hash, else by the address and port it matches."""
        for chain, index in self.entry_masq:
            rule = chain.rules[index]
            fields = _fields(rule)
            h = self.entry_hash(chain.name, fields)
            if h is None or not in_part(h, self.part):
                continue
            b = self.builder(h)
            src = fields.get("s")
            if chain.name == "KUBE-NODEPORTS":
                reason = "local source" if src is not None and not src[1] else "external"
            elif src is not None and src[1]:
                reason = "cluster IP"
            else:
                reason = "external"
            b.masquerade.append(MasqueradeRule(chain.name, _condition_of(chain, index), reason,
                                               ref=(chain, index)))

    def entry_hash(self, chain_name: str, fields: Fields) -> str | None:
        proto = fields.get("p", ("", False))[0]
        comment = fields.get("comment")
        spn = spn_from_comment(comment[0])[0] if comment is not None else None
        if spn is not None and proto:
            h = chain_hash(spn, proto)
            if h in self.by_hash:
                return h
        port = _port(fields)
        if chain_name == "KUBE-NODEPORTS":
            return self.node_ports.get((proto, port))
        dest = fields.get("d")
        return self.vips.get((_ip(dest[0]), proto, port)) if dest is not None else None

    def read_portals(self, chain_name: str) -> None:
        """The userspace proxy (KUBE-PORTALS-*, KUBE-NODEPORT-*): each service port is sent to
        kube-proxy's own port on the node, and kube-proxy picks the endpoint."""
        chain = self.nat.get(chain_name)
        for rule in chain.rules if chain is not None else ():
            fields = _parsed_fields(rule)
            comment = fields.get("comment")
            spn = spn_from_comment(comment[0])[0] if comment is not None else None
            proto = fields.get("p", ("", False))[0]
            if spn is None or not proto:
                continue
            b = self.builder(chain_hash(spn, proto))
            b.names.append(spn)
            b.protocol = proto
            port = _port(fields)
            target = fields.get("j", ("", False))[0]
            to = fields.get("to-ports") or fields.get("to-destination")
            nodeport = chain_name.startswith("KUBE-NODEPORT-")
            if nodeport:
                b.node_port = port
            else:
                b.port = port
            address = None if nodeport else _checked_destination(b, rule, fields)
            b.entries.append(EntryRule("nodePort" if nodeport else "clusterIP", address, port,
                                       target, rule))
            if target == "REDIRECT":
                b.warnings.append(
                    f"kube-proxy's userspace proxy (KUBE-PORTALS-*, the 2015 layout): "
                    f"connections to {'node port ' if nodeport else ''}{port} go to kube-proxy "
                    f"itself on port {to[0] if to else '?'}, which picks the endpoint; the "
                    "endpoints are not in the rules")

    @staticmethod
    def entry_kind(fields: Fields, role: str) -> tuple[str, bool]:
        comment = fields.get("comment")
        if comment is not None:
            _, kind = spn_from_comment(comment[0])
            if kind in ("clusterIP", "externalIP", "loadBalancerIP"):
                return kind, False
        return _KIND_BY_ROLE[role], True

    def read_chains(self, b: _Builder) -> None:
        for role in ("fw", "ext", "svc", "svl"):
            name = b.chains[role]
            chain = self.nat.get(name) if name is not None else None
            if chain is None:
                continue
            b.chain_objects.append(chain)
            if role in ("svc", "svl"):
                self.read_policy_chain(b, chain, role)
            elif chain.name.startswith("KUBE-XLB-"):
                self.read_front_chain(b, chain, role)
                before = len(b.endpoints)
                self.read_policy_chain(b, chain, "svl")   # "Balancing rule N" → local SEPs
                b.endpoints[before:] = [replace(e, via="ext") for e in b.endpoints[before:]]
            else:
                self.read_front_chain(b, chain, role)
        if not b.names:         # no entry rule names it: the chains' own comments may
            for chain in b.chain_objects[:2]:
                if len(chain):
                    b.note_comment(_fields(chain.rules[0]))
        local = {e.chain for e in b.endpoints if e.local}
        if local:   # an endpoint the SVL chain reaches is on this node, however it is reached
            b.endpoints = [replace(e, local=e.chain in local) for e in b.endpoints]

    def read_front_chain(self, b: _Builder, chain: Chain, role: str) -> None:
        """EXT / FW: masquerade, pod and local short-circuits, source ranges."""
        for i, rule in enumerate(chain.rules):
            target = _target(rule)
            fields = _fields(rule)
            b.note_comment(fields)
            if target == _MASQ:
                reason = "local source" if "src-type" in fields else (
                    "external" if role == "ext" else "other")
                b.masquerade.append(MasqueradeRule(chain.name, _condition(rule), reason,
                                                   ref=(chain, i)))
            elif target == "KUBE-MARK-DROP":      # before 1.25: dropped by filter KUBE-FIREWALL
                comment = fields.get("comment", ("", False))[0]
                reason = "no local endpoints" if comment.endswith("has no local endpoints") \
                    else "firewall" if role == "fw" else "other"
                b.filter.append(FilterRule(chain.name, "DROP", reason, None, None, rule))
            elif role == "fw" and target is not None and target.startswith("KUBE-EXT-"):
                src = fields.get("s")
                if src is not None and not src[1]:
                    b.source_ranges.append(src[0])

    def read_policy_chain(self, b: _Builder, chain: Chain, role: str) -> None:
        """SVC / SVL: the cluster-IP masquerade rule, affinity, and the statistic cascade.

        The hot loop of a big node (one line per endpoint): it reads the raw text and makes no
        Rule objects unless a line needs the parser.
        """
        remaining = 1.0
        for index, text in enumerate(chain.texts()):
            target, head = _raw_jump(text)
            fields = None
            if target is None:
                fields = _fields(chain.rules[index])
                target = fields.get("j", ("", False))[0]
            if target == "DNAT":
                self.direct_dnat(b, chain, index, role)
                continue
            if not target.startswith("KUBE-SEP-"):
                if target == _MASQ and not chain.name.startswith("KUBE-XLB-"):
                    self.masquerade(b, chain, index)
                continue
            if (" --rcheck " in head) if fields is None else ("rcheck" in fields):
                seconds = _option_in(head, " --seconds ") if fields is None else \
                    fields.get("seconds", ("", False))[0]
                b.affinity = int(seconds) if seconds and seconds.isdigit() else b.affinity
                continue
            printed = _option_in(head, " --probability ") if fields is None else \
                fields.get("probability", (None, False))[0]
            if printed is None:
                share = remaining
            else:
                p = _KERNEL_P.get(printed)
                if p is None:
                    try:
                        p = _KERNEL_P[printed] = kernel_probability(printed)
                    except ValueError as err:
                        b.warnings.append(f"{chain.rules[index].location}: {err}; "
                                          "endpoint share unknown")
                        p = 0.0
                share = remaining * p
            remaining -= share
            sep = self.nat.get(target)
            address, hairpin, affinity = self.read_sep(sep) if sep is not None else \
                (None, False, False)
            if sep is None:
                b.warnings.append(f"{chain.rules[index].location}: jump to missing "
                                  f"chain {target}")
            else:
                b.chain_objects.append(sep)
                address = _checked_endpoint(b, sep, address)
            b.endpoints.append(EndpointChain(address, share, target, role == "svl", role,
                                             hairpin, affinity, sep, (chain, index)))

    @staticmethod
    def direct_dnat(b: _Builder, chain: Chain, index: int, role: str) -> None:
        """A KUBE-SVC rule that DNATs itself (no KUBE-SEP chain): the endpoint is the rule."""
        fields = _fields(chain.rules[index])
        address = fields.get("to-destination", ("", False))[0]
        if not valid_endpoint(address):
            b.warnings.append(f"{chain.rules[index].location}: DNAT target {address!r} is not "
                              "one endpoint address:port; endpoint address unknown")
        printed = fields.get("probability")
        done = sum(e.probability for e in b.endpoints if e.via == role)
        try:
            p = kernel_probability(printed[0]) if printed else 1.0
        except ValueError:
            p = 0.0
        share = (1.0 - done) * p
        b.endpoints.append(EndpointChain(address if valid_endpoint(address) else None, share,
                                         chain.name, role == "svl", role, False, "set" in fields,
                                         None, (chain, index)))

    def masquerade(self, b: _Builder, chain: Chain, index: int) -> None:
        if not b.names:
            b.note_comment(_fields(chain.rules[index]))
        if self.lean:
            return
        b.masquerade.append(MasqueradeRule(chain.name, _condition_of(chain, index),
                                           "cluster IP", ref=(chain, index)))

    @staticmethod
    def read_sep(chain: Chain) -> tuple[str | None, bool, bool]:
        """A KUBE-SEP chain's (DNAT address, hairpin masquerade, affinity --set)."""
        texts = chain.texts()
        if len(texts) == 2:             # kube-proxy's shape: hairpin rule, then DNAT
            text = texts[1]
            k = text.rfind(_DNAT)
            rest = text[k + 26:]
            if (k >= 0 and texts[0].endswith(_JUMP_MASQ) and " " not in rest
                    and '"' not in rest and "\\" not in text):
                return rest, True, " --set " in (
                    _unquoted_head(text[:k]) if '"' in text else text)
        address, hairpin, affinity = None, False, False
        for i, text in enumerate(texts):
            if _marks_masquerade(text):           # exact: a quoted string would end in '"'
                hairpin = True
                continue
            k = text.rfind(_DNAT)
            rest = text[k + 26:]
            if k >= 0 and " " not in rest and '"' not in rest and "\\" not in text:
                address = rest
                affinity = " --set " in (_unquoted_head(text[:k]) if '"' in text else text)
            elif k >= 0 or " -j " not in text or "\\" in text:
                fields = _fields(chain.rules[i])    # an unusual line: let the parser decide
                if fields.get("j", ("", False))[0] == "DNAT":
                    address = fields.get("to-destination", (address, False))[0]
                    affinity = "set" in fields
        return address, hairpin, affinity

    def read_filter(self) -> None:
        table = self.ruleset.tables.get("filter")
        if table is None:
            return
        for chain_name in ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-NODEPORTS",
                           "KUBE-PROXY-FIREWALL"):
            chain = table.chains.get(chain_name)
            for rule in chain.rules if chain is not None else ():
                self.read_filter_rule(chain_name, rule)

    def read_filter_rule(self, chain_name: str, rule: Rule) -> None:
        fields = _fields(rule)
        verdict = fields.get("j", ("", False))[0]
        if verdict not in ("REJECT", "DROP", "ACCEPT"):
            return
        proto = fields.get("p", ("", False))[0]
        port = _port(fields)
        dest = fields.get("d")
        address = _ip(dest[0]) if dest is not None and not dest[1] else None
        spn, reason = spn_from_comment(fields.get("comment", ("", False))[0])
        h = self.filter_hash(spn, reason, fields, proto, address, port)
        if h is None:
            return
        b = self.builder(h)
        if spn is not None:
            b.names.append(spn)
        b.protocol = b.protocol or proto or None
        reason = reason if reason in ("no endpoints", "no local endpoints", "firewall",
                                      "health check") else "other"
        b.filter.append(FilterRule(chain_name, verdict, reason, address, port, rule))
        if reason == "health check":
            b.health_check = port
        elif chain_name == "KUBE-SERVICES":   # filter KUBE-SERVICES is for cluster IPs only
            b.port = b.port if b.port is not None else port
            if address is not None:
                b.entries_filter_cluster_ips.append(address)
        elif "dst-type" in fields and address is None:
            b.node_port = b.node_port if b.node_port is not None else port

    def filter_hash(self, spn: str | None, reason: str, fields: Fields, proto: str,
                    address: str | None, port: int | None) -> str | None:
        comment = fields.get("comment", ("", False))[0]
        if reason == "firewall":
            return comment.rsplit("KUBE-FW-", 1)[1]
        if spn is not None and proto:
            return chain_hash(spn, proto)
        if address is not None:
            return self.vips.get((address, proto, port))
        if "dst-type" in fields:
            return self.node_ports.get((proto, port))
        return None


_PORTAL_CHAINS = ("KUBE-PORTALS-CONTAINER", "KUBE-PORTALS-HOST", "KUBE-NODEPORT-CONTAINER",
                  "KUBE-NODEPORT-HOST")


def _marks_masquerade(text: str) -> bool:
    return text.endswith(_JUMP_MASQ) or text.endswith(_MARK_MASQ_1_1)


def _checked_destination(b: _Builder, rule: Rule, fields: Fields) -> str | None:
    """The `-d` address of an entry rule, or None (with a warning) when iptables-restore would
    refuse it: such an address must never be listed as the Service's."""
    dest = fields.get("d")
    if dest is None or dest[1]:
        return None
    if not valid_prefix(dest[0]):
        b.warnings.append(f"{rule.location}: destination {dest[0]!r} is not an address "
                          "(iptables-restore refuses this rule)")
        return None
    return _ip(dest[0])


def _checked_endpoint(b: _Builder, sep: Chain, address: str | None) -> str | None:
    """The DNAT target of a KUBE-SEP chain when it is one endpoint `ip:port`; else None and a
    warning naming the line (an empty chain, a garbled or partial --to-destination)."""
    if address is not None and valid_endpoint(address):
        return address
    if address is None and not len(sep):
        b.warnings.append(f"{sep.source}:{sep.line}: {sep.name} is empty (declared, no DNAT "
                          "rule): no endpoint behind it; connections sent there are not DNATed")
        return None
    line = next((n for n, text, _ in sep.raw if "DNAT" in text), sep.line)
    b.warnings.append(f"{sep.source}:{line}: {sep.name}: DNAT target "
                      f"{address if address is not None else 'missing'!r} is not one endpoint "
                      "address:port; endpoint address unknown")
    return None


def sort_key(s: ServiceChains) -> tuple[bool, str, str, int, str, str, str]:
    """The order service ports are listed in: namespace, name, port (unnamed ones last)."""
    return (s.namespace is None, s.namespace or "", s.name or "", s.port or 0, s.port_name or "",
            s.protocol, s.hash)



def in_part(h: str, part: tuple[int, int] | None) -> bool:
    """Whether the service port of chain hash `h` belongs to share `part` = (k, n) of n."""
    return part is None or (ord(h[0]) + ord(h[-1])) % part[1] == part[0]


def map_services(ruleset: Ruleset, names: Mapping[str, str] | None = None,
                 part: tuple[int, int] | None = None, lean: bool = False) -> list[ServiceChains]:
    """Every service port kube-proxy programmed in `ruleset`, sorted by namespace/name/port.

    `names` (chain hash → service port name, see `identify`) names service ports whose rules
    carry no comment; comment names are used only when they hash to the chain. `part` = (k, n)
    maps only the k-th of n disjoint shares of the service ports (for parallel workers).
    `lean`: leave out the cluster-IP masquerade rules of the SVC chains (`masquerade` stays
    empty for them), for readers that do not look at them, such as the node digest.
    """
    # The ruleset holds hundreds of thousands of objects; the cyclic collector would rescan them
    # every few hundred allocations made here (3x the run time on a 10k-Service node).
    paused = gc.isenabled()
    gc.disable()
    try:
        mapper = _Mapper(ruleset, part, lean)
        mapper.run()
        found = sorted((b.freeze(names, ruleset.family) for b in mapper.by_hash.values()
                        if in_part(b.hash, part)), key=sort_key)
        if found and ipvs_mode(ruleset):
            found = [replace(s, warnings=(*s.warnings, _IPVS_LEFTOVER)) for s in found]
        return found
    finally:
        if paused:
            gc.enable()


_SHARED_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-EXTERNAL-SERVICES",
                  "KUBE-PROXY-FIREWALL")


def map_service_ports(ruleset: Ruleset, names: Mapping[str, str],
                      addresses: Iterable[str] = ()) -> list[ServiceChains]:
    """`map_services` for a few service ports (chain hash → service port name) only.

    Cuts out of `ruleset` the rules that can belong to them — their own SVC/SVL/EXT/FW chains,
    the SEP chains those jump to, and the rules of the shared dispatch chains that jump to
    them or name them (comment, address) — and maps that. On a 10,000-Service node this reads a
    few dozen rules instead of 230,000. Rule numbers and lines are those of the full ruleset.
    """
    own = {prefix + h for h in names for prefix in _ROLE_PREFIXES}
    keys = (*(f" -j {c}" for c in own), *(f'"{spn} ' for spn in names.values()),
            *(f'"{spn}"' for spn in names.values()), *(f" {a}/" for a in addresses))
    sub = Ruleset(source=ruleset.source, family=ruleset.family, backend=ruleset.backend)
    for tname, table in ruleset.tables.items():
        chains = ChainMap(tname, table.chains.source, table.chains.parser)
        chains.text, chains.family = table.chains.text, table.chains.family
        sub.tables[tname] = Table(tname, table.family, chains, table.line)
        wanted = [n for n in table.chains if n in own]
        for name in table.chains:
            if name.startswith("KUBE-SEP-") or (name.startswith(_ROLE_PREFIXES) and
                                                name not in own):
                continue
            chain = table.chains[name]
            if name in _SHARED_CHAINS:
                chain = chain.keep_only([r for r in chain.rules if any(k in r.text for k in keys)])
            chains.add_built(chain)
        for name in wanted:
            for text in table.chains[name].texts():
                target = text.rsplit(" -j ", 1)[-1].split(" ", 1)[0]
                if target.startswith("KUBE-SEP-") and target in table.chains:
                    chains.add_built(table.chains[target])
    return [c for c in map_services(sub, names) if c.hash in names]


_ENTRY_KINDS = {"clusterIP", "externalIP", "loadBalancerIP", "plain"}


def service_port_of(path: Iterable[Step]) -> str | None:
    """The service port a traced packet was handled for: the comment of the kube-proxy entry
    rule it matched (KUBE-SERVICES / KUBE-NODEPORTS keep their comments in large clusters);
    else the hash of the first KUBE-SVC/SVL/EXT/FW chain it entered."""
    chain_hash_seen = None
    for step in path:
        if step.chain in ("KUBE-SERVICES", "KUBE-NODEPORTS") and step.rule is not None:
            try:
                match = next((m for m in parse_rule_text(step.text).matches
                              if m.module == "comment"), None)
            except RulesError:
                match = None
            option = match.get("comment") if match else None
            if option is not None:
                spn, kind = spn_from_comment(option.value)
                if spn is not None and kind in _ENTRY_KINDS:
                    return spn
        role = _role(step.chain)
        if role is not None and chain_hash_seen is None:
            chain_hash_seen = f"*-{role[1]}"        # no comment: the chains' hash
    return chain_hash_seen


# --- node facts hinted by the rules ------------------------------------------------------------

_POD_CIDR_VOTES = 25


def _policy_chains_first(chains: ChainMap) -> Iterator[str]:
    """Chain names, those the KUBE-SERVICES / KUBE-NODEPORTS entries jump to first: they hold
    the detector's rules, and on a big node a handful of them is all inference needs."""
    seen: set[str] = set()
    for entry in ("KUBE-SERVICES", "KUBE-NODEPORTS"):
        chain = chains.get(entry)
        for text in chain.texts()[:200] if chain is not None else ():
            target = text.rsplit(" -j ", 1)[-1]
            if target.startswith(_ROLE_PREFIXES) and target in chains and target not in seen:
                seen.add(target)
                yield target
    yield from (name for name in chains if name not in seen)


def infer_pod_cidr(ruleset: Ruleset) -> str | None:
    """The cluster/pod CIDR of the local-traffic detector (`! -s CIDR` on the cluster-IP masquerade
    rules — in KUBE-SVC since 1.22, in KUBE-SERVICES before —, `-s CIDR` on the EXT or XLB pod
    short-circuit), the most common one; None if there is none."""
    nat = ruleset.tables.get("nat")
    seen: Counter[str] = Counter()
    entry = nat.chains.get("KUBE-SERVICES") if nat is not None else None
    for text in entry.texts()[:400] if entry is not None else ():
        if text.endswith(_JUMP_MASQ) and " ! -s " in text:     # before 1.22 (KUBE-SERVICES)
            seen[text.split(" ! -s ", 1)[1].split(" ", 1)[0]] += 1
    for name in _policy_chains_first(nat.chains) if nat is not None else ():
        role = _role(name)
        if role is None or role[0] == "fw":
            continue
        if seen and seen.most_common(1)[0][1] >= _POD_CIDR_VOTES:
            break           # a big node has 10,000 such chains; a few agreeing votes suffice
        chain = nat.chains[name]  # type: ignore[union-attr]  # nat is set: the loop ran
        for rule in chain.rules[:1] if role[0] != "ext" else chain.rules:
            src = _fields(rule).get("s")
            if src is None:
                continue
            target = _target(rule) or ""
            if role[0] != "ext" and src[1] and target == _MASQ:
                seen[src[0]] += 1
            elif role[0] == "ext" and not src[1] and target.startswith("KUBE-SVC-"):
                seen[src[0]] += 1
    return seen.most_common(1)[0][0] if seen else None


def infer_local_hints(ruleset: Ruleset) -> list[LocalHint]:
    """Addresses the rules say are this node's: NodePort dispatch rules limited to node IPs
    (--nodeport-addresses), and LoadBalancer IPs allowed as sources in KUBE-FW (hairpin)."""
    hints: list[LocalHint] = []
    nat = ruleset.tables.get("nat")
    chains = nat.chains if nat is not None else {}
    svc = chains.get("KUBE-SERVICES")
    for rule in svc.rules if svc is not None else ():
        if _target(rule) == "KUBE-NODEPORTS":
            dest = _fields(rule).get("d")
            if dest is not None and not dest[1] and not _loopback(dest[0]):
                hints.append(LocalHint(_ip(dest[0]), "nodeport address", rule))
    lb_ips: dict[str, set[str]] = {}       # KUBE-FW chain → the LB IPs that lead to it
    for rule in svc.rules if svc is not None else ():
        target = _target(rule)
        if target is not None and target.startswith("KUBE-FW-"):
            dest = _fields(rule).get("d")
            if dest is not None:
                lb_ips.setdefault(target, set()).add(dest[0])
    for name, ips in lb_ips.items():
        chain = chains.get(name)
        for rule in chain.rules if chain is not None else ():
            src = _fields(rule).get("s")
            if src is not None and not src[1] and src[0] in ips:
                hints.append(LocalHint(_ip(src[0]), "loadbalancer IP hairpin (a source range "
                                       "contains the node IP)", rule))
    hints += _other_agents_hints(ruleset)
    return hints


def _other_agents_hints(ruleset: Ruleset) -> list[LocalHint]:
    """Addresses other rules give away: SNAT --to-source (the node's own address), host port
    DNATs in the built-in and other agents' chains (`-d NODE_IP/32 --dport N -j DNAT`), and
    filter INPUT accepting traffic to a host address (`-A INPUT -d X/32 … -j ACCEPT`)."""
    hints: list[LocalHint] = []
    for table, want in (("nat", ("SNAT", "DNAT")), ("filter", ("ACCEPT",))):
        t = ruleset.tables.get(table)
        for name in t.chains if t is not None else ():
            if name.startswith("KUBE-") or (table == "filter" and name != "INPUT"):
                continue
            for rule in t.chains[name].rules:  # type: ignore[union-attr]  # t is set
                hint = _address_hint(rule, want)
                if hint is not None:
                    hints.append(hint)
    return hints


def _address_hint(rule: Rule, want: tuple[str, ...]) -> LocalHint | None:
    text = rule.text
    if not any(f" -j {w}" in text for w in want):
        return None
    fields = _fields(rule)
    target = fields.get("j", ("", False))[0]
    if target == "SNAT":
        to = _parsed_fields(rule).get("to-source", ("", False))[0]
        host = to.split(":", 1)[0].split("-", 1)[0]
        return LocalHint(host, "SNAT --to-source", rule) if valid_prefix(host) else None
    dest = fields.get("d")
    if dest is None or dest[1] or not dest[0].endswith("/32") or _loopback(dest[0]):
        return None
    if target == "DNAT" and _port(fields) is not None:
        return LocalHint(_ip(dest[0]), "host port DNAT", rule)
    if target == "ACCEPT" and rule.chain == "INPUT":
        return LocalHint(_ip(dest[0]), "filter INPUT accepts traffic to it", rule)
    return None


def nodeport_owner(ruleset: Ruleset, protocol: str, port: int) -> str | None:
    """The service port whose NodePort is `port`/`protocol` (from KUBE-NODEPORTS), or None."""
    nat = ruleset.tables.get("nat")
    chain = nat.chains.get("KUBE-NODEPORTS") if nat is not None else None
    for rule in chain.rules if chain is not None else ():
        fields = _fields(rule)
        if _port(fields) == port and fields.get("p", ("", False))[0] == protocol:
            comment = fields.get("comment")
            spn = spn_from_comment(comment[0])[0] if comment is not None else None
            return spn or f"chains *-{fields.get('j', ('', False))[0].rsplit('-', 1)[-1]}"
    return None


def _loopback(value: str) -> bool:
    return value.startswith("127.") or value in ("::1", "::1/128")


# --- the node as a whole: is kube-proxy's dispatch reachable, and in which mode ---------------

_IPVS_LEFTOVER = ("leftover of iptables mode: kube-proxy runs in IPVS mode on this node, so no "
                  "packet reaches these chains; the service is in IPVS (ipvsadm -Ln)")
_IPVS_SETS = ("KUBE-CLUSTER-IP", "KUBE-LOOP-BACK", "KUBE-NODE-PORT-", "KUBE-LOAD-BALANCER",
              "KUBE-EXTERNAL-IP")
_HOOKED_FROM = {"KUBE-SERVICES": ("PREROUTING", "OUTPUT"),
                "KUBE-PORTALS-CONTAINER": ("PREROUTING",), "KUBE-PORTALS-HOST": ("OUTPUT",)}


def ipvs_mode(ruleset: Ruleset) -> bool:
    """kube-proxy in IPVS mode: its nat KUBE-SERVICES matches ipsets (`-m set --match-set
    KUBE-CLUSTER-IP dst,dst`), kube-proxy-semantics.md §3."""
    nat = ruleset.tables.get("nat")
    chain = nat.chains.get("KUBE-SERVICES") if nat is not None else None
    return chain is not None and any(
        " --match-set KUBE-" in t and any(f" {s}" in t for s in _IPVS_SETS)
        for t in chain.texts()[:100])


def layout_notes(ruleset: Ruleset) -> list[str]:
    """What a user must know before reading the service rules of this dump: IPVS mode (the
    KUBE-SVC chains are leftovers), the userspace proxy, or dispatch chains no built-in chain
    jumps to (a broken or half-written node: no packet reaches the service rules)."""
    nat = ruleset.tables.get("nat")
    if nat is None:
        return []
    notes: list[str] = []
    if ipvs_mode(ruleset):
        leftovers = sum(1 for n in nat.chains if n.startswith(("KUBE-SVC-", "KUBE-SEP-")))
        notes.append("kube-proxy runs in IPVS mode on this node: services are in IPVS "
                      "(ipvsadm -Ln), not in these rules" + (
                          f"; the {leftovers} KUBE-SVC/KUBE-SEP chains here are leftovers of "
                          "iptables mode that no packet reaches" if leftovers else ""))
        return notes
    for name, hooks in _HOOKED_FROM.items():
        chain = nat.chains.get(name)
        if chain is None or not len(chain):
            continue
        jumped = [h for h in hooks if _jumps_to(nat.chains.get(h), name)]
        missing = [h for h in hooks if h not in jumped]
        declared = [c for c in (nat.chains.get(h) for h in hooks) if c is not None]
        if missing and not any(c.line != nat.line for c in declared):
            notes.append(f"nat {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                         "not in this dump: it is kube-proxy's restore input, without the jumps "
                         f"to {name} that kube-proxy adds with `iptables -I`; traces start in "
                         "the built-in chains, so they reach no service rule here")
        elif missing:
            notes.append(f"nat {' and '.join(missing)} {'does' if len(missing) == 1 else 'do'} "
                         f"not jump to {name}: packets "
                         f"{'from outside' if 'PREROUTING' in missing else ''}"
                         f"{' and ' if len(missing) == 2 else ''}"
                         f"{'from the node' if 'OUTPUT' in missing else ''} never reach the "
                         "service rules (a broken or half-written node, or kube-proxy stopped "
                         "while restoring)")
    return notes


def _jumps_to(chain: Chain | None, target: str) -> bool:
    return chain is not None and any(t.endswith(f" -j {target}") or f" -j {target} " in t
                                     for t in chain.texts())
