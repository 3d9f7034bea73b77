"""kube-proxy's nftables mode read backwards: chain-name hashes, and maps/chains → service ports.

kube-proxy names a service port's chains `<prefix><H>-<ns>/<name>/<proto>/<portname>` and its
endpoint chains and affinity sets `…/<portname>__<IP>/<port>`, where H is the first 8 base32
characters of sha256 of the part after the dash (kube-proxy-semantics.md §2.4). Service ports are
found from the maps kube-proxy dispatches through (`service-ips`, `service-nodeports`,
`firewall-ips`, `no-endpoint-*`) and from the chain names, whose hash is checked; comments only
ever supply a name where nothing else does (a `no-endpoint-*` element of a port without chains).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from itertools import islice
from typing import Any

from svctrace.model.kubeproxy import (
    CHAIN_ROLES,
    ElementRule,
    EndpointChain,
    EntryRule,
    FilterRule,
    LocalHint,
    MasqueradeRule,
    RuleRef,
    ServiceChains,
)
from svctrace.model.nftables import NftChain, NftElement, NftRule, NftRuleset, NftTable, Statement
from svctrace.rules.nodefacts import PodSource

__all__ = [
    "ChainName", "name_hash", "chain_base", "chain_name", "parse_chain_name",
    "kube_proxy_tables", "map_services", "layout", "infer_pod_cidr", "infer_local_hints",
    "iptables_kube_tables", "with_load_balancer_ips", "pod_source",
]

ROLE_PREFIXES = {"service-": "svc", "local-": "svl", "external-": "ext", "firewall-": "fw",
                 "endpoint-": "sep", "affinity-": "affinity"}
PREFIX_OF_ROLE = {role: prefix for prefix, role in ROLE_PREFIXES.items()}
_BASE32 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
_BASE_MAX = 240          # kube-proxy cuts longer bases to 237 characters + "..."


# --- chain names (§2.4) ------------------------------------------------------------------------

def name_hash(path: str) -> str:
    """H: the first 8 characters of base32(sha256(path)), A–Z2–7."""
    digest = hashlib.sha256(path.encode()).digest()
    return base64.b32encode(digest[:5]).decode("ascii")      # 5 bytes = exactly 8 characters


def _path(spn: str, proto: str, endpoint: str | None = None) -> str:
    """`ns/name:port` + proto (+ endpoint "IP:port" / "[IPv6]:port") → kube-proxy's path."""
    namespace, _, rest = spn.partition("/")
    name, _, port_name = rest.partition(":")
    path = f"{namespace}/{name}/{proto.lower()}/{port_name}"
    if endpoint is not None:
        host, _, port = endpoint.rpartition(":")
        path += f"__{host.strip('[]').replace(':', '.')}/{port}"
    return path


def chain_base(spn: str, proto: str, endpoint: str | None = None) -> str:
    """`H-path`, the part every chain and set name of this service port (or endpoint) shares."""
    path = _path(spn, proto, endpoint)
    base = f"{name_hash(path)}-{path}"
    return base if len(base) <= _BASE_MAX else base[:_BASE_MAX - 3] + "..."


def chain_name(role: str, spn: str, proto: str, endpoint: str | None = None) -> str:
    """The name kube-proxy gives the `role` chain (svc, svl, ext, fw, sep) or set (affinity)
    of a service port (`ns/name:port`, protocol) or, for sep/affinity, of one of its endpoints
    ("IP:port" or "[IPv6]:port")."""
    return PREFIX_OF_ROLE[role] + chain_base(spn, proto, endpoint)


@dataclass(frozen=True, slots=True)
class ChainName:
    """A kube-proxy chain or set name taken apart. `verified`: its hash is that of its path."""

    role: str                 # svc | svl | ext | fw | sep | affinity
    hash: str
    namespace: str
    name: str
    protocol: str
    port_name: str
    endpoint: str | None      # "IP/port" as written in the name (IPv6 colons are dots)
    verified: bool

    @property
    def spn(self) -> str:
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base


@lru_cache(maxsize=1 << 16)       # a big node names each chain in several maps and rules
def parse_chain_name(name: str) -> ChainName | None:
    """The parts of a per-service chain or set name, or None for any other name."""
    prefix = next((p for p in ROLE_PREFIXES if name.startswith(p)), None)
    if prefix is None:
        return None
    base = name[len(prefix):]
    h, dash, path = base[:8], base[8:9], base[9:]
    if dash != "-" or len(h) != 8 or not set(h) <= _BASE32:
        return None
    service, sep, endpoint = path.partition("__")
    parts = service.split("/")
    if len(parts) != 4 or not all(parts[:3]):
        return None
    verified = not path.endswith("...") and name_hash(path) == h
    return ChainName(ROLE_PREFIXES[prefix], h, parts[0], parts[1], parts[2], parts[3],
                     endpoint if sep else None, verified)


def spn_in_name(name: str) -> str | None:
    """The service port name a per-service chain or set name carries, its hash unchecked (a
    cheap filter before parse_chain_name)."""
    dash = name.find("-")
    service = name[dash + 10:].partition("__")[0].split("/") if dash > 0 else ()
    if len(service) != 4:
        return None
    return f"{service[0]}/{service[1]}" + (f":{service[3]}" if service[3] else "")


# --- statements, as libnftables-json ------------------------------------------------------------

def _verdict(stmt: Any) -> tuple[str, str | None] | None:
    """("goto"|"jump", target) or ("drop"|"accept"|…, None) for a verdict statement."""
    if not isinstance(stmt, Mapping) or len(stmt) != 1:
        return None
    (key, value), = stmt.items()
    if key in ("goto", "jump") and isinstance(value, Mapping):
        return key, str(value.get("target"))
    if key in ("accept", "drop", "return", "continue"):
        return key, None
    return None


def _sets_masquerade_mark(stmt: Statement) -> bool:
    """`meta mark set meta mark | 0x4000` (1.36) or `jump mark-for-masquerade` (≤ 1.35)."""
    mangle = stmt.get("mangle")
    if isinstance(mangle, Mapping):
        value = mangle.get("value")
        return mangle.get("key") == _MARK and isinstance(value, Mapping) and "|" in value
    return _verdict(stmt) == ("jump", "mark-for-masquerade")


_MARK = {"meta": {"key": "mark"}}


def _fib_saddr_local(stmt: Statement) -> bool:
    match = stmt.get("match")
    if not isinstance(match, Mapping):
        return False
    left = match.get("left")
    return (isinstance(left, Mapping) and "fib" in left and match.get("right") == "local"
            and "saddr" in (left["fib"].get("flags") or ()))


def _concat(value: Any) -> list[Any]:
    if isinstance(value, Mapping) and "concat" in value:
        return list(value["concat"])
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _endpoint(address: Any, port: Any) -> str:
    return f"[{address}]:{port}" if ":" in str(address) else f"{address}:{port}"


def _address(value: Any) -> str | None:
    """A plain address or prefix as iptables shows a range ("198.18.0.0/15")."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "prefix" in value:
        return f"{value['prefix']['addr']}/{value['prefix']['len']}"
    if isinstance(value, Mapping) and "range" in value:
        return f"{value['range'][0]}-{value['range'][1]}"
    return None


def _numgen_shares(key: Any, items: Any) -> list[tuple[Any, float]] | None:
    """(data, share) for each entry of a `numgen … mod N` map, in map order: the share is the
    number of the N drawn values that select the entry, over N (a value with no entry: no
    match). None if the key is not numgen or the map is not an anonymous set of pairs."""
    numgen = key.get("numgen") if isinstance(key, Mapping) else None
    if not isinstance(numgen, Mapping) or not isinstance(items, Mapping) or "set" not in items:
        return None
    mod, offset = int(numgen.get("mod", 0)), int(numgen.get("offset", 0) or 0)
    out: list[tuple[Any, float]] = []
    for pair in items["set"]:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            return None
        index, data = pair
        hits = _hits(index, offset, offset + mod)
        out.append((data, hits / mod if mod else 0.0))
    return out


def _hits(key: Any, low: int, end: int) -> int:
    """How many of the values low … end-1 `key` holds (an int, or a range: the overlap)."""
    if isinstance(key, int):
        return 1 if low <= key < end else 0
    if isinstance(key, Mapping) and "range" in key:
        first, last = int(key["range"][0]), int(key["range"][1])
        return max(0, min(last, end - 1) - max(first, low) + 1)
    return 0


# 1.36's DNAT rule exactly as `nft list` prints it: read from the text, the hot loop of a big
# node (parsing the statements costs 10x more). Any other spelling goes through the statements.
_NUMGEN_DNAT = re.compile(r"meta l4proto \w+ dnat ip6? to numgen (?:random|inc) mod (\d+) "
                          r"map \{ ([^{}\"]*) \}")


def _text_pick(text: str) -> list[tuple[str, float]] | None:
    """(endpoint, share) of `meta l4proto P dnat ip to numgen random mod N map { i : A . p, …
    }`; None for any other rule. Index i < N is drawn with probability 1/N (offset 0)."""
    found = _NUMGEN_DNAT.fullmatch(text)
    if found is None:
        return None
    mod = int(found[1])
    out = []
    for item in found[2].split(", "):
        index, colon, data = item.partition(" : ")
        address, dot, port = data.rpartition(" . ")
        if not colon or not dot or not index.isdigit() or not port.isdigit() or " " in address:
            return None
        out.append((_endpoint(address, port), 1 / mod if int(index) < mod else 0.0))
    return out


def _element_text(element: NftElement, family: str) -> str:
    """A map element as nft lists it: `key [comment "…"] : verdict`."""
    from svctrace.rules.nft_format import format_expr, format_statement, quote

    text = " . ".join(format_expr(part) for part in _concat(element.key))
    if element.comment is not None:
        text += f" comment {quote(element.comment)}"
    if element.value is not None:
        shown = format_statement(element.value, family) if _verdict(element.value) \
            else format_expr(element.value)
        text += f" : {shown}"
    return text


# --- mapping maps and chains → service ports ----------------------------------------------------

KUBE_PROXY_TABLE = "kube-proxy"
_FAMILY_NUMBER = {"ip": 4, "ip6": 6}
_NO_ENDPOINT_REASON = {("goto", "reject-chain"): ("REJECT", "no endpoints"),
                       ("drop", None): ("DROP", "no local endpoints")}


def kube_proxy_tables(ruleset: NftRuleset) -> list[NftTable]:
    """kube-proxy's own tables (`ip kube-proxy`, `ip6 kube-proxy`), in listing order."""
    return [t for t in ruleset.tables if t.name == KUBE_PROXY_TABLE and
            t.family in _FAMILY_NUMBER]


def layout(table: NftTable) -> str:
    """Which kube-proxy rule layout a table has, from its markers (§2.0): "1.36",
    "1.34-1.35" or "1.30-1.33"."""
    if "hairpin-connections" in table.sets:
        return "1.36"
    return "1.34-1.35" if "filter-prerouting-pre-dnat" in table.chains else "1.30-1.33"


class _Builder:
    """Mutable accumulator for one service port of one table; frozen at the end."""

    def __init__(self, family: int, h: str) -> None:
        self.family, self.hash = family, h
        self.protocol: str | None = None
        self.port: int | None = None
        self.spn: str | None = None               # from a verified chain name
        self.comment_spn: str | None = None       # from a no-endpoint-* element's comment
        self.node_port: int | None = None
        self.chains: dict[str, str | None] = dict.fromkeys(CHAIN_ROLES)
        self.addresses: dict[str, list[str]] = {"clusterIP": [], "externalIP": [],
                                                "loadBalancerIP": []}
        self.entries: list[EntryRule] = []
        self.endpoints: list[EndpointChain] = []
        self.affinity: int | None = None
        self.source_ranges: list[str] = []
        self.masquerade: list[MasqueradeRule] = []
        self.filter: list[FilterRule] = []
        self.firewall: list[tuple[str, int, ElementRule]] = []   # firewall-ips: (LB IP, port)
        self.chain_objects: list[NftChain] = []
        self.elements: list[RuleRef] = []
        self.warnings: list[str] = []

    def note(self, proto: Any, port: Any = None) -> None:
        self.protocol = self.protocol or (str(proto) if proto is not None else None)
        if port is not None and self.port is None:
            self.port = int(port)

    def freeze(self, names: Mapping[str, str] | None) -> ServiceChains:
        spn = self.spn or (names or {}).get(self.hash) or self.comment_spn
        namespace = name = port_name = None
        if spn is not None:
            namespace, _, rest = spn.partition("/")
            name, _, port_name = rest.partition(":")
        return ServiceChains(
            hash=self.hash, protocol=self.protocol or "", namespace=namespace, name=name,
            port_name=port_name, port=self.port,
            cluster_ips=_unique(self.addresses["clusterIP"]),
            external_ips=_unique(self.addresses["externalIP"]),
            load_balancer_ips=_unique(self.addresses["loadBalancerIP"]),
            node_port=self.node_port, chains=self.chains, endpoints=tuple(self.endpoints),
            affinity_seconds=self.affinity, source_ranges=tuple(self.source_ranges),
            masquerade=tuple(self.masquerade), filter=tuple(self.filter),
            entries=tuple(self.entries), warnings=tuple(self.warnings), mode="nftables",
            family=self.family, chain_list=tuple({id(c): c for c in self.chain_objects}.values()),
            rule_list=tuple(self.elements))


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _condition(rule: NftRule, upto: int) -> str:
    """The matches before statement `upto`, as nft prints them (the same for every form)."""
    from svctrace.rules.nft_format import format_rule

    return format_rule(tuple(rule.statements[:upto]), rule.family)


class _TableMapper:
    """Reads one kube-proxy table: its dispatch maps first, then each service port's chains."""

    def __init__(self, table: NftTable, source: str, builders: dict[tuple[int, str], _Builder],
                 only: Collection[str] | None = None, text_form: bool = False) -> None:
        self.table, self.source, self.builders, self.only = table, source, builders, only
        self.text_form = text_form          # rules came as text: _text_pick may read them
        self.family = _FAMILY_NUMBER[table.family]
        self.mine: list[_Builder] = []
        self.by_address: dict[tuple[Any, ...], _Builder] = {}
        self.by_node_port: dict[tuple[Any, ...], _Builder] = {}
        self.cluster_ips = {str(e.key) for e in self.elements("cluster-ips")}
        self.firewall_keys = {tuple(_concat(e.key)) for e in self.elements("firewall-ips")}
        self.hairpin = {tuple(_concat(e.key)) for e in self.elements("hairpin-connections")}

    def elements(self, name: str) -> tuple[NftElement, ...]:
        found = self.table.set(name)
        return found.elements if found is not None else ()

    def wants(self, name: str) -> bool:
        return self.only is None or spn_in_name(name) in self.only

    def run(self) -> None:
        for name in self.table.chains:
            parsed = parse_chain_name(name) if self.wants(name) else None
            if parsed is not None and parsed.role in CHAIN_ROLES:
                self.builder_for_chain(name, parsed)
        self.read_dispatch("service-ips", self.read_service_ip)
        self.read_dispatch("service-nodeports", self.read_node_port)
        self.read_dispatch("firewall-ips", self.read_firewall_ip)
        self.read_dispatch("no-endpoint-services", self.read_no_endpoint)
        self.read_dispatch("no-endpoint-nodeports", self.read_no_endpoint)
        for b in self.mine:
            if self.only is None or (b.spn or b.comment_spn) in self.only:
                _ChainReader(self, b).run()
        self.read_cluster_ip_mark()

    def builder(self, h: str) -> _Builder:
        key = (self.family, h)
        b = self.builders.get(key)
        if b is None:
            b = self.builders[key] = _Builder(self.family, h)
            self.mine.append(b)
        return b

    def builder_for_chain(self, name: str, parsed: ChainName) -> _Builder:
        b = self.builder(parsed.hash)
        b.chains[parsed.role] = b.chains[parsed.role] or name
        b.note(parsed.protocol)
        if b.spn is None:
            b.spn = parsed.spn
            if not parsed.verified:
                b.warnings.append(f"chain {name}: its hash is not that of its name; "
                                  "the name may not be kube-proxy's")
        return b

    def read_dispatch(self, map_name: str, read: Any) -> None:
        found = self.table.set(map_name)
        if found is None:
            return
        for number, element in enumerate(found.elements, 1):
            rule = ElementRule(self.table.name, map_name, number, found.line, None, self.source,
                               partial(_element_text, element, self.table.family))
            read(map_name, element, rule)

    def target_builder(self, element: NftElement, rule: ElementRule,
                       size: int) -> tuple[_Builder, str, str, list[Any]] | None:
        """The service port whose chain a dispatch element (key of `size` parts) names."""
        verdict = _verdict(element.value)
        target = verdict[1] if verdict is not None else None
        parsed = parse_chain_name(target) if target is not None and self.wants(target) else None
        parts = _concat(element.key)
        if target is None or parsed is None or parsed.role not in CHAIN_ROLES or \
                len(parts) != size:
            return None
        b = self.builder_for_chain(target, parsed)
        b.elements.append(rule)
        if target not in self.table.chains:
            b.warnings.append(f"{rule.location}: points to a missing chain {target}")
        return b, target, parsed.role, parts

    def read_service_ip(self, _: str, element: NftElement, rule: ElementRule) -> None:
        found = self.target_builder(element, rule, 3)
        if found is None:
            return
        b, target, role, parts = found
        address, proto, port = str(parts[0]), parts[1], int(parts[2])
        b.note(proto, port)
        inferred = False
        if role in ("svc", "svl"):
            kind = "clusterIP"
        elif tuple(parts) in self.firewall_keys:
            kind = "loadBalancerIP"
        else:            # externalIP and LB IP without source ranges look the same here
            kind, inferred = "externalIP", True
        b.addresses[kind].append(address)
        self.by_address[(address, proto, port)] = b
        b.entries.append(EntryRule(kind, address, port, target, rule, inferred))

    def read_node_port(self, _: str, element: NftElement, rule: ElementRule) -> None:
        found = self.target_builder(element, rule, 2)
        if found is None:
            return
        b, target, _role, parts = found
        b.note(parts[0])
        b.node_port = int(parts[1])
        self.by_node_port[(parts[0], b.node_port)] = b
        b.entries.append(EntryRule("nodePort", None, b.node_port, target, rule))

    def read_firewall_ip(self, _: str, element: NftElement, rule: ElementRule) -> None:
        found = self.target_builder(element, rule, 3)
        if found is None:
            return
        b, parts = found[0], found[3]
        b.note(parts[1])
        b.addresses["loadBalancerIP"].append(str(parts[0]))
        b.firewall.append((str(parts[0]), int(parts[2]), rule))

    def read_no_endpoint(self, map_name: str, element: NftElement, rule: ElementRule) -> None:
        parts = _concat(element.key)
        if len(parts) not in (2, 3):
            return
        address = str(parts[0]) if len(parts) == 3 else None
        proto, port = parts[-2], int(parts[-1])
        b = self.by_address.get((address, proto, port)) if address is not None else \
            self.by_node_port.get((proto, port))
        if b is None:
            if self.only is not None and element.comment not in self.only:
                return
            b = self.no_endpoint_builder(element, rule, str(proto))
        b.elements.append(rule)
        b.note(proto)
        said = _verdict(element.value) or ("other", None)
        verdict, reason = _NO_ENDPOINT_REASON.get(said, (said[0].upper(), "other"))
        b.filter.append(FilterRule(map_name, verdict, reason, address, port, rule))
        if address is None:
            b.node_port = b.node_port if b.node_port is not None else port
        elif address in self.cluster_ips:
            b.addresses["clusterIP"].append(address)
            b.note(proto, port)
        elif tuple(parts) in self.firewall_keys:
            b.addresses["loadBalancerIP"].append(address)
        else:
            b.addresses["externalIP"].append(address)

    def no_endpoint_builder(self, element: NftElement, rule: ElementRule,
                            proto: str) -> _Builder:
        """A port with no chains: kube-proxy's hash of the element's comment, if it has one
        (the comment is its service port name), else a builder of its own."""
        spn = element.comment
        if spn is not None and "/" in spn and " " not in spn:
            b = self.builder(name_hash(_path(spn, proto)))
            b.comment_spn = b.comment_spn or spn
            return b
        b = self.builder(f"element {rule.chain} {rule.number}")
        b.hash = ""
        return b

    def read_cluster_ip_mark(self) -> None:
        """1.36: one rule in `services` marks all ClusterIP traffic from outside the cluster."""
        chain = self.table.chains.get("services")
        if chain is None:
            return
        for index, rule in enumerate(chain.rules):
            stmts = rule.statements
            k = next((i for i, s in enumerate(stmts) if _sets_masquerade_mark(s)), None)
            if k is None or not any(_matches_set(s, "@cluster-ips") for s in stmts[:k]):
                continue
            condition = _condition(rule, k)
            for b in self.mine:
                if any(e.kind == "clusterIP" for e in b.entries):
                    b.masquerade.append(MasqueradeRule(chain.name, condition, "cluster IP",
                                                       ref=(chain, index)))


def _matches_set(stmt: Statement, name: str) -> bool:
    match = stmt.get("match")
    return isinstance(match, Mapping) and match.get("right") == name


class _ChainReader:
    """One service port's own chains: firewall-, external-, service-, local- and endpoint-."""

    def __init__(self, table: _TableMapper, b: _Builder) -> None:
        self.t, self.b = table, b

    def run(self) -> None:
        b = self.b
        for role in ("fw", "ext", "svc", "svl"):
            name = b.chains[role]
            chain = self.t.table.chains.get(name) if name is not None else None
            if chain is None:
                continue
            b.chain_objects.append(chain)
            if role == "fw":
                self.read_firewall(chain)
            elif role == "ext":
                self.read_external(chain)
            else:
                self.read_policy(chain, role)

    def read_firewall(self, chain: NftChain) -> None:
        """`ip saddr != { ranges } drop`: the allowed sources; the rest are dropped here."""
        drops = []
        for rule in chain.rules:
            stmts = rule.statements
            if not stmts or _verdict(stmts[-1]) != ("drop", None):
                continue
            drops.append(rule)
            for stmt in stmts[:-1]:
                match = stmt.get("match")
                if isinstance(match, Mapping) and match.get("op") == "!=" and \
                        match.get("left", {}).get("payload", {}).get("field") == "saddr":
                    right = match.get("right")
                    items = right["set"] if isinstance(right, Mapping) and "set" in right \
                        else [right]
                    self.b.source_ranges += [a for a in map(_address, items) if a is not None]
        for address, port, _element in self.b.firewall:
            for rule in drops:
                self.b.filter.append(FilterRule(chain.name, "DROP", "firewall", address, port,
                                                rule))

    def read_external(self, chain: NftChain) -> None:
        for index, rule in enumerate(chain.rules):
            stmts = rule.statements
            k = next((i for i, s in enumerate(stmts) if _sets_masquerade_mark(s)), None)
            if k is not None:
                reason = "local source" if any(_fib_saddr_local(s) for s in stmts[:k]) \
                    else "external"
                self.b.masquerade.append(MasqueradeRule(chain.name, _condition(rule, k), reason,
                                                        ref=(chain, index)))

    def read_policy(self, chain: NftChain, role: str) -> None:
        """service- / local-: masquerade mark (≤ 1.35), affinity, and the numgen pick."""
        for index, rule in enumerate(chain.rules):
            picks = _text_pick(rule.text) if self.t.text_form else None
            if picks is not None:
                for address, share in picks:
                    self.add(EndpointChain(address, share, chain.name, role == "svl", role,
                                           jump=(chain, index)))
                continue
            stmts = rule.statements
            k = next((i for i, s in enumerate(stmts) if _sets_masquerade_mark(s)), None)
            if k is not None:
                self.b.masquerade.append(MasqueradeRule(chain.name, _condition(rule, k),
                                                        "cluster IP", ref=(chain, index)))
            elif not self.read_pick(chain, role, index, stmts[-1] if stmts else {}):
                self.b.warnings.append(f"{rule.location}: rule of {chain.name} not understood "
                                       f"as kube-proxy's: {rule.text}")

    def read_pick(self, chain: NftChain, role: str, index: int, last: Statement) -> bool:
        """The rule's last statement: a numgen vmap of endpoint chains, a DNAT through a
        numgen map or straight to one endpoint, or an affinity `goto endpoint-…`."""
        vmap, dnat, verdict = last.get("vmap"), last.get("dnat"), _verdict(last)
        if isinstance(vmap, Mapping):
            shares = _numgen_shares(vmap.get("key"), vmap.get("data"))
            for data, share in shares or ():
                target = _verdict(data)
                if target is not None and target[1] is not None:
                    self.add_endpoint_chain(chain, role, index, target[1], share)
            return shares is not None
        if isinstance(dnat, Mapping):
            addr = dnat.get("addr")
            if isinstance(addr, Mapping) and "map" in addr:
                shares = _numgen_shares(addr["map"].get("key"), addr["map"].get("data"))
                for data, share in shares or ():
                    parts = _concat(data)
                    address = _endpoint(*parts) if len(parts) == 2 else None
                    self.add(EndpointChain(address, share, chain.name, role == "svl", role,
                                           jump=(chain, index)))
                return shares is not None
            if isinstance(addr, str):
                address = _endpoint(addr, dnat["port"]) if "port" in dnat else addr
                self.add(EndpointChain(address, 1.0, chain.name, role == "svl", role,
                                       jump=(chain, index)))
                return True
        if verdict is not None and str(verdict[1]).startswith("endpoint-"):
            return True              # `ip saddr @affinity-X goto endpoint-X`: read via the pick
        return False

    def add(self, endpoint: EndpointChain) -> None:
        """Share of an endpoint listed twice (two numgen indices) is summed."""
        if self.t.hairpin and self.in_hairpin_set(endpoint.address):
            endpoint = _replace(endpoint, hairpin=True, local=True)
        for i, known in enumerate(self.b.endpoints):
            if (known.address, known.via) == (endpoint.address, endpoint.via) and \
                    known.chain == endpoint.chain:
                self.b.endpoints[i] = _replace(known, probability=known.probability +
                                               endpoint.probability)
                return
        self.b.endpoints.append(endpoint)

    def add_endpoint_chain(self, chain: NftChain, role: str, index: int, target: str,
                           share: float) -> None:
        sep = self.t.table.chains.get(target)
        if sep is None:
            self.b.warnings.append(f"{chain.rules[index].location}: jump to missing chain "
                                   f"{target}")
            self.add(EndpointChain(None, share, target, role == "svl", role, jump=(chain, index)))
            return
        self.b.chain_objects.append(sep)
        address, hairpin, affinity = self.read_endpoint_chain(sep)
        self.add(EndpointChain(address, share, target, role == "svl", role, hairpin, affinity,
                               sep, (chain, index)))

    def read_endpoint_chain(self, chain: NftChain) -> tuple[str | None, bool, bool]:
        """(DNAT address, hairpin masquerade (≤ 1.35), affinity `update`) of an endpoint-…"""
        address, hairpin, affinity = None, False, False
        for rule in chain.rules:
            for stmt in rule.statements:
                if _sets_masquerade_mark(stmt):
                    hairpin = True
                update = stmt.get("set")
                if isinstance(update, Mapping) and update.get("op") in ("update", "add"):
                    affinity = True
                    found = self.t.table.set(str(update.get("set", "")))
                    if found is not None and found.timeout is not None:
                        self.b.affinity = found.timeout
                dnat = stmt.get("dnat")
                if isinstance(dnat, Mapping) and isinstance(dnat.get("addr"), str):
                    address = _endpoint(dnat["addr"], dnat["port"]) if "port" in dnat \
                        else dnat["addr"]
        return address, hairpin, affinity

    def in_hairpin_set(self, address: str | None) -> bool:
        """1.36: `hairpin-connections` holds exactly this node's endpoints in use (EP . EP .
        proto . port): such an endpoint is local and masqueraded when it reaches itself."""
        if address is None:
            return False
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        return port.isdigit() and (host, host, self.b.protocol, int(port)) in self.t.hairpin


def _replace(e: EndpointChain, **changes: Any) -> EndpointChain:
    from dataclasses import replace

    return replace(e, **changes)


def map_services(ruleset: NftRuleset, names: Mapping[str, str] | None = None,
                 only: Collection[str] | None = None) -> list[ServiceChains]:
    """Every service port kube-proxy programmed in the nft `ruleset` (both families), sorted by
    namespace/name/port, then family. `names` (nft chain hash → service port name) names ports
    that nothing else names; `only` (service port names) reads just those ports' chains."""
    from svctrace.rules.kubeproxy import sort_key

    builders: dict[tuple[int, str], _Builder] = {}
    for table in kube_proxy_tables(ruleset):
        _TableMapper(table, ruleset.source, builders, only,
                     ruleset.format != "nft-json").run()
    frozen = [b.freeze(names) for b in builders.values()
              if only is None or (b.spn or b.comment_spn) in only]
    return sorted(frozen, key=lambda s: (sort_key(s), s.family))


# --- node facts hinted by the rules --------------------------------------------------------------

_POD_CIDR_VOTES = 25
_DETECTOR_CHAINS = 500       # a node without a detector has none in its first chains either


def infer_pod_cidr(ruleset: NftRuleset, family: int | None = None) -> str | None:
    """The cluster CIDR of kube-proxy's local-traffic detector (in the table of `family`, 4 or
    6, if given), the most common one: the `ip saddr != CIDR` of a ClusterIP masquerade mark
    (1.36 `services`, ≤ 1.35 the internal chains) or the `ip saddr CIDR goto service-…` pod
    short-circuit of an external- chain."""
    votes: dict[str, int] = {}
    for table in kube_proxy_tables(ruleset):
        if family is not None and _FAMILY_NUMBER[table.family] != family:
            continue
        for chain in _detector_chains(table):
            for rule in chain.rules:
                # only rules that test a source address; the DNAT maps are never parsed
                cidr = _detector_cidr(rule.statements) if "saddr" in rule.text else None
                if cidr is not None:
                    votes[cidr] = votes.get(cidr, 0) + 1
            if votes and (chain.name == "services" or max(votes.values()) >= _POD_CIDR_VOTES):
                break        # 1.36: the one rule in `services`; ≤ 1.35: a few agreeing votes
    return max(votes, key=lambda c: votes[c]) if votes else None


def _detector_chains(table: NftTable) -> Iterator[NftChain]:
    """`services`, then the first _DETECTOR_CHAINS service-/local-/external- chains."""
    if "services" in table.chains:
        yield table.chains["services"]
    names = (n for n in table.chains if n.startswith(("service-", "local-", "external-")))
    yield from (table.chains[n] for n in islice(names, _DETECTOR_CHAINS))


def _detector_cidr(stmts: tuple[Statement, ...]) -> str | None:
    marks = any(_sets_masquerade_mark(s) for s in stmts)
    short_circuit = bool(stmts) and str((_verdict(stmts[-1]) or ("", ""))[1]).startswith(
        "service-")
    for stmt in stmts:
        match = stmt.get("match")
        if not isinstance(match, Mapping) or not _is_saddr(match.get("left")):
            continue
        right = match.get("right")
        if isinstance(right, Mapping) and "prefix" in right and (
                (marks and match.get("op") == "!=") or
                (short_circuit and match.get("op") == "==")):
            return _address(right)
    return None


def _is_saddr(left: Any) -> bool:
    return isinstance(left, Mapping) and left.get("payload", {}).get("field") == "saddr"


def infer_local_hints(ruleset: NftRuleset) -> list[LocalHint]:
    """Addresses the rules say are this node's: the `nodeport-ips` set (kube-proxy puts the
    node's primary IP there; §2.2)."""
    hints: list[LocalHint] = []
    for table in kube_proxy_tables(ruleset):
        found = table.set("nodeport-ips")
        for number, element in enumerate(found.elements if found is not None else (), 1):
            address = _address(element.key)
            if address is not None and found is not None:
                rule = ElementRule(table.name, found.name, number, found.line,
                                   _element_text(element, table.family), ruleset.source)
                hints.append(LocalHint(address, "nodeport address", rule))
    return hints


def iptables_kube_tables(ruleset: NftRuleset) -> list[str]:
    """Tables of the nft ruleset that hold iptables-mode kube-proxy chains (KUBE-SERVICES): what
    iptables-nft wrote, listed by nft beside kube-proxy's own nft tables."""
    return [f"{t.family} {t.name}" for t in ruleset.tables if "KUBE-SERVICES" in t.chains]


def with_load_balancer_ips(c: ServiceChains, lb_ips: Collection[str]) -> ServiceChains:
    """`c` with the external addresses that the API says are LoadBalancer IPs called so: in
    the maps an LB IP without source ranges looks just like an externalIP."""
    from dataclasses import replace

    moved = {e.address for e in c.entries if e.address is not None and
             e.kind == "externalIP" and e.kind_inferred and e.address in lb_ips}
    if not moved:
        return c
    entries = tuple(replace(e, kind="loadBalancerIP", kind_inferred=False)
                    if e.address in moved else e for e in c.entries)
    return replace(c, entries=entries,
                   external_ips=tuple(a for a in c.external_ips if a not in moved),
                   load_balancer_ips=_unique([*c.load_balancer_ips, *sorted(moved)]))


def pod_source(ruleset: NftRuleset, family: int,
               pod_cidr: str | None = None) -> PodSource | None:
    """A source address 'a pod' would have: inside the cluster pod CIDR (`pod_cidr`, or the
    one kube-proxy's nft local-traffic detector names), near its top (no endpoint sits there);
    None when there is none of that family. Per-node pod subnets are not in kube-proxy's nft
    tables, so unlike iptables mode this is never narrowed to the node's own subnet."""
    from ipaddress import ip_network

    cidr = pod_cidr or infer_pod_cidr(ruleset, family)
    net = ip_network(cidr, strict=False) if cidr else None
    if net is None or net.version != family:
        return None
    inside = net.broadcast_address - 2 if net.num_addresses > 4 else net.network_address
    how = "--pod-cidr" if pod_cidr else "kube-proxy's local-traffic detector (ip saddr != CIDR)"
    return PodSource(str(inside), str(net), f"the cluster pod CIDR, from {how}")
