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
from dataclasses import dataclass

__all__ = [
    "ChainName", "name_hash", "chain_base", "chain_name", "parse_chain_name",
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
